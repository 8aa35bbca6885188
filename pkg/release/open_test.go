package release

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/kroll-dev/kroll/pkg/signing"
)

func TestOpen(t *testing.T) {
	pub, priv := testKey(1)
	otherPub, otherPriv := testKey(2)
	m := validManifest()
	data := mustCanonical(t, m)
	sig, err := SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := SignManifest(otherPriv, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		sig     []byte
		trusted []ed25519.PublicKey
		ok      bool
		wantErr error
	}{
		{"ok", data, sig.Marshal(), []ed25519.PublicKey{otherPub, pub}, true, nil},
		{"unsigned", data, nil, []ed25519.PublicKey{pub}, false, ErrUnsigned},
		{"untrusted key", data, otherSig.Marshal(), []ed25519.PublicKey{pub}, false, signing.ErrUnknownKey},
		{"tampered", bytes.Replace(data, []byte(`weekly build`), []byte(`weekly built`), 1), sig.Marshal(), []ed25519.PublicKey{pub}, false, signing.ErrBadSignature},
		{"not a manifest", []byte(`{}`), sig.Marshal(), []ed25519.PublicKey{pub}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Open(tc.data, tc.sig, tc.trusted)
			if tc.ok {
				if err != nil || v.IsZero() || v.KeyID() != signing.KeyID(pub) || v.Manifest().ID != m.ID {
					t.Fatalf("Open = %+v, %v", v, err)
				}
				return
			}
			if err == nil || !v.IsZero() {
				t.Fatalf("Open = %+v, %v; want an error and no value", v, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error %v, want %v", err, tc.wantErr)
			}
		})
	}
}
