package gossip

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage: whatever arrives from the network decodes to a
// message that re-encodes to the same body, or is refused; never a panic.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(Message{Kind: KindPolicy, ID: "copy-fail", Version: 3, Document: []byte("id: copy-fail\n"), Signature: []byte(`{"alg":"ed25519"}`)}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, wire []byte) {
		m, err := decodeMessage(wire)
		if err != nil {
			return
		}
		again, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("re-decode of %+v: %v", m, err)
		}
		if again.Kind != m.Kind || again.ID != m.ID || again.Version != m.Version || !bytes.Equal(again.Document, m.Document) || !bytes.Equal(again.Signature, m.Signature) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

// FuzzDecodeState: push-pull states from peers are bounded and never
// panic the decoder.
func FuzzDecodeState(f *testing.F) {
	st, _ := encodeState([]Message{{Kind: KindPolicy, ID: "a", Version: 1, Document: []byte("x"), Signature: []byte("y")}})
	f.Add(st)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, state []byte) {
		msgs, err := decodeState(state)
		if err != nil {
			return
		}
		for _, w := range msgs {
			_, _ = decodeMessage(w)
		}
	})
}

// FuzzDecodeMeta: node meta from peers (≤ 512 bytes) never panics.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(Meta{HostID: "h1", Kernel: "6.12.85", Phase: "idle", Policies: map[string]int64{"p": 3}}, false, 512))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, leaving, err := decodeMeta(b)
		if err != nil {
			return
		}
		_ = encodeMeta(m, leaving, 512)
	})
}
