package signing_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/kroll-dev/kroll/pkg/signing"
)

func Example() {
	// In real use: priv, _ := signing.LoadPrivateKey("ops.key").
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	msg := []byte(`{"id":"copy-fail","version":3}`)

	// What `krollctl sign` writes to FILE.sig.
	sigFile := signing.Sign(priv, "kroll-policy-v1", msg).Marshal()

	// What the agent does with it.
	sig, err := signing.ParseSignature(sigFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	keyID, err := signing.Verify(sig, "kroll-policy-v1", msg, []ed25519.PublicKey{pub})
	fmt.Println(keyID == signing.KeyID(pub), err)

	// A policy signature is no good for a release manifest.
	_, err = signing.Verify(sig, "kroll-release-v1", msg, []ed25519.PublicKey{pub})
	fmt.Println(errors.Is(err, signing.ErrWrongContext))

	// Nor for a modified document.
	_, err = signing.Verify(sig, "kroll-policy-v1", []byte(`{"id":"copy-fail","version":4}`), []ed25519.PublicKey{pub})
	fmt.Println(errors.Is(err, signing.ErrBadSignature))
	// Output:
	// true <nil>
	// true
	// true
}
