package release_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
)

func Example() {
	doc := []byte(`{
	  "id": "6.1.192-kroll.1",
	  "line": "6.1",
	  "kernel_version": "6.1.0-56-amd64",
	  "upstream_version": "6.1.192",
	  "kind": "deb",
	  "artifacts": [{"name": "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb",
	                 "url": "https://pkg.example.net/k/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb",
	                 "size": 70000000,
	                 "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}],
	  "created": "2026-05-04T09:30:00Z"
	}`)
	m, err := release.Decode(doc)
	if err != nil {
		fmt.Println(err)
		return
	}

	// krollctl sign: the detached signature covers the canonical encoding.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The agent: verify before staging.
	trusted := []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}
	_, err = release.VerifyManifest(m, sig, trusted)
	fmt.Println("verified:", err == nil)

	m.Artifacts[0].URL = "https://evil.example.net/k/linux-image.deb"
	_, err = release.VerifyManifest(m, sig, trusted)
	fmt.Println("tampered:", errors.Is(err, signing.ErrBadSignature))

	_, err = release.Decode([]byte(`{"id":"x","line":"6.12","kernel_version":"6.12.85","kind":"deb",
	  "artifacts":[{"name":"a/b","url":"ftp://h/x","size":0,"sha256":"ABC"}],"created":"2026-05-04T09:30:00Z"}`))
	var ve *release.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			fmt.Println(fe)
		}
	}
	// Output:
	// verified: true
	// tampered: true
	// artifacts[0].name: must be a plain file name of [A-Za-z0-9._+~-] starting with a letter or digit (no directories), not "a/b"
	// artifacts[0].url: scheme must be http or https, not "ftp"
	// artifacts[0].size: must be > 0
	// artifacts[0].sha256: must be 64 lowercase hex characters
}
