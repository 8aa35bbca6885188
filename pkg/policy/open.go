package policy

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/pkg/signing"
)

// ErrUnsigned is returned (wrapped) by Open for a document without a
// signature.
var ErrUnsigned = errors.New("unsigned policy (no signature)")

// Verified is a policy whose document was decoded, validated (all but the
// expiry) and whose signature was checked against trusted keys. It can only
// be made by Open; the zero value is not a verified policy (IsZero).
type Verified struct {
	p     Policy
	doc   []byte
	sig   []byte
	keyID string
}

// Open is the one way to turn a signed policy document into a policy:
// it decodes doc (YAML or JSON) strictly, validates it, parses the detached
// signature sig and checks that one of the trusted keys signed the
// policy's canonical encoding. It does not check expiry (an expired policy
// is a state, not a forgery): compare Policy().Expires with the clock, or
// call Valid. Errors wrap ErrUnsigned, the signing package's sentinels or
// are a *ValidationError.
func Open(doc, sig []byte, trusted []ed25519.PublicKey) (Verified, error) {
	if len(sig) == 0 {
		return Verified{}, fmt.Errorf("open policy: %w", ErrUnsigned)
	}
	p, err := Decode(doc, time.Time{})
	if err != nil {
		return Verified{}, fmt.Errorf("open policy: %w", err)
	}
	s, err := signing.ParseSignature(sig)
	if err != nil {
		return Verified{}, fmt.Errorf("open policy %q: signature: %w", p.ID, err)
	}
	keyID, err := Verify(p, s, trusted)
	if err != nil {
		return Verified{}, fmt.Errorf("open policy: %w", err)
	}
	return Verified{p: p, doc: append([]byte(nil), doc...), sig: append([]byte(nil), sig...), keyID: keyID}, nil
}

// IsZero reports whether v is the zero value, i.e. not made by Open.
func (v Verified) IsZero() bool { return v.keyID == "" }

// Policy returns the verified policy.
func (v Verified) Policy() Policy { return v.p }

// Document returns the document exactly as signed.
func (v Verified) Document() []byte { return append([]byte(nil), v.doc...) }

// Signature returns the detached signature as given to Open.
func (v Verified) Signature() []byte { return append([]byte(nil), v.sig...) }

// KeyID returns the ID of the trusted key that signed the policy.
func (v Verified) KeyID() string { return v.keyID }

// Expired reports whether the policy has expired at now.
func (v Verified) Expired(now time.Time) bool { return !v.p.Expires.After(now) }

// TrustedBy reports whether the key that signed v is among trusted, e.g.
// to drop a policy whose key was removed since it was opened.
func (v Verified) TrustedBy(trusted []ed25519.PublicKey) bool {
	for _, k := range trusted {
		if signing.KeyID(k) == v.keyID {
			return true
		}
	}
	return false
}
