package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/signing"
)

func TestOpen(t *testing.T) {
	pub, priv := testKey(1)
	otherPub, otherPriv := testKey(2)
	p := validPolicy()
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := Sign(otherPriv, p)
	if err != nil {
		t.Fatal(err)
	}
	expired := p
	expired.Expires = testNow.Add(-time.Hour)
	expiredDoc, _ := expired.Canonical()
	expiredSig, _ := Sign(priv, expired)
	for _, tc := range []struct {
		name    string
		doc     []byte
		sig     []byte
		trusted []ed25519.PublicKey
		wantErr error
		wantVal bool // a *ValidationError
	}{
		{"ok", doc, sig.Marshal(), []ed25519.PublicKey{otherPub, pub}, nil, false},
		{"expired opens (expiry is a state)", expiredDoc, expiredSig.Marshal(), []ed25519.PublicKey{pub}, nil, false},
		{"unsigned", doc, nil, []ed25519.PublicKey{pub}, ErrUnsigned, false},
		{"untrusted key", doc, otherSig.Marshal(), []ed25519.PublicKey{pub}, signing.ErrUnknownKey, false},
		{"tampered", bytes.Replace(doc, []byte(`"enforce"`), []byte(`"audit"`), 1), sig.Marshal(), []ed25519.PublicKey{pub}, signing.ErrBadSignature, false},
		{"invalid", bytes.Replace(doc, []byte(`"socket-family"`), []byte(`"nope"`), 1), sig.Marshal(), []ed25519.PublicKey{pub}, nil, true},
		{"garbage signature", doc, []byte("garbage"), []ed25519.PublicKey{pub}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Open(tc.doc, tc.sig, tc.trusted)
			wantOK := tc.wantErr == nil && !tc.wantVal && tc.name != "garbage signature"
			if wantOK {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if v.IsZero() || v.KeyID() != signing.KeyID(pub) || !bytes.Equal(v.Document(), tc.doc) || v.Policy().ID != p.ID {
					t.Fatalf("Open = %+v", v)
				}
				if !v.TrustedBy([]ed25519.PublicKey{pub}) || v.TrustedBy([]ed25519.PublicKey{otherPub}) {
					t.Fatal("TrustedBy does not follow the signing key")
				}
				return
			}
			if err == nil || !v.IsZero() {
				t.Fatalf("Open = %+v, %v; want an error and no value", v, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error %v, want %v", err, tc.wantErr)
			}
			var ve *ValidationError
			if tc.wantVal && !errors.As(err, &ve) {
				t.Fatalf("Open error %v, want a *ValidationError", err)
			}
		})
	}
	if (Verified{}).TrustedBy([]ed25519.PublicKey{pub}) {
		t.Fatal("the zero Verified is trusted")
	}
}
