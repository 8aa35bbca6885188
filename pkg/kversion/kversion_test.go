package kversion

import (
	"errors"
	"strings"
	"testing"
)

// parsed describes the expected accessors of a parsed Version. patch and rc
// are checked only when upstream is true.
type parsed struct {
	kind     Kind
	line     string
	upstream bool
	patch    int
	rc       int
	suffix   string
	abi      string
	flavour  string
	tag      string
	pkg      string
	rev      string
}

func checkParsed(t *testing.T, input string, v Version, w parsed) {
	t.Helper()
	if v.String() != input {
		t.Errorf("String() = %q, want %q", v.String(), input)
	}
	if v.Kind() != w.kind {
		t.Errorf("Kind() = %v, want %v", v.Kind(), w.kind)
	}
	if v.Line() != w.line {
		t.Errorf("Line() = %q, want %q", v.Line(), w.line)
	}
	if v.UpstreamKnown() != w.upstream {
		t.Errorf("UpstreamKnown() = %v, want %v", v.UpstreamKnown(), w.upstream)
	}
	patch, okP := v.Patch()
	rc, okR := v.RC()
	up, okU := v.Upstream()
	if okP != w.upstream || okR != w.upstream || okU != w.upstream {
		t.Errorf("Patch/RC/Upstream ok = %v/%v/%v, want %v", okP, okR, okU, w.upstream)
	}
	if w.upstream && (patch != w.patch || rc != w.rc) {
		t.Errorf("Patch, RC = %d, %d; want %d, %d", patch, rc, w.patch, w.rc)
	}
	if !w.upstream && (patch != 0 || rc != 0 || up != "") {
		t.Errorf("unknown upstream but Patch, RC, Upstream = %d, %d, %q", patch, rc, up)
	}
	if v.Suffix() != w.suffix || v.ABI() != w.abi || v.Flavour() != w.flavour || v.DistroTag() != w.tag {
		t.Errorf("Suffix, ABI, Flavour, DistroTag = %q, %q, %q, %q; want %q, %q, %q, %q",
			v.Suffix(), v.ABI(), v.Flavour(), v.DistroTag(), w.suffix, w.abi, w.flavour, w.tag)
	}
	if v.DebianPackageVersion() != w.pkg || v.DebianRevision() != w.rev {
		t.Errorf("DebianPackageVersion, DebianRevision = %q, %q; want %q, %q",
			v.DebianPackageVersion(), v.DebianRevision(), w.pkg, w.rev)
	}
	if v.IsZero() {
		t.Error("IsZero() = true for a parsed version")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want parsed
	}{
		// Plain upstream releases.
		{"6.12.85", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85}},
		{"6.1", parsed{kind: KindUpstream, line: "6.1", upstream: true}},
		{"6.1.0", parsed{kind: KindUpstream, line: "6.1", upstream: true}},
		{"5.10.237", parsed{kind: KindUpstream, line: "5.10", upstream: true, patch: 237}},
		{"0.0", parsed{kind: KindUpstream, line: "0.0", upstream: true}},
		{"2147483647.1.2147483647", parsed{kind: KindUpstream, line: "2147483647.1", upstream: true, patch: 2147483647}},
		// Release candidates.
		{"6.18.0-rc3", parsed{kind: KindUpstream, line: "6.18", upstream: true, rc: 3}},
		{"6.18-rc3", parsed{kind: KindUpstream, line: "6.18", upstream: true, rc: 3}},
		{"6.18.0-rc3+", parsed{kind: KindUpstream, line: "6.18", upstream: true, rc: 3, suffix: "+"}},
		{"6.18.0-rc3-00012-gabcdef012345", parsed{kind: KindUpstream, line: "6.18", upstream: true, rc: 3, suffix: "-00012-gabcdef012345"}},
		{"6.18.0-rcfoo", parsed{kind: KindUpstream, line: "6.18", upstream: true, suffix: "-rcfoo"}},
		{"6.18.0-rc", parsed{kind: KindUpstream, line: "6.18", upstream: true, suffix: "-rc"}},
		// Local suffixes.
		{"6.12.85-cloudflare-2026.5.1", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85, suffix: "-cloudflare-2026.5.1"}},
		{"6.12.85-foo-1", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85, suffix: "-foo-1"}},
		{"6.12.85+", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85, suffix: "+"}},
		{"6.12.85-dirty", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85, suffix: "-dirty"}},
		{"6.10.10-arch1-1", parsed{kind: KindUpstream, line: "6.10", upstream: true, patch: 10, suffix: "-arch1-1"}},
		{"6.11.4-301.fc41.x86_64", parsed{kind: KindUpstream, line: "6.11", upstream: true, patch: 4, suffix: "-301.fc41.x86_64"}},
		{"6.1-custom_build~1", parsed{kind: KindUpstream, line: "6.1", upstream: true, suffix: "-custom_build~1"}},
		// X.Y.0-N-WORD with an unknown flavour is a local suffix (lower bound).
		{"6.8.0-45-generic", parsed{kind: KindUpstream, line: "6.8", upstream: true, suffix: "-45-generic"}},
		{"6.1.0-47-amd64-custom", parsed{kind: KindUpstream, line: "6.1", upstream: true, suffix: "-47-amd64-custom"}},
		{"6.1.0-047-amd64", parsed{kind: KindUpstream, line: "6.1", upstream: true, suffix: "-047-amd64"}},
		{"6.1.1-47-amd64", parsed{kind: KindUpstream, line: "6.1", upstream: true, patch: 1, suffix: "-47-amd64"}},
		{"6.1-47-amd64", parsed{kind: KindUpstream, line: "6.1", upstream: true, suffix: "-47-amd64"}},
		// Debian ABI names: upstream unknown.
		{"6.1.0-47-amd64", parsed{kind: KindDebianABI, line: "6.1", abi: "47", flavour: "amd64"}},
		{"6.1.0-56-cloud-amd64", parsed{kind: KindDebianABI, line: "6.1", abi: "56", flavour: "cloud-amd64"}},
		{"6.1.0-50-rt-amd64", parsed{kind: KindDebianABI, line: "6.1", abi: "50", flavour: "rt-amd64"}},
		{"6.1.0-50-64k-arm64", parsed{kind: KindDebianABI, line: "6.1", abi: "50", flavour: "64k-arm64"}},
		{"6.1.0-50-686-pae", parsed{kind: KindDebianABI, line: "6.1", abi: "50", flavour: "686-pae"}},
		{"6.1.0-50-armmp-lpae", parsed{kind: KindDebianABI, line: "6.1", abi: "50", flavour: "armmp-lpae"}},
		{"6.1.0-50-4kc-malta", parsed{kind: KindDebianABI, line: "6.1", abi: "50", flavour: "4kc-malta"}},
		{"5.10.0-32-arm64", parsed{kind: KindDebianABI, line: "5.10", abi: "32", flavour: "arm64"}},
		{"6.1.0-0.deb11.17-amd64", parsed{kind: KindDebianABI, line: "6.1", abi: "0.deb11.17", flavour: "amd64"}},
		// Debian versioned names: upstream known.
		{"6.12.117+deb12-amd64", parsed{kind: KindDebianVersioned, line: "6.12", upstream: true, patch: 117, tag: "deb12", flavour: "amd64"}},
		{"6.12.43+deb13-cloud-amd64", parsed{kind: KindDebianVersioned, line: "6.12", upstream: true, patch: 43, tag: "deb13", flavour: "cloud-amd64"}},
		{"6.12.12+bpo-amd64", parsed{kind: KindDebianVersioned, line: "6.12", upstream: true, patch: 12, tag: "bpo", flavour: "amd64"}},
		{"6.12.43+deb13-rt-arm64", parsed{kind: KindDebianVersioned, line: "6.12", upstream: true, patch: 43, tag: "deb13", flavour: "rt-arm64"}},
		{"6.17-rc7+unreleased-amd64", parsed{kind: KindDebianVersioned, line: "6.17", upstream: true, rc: 7, tag: "unreleased", flavour: "amd64"}},
		// "+TAG-FLAVOUR" that is not Debian's is a local suffix.
		{"6.12.117+deb12-generic", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 117, suffix: "+deb12-generic"}},
		{"6.12.117+foo-amd64", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 117, suffix: "+foo-amd64"}},
		{"6.12.117+deb-amd64", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 117, suffix: "+deb-amd64"}},
		{"6.12.117+deb012-amd64", parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 117, suffix: "+deb012-amd64"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			checkParsed(t, tt.in, v, tt.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		reason string // substring of the error message
	}{
		{"", "empty string"},
		{"6", `missing ".MINOR"`},
		{"6.", "minor version is not a number"},
		{"6.x", "minor version is not a number"},
		{"6.x.1", "minor version is not a number"},
		{"x.1", "major version is not a number"},
		{".1", "major version is not a number"},
		{"6..1", "minor version is not a number"},
		{"6.1.", "patch level is not a number"},
		{"6.1.x", "patch level is not a number"},
		{"v6.12.1", `leading "v"`},
		{"V6.12.1", `leading "v"`},
		{"-6.1", "major version is not a number"},
		{"+6.1", "major version is not a number"},
		{"6.-1", "minor version is not a number"},
		{"6.1.-1", "patch level is not a number"},
		{"06.1", "leading zero"},
		{"6.01", "leading zero"},
		{"6.1.00", "leading zero"},
		{"6.18.0-rc03", "leading zero"},
		{"99999999999999999999.1", "out of range"},
		{"6.99999999999999999999", "out of range"},
		{"6.1.2147483648", "out of range"},
		{"6.18.0-rc99999999999", "out of range"},
		{"6.18.0-rc0", "-rc0"},
		{"6.18.0-rc3x", "after the release candidate"},
		{"6.18.0-rc3.1", "after the release candidate"},
		{"6.1.2.3", "unexpected"},
		{"6.12.85abc", "unexpected"},
		{"6.12.85_foo", "unexpected"},
		{"6.12.85 ", "unexpected"},
		{" 6.12.85", "major version is not a number"},
		{"6.12.85\n", "unexpected"},
		{"6.12.85-", "empty local suffix"},
		{"6.12.85-foo bar", "not allowed"},
		{"6.12.85-foo/bar", "not allowed"},
		{"6.12.85-caf\u00e9", "not allowed"},
		{"6.12.85-\x00", "not allowed"},
		{"Linux version 6.1", "major version is not a number"},
		{"6.1.0-" + strings.Repeat("x", 60), "longer than the 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want error", tt.in, v)
			}
			if !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("error %v does not wrap ErrUnknownFormat", err)
			}
			msg := err.Error()
			for _, sub := range []string{tt.reason, `"` + quotedPrefix(tt.in), "expected", `"6.12.85"`} {
				if !strings.Contains(msg, sub) {
					t.Errorf("error %q does not contain %q", msg, sub)
				}
			}
			if v != (Version{}) || !v.IsZero() {
				t.Errorf("failed Parse returned non-zero Version %#v", v)
			}
		})
	}
}

// quotedPrefix returns how the start of s appears inside %q quoting (for
// inputs that need no escaping beyond the ones used in TestParseErrors).
func quotedPrefix(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	switch {
	case strings.ContainsAny(s, "\n\x00"), strings.ContainsRune(s, '\u00e9'):
		return ""
	}
	return s
}

func TestErrorQuotesLongInputTruncated(t *testing.T) {
	long := strings.Repeat("9", 1000)
	_, err := ParseDebianPackageVersion(long)
	if err == nil || !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("err = %v", err)
	}
	if len(err.Error()) > 600 || !strings.Contains(err.Error(), "(1000 bytes)") {
		t.Errorf("long input not truncated in error: %d bytes: %.200s", len(err.Error()), err)
	}
}

func TestParseList(t *testing.T) {
	vs, err := ParseList([]string{"6.12.85", "6.18.22", "6.1.170"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].String() != "6.12.85" || vs[2].Line() != "6.1" {
		t.Errorf("ParseList = %v", vs)
	}
	if vs, err := ParseList(nil); err != nil || len(vs) != 0 {
		t.Errorf("ParseList(nil) = %v, %v", vs, err)
	}
	_, err = ParseList([]string{"6.12.85", "6.18.x"})
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), `"6.18.x"`) {
		t.Errorf("ParseList error = %v", err)
	}
}

func TestParseDebianPackageVersion(t *testing.T) {
	tests := []struct {
		in   string
		want parsed
	}{
		{"6.1.192-2", parsed{line: "6.1", patch: 192, rev: "2"}},
		{"6.12.117-1~deb12u1", parsed{line: "6.12", patch: 117, rev: "1~deb12u1"}},
		{"6.1.170-1", parsed{line: "6.1", patch: 170, rev: "1"}},
		{"6.12.12-1~bpo12+1", parsed{line: "6.12", patch: 12, rev: "1~bpo12+1"}},
		{"6.1.76-1+b1", parsed{line: "6.1", patch: 76, rev: "1+b1"}},
		{"6.1.27-1~bpo11+1", parsed{line: "6.1", patch: 27, rev: "1~bpo11+1"}},
		{"4.19.316-1", parsed{line: "4.19", patch: 316, rev: "1"}},
		{"6.18~rc3-1~exp1", parsed{line: "6.18", rc: 3, rev: "1~exp1"}},
		{"6.18-1~exp1", parsed{line: "6.18", rev: "1~exp1"}},
		{"6.18.0~rc3-1", parsed{line: "6.18", rc: 3, rev: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := ParseDebianPackageVersion(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			w.kind, w.upstream, w.pkg = KindDebianPackage, true, tt.in
			checkParsed(t, tt.in, v, w)
		})
	}

	bad := []string{
		"", "6.1.192", "6.1.192-", "1:6.1.192-2", "v6.1.192-2", "6.1.192-2 ", " 6.1.192-2",
		"6.1.192-2/3", "6.1.192-2_3", "6.1.0-47-amd64", "6.12.117+deb12-1", "6.18~rc0-1",
		"6.18~rc3~rc4-1", "6.x-1", "6-1", "6.1.2.3-1", "-1", "6.1.192--2", "6.1.192+x-1",
		"6.18-rc3-1", "06.1.1-1", "6.1.99999999999-1",
	}
	for _, in := range bad {
		t.Run("bad/"+in, func(t *testing.T) {
			v, err := ParseDebianPackageVersion(in)
			if err == nil {
				t.Fatalf("ParseDebianPackageVersion(%q) = %#v, want error", in, v)
			}
			if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "expected a Debian package version") {
				t.Errorf("error = %v", err)
			}
			if !v.IsZero() {
				t.Errorf("non-zero Version on error: %#v", v)
			}
		})
	}
}

const (
	procDebian61  = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-10-02)\n"
	procDebian612 = "Linux version 6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2026-10-20)\n"
	procCustom    = "Linux version 6.12.85-cloudflare-2026.5.1 (builder@host) (gcc (GCC) 14.2.0, GNU ld (GNU Binutils) 2.43) #1 SMP Tue May  5 10:00:00 UTC 2026\n"
	procUbuntu    = "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-022) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0, GNU ld (GNU Binutils for Ubuntu) 2.42) #45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024\n"
)

func mustProc(t testing.TB, s string) Version {
	t.Helper()
	v, err := ParseProcVersion(s)
	if err != nil {
		t.Fatalf("ParseProcVersion(%q): %v", s, err)
	}
	return v
}

func TestParseProcVersion(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		release string
		want    parsed
	}{
		{"debian 6.1 ABI", procDebian61, "6.1.0-56-amd64",
			parsed{kind: KindDebianABI, line: "6.1", upstream: true, patch: 192, abi: "56", flavour: "amd64", pkg: "6.1.192-2", rev: "2"}},
		{"debian 6.12 versioned", procDebian612, "6.12.117+deb12-amd64",
			parsed{kind: KindDebianVersioned, line: "6.12", upstream: true, patch: 117, tag: "deb12", flavour: "amd64", pkg: "6.12.117-1~deb12u1", rev: "1~deb12u1"}},
		{"custom build", procCustom, "6.12.85-cloudflare-2026.5.1",
			parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85, suffix: "-cloudflare-2026.5.1"}},
		{"ubuntu", procUbuntu, "6.8.0-45-generic",
			parsed{kind: KindUpstream, line: "6.8", upstream: true, suffix: "-45-generic"}},
		{"ABI without Debian package", "Linux version 6.1.0-47-cloud-amd64 (x@y) (gcc) #1 SMP PREEMPT_DYNAMIC", "6.1.0-47-cloud-amd64",
			parsed{kind: KindDebianABI, line: "6.1", abi: "47", flavour: "cloud-amd64"}},
		{"bare minimum", "Linux version 6.12.85", "6.12.85",
			parsed{kind: KindUpstream, line: "6.12", upstream: true, patch: 85}},
		{"extra whitespace", "  Linux \t version   6.1.0-47-amd64 \n (x) #2 Debian 6.1.170-1\n", "6.1.0-47-amd64",
			parsed{kind: KindDebianABI, line: "6.1", upstream: true, patch: 170, abi: "47", flavour: "amd64", pkg: "6.1.170-1", rev: "1"}},
		{"debian rc", "Linux version 6.18.0-0-amd64 (x) (gcc) #1 SMP Debian 6.18~rc3-1~exp1 (2026-01-01)", "6.18.0-0-amd64",
			parsed{kind: KindDebianABI, line: "6.18", upstream: true, rc: 3, abi: "0", flavour: "amd64", pkg: "6.18~rc3-1~exp1", rev: "1~exp1"}},
		{"versioned rc", "Linux version 6.17-rc7+unreleased-amd64 (x) (gcc) #1 SMP Debian 6.17~rc7-1~exp1 (2026-01-01)", "6.17-rc7+unreleased-amd64",
			parsed{kind: KindDebianVersioned, line: "6.17", upstream: true, rc: 7, tag: "unreleased", flavour: "amd64", pkg: "6.17~rc7-1~exp1", rev: "1~exp1"}},
		{"Debian only inside compiler parens", "Linux version 6.1.0-47-amd64 (x) (gcc (Debian 6.1.192-2) #3 (Debian 6.1.193-1)) #1 SMP", "6.1.0-47-amd64",
			parsed{kind: KindDebianABI, line: "6.1", abi: "47", flavour: "amd64"}},
		{"unbalanced parens", "Linux version 6.1.0-47-amd64 (x #1 Debian 6.1.192-2", "6.1.0-47-amd64",
			parsed{kind: KindDebianABI, line: "6.1", abi: "47", flavour: "amd64"}},
		{"first Debian wins", "Linux version 6.1.0-47-amd64 #1 Debian 6.1.170-1 Debian garbage", "6.1.0-47-amd64",
			parsed{kind: KindDebianABI, line: "6.1", upstream: true, patch: 170, abi: "47", flavour: "amd64", pkg: "6.1.170-1", rev: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustProc(t, tt.in)
			checkParsed(t, tt.release, v, tt.want)
		})
	}
}

func TestParseProcVersionErrors(t *testing.T) {
	tests := []struct {
		name, in, reason string
	}{
		{"empty", "", `does not start with "Linux version"`},
		{"not linux", "FreeBSD version 14.1", `does not start with "Linux version"`},
		{"no version word", "Linux 6.1.0", `does not start with "Linux version"`},
		{"no release", "Linux version \n", "no release"},
		{"bad release", "Linux version v6.12.1 (x) #1", `leading "v"`},
		{"line mismatch", "Linux version 6.1.0-56-amd64 (x) #1 SMP Debian 6.12.117-1 (2026-10-02)", "is on line 6.1 but"},
		{"upstream mismatch", "Linux version 6.12.117+deb12-amd64 (x) #1 SMP Debian 6.12.118-1~deb12u1", "is upstream 6.12.117 but"},
		{"rc mismatch", "Linux version 6.18.0-rc3 (x) #1 SMP Debian 6.18-1", "is upstream 6.18.0-rc3 but"},
		{"plain mismatch", "Linux version 6.1.0-56-generic (x) #1 SMP Debian 6.1.192-2", "is upstream 6.1.0 but"},
		{"Debian at end", "Linux version 6.1.0-56-amd64 (x) #1 SMP Debian", "without a package version"},
		{"Debian bad package", "Linux version 6.1.0-56-amd64 (x) #1 SMP Debian (2026-10-02)", "Debian package version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseProcVersion(tt.in)
			if err == nil {
				t.Fatalf("ParseProcVersion(%q) = %#v, want error", tt.in, v)
			}
			if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "expected") {
				t.Errorf("error = %v, want ErrUnknownFormat mentioning %q", err, tt.reason)
			}
		})
	}
}

// parseAny parses a test version: "proc:NAME" selects a /proc/version
// example, "pkg:X" a Debian package version, anything else a release.
func parseAny(t testing.TB, s string) Version {
	t.Helper()
	var (
		v   Version
		err error
	)
	switch {
	case s == "zero":
		return Version{}
	case strings.HasPrefix(s, "pkg:"):
		v, err = ParseDebianPackageVersion(strings.TrimPrefix(s, "pkg:"))
	case s == "proc:6.1":
		v, err = ParseProcVersion(procDebian61)
	case s == "proc:6.12":
		v, err = ParseProcVersion(procDebian612)
	case strings.HasPrefix(s, "proc:"):
		// proc:RELEASE:PACKAGE
		release, pkg, _ := strings.Cut(strings.TrimPrefix(s, "proc:"), ":")
		v, err = ParseProcVersion("Linux version " + release + " (x) (gcc) #1 SMP Debian " + pkg + " (2026-01-01)")
	default:
		v, err = Parse(s)
	}
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

// TestCompareChains checks every pair of each chain, which is listed in
// strictly ascending order and fully decidable.
func TestCompareChains(t *testing.T) {
	chains := map[string][]string{
		"upstream": {
			"4.19.316",
			"5.10.237",
			"6.1.0-rc1",
			"6.1-rc2",
			"6.1.0-rc2-00012-gabc",
			"6.1.0-rc10",
			"6.1",
			"6.1.0+",
			"6.1.0-1",
			"6.1.1",
			"6.1.9",
			"6.1.10",
			"6.1.170",
			"6.1.170-cloudflare-1",
			"pkg:6.1.170-1",
			"6.1.192",
			"6.1.192+",
			"6.1.192-cloudflare-2026.5.1",
			"proc:6.1",
			"pkg:6.1.192-1",
			"pkg:6.1.192-2",
			"6.2",
			"6.9.12",
			"6.12.43+deb13-cloud-amd64",
			"6.12.85",
			"6.12.85+",
			"6.12.85-cloudflare-2026.5.1",
			"6.12.85-cloudflare-2026.5.9",
			"6.12.85-cloudflare-2026.5.10",
			"6.12.85-cloudflare-2026.10.1",
			"6.12.85-cloudflare-2027.1.1",
			"6.12.85-cloudflare-2027.1.1a",
			"6.12.85-cloudflare-2027.1.1.1",
			"6.12.85-cloudflare-20270101",
			"6.12.85+bpo-amd64",
			"6.12.85+deb12-amd64",
			"6.12.85+deb12-cloud-amd64",
			"6.12.85+deb13-amd64",
			"6.12.86",
			"6.12.117+deb12-amd64",
			"proc:6.12",
			"pkg:6.12.117-1~deb12u1",
			"pkg:6.12.117-1",
			"pkg:6.12.117-1+b1",
			"pkg:6.12.117-2",
			"6.12.118",
			"6.18.0-rc3",
			"pkg:6.18~rc3-1~exp1",
			"6.18",
			"pkg:6.18-1~exp1",
			"6.18.22",
			"7.0",
			"10.0",
		},
		"abi": {
			"4.19.0-27-amd64",
			"5.10.0-32-amd64",
			"6.1.0-13-amd64",
			"6.1.0-47-amd64",
			"6.1.0-47-cloud-amd64",
			"6.1.0-47-rt-amd64",
			"6.1.0-56-amd64",
			"6.1.0-100-amd64",
			"6.2.1",
			"6.12.85",
			"6.12.117+deb12-amd64",
		},
		"abi with known upstream": {
			"6.1.0-13-amd64",
			"proc:6.1.0-47-amd64:6.1.170-1",
			"proc:6.1.0-56-amd64:6.1.192-2",
			"6.1.0-57-amd64",
			"6.12.1",
		},
		"backport abi": {
			"6.1.0-0.deb11.9-amd64",
			"6.1.0-0.deb11.17-amd64",
			"6.1.0-0.deb11.17-arm64",
			"6.2.0-0.deb11.1-amd64",
		},
	}
	for name, chain := range chains {
		t.Run(name, func(t *testing.T) {
			vs := make([]Version, len(chain))
			for i, s := range chain {
				vs[i] = parseAny(t, s)
			}
			for i := range vs {
				for j := range vs {
					want := cmpInt(i, j)
					got, err := Compare(vs[i], vs[j])
					if err != nil || got != want {
						t.Errorf("Compare(%s, %s) = %d, %v; want %d", chain[i], chain[j], got, err, want)
					}
				}
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
		err  string // substring of the error, "" for none
	}{
		{"6.1", "6.1.0", 0, ""},
		{"6.18-rc3", "6.18.0-rc3", 0, ""},
		{"6.12.85-foo-01", "6.12.85-foo-1", 0, ""}, // digit runs compare numerically
		{"6.1.0-47-amd64", "6.1.0-47-amd64", 0, ""},
		{"6.1.0-0.deb11.17-amd64", "6.1.0-0.deb11.17-amd64", 0, ""},
		{"proc:6.1", "proc:6.1", 0, ""},
		{"pkg:6.18~rc3-1", "pkg:6.18.0~rc3-1", 0, ""},
		{"6.1.0-47-amd64", "6.12.85", -1, ""},
		{"6.12.85", "6.1.0-47-amd64", 1, ""},
		{"6.1.0-99-amd64", "6.2-rc1", -1, ""},
		{"5.10.0-32-amd64", "pkg:6.1.170-1", -1, ""},
		{"proc:6.1", "6.1.0-47-amd64", 1, ""},
		{"proc:6.1", "6.1.0-57-amd64", -1, ""},
		{"proc:6.1", "6.1.192", 1, ""},
		{"proc:6.1", "6.1.193", -1, ""},
		{"proc:6.1", "6.1.191-cloudflare-1", 1, ""},
		// ABI names from /proc/version of the same upstream: ABI, revision, flavour.
		{"proc:6.1.0-56-amd64:6.1.192-1", "proc:6.1.0-56-amd64:6.1.192-2", -1, ""},
		{"proc:6.1.0-56-cloud-amd64:6.1.192-1", "proc:6.1.0-56-amd64:6.1.192-2", -1, ""},
		{"proc:6.1.0-56-cloud-amd64:6.1.192-2", "proc:6.1.0-56-amd64:6.1.192-2", 1, ""},
		{"proc:6.1.0-55-amd64:6.1.192-1", "proc:6.1.0-56-amd64:6.1.192-1", -1, ""},
		// Undecidable.
		{"6.1.0-47-amd64", "6.1.170", 0, "upstream version of the Debian ABI name \"6.1.0-47-amd64\" is unknown"},
		{"6.1.170", "6.1.0-47-amd64", 0, "upstream version of the Debian ABI name \"6.1.0-47-amd64\" is unknown"},
		{"6.1.0-47-amd64", "6.1", 0, "is unknown"},
		{"6.1.0-47-amd64", "6.1.0", 0, "is unknown"},
		{"6.1.0-47-amd64", "6.1.0-rc1", 0, "is unknown"},
		{"6.1.0-47-amd64", "6.1.0-47-custom", 0, "is unknown"},
		{"6.1.0-47-amd64", "pkg:6.1.170-1", 0, "is unknown"},
		{"6.1.0-47-amd64", "6.1.170+deb12-amd64", 0, "is unknown"},
		{"6.1.0-47-amd64", "6.1.0-0.deb11.47-amd64", 0, "different series"},
		{"6.1.0-0.deb11.17-amd64", "6.1.0-0.deb12.17-amd64", 0, "different series"},
		{"proc:6.1", "6.1.0-56-amd64", 0, "only one is known"},
		{"6.1.0-56-cloud-amd64", "proc:6.1", 0, "only one is known"},
		{"zero", "6.1", 0, "zero Version"},
		{"6.1", "zero", 0, "zero Version"},
		{"zero", "zero", 0, "zero Version"},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			a, b := parseAny(t, tt.a), parseAny(t, tt.b)
			got, err := Compare(a, b)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Compare = %d, %v; want error containing %q", got, err, tt.err)
				}
				if errors.Is(err, ErrUnknownFormat) {
					t.Errorf("undecidable order reported as ErrUnknownFormat: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Compare = %d, %v; want %d", got, err, tt.want)
			}
			if back, err := Compare(b, a); err != nil || back != -got {
				t.Errorf("Compare(b, a) = %d, %v; want %d", back, err, -got)
			}
		})
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "+", -1},
		{"", "-1", -1},
		{"~", "", -1},
		{"1~deb12u1", "1", -1},
		{"1", "1+b1", -1},
		{"1+b1", "2", -1},
		{"a", "+", -1}, // letters before punctuation
		{"a", "b", -1},
		{"A", "a", -1},
		{"2026.5.9", "2026.5.10", -1},
		{"007", "7", 0},
		{"99999999999999999999999", "100000000000000000000000", -1},
		{"bpo", "deb12", -1},
		{"deb12", "deb13", -1},
		{"deb9", "deb12", -1},
	}
	for _, tt := range tests {
		if got := naturalCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := naturalCompare(tt.b, tt.a); got != -tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestContainsFix(t *testing.T) {
	copyFail := []string{"6.12.85", "6.18.22", "6.1.170"}
	tests := []struct {
		running string
		fixedIn []string
		want    bool
		err     string
	}{
		{"6.12.85", copyFail, true, ""},
		{"6.12.84", copyFail, false, ""},
		{"6.12.86", copyFail, true, ""},
		{"6.12", copyFail, false, ""},
		{"6.12.85-cloudflare-2026.5.1", copyFail, true, ""},
		{"6.12.84-cloudflare-2026.5.9", copyFail, false, ""},
		{"6.12.84+", copyFail, false, ""},
		{"6.12.117+deb12-amd64", copyFail, true, ""},
		{"6.12.43+deb13-cloud-amd64", copyFail, false, ""},
		{"6.12.85+bpo-arm64", copyFail, true, ""},
		{"6.18.0-rc3", copyFail, false, ""},
		{"6.18", copyFail, false, ""},
		{"6.18.22", copyFail, true, ""},
		{"6.1.169", copyFail, false, ""},
		{"6.1.170", copyFail, true, ""},
		{"pkg:6.1.170-1", copyFail, true, ""},
		{"pkg:6.1.169-3", copyFail, false, ""},
		{"proc:6.1", copyFail, true, ""},
		{"proc:6.12", copyFail, true, ""},
		{"proc:6.1.0-47-amd64:6.1.169-1", copyFail, false, ""},
		{"proc:6.1.0-48-amd64:6.1.170-1", copyFail, true, ""},
		// No entry for the line: no fix known, keep mitigations.
		{"6.6.100", copyFail, false, ""},
		{"6.19", copyFail, false, ""},
		{"7.0", copyFail, false, ""},
		{"6.12.85", nil, false, ""},
		{"6.1.0-47-amd64", nil, false, "upstream version is unknown"},
		{"5.10.0-32-amd64", copyFail, false, "upstream version is unknown"},
		// Release candidates in fixedIn.
		{"6.19.0-rc3", []string{"6.19-rc2"}, true, ""},
		{"6.19-rc2", []string{"6.19-rc2"}, true, ""},
		{"6.19-rc1", []string{"6.19-rc2"}, false, ""},
		{"6.19", []string{"6.19-rc2"}, true, ""},
		{"6.19.1", []string{"6.19.0"}, true, ""},
		{"6.19.0-rc7", []string{"6.19"}, false, ""},
		// Errors.
		{"6.1.0-47-amd64", copyFail, false, "Debian ABI name whose upstream version is unknown"},
		{"zero", copyFail, false, "zero Version"},
		{"6.12.85", []string{"6.12.85", "6.12.90"}, false, `"6.12.85" and "6.12.90" are both on line 6.12`},
		{"6.6.1", []string{"6.12.85", "6.12.90"}, false, "both on line 6.12"},
		{"6.12.85", []string{"6.12.85", "6.12"}, false, "both on line 6.12"},
		{"6.12.85", []string{"6.1.0-47-amd64"}, false, `entry 0 "6.1.0-47-amd64" is a Debian ABI name`},
		{"6.12.85", []string{"6.12.85", "proc:6.1"}, false, `entry 1 "6.1.0-56-amd64" is a debian-abi version`},
		{"6.12.85", []string{"6.12.85-cloudflare-1"}, false, `has the local suffix "-cloudflare-1"`},
		{"6.12.85", []string{"6.12.85+deb12-amd64"}, false, "is a debian-versioned version"},
		{"6.12.85", []string{"pkg:6.12.85-1"}, false, "is a debian-package version"},
		{"6.12.85", []string{"6.1.170", "zero"}, false, "entry 1 is the zero Version"},
	}
	for _, tt := range tests {
		t.Run(tt.running+" in "+strings.Join(tt.fixedIn, ","), func(t *testing.T) {
			running := parseAny(t, tt.running)
			var fixed []Version
			for _, s := range tt.fixedIn {
				fixed = append(fixed, parseAny(t, s))
			}
			got, err := ContainsFix(running, fixed)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ContainsFix = %v, %v; want error containing %q", got, err, tt.err)
				}
				if got {
					t.Error("ContainsFix returned true with an error")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ContainsFix = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestVersionComparableAndZero(t *testing.T) {
	a, b := parseAny(t, "6.12.85"), parseAny(t, "6.12.85")
	if a != b {
		t.Error("equal inputs give different Versions")
	}
	m := map[Version]int{a: 1}
	if m[b] != 1 {
		t.Error("Version does not work as a map key")
	}
	if parseAny(t, "6.1") == parseAny(t, "6.1.0") {
		t.Error(`"6.1" and "6.1.0" are == although their strings differ`)
	}
	var z Version
	if !z.IsZero() || z.Kind().String() != "invalid" || z.String() != "" {
		t.Errorf("zero Version: IsZero %v Kind %v String %q", z.IsZero(), z.Kind(), z.String())
	}
	if z.SameLine(z) || z.SameLine(a) {
		t.Error("zero Version is on a line")
	}
	if _, ok := z.Upstream(); ok {
		t.Error("zero Version has a known upstream")
	}
	for k, want := range map[Kind]string{KindUpstream: "upstream", KindDebianABI: "debian-abi", KindDebianVersioned: "debian-versioned", KindDebianPackage: "debian-package"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

func TestUpstreamString(t *testing.T) {
	for in, want := range map[string]string{
		"6.1":                  "6.1.0",
		"6.18-rc3":             "6.18.0-rc3",
		"6.12.85-cloudflare-1": "6.12.85",
		"6.12.117+deb12-amd64": "6.12.117",
		"pkg:6.18~rc3-1~exp1":  "6.18.0-rc3",
		"proc:6.1":             "6.1.192",
	} {
		got, ok := parseAny(t, in).Upstream()
		if !ok || got != want {
			t.Errorf("%s: Upstream() = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestDebianFlavours(t *testing.T) {
	for _, f := range []string{
		"amd64", "arm64", "cloud-amd64", "cloud-arm64", "rt-amd64", "rt-arm64", "686", "686-pae",
		"armmp", "armmp-lpae", "powerpc64le", "s390x", "riscv64", "loong64", "4kc-malta", "5kc-malta",
		"octeon", "mips64r2el", "mips32r2el", "marvell", "rpi", "64k-arm64",
	} {
		v, err := Parse("6.1.0-47-" + f)
		if err != nil || v.Kind() != KindDebianABI || v.Flavour() != f {
			t.Errorf("6.1.0-47-%s: kind %v flavour %q err %v", f, v.Kind(), v.Flavour(), err)
		}
		v, err = Parse("6.12.117+deb12-" + f)
		if err != nil || v.Kind() != KindDebianVersioned || v.Flavour() != f {
			t.Errorf("6.12.117+deb12-%s: kind %v flavour %q err %v", f, v.Kind(), v.Flavour(), err)
		}
	}
	for _, f := range []string{"", "generic", "AMD64", "amd64-", "cloud", "x86_64"} {
		if isDebianFlavour(f) {
			t.Errorf("isDebianFlavour(%q) = true", f)
		}
	}
}
