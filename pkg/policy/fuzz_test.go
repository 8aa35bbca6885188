package policy

import (
	"bytes"
	"testing"

	"sigs.k8s.io/yaml"
)

func FuzzDecodePolicy(f *testing.F) {
	f.Add([]byte(designYAML))
	f.Add([]byte(designJSON))
	f.Add([]byte(designCanonical))
	f.Add([]byte("id: m\nversion: 1\nkind: module-request\nmode: enforce\nparams:\n  modules: [net-pf-38, algif_aead]\n" +
		"applies_to:\n  fixed_in: [6.1.170]\n  datacenters: [fra1]\nexpires: 2027-01-01T00:00:00.5+01:00\n"))
	f.Add([]byte("id: f\nversion: 2\nkind: file-open\nmode: audit\nparams: {paths: [/etc/shadow]}\n" +
		"applies_to: {fixed_in: ['6.12.85']}\nexpires: '2027-01-01T00:00:00Z'\n"))
	f.Add([]byte("id: u\nversion: 9\nkind: userns-create\nmode: audit\nparams:\napplies_to:\n  fixed_in: [6.19.0-rc3]\nexpires: 2030-01-01T00:00:00Z\n"))
	f.Add([]byte("a: &a [x]\nb: *a\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(data, testNow)
		if err != nil {
			return
		}
		c1, err := p.Canonical()
		if err != nil {
			t.Fatalf("Canonical of a decoded policy: %v", err)
		}
		p2, err := Decode(c1, testNow)
		if err != nil {
			t.Fatalf("Decode(Canonical()) of %s: %v", c1, err)
		}
		c2, err := p2.Canonical()
		if err != nil {
			t.Fatalf("Canonical of the re-decoded policy: %v", err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("Canonical is not a fixed point:\n%s\n%s", c1, c2)
		}
		// The YAML form of the canonical encoding means the same policy.
		y, err := yaml.JSONToYAML(c1)
		if err != nil {
			t.Fatalf("JSONToYAML(%s): %v", c1, err)
		}
		p3, err := Decode(y, testNow)
		if err != nil {
			t.Fatalf("Decode(YAML of canonical)\n%s: %v", y, err)
		}
		c3, err := p3.Canonical()
		if err != nil {
			t.Fatalf("Canonical of the YAML form: %v", err)
		}
		if !bytes.Equal(c1, c3) {
			t.Fatalf("YAML form has another canonical encoding:\n%s\n%s", c1, c3)
		}
	})
}
