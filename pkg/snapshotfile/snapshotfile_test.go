package snapshotfile

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTripAndRefusals(t *testing.T) {
	payload := []byte(`{"v":3,"datacenters":{}}`)
	h := Header{FSMFormat: 3, Index: 42, Term: 7, Node: "c1", Created: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	good, err := Encode(h, payload)
	if err != nil {
		t.Fatal(err)
	}
	got, p, err := Read(bytes.NewReader(good), 0)
	if err != nil || !bytes.Equal(p, payload) || got.Index != 42 || got.Term != 7 || got.Node != "c1" || got.Size != int64(len(payload)) || got.Version != Version || got.Magic != Magic {
		t.Fatalf("round trip: %+v %q %v", got, p, err)
	}
	hdrLen := bytes.IndexByte(good, '\n') + 1
	replace := func(old, new string) []byte { return bytes.Replace(bytes.Clone(good), []byte(old), []byte(new), 1) }
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name, want string
		file       []byte
		maxSize    int64
	}{
		{"empty", "truncated header", nil, 0},
		{"truncated-header", "truncated header", good[:hdrLen-5], 0},
		{"truncated-payload", "truncated: 10 of", good[:hdrLen+10], 0},
		{"trailing", "data after the", append(bytes.Clone(good), '\n'), 0},
		{"checksum", "checksum mismatch", flipped, 0},
		{"magic", `magic "etcd"`, replace(`"magic":"kroll-snapshot"`, `"magic":"etcd"`), 0},
		{"version", "file format version 2", replace(`"version":1`, `"version":2`), 0},
		{"unknown-header-field", "unknown field", replace(`"index":42`, `"index":42,"extra":1`), 0},
		{"duplicate-header-field", "duplicate", replace(`"index":42`, `"index":42,"index":43`), 0},
		{"too-large", "size 24: want 1 to 10 bytes", good, 10},
		{"bad-sha", "want 64 hex digits", replace(`"sha256":"`, `"sha256":"zz`), 0},
		{"no-newline-in-limit", "no header line within", []byte(strings.Repeat("x", MaxHeaderSize+10)), 0},
		{"fsm-format", "fsm_format 0", replace(`"fsm_format":3`, `"fsm_format":0`), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(tc.file), tc.maxSize)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v; want ErrInvalid ∋ %q", err, tc.want)
			}
		})
	}
}
