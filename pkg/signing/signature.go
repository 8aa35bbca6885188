package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// Algorithm is the only signature algorithm kroll uses.
const Algorithm = "ed25519"

// MaxSignatureSize is the largest signature file ParseSignature accepts.
const MaxSignatureSize = 4 << 10

// Errors returned (wrapped) by ParseSignature and Verify; test with
// errors.Is.
var (
	// ErrMalformedSignature: the signature file is not a well-formed
	// signature object.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrUnsupportedAlgorithm: the signature names an algorithm other than
	// ed25519.
	ErrUnsupportedAlgorithm = errors.New("unsupported signature algorithm")
	// ErrWrongContext: the signature was made for another kind of document,
	// e.g. a policy signature presented for a release manifest.
	ErrWrongContext = errors.New("signature is for a different kind of document")
	// ErrUnknownKey: the signing key is not among the trusted keys.
	ErrUnknownKey = errors.New("signature key is not trusted")
	// ErrBadSignature: the signature does not match the message, i.e. the
	// document was modified after it was signed (or the signature was).
	ErrBadSignature = errors.New("signature does not match the document")
)

var (
	contextRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	keyIDRE   = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ValidContext reports whether context is usable as a signature context:
// 1 to 64 characters of [a-z0-9._-], starting with a letter or digit. In
// particular it never contains the 0x00 separator.
func ValidContext(context string) bool {
	return contextRE.MatchString(context)
}

// Signature is a detached ed25519 signature.
type Signature struct {
	// Alg is the signature algorithm, always Algorithm.
	Alg string
	// KeyID identifies the signing key (see KeyID).
	KeyID string
	// Context says what kind of document was signed, e.g.
	// "kroll-policy-v1".
	Context string
	// Sig is the 64-byte ed25519 signature.
	Sig []byte
}

// signatureJSON is the wire form of Signature; the field order is the order
// Marshal writes.
type signatureJSON struct {
	Alg     string `json:"alg"`
	KeyID   string `json:"key_id"`
	Context string `json:"context"`
	Sig     string `json:"sig"`
}

// Sign signs msg with priv in the given context.
//
// Sign panics if context is not a valid context (see ValidContext) or priv
// is not an ed25519 private key: both are programming errors, contexts are
// constants.
func Sign(priv ed25519.PrivateKey, context string, msg []byte) Signature {
	if !ValidContext(context) {
		panic(fmt.Sprintf("signing: invalid signature context %q", context))
	}
	if len(priv) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("signing: ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize))
	}
	pub := priv.Public().(ed25519.PublicKey)
	return Signature{
		Alg:     Algorithm,
		KeyID:   KeyID(pub),
		Context: context,
		Sig:     ed25519.Sign(priv, signedBytes(context, msg)),
	}
}

// signedBytes returns context || 0x00 || msg.
func signedBytes(context string, msg []byte) []byte {
	b := make([]byte, 0, len(context)+1+len(msg))
	b = append(b, context...)
	b = append(b, 0)
	return append(b, msg...)
}

// Marshal encodes s as the JSON object of a signature file, followed by a
// newline. The encoding is deterministic.
func (s Signature) Marshal() []byte {
	b, err := json.Marshal(signatureJSON{
		Alg:     s.Alg,
		KeyID:   s.KeyID,
		Context: s.Context,
		Sig:     base64.StdEncoding.EncodeToString(s.Sig),
	})
	if err != nil {
		// A struct of strings always marshals.
		panic(fmt.Sprintf("signing: marshal signature: %v", err))
	}
	return append(b, '\n')
}

// ParseSignature decodes a signature file. Decoding is strict: the input
// must be at most MaxSignatureSize bytes of a single JSON object with
// exactly the fields alg, key_id, context and sig, without duplicates;
// alg must be "ed25519", key_id 16 lowercase hex digits, context a valid
// context and sig the canonical standard base64 encoding of exactly 64
// bytes.
func ParseSignature(data []byte) (Signature, error) {
	var w signatureJSON
	if err := strictjson.Decode(data, MaxSignatureSize, &w); err != nil {
		return Signature{}, fmt.Errorf("%w: %w", ErrMalformedSignature, err)
	}
	switch {
	case w.Alg == "":
		return Signature{}, fmt.Errorf("%w: alg: required", ErrMalformedSignature)
	case w.Alg != Algorithm:
		return Signature{}, fmt.Errorf("%w: %q (want %q)", ErrUnsupportedAlgorithm, w.Alg, Algorithm)
	case w.KeyID == "":
		return Signature{}, fmt.Errorf("%w: key_id: required", ErrMalformedSignature)
	case !keyIDRE.MatchString(w.KeyID):
		return Signature{}, fmt.Errorf("%w: key_id: must be 16 lowercase hex characters", ErrMalformedSignature)
	case w.Context == "":
		return Signature{}, fmt.Errorf("%w: context: required", ErrMalformedSignature)
	case !ValidContext(w.Context):
		return Signature{}, fmt.Errorf("%w: context: invalid context %q", ErrMalformedSignature, w.Context)
	case w.Sig == "":
		return Signature{}, fmt.Errorf("%w: sig: required", ErrMalformedSignature)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(w.Sig)
	if err != nil {
		return Signature{}, fmt.Errorf("%w: sig: not standard base64: %w", ErrMalformedSignature, err)
	}
	// The decoder skips CR and LF: insist on the one canonical encoding.
	if base64.StdEncoding.EncodeToString(sig) != w.Sig {
		return Signature{}, fmt.Errorf("%w: sig: not canonical standard base64", ErrMalformedSignature)
	}
	if len(sig) != ed25519.SignatureSize {
		return Signature{}, fmt.Errorf("%w: sig: %d bytes, want %d", ErrMalformedSignature, len(sig), ed25519.SignatureSize)
	}
	return Signature{Alg: w.Alg, KeyID: w.KeyID, Context: w.Context, Sig: sig}, nil
}

// Verify checks that sig is a valid signature of msg in the given context
// by one of the trusted keys, and returns the KeyID of that key.
//
// The error wraps ErrUnsupportedAlgorithm, ErrWrongContext (the signature
// was made for another kind of document), ErrUnknownKey (no trusted key
// has sig.KeyID) or ErrBadSignature (the message or the signature was
// modified, or the signature is malformed).
func Verify(sig Signature, context string, msg []byte, trusted []ed25519.PublicKey) (keyID string, err error) {
	if sig.Alg != Algorithm {
		return "", fmt.Errorf("%w: %q (want %q)", ErrUnsupportedAlgorithm, sig.Alg, Algorithm)
	}
	if sig.Context != context {
		return "", fmt.Errorf("%w: signature context is %q, want %q", ErrWrongContext, sig.Context, context)
	}
	if len(sig.Sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: signature has %d bytes, want %d", ErrBadSignature, len(sig.Sig), ed25519.SignatureSize)
	}
	var candidates []ed25519.PublicKey
	for _, pub := range trusted {
		if len(pub) == ed25519.PublicKeySize && KeyID(pub) == sig.KeyID {
			candidates = append(candidates, pub)
		}
	}
	if len(candidates) == 0 {
		if len(trusted) == 0 {
			return "", fmt.Errorf("%w: key %s (no trusted keys configured)", ErrUnknownKey, sig.KeyID)
		}
		return "", fmt.Errorf("%w: key %s is not one of the %d trusted keys", ErrUnknownKey, sig.KeyID, len(trusted))
	}
	signed := signedBytes(context, msg)
	for _, pub := range candidates {
		if ed25519.Verify(pub, signed, sig.Sig) {
			return sig.KeyID, nil
		}
	}
	return "", fmt.Errorf("%w (key %s)", ErrBadSignature, sig.KeyID)
}
