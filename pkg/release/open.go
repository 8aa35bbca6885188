package release

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/kroll-dev/kroll/pkg/signing"
)

// ErrUnsigned is returned (wrapped) by Open for a manifest without a
// signature.
var ErrUnsigned = errors.New("unsigned release manifest (no signature)")

// Verified is a release manifest that was decoded, validated and whose
// signature was checked against trusted keys. Only Open makes one; the
// zero value is not verified (IsZero).
type Verified struct {
	m     Manifest
	keyID string
}

// Open is the one way to turn a signed release manifest into a manifest:
// it decodes data strictly, validates it, parses the detached signature
// sig and checks that one of the trusted keys signed the manifest's
// canonical encoding. Errors wrap ErrUnsigned, the signing package's
// sentinels or are a *ValidationError.
func Open(data, sig []byte, trusted []ed25519.PublicKey) (Verified, error) {
	m, err := Decode(data)
	if err != nil {
		return Verified{}, fmt.Errorf("open release manifest: %w", err)
	}
	if len(sig) == 0 {
		return Verified{}, fmt.Errorf("open release manifest %q: %w", m.ID, ErrUnsigned)
	}
	s, err := signing.ParseSignature(sig)
	if err != nil {
		return Verified{}, fmt.Errorf("open release manifest %q: signature: %w", m.ID, err)
	}
	keyID, err := VerifyManifest(m, s, trusted)
	if err != nil {
		return Verified{}, fmt.Errorf("open release manifest: %w", err)
	}
	return Verified{m: m, keyID: keyID}, nil
}

// IsZero reports whether v is the zero value, i.e. not made by Open.
func (v Verified) IsZero() bool { return v.keyID == "" }

// Manifest returns the verified manifest.
func (v Verified) Manifest() Manifest { return v.m }

// KeyID returns the ID of the trusted key that signed the manifest.
func (v Verified) KeyID() string { return v.keyID }
