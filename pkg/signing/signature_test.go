package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const (
	policyCtx  = "kroll-policy-v1"
	releaseCtx = "kroll-release-v1"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	pub, priv := testKey(t, 1)
	other, _ := testKey(t, 2)
	msg := []byte(`{"id":"copy-fail"}`)

	sig := Sign(priv, policyCtx, msg)
	if sig.Alg != Algorithm || sig.KeyID != KeyID(pub) || sig.Context != policyCtx || len(sig.Sig) != ed25519.SignatureSize {
		t.Fatalf("Sign = %+v", sig)
	}
	parsed, err := ParseSignature(sig.Marshal())
	if err != nil {
		t.Fatalf("ParseSignature(Marshal()): %v", err)
	}
	keyID, err := Verify(parsed, policyCtx, msg, []ed25519.PublicKey{other, pub})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if keyID != KeyID(pub) {
		t.Errorf("Verify key id = %s, want %s", keyID, KeyID(pub))
	}
}

func TestMarshalFormat(t *testing.T) {
	_, priv := testKey(t, 1)
	sig := Sign(priv, releaseCtx, []byte("m"))
	want := `{"alg":"ed25519","key_id":"` + sig.KeyID + `","context":"kroll-release-v1","sig":"` +
		base64.StdEncoding.EncodeToString(sig.Sig) + "\"}\n"
	if got := string(sig.Marshal()); got != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}
}

func TestVerifyErrors(t *testing.T) {
	pub, priv := testKey(t, 1)
	otherPub, otherPriv := testKey(t, 2)
	msg := []byte("the document")
	good := Sign(priv, policyCtx, msg)

	flipped := good
	flipped.Sig = bytes.Clone(good.Sig)
	flipped.Sig[10] ^= 1

	// A signature by another key that claims to be by the trusted key.
	impostor := Sign(otherPriv, policyCtx, msg)
	impostor.KeyID = KeyID(pub)

	// A release signature relabelled as a policy signature.
	relabelled := Sign(priv, releaseCtx, msg)
	relabelled.Context = policyCtx

	short := good
	short.Sig = good.Sig[:63]

	rsa := good
	rsa.Alg = "rsa"

	tests := []struct {
		name    string
		sig     Signature
		context string
		msg     []byte
		trusted []ed25519.PublicKey
		wantErr error
		wantMsg string
	}{
		{"valid", good, policyCtx, msg, []ed25519.PublicKey{pub}, nil, ""},
		{"valid among several", good, policyCtx, msg, []ed25519.PublicKey{otherPub, pub}, nil, ""},
		{"malformed trusted key skipped", good, policyCtx, msg, []ed25519.PublicKey{{1, 2, 3}, nil, pub}, nil, ""},
		{"wrong context", good, releaseCtx, msg, []ed25519.PublicKey{pub}, ErrWrongContext, `signature context is "kroll-policy-v1", want "kroll-release-v1"`},
		{"untrusted key", good, policyCtx, msg, []ed25519.PublicKey{otherPub}, ErrUnknownKey, "is not one of the 1 trusted keys"},
		{"no trusted keys", good, policyCtx, msg, nil, ErrUnknownKey, "no trusted keys configured"},
		{"modified message", good, policyCtx, []byte("the document!"), []ed25519.PublicKey{pub}, ErrBadSignature, ""},
		{"empty message", good, policyCtx, nil, []ed25519.PublicKey{pub}, ErrBadSignature, ""},
		{"modified signature", flipped, policyCtx, msg, []ed25519.PublicKey{pub}, ErrBadSignature, ""},
		{"short signature", short, policyCtx, msg, []ed25519.PublicKey{pub}, ErrBadSignature, "63 bytes"},
		{"impostor key id", impostor, policyCtx, msg, []ed25519.PublicKey{pub, otherPub}, ErrBadSignature, ""},
		{"relabelled context", relabelled, policyCtx, msg, []ed25519.PublicKey{pub}, ErrBadSignature, ""},
		{"other algorithm", rsa, policyCtx, msg, []ed25519.PublicKey{pub}, ErrUnsupportedAlgorithm, `"rsa"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyID, err := Verify(tt.sig, tt.context, tt.msg, tt.trusted)
			if tt.wantErr == nil {
				if err != nil || keyID != KeyID(pub) {
					t.Fatalf("Verify = %q, %v; want %s, nil", keyID, err, KeyID(pub))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if keyID != "" {
				t.Errorf("Verify returned key id %q with an error", keyID)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestSignPanicsOnProgrammingErrors(t *testing.T) {
	_, priv := testKey(t, 1)
	tests := []struct {
		name    string
		priv    ed25519.PrivateKey
		context string
	}{
		{"empty context", priv, ""},
		{"NUL in context", priv, "kroll\x00policy"},
		{"upper case context", priv, "Kroll"},
		{"short key", priv[:10], policyCtx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Sign did not panic")
				}
			}()
			Sign(tt.priv, tt.context, []byte("m"))
		})
	}
}

func TestValidContext(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"kroll-policy-v1", true},
		{"kroll-release-v1", true},
		{"a", true},
		{"v1.2_x", true},
		{"", false},
		{"-x", false},
		{"a\x00b", false},
		{"A", false},
		{"a b", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		if got := ValidContext(tt.in); got != tt.want {
			t.Errorf("ValidContext(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseSignature(t *testing.T) {
	_, priv := testKey(t, 1)
	good := Sign(priv, policyCtx, []byte("m"))
	goodJSON := string(good.Marshal())
	b64 := base64.StdEncoding.EncodeToString(good.Sig)
	obj := func(alg, keyID, ctx, sig string) string {
		return `{"alg":"` + alg + `","key_id":"` + keyID + `","context":"` + ctx + `","sig":"` + sig + `"}`
	}
	// The same 64 bytes, but the last base64 digit has non-zero padding
	// bits (64 bytes encode to 88 characters ending in "=="; the digit
	// before them carries 2 data bits and 4 zero bits): a lenient decoder
	// accepts it.
	last := b64[len(b64)-3]
	bumped := map[byte]byte{'A': 'B', 'Q': 'R', 'g': 'h', 'w': 'x'}[last]
	if bumped == 0 {
		t.Fatalf("unexpected last base64 digit %q", last)
	}
	nonCanonical := b64[:len(b64)-3] + string(bumped) + "=="
	tests := []struct {
		name    string
		in      string
		wantErr error
		wantMsg string
	}{
		{"valid", goodJSON, nil, ""},
		{"valid without newline", strings.TrimSpace(goodJSON), nil, ""},
		{"valid, other field order and spacing", "{ \"sig\": \"" + b64 + "\",\n \"context\": \"kroll-policy-v1\", \"key_id\": \"" + good.KeyID + "\", \"alg\": \"ed25519\" }", nil, ""},
		{"empty", "", ErrMalformedSignature, "unexpected end of JSON input"},
		{"not JSON", "sig", ErrMalformedSignature, ""},
		{"array", "[]", ErrMalformedSignature, "must be a JSON object"},
		{"null", "null", ErrMalformedSignature, "must be a JSON object"},
		{"string", `"x"`, ErrMalformedSignature, "must be a JSON object"},
		{"unknown field", `{"alg":"ed25519","key_id":"` + good.KeyID + `","context":"kroll-policy-v1","sig":"` + b64 + `","comment":"x"}`, ErrMalformedSignature, "comment: unknown field"},
		{"duplicate field", `{"alg":"ed25519","key_id":"` + good.KeyID + `","context":"kroll-policy-v1","context":"kroll-release-v1","sig":"` + b64 + `"}`, ErrMalformedSignature, "context: duplicate key"},
		{"upper case field", `{"ALG":"ed25519","key_id":"` + good.KeyID + `","context":"kroll-policy-v1","sig":"` + b64 + `"}`, ErrMalformedSignature, "ALG: unknown field"},
		{"unicode-folded field", `{"alg":"ed25519","key_id":"` + good.KeyID + `","context":"kroll-policy-v1","ſig":"` + b64 + `"}`, ErrMalformedSignature, "unknown field"},
		{"trailing data", goodJSON + "x", ErrMalformedSignature, ""},
		{"two objects", goodJSON + goodJSON, ErrMalformedSignature, "unexpected data after JSON value"},
		{"too large", goodJSON + strings.Repeat(" ", MaxSignatureSize), ErrMalformedSignature, "too large"},
		{"invalid UTF-8", "{\"alg\":\"ed25519\xff\"}", ErrMalformedSignature, "UTF-8"},
		{"number for string", `{"alg":1}`, ErrMalformedSignature, "alg: must be a string, not a JSON number"},
		{"missing alg", `{"key_id":"` + good.KeyID + `","context":"kroll-policy-v1","sig":"` + b64 + `"}`, ErrMalformedSignature, "alg: required"},
		{"other alg", obj("rsa-pss", good.KeyID, policyCtx, b64), ErrUnsupportedAlgorithm, `"rsa-pss"`},
		{"upper case alg", obj("Ed25519", good.KeyID, policyCtx, b64), ErrUnsupportedAlgorithm, ""},
		{"missing key_id", obj("ed25519", "", policyCtx, b64), ErrMalformedSignature, "key_id: required"},
		{"short key_id", obj("ed25519", good.KeyID[:15], policyCtx, b64), ErrMalformedSignature, "key_id: must be 16 lowercase hex characters"},
		{"upper case key_id", obj("ed25519", strings.ToUpper(good.KeyID), policyCtx, b64), ErrMalformedSignature, "key_id: must be 16 lowercase hex"},
		{"missing context", obj("ed25519", good.KeyID, "", b64), ErrMalformedSignature, "context: required"},
		{"bad context", obj("ed25519", good.KeyID, "kroll policy", b64), ErrMalformedSignature, `context: invalid context "kroll policy"`},
		{"NUL in context", obj("ed25519", good.KeyID, `kroll\u0000`, b64), ErrMalformedSignature, "context: invalid context"},
		{"missing sig", obj("ed25519", good.KeyID, policyCtx, ""), ErrMalformedSignature, "sig: required"},
		{"sig not base64", obj("ed25519", good.KeyID, policyCtx, "!!!!"), ErrMalformedSignature, "sig: not standard base64"},
		{"sig URL base64", obj("ed25519", good.KeyID, policyCtx, strings.NewReplacer("+", "-", "/", "_").Replace(b64)+"-_"), ErrMalformedSignature, "sig:"},
		{"sig unpadded", obj("ed25519", good.KeyID, policyCtx, strings.TrimRight(b64, "=")), ErrMalformedSignature, "sig: not standard base64"},
		{"sig with newline", obj("ed25519", good.KeyID, policyCtx, b64[:20]+`\n`+b64[20:]), ErrMalformedSignature, "sig: not canonical"},
		{"sig 63 bytes", obj("ed25519", good.KeyID, policyCtx, base64.StdEncoding.EncodeToString(good.Sig[:63])), ErrMalformedSignature, "sig: 63 bytes, want 64"},
		{"sig 65 bytes", obj("ed25519", good.KeyID, policyCtx, base64.StdEncoding.EncodeToString(append(bytes.Clone(good.Sig), 0))), ErrMalformedSignature, "sig: 65 bytes, want 64"},
		{"deeply nested", strings.Repeat("[", 100), ErrMalformedSignature, ""},
		{"sig non-canonical padding bits", obj("ed25519", good.KeyID, policyCtx, nonCanonical), ErrMalformedSignature, "sig: not standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := ParseSignature([]byte(tt.in))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseSignature: %v", err)
				}
				if sig.Alg != good.Alg || sig.KeyID != good.KeyID || sig.Context != good.Context || !bytes.Equal(sig.Sig, good.Sig) {
					t.Fatalf("ParseSignature = %+v, want %+v", sig, good)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseSignature error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}
