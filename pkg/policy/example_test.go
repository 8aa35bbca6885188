package policy_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
)

func Example() {
	doc := []byte(`
id: copy-fail
cve: CVE-2026-31431
version: 3
kind: socket-family
mode: audit
params:
  family: AF_ALG
  operations: [create, bind]
  allow_exe: [/usr/sbin/charon]
applies_to:
  fixed_in: ["6.12.85", "6.18.22", "6.1.170"]
expires: 2026-06-30T00:00:00Z
`)
	now := time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC) // in real use: time.Now()
	p, err := policy.Decode(doc, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	family, _ := policy.SocketFamily(p.Params.Family)
	fmt.Println(p.ID, p.Version, p.Mode, family, p.AppliesToDC("fra1"))

	// krollctl sign writes POLICY.sig; the agent verifies it.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	sig, err := policy.Sign(priv, p)
	if err != nil {
		fmt.Println(err)
		return
	}
	sigFile := sig.Marshal()
	parsed, err := signing.ParseSignature(sigFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = policy.Verify(p, parsed, []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)})
	fmt.Println("verified:", err == nil)

	// Switching to enforce needs a new, newer, signed version.
	enforce := p
	enforce.Mode = policy.ModeEnforce
	_, err = policy.Verify(enforce, parsed, []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)})
	fmt.Println("unsigned change rejected:", errors.Is(err, signing.ErrBadSignature))
	enforce.Version = 4
	fmt.Println("supersedes:", enforce.Supersedes(p))
	fmt.Println(p.Supersedes(enforce))

	// Validation lists every problem with its field.
	_, err = policy.Decode([]byte(`{"id":"copy-fail","version":0,"kind":"socket-family","mode":"audit",
	  "params":{"family":"AF_FOO","operations":["bind"],"allow_exe":["charon"]},
	  "applies_to":{"fixed_in":[]},"expires":"2026-05-01T00:00:00Z"}`), now)
	var ve *policy.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			fmt.Println(fe)
		}
	}
	// Output:
	// copy-fail 3 audit 38 true
	// verified: true
	// unsigned change rejected: true
	// supersedes: <nil>
	// policy "copy-fail": policy is not newer: version 3 is not newer than 4
	// version: must be > 0
	// params.family: unknown socket family "AF_FOO"
	// params.allow_exe[0]: must be an absolute path
	// applies_to.fixed_in: must not be empty
	// expires: 2026-05-01T00:00:00Z is in the past
}
