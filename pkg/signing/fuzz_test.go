package signing

import (
	"bytes"
	"testing"
)

func FuzzParseSignature(f *testing.F) {
	_, priv := testKey(f, 1)
	good := Sign(priv, "kroll-policy-v1", []byte("m"))
	f.Add(good.Marshal())
	f.Add(Sign(priv, "kroll-release-v1", nil).Marshal())
	f.Add([]byte(`{"alg":"ed25519","key_id":"0123456789abcdef","context":"x","sig":""}`))
	f.Add([]byte(`{"alg":"ed25519","alg":"ed25519"}`))
	f.Add([]byte(`[[[[{}]]]]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := ParseSignature(data)
		if err != nil {
			return
		}
		enc := sig.Marshal()
		again, err := ParseSignature(enc)
		if err != nil {
			t.Fatalf("ParseSignature(Marshal()) of %q: %v", enc, err)
		}
		if again.Alg != sig.Alg || again.KeyID != sig.KeyID || again.Context != sig.Context || !bytes.Equal(again.Sig, sig.Sig) {
			t.Fatalf("round trip changed the signature: %+v -> %+v", sig, again)
		}
		if enc2 := again.Marshal(); !bytes.Equal(enc, enc2) {
			t.Fatalf("Marshal is not a fixed point: %q -> %q", enc, enc2)
		}
	})
}
