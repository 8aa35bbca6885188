package kversion

import (
	"errors"
	"strings"
	"testing"
)

// seedReleases are release strings (valid and invalid) used as fuzz seeds.
func seedReleases() []string {
	return []string{
		"6.12.85", "6.1", "6.1.0", "6.18.0-rc3", "6.18-rc3", "6.18.0-rc3-00012-gabc", "6.12.85+",
		"6.12.85-cloudflare-2026.5.1", "6.12.85-cloudflare-2026.5.10", "6.12.85-foo-01",
		"6.1.0-47-amd64", "6.1.0-56-cloud-amd64", "6.1.0-50-rt-amd64", "6.1.0-0.deb11.17-amd64",
		"6.12.117+deb12-amd64", "6.12.43+deb13-cloud-amd64", "6.12.12+bpo-amd64",
		"6.17-rc7+unreleased-amd64", "6.8.0-45-generic", "6.11.4-301.fc41.x86_64",
		"", "6", "6.x.1", "v6.12.1", "99999999999999999999.1", "-6.1", "6.12.85 foo", "6.12.85-",
		"6.18.0-rc0", "06.1", "6.1.2.3",
	}
}

// referenceVersions are parsed versions of every kind that fuzzed versions
// are compared against.
func referenceVersions(t testing.TB) []Version {
	var refs []Version
	for _, s := range seedReleases() {
		if v, err := Parse(s); err == nil {
			refs = append(refs, v)
		}
	}
	for _, s := range []string{"6.1.192-2", "6.12.117-1~deb12u1", "6.18~rc3-1~exp1"} {
		v, err := ParseDebianPackageVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, v)
	}
	for _, s := range []string{procDebian61, procDebian612, procCustom} {
		v, err := ParseProcVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, v)
	}
	return refs
}

// checkVersion checks invariants every successfully parsed Version holds.
func checkVersion(t *testing.T, v Version, refs []Version) {
	t.Helper()
	if v.IsZero() {
		t.Fatal("successful parse returned the zero Version")
	}
	if c, err := Compare(v, v); err != nil || c != 0 {
		t.Fatalf("Compare(%q, itself) = %d, %v", v, c, err)
	}
	if !v.UpstreamKnown() && v.Kind() != KindDebianABI {
		t.Fatalf("%q: upstream unknown for kind %v", v, v.Kind())
	}
	if _, ok := v.Upstream(); ok != v.UpstreamKnown() {
		t.Fatalf("%q: Upstream() ok = %v, UpstreamKnown() = %v", v, ok, v.UpstreamKnown())
	}
	if !strings.HasPrefix(v.String(), v.Line()) {
		t.Fatalf("%q does not start with its line %q", v, v.Line())
	}
	for _, r := range refs {
		c1, err1 := Compare(v, r)
		c2, err2 := Compare(r, v)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Compare(%q, %q) err %v but reversed err %v", v, r, err1, err2)
		}
		if err1 == nil && c1 != -c2 {
			t.Fatalf("Compare(%q, %q) = %d but reversed %d", v, r, c1, c2)
		}
		if err1 != nil && !v.SameLine(r) {
			t.Fatalf("Compare(%q, %q) undecidable across lines: %v", v, r, err1)
		}
	}
	fixed, err := ContainsFix(v, []Version{refs[0]})
	if v.UpstreamKnown() != (err == nil) {
		t.Fatalf("ContainsFix(%q) = %v, %v with UpstreamKnown %v", v, fixed, err, v.UpstreamKnown())
	}
}

func checkParseError(t *testing.T, in string, v Version, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("error for %q does not wrap ErrUnknownFormat: %v", in, err)
	}
	if !v.IsZero() {
		t.Fatalf("error for %q with non-zero Version %#v", in, v)
	}
	if !strings.Contains(err.Error(), "expected") {
		t.Fatalf("error for %q does not say what was expected: %v", in, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seedReleases() {
		f.Add(s)
	}
	refs := referenceVersions(f)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			checkParseError(t, s, v, err)
			return
		}
		if v.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, v.String())
		}
		again, err := Parse(v.String())
		if err != nil || again != v {
			t.Fatalf("Parse(Parse(%q).String()) = %#v, %v; want %#v", s, again, err, v)
		}
		if v.Kind() == KindDebianPackage || v.DebianPackageVersion() != "" {
			t.Fatalf("Parse(%q) produced Debian package data: %#v", s, v)
		}
		checkVersion(t, v, refs)
	})
}

func FuzzParseDebianPackageVersion(f *testing.F) {
	for _, s := range []string{
		"6.1.192-2", "6.12.117-1~deb12u1", "6.1.170-1", "6.12.12-1~bpo12+1", "6.1.76-1+b1",
		"6.18~rc3-1~exp1", "6.18-1~exp1", "", "6.1.192", "1:6.1.192-2", "6.1.0-47-amd64", "6.18-rc3-1",
	} {
		f.Add(s)
	}
	refs := referenceVersions(f)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseDebianPackageVersion(s)
		if err != nil {
			checkParseError(t, s, v, err)
			return
		}
		if v.String() != s || v.DebianPackageVersion() != s || v.Kind() != KindDebianPackage || !v.UpstreamKnown() {
			t.Fatalf("ParseDebianPackageVersion(%q) = %#v", s, v)
		}
		if !strings.HasSuffix(s, "-"+v.DebianRevision()) || v.DebianRevision() == "" {
			t.Fatalf("%q: revision %q", s, v.DebianRevision())
		}
		again, err := ParseDebianPackageVersion(s)
		if err != nil || again != v {
			t.Fatalf("reparse of %q = %#v, %v", s, again, err)
		}
		checkVersion(t, v, refs)
	})
}

func FuzzParseProcVersion(f *testing.F) {
	for _, s := range []string{
		procDebian61, procDebian612, procCustom, procUbuntu,
		"Linux version 6.1.0-47-amd64 (x) #1 SMP Debian 6.1.170-1",
		"Linux version 6.1.0-47-amd64 (x #1 Debian 6.1.192-2",
		"Linux version 6.1.0-56-amd64 (x) #1 SMP Debian 6.12.117-1 (2026-10-02)",
		"Linux version 6.1.0-56-amd64 (x) #1 SMP Debian",
		"Linux version", "", "Linux version v6.1",
	} {
		f.Add(s)
	}
	refs := referenceVersions(f)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseProcVersion(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownFormat) || !v.IsZero() {
				t.Fatalf("ParseProcVersion(%q) = %#v, %v", s, v, err)
			}
			return
		}
		fields := strings.Fields(s)
		if len(fields) < 3 || fields[0] != "Linux" || fields[1] != "version" || v.String() != fields[2] {
			t.Fatalf("ParseProcVersion(%q).String() = %q, fields %q", s, v.String(), fields)
		}
		release, err := Parse(fields[2])
		if err != nil {
			t.Fatalf("ParseProcVersion accepted %q but Parse(%q): %v", s, fields[2], err)
		}
		if v.Kind() != release.Kind() || v.Line() != release.Line() || v.ABI() != release.ABI() ||
			v.Flavour() != release.Flavour() || v.DistroTag() != release.DistroTag() || v.Suffix() != release.Suffix() {
			t.Fatalf("ParseProcVersion(%q) = %#v, release parses as %#v", s, v, release)
		}
		if v.DebianPackageVersion() == "" {
			if v != release {
				t.Fatalf("without a Debian package version ParseProcVersion(%q) = %#v, want %#v", s, v, release)
			}
		} else {
			if !v.UpstreamKnown() {
				t.Fatalf("ParseProcVersion(%q): package version %q but upstream unknown", s, v.DebianPackageVersion())
			}
			p, err := ParseDebianPackageVersion(v.DebianPackageVersion())
			if err != nil {
				t.Fatal(err)
			}
			vu, _ := v.Upstream()
			pu, _ := p.Upstream()
			if vu != pu || v.DebianRevision() != p.DebianRevision() {
				t.Fatalf("ParseProcVersion(%q): upstream %q revision %q, package says %q %q", s, vu, v.DebianRevision(), pu, p.DebianRevision())
			}
		}
		checkVersion(t, v, refs)
	})
}

// FuzzCompare checks that Compare is antisymmetric and transitive on
// versions from Parse and ParseDebianPackageVersion.
func FuzzCompare(f *testing.F) {
	f.Add("6.1.0-47-amd64", "6.1.0-56-amd64", "6.12.85")
	f.Add("6.12.85", "6.12.85-cloudflare-2026.5.9", "6.12.85+deb12-amd64")
	f.Add("6.18.0-rc3", "6.18", "6.18.22-1")
	f.Add("6.1.0-47-amd64", "6.1.170", "6.1.0-0.deb11.17-amd64")
	parse := func(s string) (Version, bool) {
		if rest, ok := strings.CutPrefix(s, "pkg:"); ok {
			v, err := ParseDebianPackageVersion(rest)
			return v, err == nil
		}
		v, err := Parse(s)
		return v, err == nil
	}
	f.Fuzz(func(t *testing.T, sa, sb, sc string) {
		a, okA := parse(sa)
		b, okB := parse(sb)
		c, okC := parse(sc)
		if !okA || !okB || !okC {
			return
		}
		type result struct {
			c  int
			ok bool
		}
		cmp := func(x, y Version) result {
			r, err := Compare(x, y)
			if back, errBack := Compare(y, x); (err == nil) != (errBack == nil) || (err == nil && back != -r) {
				t.Fatalf("Compare(%q, %q) = %d, %v but reversed %d, %v", x, y, r, err, back, errBack)
			}
			return result{r, err == nil}
		}
		ab, bc, ac := cmp(a, b), cmp(b, c), cmp(a, c)
		// Only versions of the same line can be undecidable.
		if !ac.ok && !a.SameLine(c) {
			t.Fatalf("Compare(%q, %q) undecidable across lines", a, c)
		}
		if ab.ok && bc.ok && ab.c <= 0 && bc.c <= 0 && ac.c > 0 {
			t.Fatalf("%q <= %q <= %q but Compare(a, c) = %d", a, b, c, ac.c)
		}
		if ab.ok && bc.ok && ab.c >= 0 && bc.c >= 0 && ac.c < 0 {
			t.Fatalf("%q >= %q >= %q but Compare(a, c) = %d", a, b, c, ac.c)
		}
		if ab.ok && ac.ok && ab.c == 0 && bc.ok && ac.c != bc.c {
			t.Fatalf("%q == %q but they compare differently with %q: %d vs %d", a, b, c, ac.c, bc.c)
		}
	})
}
