package kversion

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// dpkgOrderings are pairs a < b in dpkg's order (deb-version(7) examples
// and kernel package versions).
var dpkgOrderings = [][2]string{
	{"1.0~rc1", "1.0"},
	{"1.0~~", "1.0~"},
	{"1.0~", "1.0"},
	{"1.0", "1.0+b1"},
	{"1.0", "1.0a"},
	{"1.0a", "1.0.1"},
	{"1.0+b1", "1.0.1"},
	{"1.0.1", "1.1"},
	{"1.2", "1.10"},
	{"1.09", "1.10"},
	{"1.0-1", "1.0-2"},
	{"1.0-9", "1.0-10"},
	{"1.0-1", "1.0.1-1"},
	{"9:1.0", "10:0.1"},
	{"1.0-99", "1:0.1"},
	{"6.12.80-1~deb12u1", "6.12.80-1"},
	{"6.12.80-1", "6.12.80-1+b1"},
	{"6.12.80-1+b1", "6.12.80-2"},
	{"6.12.80-2", "6.12.81-1~deb12u1"},
	{"6.12.12-1~bpo12+1", "6.12.12-1"},
	{"6.18~rc3-1~exp1", "6.18-1"},
	{"6.12.80-cf1", "6.12.80-cf1.1"},
	{"6.12.80-cf1.1", "6.12.80-cf2"},
	{"6.12.80-cf9", "6.12.80-cf10"},
	{"6.12.80-cf10", "6.12.81-cf1"},
	{"1a", "1b"},
	{"1.0a", "1.0b"},
	{"1.0Z", "1.0a"},
	{"1.0a", "1.0+"},
	{"1.0+", "1.0."},
}

// dpkgEqual are pairs dpkg considers equal.
var dpkgEqual = [][2]string{
	{"1.0", "1.0"},
	{"1.0", "0:1.0"},
	{"1.0", "1.0-0"},
	{"1.01", "1.1"},
	{"1.0-001", "1.0-1"},
	{"00:1", "1"},
}

func TestDpkgCompare(t *testing.T) {
	for _, p := range dpkgOrderings {
		a, b := p[0], p[1]
		if c, err := DpkgCompare(a, b); err != nil || c != -1 {
			t.Errorf("DpkgCompare(%q, %q) = %d, %v; want -1", a, b, c, err)
		}
		if c, err := DpkgCompare(b, a); err != nil || c != 1 {
			t.Errorf("DpkgCompare(%q, %q) = %d, %v; want 1", b, a, c, err)
		}
	}
	for _, p := range dpkgEqual {
		if c, err := DpkgCompare(p[0], p[1]); err != nil || c != 0 {
			t.Errorf("DpkgCompare(%q, %q) = %d, %v; want 0", p[0], p[1], c, err)
		}
	}
}

// TestDpkgCompareAgreesWithDpkg checks every table pair with the real
// dpkg --compare-versions.
func TestDpkgCompareAgreesWithDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Fatalf("dpkg is needed to check the version order: %v", err)
	}
	check := func(a, op, b string) {
		t.Helper()
		if err := exec.Command(dpkg, "--compare-versions", a, op, b).Run(); err != nil {
			t.Errorf("dpkg --compare-versions %s %s %s: %v", a, op, b, err)
		}
	}
	for _, p := range dpkgOrderings {
		check(p[0], "lt", p[1])
	}
	for _, p := range dpkgEqual {
		check(p[0], "eq", p[1])
	}
}

func TestParseDpkgVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DpkgVersion
		bad  string
	}{
		{in: "1.0", want: DpkgVersion{Upstream: "1.0"}},
		{in: "2:1.0-3", want: DpkgVersion{Epoch: 2, Upstream: "1.0", Revision: "3"}},
		{in: "1.0-cf-2", want: DpkgVersion{Upstream: "1.0-cf", Revision: "2"}},
		{in: "6.12.80-1~deb12u1", want: DpkgVersion{Upstream: "6.12.80", Revision: "1~deb12u1"}},
		{in: "", bad: "empty"},
		{in: "a1.0", bad: "does not start with a digit"},
		{in: "1.0-", bad: "empty revision"},
		{in: "x:1.0", bad: "epoch"},
		{in: "99999999999:1.0", bad: "out of range"},
		{in: "1.0 1", bad: "not allowed"},
		{in: "1.0-1_2", bad: "not allowed in the revision"},
		{in: "1.0:2", bad: "epoch"},
		{in: "-1", bad: "empty upstream"},
		{in: strings.Repeat("1", 300), bad: "longer"},
	} {
		got, err := ParseDpkgVersion(tc.in)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("ParseDpkgVersion(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDpkgVersion(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		form FixForm
		key  string
		bad  string
	}{
		{in: "6.12.80", form: FixUpstream, key: "6.12 upstream"},
		{in: "6.18-rc3", form: FixUpstream, key: "6.18 upstream"},
		{in: "6.12.80-cf1", form: FixBuild, key: "6.12 build-cf"},
		{in: "6.12.80-cf-2026.5.1", form: FixBuild, key: "6.12 build-cf-"},
		{in: "6.12.80-kroll.3", form: FixBuild, key: "6.12 build-kroll."},
		{in: "6.12.80-1~deb12u1", form: FixPackage, key: "6.12 debian-package"},
		{in: "6.12.80-1", form: FixPackage, key: "6.12 debian-package"},
		{in: "6.18~rc3-1~exp1", form: FixPackage, key: "6.18 debian-package"},
		{in: "", bad: "empty"},
		{in: "garbage", bad: "major version"},
		{in: "6.12.80-cf1-amd64", bad: "kernel flavour"},
		{in: "6.12.117+deb12-amd64", bad: "Debian kernel release name"},
		{in: "6.1.0-47-amd64", bad: "Debian kernel release name"},
		{in: "6.12.85+", bad: "starts with"},
		{in: "6.12.80-2-cf", bad: "starts with"},
		{in: "6.12.80-cf_1", bad: "not a Debian version"},
		{in: "6.12.80-1_x", bad: "not allowed"},
		{in: "1:6.12.80-1", bad: "epoch"},
		{in: "v6.12.80", bad: "leading"},
		{in: strings.Repeat("6", 70), bad: "longer"},
	} {
		f, err := ParseFix(tc.in)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ParseFix(%q) = %v, %v; want error containing %q", tc.in, f, err, tc.bad)
			}
			continue
		}
		if err != nil || f.Form() != tc.form || f.Key() != tc.key || f.String() != tc.in {
			t.Errorf("ParseFix(%q) = %v %v key %q, %v; want %v key %q", tc.in, f, f.Form(), f.Key(), err, tc.form, tc.key)
		}
	}
}

func TestParseFixesDuplicates(t *testing.T) {
	if _, err := ParseFixes([]string{"6.12.80", "6.12.80-cf1", "6.12.80-1~deb12u1", "6.18.2", "6.12.80-xy1"}); err != nil {
		t.Fatalf("one entry per line and form: %v", err)
	}
	for _, list := range [][]string{
		{"6.12.80", "6.12.81"},
		{"6.12.80-cf1", "6.12.81-cf2"},
		{"6.12.80-1", "6.12.80-2~deb12u1"},
	} {
		if _, err := ParseFixes(list); err == nil || !strings.Contains(err.Error(), "list one") {
			t.Errorf("ParseFixes(%q) = %v; want a duplicate error", list, err)
		}
	}
}

func TestFixedBy(t *testing.T) {
	proc := func(release, pkg string) string {
		return "Linux version " + release + " (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian " + pkg + " (2026-10-02)"
	}
	for _, tc := range []struct {
		name    string
		running string // a release, or /proc/version content
		fixes   []string
		want    bool
		wantErr bool
	}{
		{"upstream equal", "6.12.80", []string{"6.12.80"}, true, false},
		{"upstream newer", "6.12.85-cf2-amd64", []string{"6.12.80"}, true, false},
		{"upstream older", "6.12.79", []string{"6.12.80"}, false, false},
		{"rc older than release", "6.18.0-rc3", []string{"6.18.0"}, false, false},
		{"other line", "6.18.2", []string{"6.12.80"}, false, false},
		{"build same", "6.12.80-cf1", []string{"6.12.80-cf1"}, true, false},
		{"build with flavour", "6.12.80-cf1-amd64", []string{"6.12.80-cf1"}, true, false},
		{"build with cloud flavour", "6.12.80-cf1-cloud-amd64", []string{"6.12.80-cf1"}, true, false},
		{"later build", "6.12.80-cf2-amd64", []string{"6.12.80-cf1"}, true, false},
		{"hotfix build", "6.12.80-cf1.1-amd64", []string{"6.12.80-cf1"}, true, false},
		{"build on later upstream", "6.12.81-cf1-amd64", []string{"6.12.80-cf3"}, true, false},
		{"earlier build", "6.12.80-cf1-amd64", []string{"6.12.80-cf2"}, false, false},
		{"build 9 < 10", "6.12.80-cf9-amd64", []string{"6.12.80-cf10"}, false, false},
		{"plain upstream is not the build", "6.12.90", []string{"6.12.80-cf1"}, false, false},
		{"other series", "6.12.90-xy5-amd64", []string{"6.12.80-cf1"}, false, false},
		{"build or upstream", "6.12.90", []string{"6.12.80-cf1", "6.12.85"}, true, false},
		// A running build with an extra "-part" after the entry's shape is
		// another build series: dpkg would split it at the last "-" and put
		// the running build's number into the upstream part.
		{"extra part: debug build", "6.12.80-cf1-debug", []string{"6.12.80-cf2"}, false, false},
		{"extra part: edge build", "6.12.80-cf0-edge", []string{"6.12.80-cf1"}, false, false},
		{"extra part: dated build", "6.12.80-cf-2026.4.1-dbg", []string{"6.12.80-cf-2026.5.1"}, false, false},
		{"extra part at a newer build", "6.12.80-cf3-debug-amd64", []string{"6.12.80-cf2"}, false, false},
		{"dated build newer", "6.12.80-cf-2026.5.2-amd64", []string{"6.12.80-cf-2026.5.1"}, true, false},
		{"dated build older", "6.12.80-cf-2026.4.30", []string{"6.12.80-cf-2026.5.1"}, false, false},
		{"entry with a part, running without", "6.12.80-cf3", []string{"6.12.80-cf2-edge"}, false, false},
		{"same extra part", "6.12.80-cf3-edge", []string{"6.12.80-cf2-edge"}, true, false},
		{"other vendor's Debian package", proc("6.12.80-cf1", "6.12.80-cf1"), []string{"6.12.80-1~deb12u1"}, false, false},
		{"other vendor's Debian package, newer upstream", proc("6.12.81-cf1", "6.12.81-cf1"), []string{"6.12.80-1~deb12u1"}, false, false},
		{"debian package with a later upstream", proc("6.12.81+deb12-amd64", "6.12.81-1~deb12u1"), []string{"6.12.80-3"}, true, false},
		{"debian package equal", proc("6.12.80+deb12-amd64", "6.12.80-1~deb12u1"), []string{"6.12.80-1~deb12u1"}, true, false},
		{"debian package newer", proc("6.12.80+deb12-amd64", "6.12.80-1"), []string{"6.12.80-1~deb12u1"}, true, false},
		{"debian package older", proc("6.12.80+deb12-amd64", "6.12.80-1~deb12u1"), []string{"6.12.80-1"}, false, false},
		{"debian ABI name with package", proc("6.1.0-56-amd64", "6.1.192-2"), []string{"6.1.192-1"}, true, false},
		{"package unknown", "6.12.85+deb12-amd64", []string{"6.12.80-1~deb12u1"}, false, false},
		{"bare ABI name", "6.1.0-56-amd64", []string{"6.1.170"}, false, true},
		{"no entries", "6.12.80", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				v   Version
				err error
			)
			if strings.HasPrefix(tc.running, "Linux ") {
				v, err = ParseProcVersion(tc.running)
			} else {
				v, err = Parse(tc.running)
			}
			if err != nil {
				t.Fatal(err)
			}
			fixes, err := ParseFixes(tc.fixes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FixedBy(v, fixes)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("FixedBy(%q, %q) = %v, %v; want %v (error %v)", tc.running, tc.fixes, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := FixedBy(Version{}, nil); err == nil {
		t.Error("FixedBy(zero Version) did not fail")
	}
	v, _ := Parse("6.12.80")
	if _, err := FixedBy(v, []Fix{{}}); err == nil {
		t.Error("FixedBy(zero Fix) did not fail")
	}
}

func TestBuild(t *testing.T) {
	for in, want := range map[string]string{
		"6.12.80-cf1-amd64":       "6.12.80-cf1",
		"6.12.80-cf1":             "6.12.80-cf1",
		"6.12.80-cf-2026.5.1-rpi": "6.12.80-cf-2026.5.1",
		"6.12.80":                 "",
		"6.12.80+":                "",
		"6.12.117+deb12-amd64":    "",
	} {
		v, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := v.Build()
		if got != want || ok != (want != "") {
			t.Errorf("Build(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// FuzzDpkgVersion: the parser never panics; what it accepts reparses from
// String to an equal order, and the order is reflexive and antisymmetric
// against the table's versions.
func FuzzDpkgVersion(f *testing.F) {
	for _, p := range dpkgOrderings {
		f.Add(p[0])
		f.Add(p[1])
	}
	for _, s := range []string{"", ":", "1:", ":1", "1.0-", "~", "1.0~~a-~", "0:0", "1-2-3", "1.0-a:b", "\xff"} {
		f.Add(s)
	}
	var refs []DpkgVersion
	for _, p := range dpkgOrderings {
		d, err := ParseDpkgVersion(p[0])
		if err != nil {
			f.Fatal(err)
		}
		refs = append(refs, d)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDpkgVersion(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("error %v does not wrap ErrUnknownFormat", err)
			}
			return
		}
		again, err := ParseDpkgVersion(d.String())
		if err != nil || again.Compare(d) != 0 {
			t.Fatalf("%q → %q reparses to %+v, %v", s, d.String(), again, err)
		}
		if d.Compare(d) != 0 {
			t.Fatalf("%q is not equal to itself", s)
		}
		for _, r := range refs {
			if d.Compare(r) != -r.Compare(d) {
				t.Fatalf("order of %q and %q is not antisymmetric", s, r)
			}
		}
		if _, err := ParseFix(s); err == nil {
			if f, _ := ParseFix(s); f.Line() == "" {
				t.Fatalf("ParseFix(%q) has no line", s)
			}
		}
	})
}

// FuzzFixedByBuild checks the build form against properties that do not
// use its shape rule: a build entry always fixes itself; it never fixes a
// running build of another series, nor one whose build has another number
// of "-" parts (where dpkg would split the two builds at different places);
// and appending an extra part to a fixed build ("-debug") never keeps it
// fixed.
func FuzzFixedByBuild(f *testing.F) {
	for _, p := range [][2]string{
		{"6.12.80-cf1-debug", "6.12.80-cf2"},
		{"6.12.80-cf0-edge", "6.12.80-cf1"},
		{"6.12.80-cf-2026.4.1-dbg", "6.12.80-cf-2026.5.1"},
		{"6.12.80-cf-2026.5.2-amd64", "6.12.80-cf-2026.5.1"},
		{"6.12.80-cf1.1-amd64", "6.12.80-cf1"},
		{"6.12.81-cf1", "6.12.80-cf3"},
		{"6.12.80-cf3-edge", "6.12.80-cf2-edge"},
		{"6.12.80-cfx-1", "6.12.80-cf1"},
		{"6.12.80-xy5", "6.12.80-cf1"},
		{"6.12.90", "6.12.80-cf1"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, running, entry string) {
		fx, err := ParseFix(entry)
		if err != nil || fx.Form() != FixBuild {
			return
		}
		self, err := Parse(entry)
		if err != nil {
			t.Fatalf("ParseFix(%q) accepts what Parse refuses: %v", entry, err)
		}
		if ok, err := FixedBy(self, []Fix{fx}); !ok || err != nil {
			t.Fatalf("FixedBy(%q, [%q]) = %v, %v; want fixed", entry, entry, ok, err)
		}
		v, err := Parse(running)
		if err != nil {
			return
		}
		fixed, err := FixedBy(v, []Fix{fx})
		if err != nil || !fixed {
			return
		}
		build, ok := v.Build()
		if !ok {
			t.Fatalf("FixedBy(%q, [%q]): fixed, but the running kernel is no build", running, entry)
		}
		rs := build[strings.IndexByte(build, '-'):]
		es := entry[strings.IndexByte(entry, '-'):]
		series := es[:strings.IndexAny(es+"0", "0123456789")]
		if !strings.HasPrefix(rs, series) || len(rs) == len(series) || !isDigit(rs[len(series)]) {
			t.Fatalf("FixedBy(%q, [%q]): fixed, but build %q is not of series %q", running, entry, build, series)
		}
		if strings.Count(rs, "-") != strings.Count(es, "-") {
			t.Fatalf("FixedBy(%q, [%q]): fixed, but build %q has other parts than the entry", running, entry, build)
		}
		if more, err := Parse(build + "-debug"); err == nil {
			if again, _ := FixedBy(more, []Fix{fx}); again {
				t.Fatalf("FixedBy(%q, [%q]) = fixed: an extra part still counts as fixed", build+"-debug", entry)
			}
		}
	})
}

func TestSameSeries(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"6.12.80", "6.12.82", true},
		{"6.12.80-cf1-amd64", "6.12.82-cf3", true},
		{"6.12.80-cf1-amd64", "6.12.82-cf1-cloud-amd64", true},
		{"6.12.80-cf1", "6.12.80-cf1.1", true},
		{"6.12.80-cf-2026.4.1", "6.12.81-cf-2026.5.1-amd64", true},
		{"6.12.80-cf1", "6.12.82", false},
		{"6.12.82", "6.12.80-cf1", false},
		{"6.12.80-cf1", "6.12.82-xy1", false},
		{"6.12.80-cf1", "6.12.82-cf1-debug", false},
		{"6.12.80-cf1", "6.18.2-cf1", false},
		{"6.12.80+", "6.12.82", false},
		{"6.12.80-cf1", "6.12.117+deb12-amd64", false},
		{"6.12.80+deb12-amd64", "6.12.117+deb12-cloud-amd64", true},
		{"6.12.80+deb12-amd64", "6.12.117+bpo-amd64", false},
		{"6.1.0-47-amd64", "6.1.0-56-amd64", true},
		{"6.1.0-47-amd64", "6.1.0-0.deb11.17-amd64", false},
	} {
		a, err := Parse(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := SameSeries(a, b); got != tc.want {
			t.Errorf("SameSeries(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := SameSeries(b, a); got != tc.want {
			t.Errorf("SameSeries(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
	if SameSeries(Version{}, Version{}) {
		t.Error("SameSeries(zero, zero) = true")
	}
}
