package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMessageEncoding(t *testing.T) {
	signed := signedMessage(t, trustedKey(), testPolicy("copy-fail", 3))
	tests := []struct {
		name    string
		msg     Message
		wantErr error
	}{
		{name: "signed policy", msg: signed},
		{name: "empty document", msg: Message{Kind: KindPolicy, ID: "x", Version: 1}},
		{name: "at the limit", msg: Message{Kind: KindPolicy, ID: "x", Version: 1, Document: make([]byte, MaxMessageSize-20)}},
		{name: "over the limit", msg: Message{Kind: KindPolicy, ID: "x", Version: 1, Document: make([]byte, MaxMessageSize)}, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.msg.check(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("check: %v, want %v", err, tt.wantErr)
			}
			got, err := decodeMessage(encodeMessage(tt.msg))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("decode: %v, want %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(normalize(got), normalize(tt.msg)) {
				t.Errorf("round trip: got %+v, want %+v", got, tt.msg)
			}
		})
	}
	t.Logf("a typical signed policy: %d bytes uncompressed, %d on the wire", signed.Size(), len(encodeMessage(signed)))
	if n := len(encodeMessage(signed)); n > piggybackLimit {
		t.Errorf("a typical signed policy encodes to %d bytes, over the UDP piggyback limit %d", n, piggybackLimit)
	}
}

// normalize maps empty byte slices to nil.
func normalize(m Message) Message {
	if len(m.Document) == 0 {
		m.Document = nil
	}
	if len(m.Signature) == 0 {
		m.Signature = nil
	}
	return m
}

func TestDecodeMessageErrors(t *testing.T) {
	bomb := encodeFrame(make([]byte, 10<<20))
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"unknown format", []byte{7, 1, 2}, errMalformed},
		{"truncated field", []byte{wireVersion, 10, 'a'}, errMalformed},
		{"trailing bytes", append(append([]byte{wireVersion}, Message{Kind: KindPolicy, ID: "x", Version: 1}.body()...), 0), errMalformed},
		{"bad deflate", []byte{wireVersion | wireCompressed, 0xff, 0xff, 0xff}, errMalformed},
		{"decompression bomb", bomb, ErrTooLarge},
		{"raw oversize", append([]byte{wireVersion}, make([]byte, MaxMessageSize+1)...), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeMessage(tt.wire); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStateEncoding(t *testing.T) {
	var many []Message
	for i := range maxStateMessages + 5 {
		many = append(many, Message{Kind: KindPolicy, ID: fmt.Sprintf("p%04d", i), Version: 1})
	}
	tests := []struct {
		name        string
		msgs        []Message
		wantN       int
		wantSkipped int
	}{
		{"empty", nil, 0, 0},
		{"two", []Message{{Kind: KindPolicy, ID: "b", Version: 2}, {Kind: KindPolicy, ID: "a", Version: 1}}, 2, 0},
		{"invalid left out", []Message{{Kind: "exec", ID: "b", Version: 2}, {Kind: KindPolicy, ID: "a", Version: 1}}, 1, 1},
		{"too many", many, maxStateMessages, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, skipped := encodeState(tt.msgs)
			if skipped != tt.wantSkipped {
				t.Errorf("skipped %d, want %d", skipped, tt.wantSkipped)
			}
			wires, err := decodeState(state)
			if err != nil {
				t.Fatal(err)
			}
			if len(wires) != tt.wantN {
				t.Fatalf("%d messages, want %d", len(wires), tt.wantN)
			}
			prev := ""
			for _, w := range wires {
				m, err := decodeMessage(w)
				if err != nil {
					t.Fatal(err)
				}
				if m.ID < prev {
					t.Errorf("state not in ID order: %q after %q", m.ID, prev)
				}
				prev = m.ID
			}
		})
	}
	// A remote state claiming too many messages is rejected as a whole.
	huge := encodeFrame(append([]byte{0xff, 0xff, 0x7f}, bytes.Repeat([]byte{0}, 100)...))
	if _, err := decodeState(huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge count: %v, want ErrTooLarge", err)
	}
	if _, err := decodeState(encodeFrame(make([]byte, maxStateBytes+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge state: %v, want ErrTooLarge", err)
	}
}

func TestMetaEncoding(t *testing.T) {
	hundred := map[string]int64{}
	for i := range 100 {
		hundred[fmt.Sprintf("policy-%03d-cve-2026-%05d", i, i*7)] = int64(i + 1)
	}
	tests := []struct {
		name          string
		meta          Meta
		wantTruncated bool
	}{
		{name: "empty", meta: Meta{}},
		{name: "typical", meta: Meta{HostID: "fra1-r12-h07", Kernel: "6.12.85-1-cloud-amd64", Phase: "ready", Policies: map[string]int64{"copy-fail": 3, "dirty-pipe": 1}}},
		{name: "100 policies", meta: Meta{HostID: "fra1-r12-h07", Kernel: "6.12.85", Phase: "draining", Policies: hundred}, wantTruncated: true},
		{name: "long strings", meta: Meta{HostID: strings.Repeat("h", 300), Kernel: strings.Repeat("k", 300), Phase: strings.Repeat("p", 300), Policies: hundred}, wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeMeta(tt.meta, false, memberlist.MetaMaxSize)
			if len(b) > memberlist.MetaMaxSize {
				t.Fatalf("encoded meta is %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
			}
			// Deterministic: the same content (a copied map) encodes the same.
			copied := tt.meta
			copied.Policies = map[string]int64{}
			for k, v := range tt.meta.Policies {
				copied.Policies[k] = v
			}
			if b2 := encodeMeta(copied, false, memberlist.MetaMaxSize); !bytes.Equal(b, b2) {
				t.Error("encoding is not deterministic")
			}
			got, leaving, err := decodeMeta(b)
			if err != nil || leaving {
				t.Fatalf("decode: %v, leaving %v", err, leaving)
			}
			if _, leaving, err := decodeMeta(encodeMeta(tt.meta, true, memberlist.MetaMaxSize)); err != nil || !leaving {
				t.Errorf("leaving flag lost: %v, %v", leaving, err)
			}
			if got.Truncated != tt.wantTruncated {
				t.Errorf("Truncated = %v, want %v", got.Truncated, tt.wantTruncated)
			}
			if got.HostID != cut(tt.meta.HostID, maxMetaHostID) || got.Kernel != cut(tt.meta.Kernel, maxMetaKernel) || got.Phase != cut(tt.meta.Phase, maxMetaPhase) {
				t.Errorf("decoded %+v from %+v", got, tt.meta)
			}
			for id, v := range got.Policies {
				if tt.meta.Policies[id] != v {
					t.Errorf("policy %s: version %d, want %d", id, v, tt.meta.Policies[id])
				}
			}
			if !tt.wantTruncated && len(got.Policies) != len(tt.meta.Policies) {
				t.Errorf("%d policies, want %d", len(got.Policies), len(tt.meta.Policies))
			}
			if tt.wantTruncated && len(got.Policies) == 0 && tt.name == "100 policies" {
				t.Error("no policies kept")
			}
			t.Logf("%d bytes, %d of %d policies", len(b), len(got.Policies), len(tt.meta.Policies))
		})
	}
	if _, _, err := decodeMeta([]byte{9}); err == nil {
		t.Error("unknown meta format decoded")
	}
}
