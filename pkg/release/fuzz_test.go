package release

import (
	"bytes"
	"testing"
)

func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(exampleJSON))
	if c, err := validManifest().Canonical(); err == nil {
		f.Add(c)
	}
	f.Add([]byte(`{"id":"x","line":"6.1","kernel_version":"6.1.0-56-amd64","upstream_version":"6.1.192","kind":"bundle",` +
		`"artifacts":[{"name":"a","url":"http://h/a","size":1,"sha256":"` + hashB + `"}],"created":"2026-01-01T00:00:00.5+01:00"}`))
	f.Add([]byte(`{"artifacts":[{},{}],"created":"x"}`))
	f.Add([]byte(`{"id":"x","line":"6.12","kernel_version":"6.12.80-cf1-amd64","kind":"deb",` +
		`"artifacts":[{"name":"a","url":"http://h/a","size":1,"sha256":"` + hashB + `"}],"created":"2026-01-01T00:00:00Z",` +
		`"fixes":["CVE-2026-9999","CVE-2026-31431"]}`))
	f.Add([]byte(`{"id":"x","line":"6.12","kernel_version":"6.12.80","kind":"deb",` +
		`"artifacts":[{"name":"a","url":"http://h/a","size":1,"sha256":"` + hashB + `"}],"created":"2026-01-01T00:00:00Z","fixes":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		c1, err := m.Canonical()
		if err != nil {
			t.Fatalf("Canonical of a decoded manifest: %v", err)
		}
		m2, err := Decode(c1)
		if err != nil {
			t.Fatalf("Decode(Canonical()) of %q: %v", c1, err)
		}
		c2, err := m2.Canonical()
		if err != nil {
			t.Fatalf("Canonical of re-decoded manifest: %v", err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("Canonical is not a fixed point:\n%s\n%s", c1, c2)
		}
	})
}
