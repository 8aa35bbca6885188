package mitigate

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRetirement: the retirement record decoder never panics, and
// what it accepts is a record of the id it is stored under with a version
// of at least 1 that encodes back to a record decoding the same.
func FuzzDecodeRetirement(f *testing.F) {
	for _, s := range []string{
		`{"id":"copy-fail","version":3}`,
		`{"version":3,"id":"copy-fail"}`,
		`{"id":"copy-fail"}`,
		`{"id":"copy-fail","version":0}`,
		`{"id":"copy-fail","version":-9223372036854775808}`,
		`{"id":"copy-fail","version":9223372036854775807}`,
		`{"id":"copy-fail","version":1e3}`,
		`{"id":"copy-fail","version":"3"}`,
		`{"id":"copy-fail","version":3,"version":4}`,
		`{"ID":"copy-fail","version":3}`,
		`{"id":"copy-fail","version":3,"x":null}`,
		`{"id":"copy-fail","version":3}{}`,
		`null`, `[]`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRetirement(b, "copy-fail")
		if err != nil {
			return
		}
		if r.ID != "copy-fail" || r.Version < 1 {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if r2, err := decodeRetirement(again, "copy-fail"); err != nil || r2 != r {
			t.Fatalf("%+v re-encoded as %s decodes to %+v, %v", r, again, r2, err)
		}
	})
}
