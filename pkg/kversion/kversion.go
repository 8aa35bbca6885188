// Package kversion parses and orders Linux kernel versions as they appear on
// real hosts, and answers whether a running kernel contains a fix.
//
// Four shapes of input are understood:
//
//   - upstream release strings (uname -r) with an optional local suffix:
//     "6.12.85", "6.1", "6.18.0-rc3", "6.12.85-cloudflare-2026.5.1", "6.12.85+";
//   - Debian ABI names, "X.Y.0-N-FLAVOUR" (bookworm's 6.1 line and older), e.g.
//     "6.1.0-47-amd64" or the backport form "6.1.0-0.deb11.17-amd64". The
//     upstream patch level is NOT part of such a name: 6.1.0-47-amd64 is some
//     6.1.1xx kernel. A Version parsed from a bare ABI name therefore reports
//     UpstreamKnown() == false and refuses to be compared with versions whose
//     order would depend on the patch level. ParseProcVersion recovers the
//     upstream version from the Debian package version in /proc/version;
//   - Debian versioned names, "X.Y.Z+TAG-FLAVOUR" (bookworm's 6.12 line,
//     trixie), e.g. "6.12.117+deb12-amd64" or "6.12.12+bpo-amd64", whose
//     upstream version is known;
//   - Debian package versions as shown by apt/dpkg, e.g. "6.12.117-1~deb12u1",
//     parsed by ParseDebianPackageVersion.
//
// A leading "v" (a git tag such as "v6.12.1") is rejected: uname -r never
// produces one, and accepting it would hide a caller passing the wrong field.
//
// All parse failures wrap ErrUnknownFormat and quote the offending input.
package kversion

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknownFormat is wrapped by every error that reports input which is not
// a kernel version in one of the understood formats.
var ErrUnknownFormat = errors.New("kversion: unknown version format")

// maxRelease is the longest release string the kernel can report: the
// release field of struct new_utsname holds 64 bytes plus the NUL.
const maxRelease = 64

// maxQuoted bounds how much of a bad input is quoted back in an error.
const maxQuoted = 128

// expectRelease describes the accepted release formats in error messages.
const expectRelease = `a kernel release such as "6.12.85", "6.1", "6.18.0-rc3", ` +
	`"6.12.85-cloudflare-2026.5.1", "6.1.0-47-amd64" or "6.12.117+deb12-amd64"`

// Kind tells which format a Version was parsed from.
type Kind uint8

const (
	// KindUpstream is an upstream release with an optional local suffix,
	// e.g. "6.12.85" or "6.12.85-cloudflare-2026.5.1".
	KindUpstream Kind = iota + 1
	// KindDebianABI is a Debian ABI name such as "6.1.0-47-amd64". Its
	// upstream version is known only when recovered from /proc/version.
	KindDebianABI
	// KindDebianVersioned is a Debian versioned name such as
	// "6.12.117+deb12-amd64".
	KindDebianVersioned
	// KindDebianPackage is a Debian package version such as "6.1.192-2".
	KindDebianPackage
)

// String returns a short lower-case name of the kind.
func (k Kind) String() string {
	switch k {
	case KindUpstream:
		return "upstream"
	case KindDebianABI:
		return "debian-abi"
	case KindDebianVersioned:
		return "debian-versioned"
	case KindDebianPackage:
		return "debian-package"
	default:
		return "invalid"
	}
}

// Version is a parsed kernel version. It is comparable with ==, which
// compares every field including the original string; use Compare for
// ordering. The zero Version is invalid: Compare and ContainsFix reject it.
type Version struct {
	raw      string // the original input (the release string for ParseProcVersion)
	kind     Kind
	major    int
	minor    int
	patch    int    // valid only if upstream
	rc       int    // 0 = final release; valid only if upstream
	upstream bool   // patch and rc are known
	suffix   string // local suffix of a KindUpstream release, e.g. "-cloudflare-1"
	abi      string // Debian ABI, e.g. "47" or "0.deb11.17"
	flavour  string // Debian flavour, e.g. "cloud-amd64"
	tag      string // Debian distribution tag, e.g. "deb12", "bpo"
	pkg      string // Debian package version, e.g. "6.1.192-2"
	rev      string // Debian revision of pkg, e.g. "2"
}

// String returns the string the Version was parsed from: the release string
// for Parse and ParseProcVersion, the package version for
// ParseDebianPackageVersion.
func (v Version) String() string { return v.raw }

// IsZero reports whether v is the zero Version (not the result of a
// successful parse).
func (v Version) IsZero() bool { return v.kind == 0 }

// Kind reports the format v was parsed from.
func (v Version) Kind() Kind { return v.kind }

// Major returns the major version, e.g. 6 for "6.12.85".
func (v Version) Major() int { return v.major }

// Minor returns the minor version, e.g. 12 for "6.12.85".
func (v Version) Minor() int { return v.minor }

// Line returns the kernel line "MAJOR.MINOR", e.g. "6.12". It is known for
// every valid Version, including Debian ABI names.
func (v Version) Line() string {
	return strconv.Itoa(v.major) + "." + strconv.Itoa(v.minor)
}

// SameLine reports whether v and w belong to the same MAJOR.MINOR line.
func (v Version) SameLine(w Version) bool {
	return v.kind != 0 && w.kind != 0 && v.major == w.major && v.minor == w.minor
}

// UpstreamKnown reports whether the upstream patch level and release
// candidate number of v are known. It is false only for Debian ABI names
// parsed without a Debian package version (e.g. Parse("6.1.0-47-amd64")).
func (v Version) UpstreamKnown() bool { return v.upstream }

// Patch returns the upstream patch level (85 for "6.12.85", 0 for "6.1")
// and whether it is known. It is not known for bare Debian ABI names.
func (v Version) Patch() (int, bool) {
	if !v.upstream {
		return 0, false
	}
	return v.patch, true
}

// RC returns the release-candidate number (3 for "6.18.0-rc3", 0 for a
// final release) and whether it is known.
func (v Version) RC() (int, bool) {
	if !v.upstream {
		return 0, false
	}
	return v.rc, true
}

// Upstream returns the upstream version in canonical uname form
// ("6.12.85", "6.1.0", "6.18.0-rc3") and whether it is known.
func (v Version) Upstream() (string, bool) {
	if !v.upstream {
		return "", false
	}
	s := v.Line() + "." + strconv.Itoa(v.patch)
	if v.rc > 0 {
		s += "-rc" + strconv.Itoa(v.rc)
	}
	return s, true
}

// Suffix returns the local version suffix of an upstream release including
// its leading separator ("-cloudflare-2026.5.1", "+"), or "" if there is
// none. Debian names report their parts through ABI, Flavour and DistroTag.
func (v Version) Suffix() string { return v.suffix }

// ABI returns the Debian ABI of a Debian ABI name: "47" for
// "6.1.0-47-amd64", "0.deb11.17" for "6.1.0-0.deb11.17-amd64"; otherwise "".
func (v Version) ABI() string { return v.abi }

// Flavour returns the Debian kernel flavour ("amd64", "cloud-arm64", ...)
// of a Debian ABI or versioned name, otherwise "".
func (v Version) Flavour() string { return v.flavour }

// DistroTag returns the distribution tag of a Debian versioned name
// ("deb12" for "6.12.117+deb12-amd64", "bpo" for "6.12.12+bpo-amd64"),
// otherwise "".
func (v Version) DistroTag() string { return v.tag }

// DebianPackageVersion returns the Debian package version: the input of
// ParseDebianPackageVersion, or the one found in /proc/version by
// ParseProcVersion; otherwise "".
func (v Version) DebianPackageVersion() string { return v.pkg }

// DebianRevision returns the Debian revision of DebianPackageVersion
// ("1~deb12u1" for "6.12.117-1~deb12u1"), or "" if there is none.
func (v Version) DebianRevision() string { return v.rev }

// Parse parses a kernel release string as printed by uname -r (or found in
// /lib/modules). See the package documentation for the accepted formats.
//
// A name of the shape "X.Y.0-N-WORD" is a Debian ABI name only if WORD is a
// known Debian flavour; otherwise, like any other "-..." or "+..." tail, it is
// a local suffix of upstream X.Y.0. For names from other distributions that
// also hide the patch level (Ubuntu's "6.8.0-45-generic") X.Y.0 is thus a
// lower bound of the real upstream version: ContainsFix can only err towards
// "not fixed" for them, never towards "fixed".
func Parse(s string) (Version, error) {
	if len(s) > maxRelease {
		return Version{}, formatError(s, fmt.Sprintf("longer than the %d bytes a kernel release can have", maxRelease), expectRelease)
	}
	v, err := parseRelease(s)
	if err != nil {
		return Version{}, err
	}
	return v, nil
}

// ParseList parses every string with Parse. The error names the index of the
// first entry that fails.
func ParseList(ss []string) ([]Version, error) {
	out := make([]Version, 0, len(ss))
	for i, s := range ss {
		v, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseRelease(s string) (Version, error) {
	bad := func(reason string) (Version, error) {
		return Version{}, formatError(s, reason, expectRelease)
	}
	switch {
	case s == "":
		return bad("empty string")
	case s[0] == 'v' || s[0] == 'V':
		return bad(`leading "v" not accepted (that is a git tag, not a release)`)
	}

	var (
		v    = Version{raw: s, kind: KindUpstream, upstream: true}
		rest = s
		err  error
	)
	var tok string
	tok, rest = leadingDigits(rest)
	if v.major, err = parseNumber(tok, "major version"); err != nil {
		return bad(err.Error())
	}
	if !strings.HasPrefix(rest, ".") {
		return bad(`missing ".MINOR" after the major version`)
	}
	tok, rest = leadingDigits(rest[1:])
	if v.minor, err = parseNumber(tok, "minor version"); err != nil {
		return bad(err.Error())
	}
	patchText := ""
	if strings.HasPrefix(rest, ".") {
		patchText, rest = leadingDigits(rest[1:])
		if v.patch, err = parseNumber(patchText, "patch level"); err != nil {
			return bad(err.Error())
		}
	}
	if after, ok := strings.CutPrefix(rest, "-rc"); ok && after != "" && isDigit(after[0]) {
		tok, rest = leadingDigits(after)
		if v.rc, err = parseNumber(tok, "release candidate number"); err != nil {
			return bad(err.Error())
		}
		if v.rc == 0 {
			return bad(`release candidate "-rc0" does not exist`)
		}
		if rest != "" && rest[0] != '-' && rest[0] != '+' {
			return bad(fmt.Sprintf("unexpected %q after the release candidate number", rest))
		}
	}
	if rest == "" {
		return v, nil
	}

	// Debian ABI name: X.Y.0-ABI-FLAVOUR.
	if patchText == "0" && v.rc == 0 && rest[0] == '-' {
		if abi, flavour, ok := cutDebianABI(rest[1:]); ok {
			v.kind, v.upstream, v.patch = KindDebianABI, false, 0
			v.abi, v.flavour = abi, flavour
			return v, nil
		}
	}
	// Debian versioned name: X.Y.Z+TAG-FLAVOUR.
	if rest[0] == '+' {
		if tag, flavour, ok := cutDebianTag(rest[1:]); ok {
			v.kind, v.tag, v.flavour = KindDebianVersioned, tag, flavour
			return v, nil
		}
	}
	// Anything else is a local suffix.
	if rest[0] != '-' && rest[0] != '+' {
		return bad(fmt.Sprintf(`unexpected %q after the version numbers (a local suffix starts with "-" or "+")`, rest))
	}
	if rest == "-" {
		return bad(`empty local suffix after "-"`)
	}
	for i := 0; i < len(rest); i++ {
		if !isSuffixByte(rest[i]) {
			return bad(fmt.Sprintf("character %q not allowed in a local suffix (allowed: letters, digits and . _ + ~ -)", rest[i]))
		}
	}
	v.suffix = rest
	return v, nil
}

// parseNumber parses a version component: decimal digits, no sign, no
// leading zero, at most 2^31-1.
func parseNumber(s, what string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is not a number", what)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%s %q has a leading zero", what, s)
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%s %q is out of range", what, s)
	}
	return int(n), nil
}

// leadingDigits splits s after its leading ASCII digits.
func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isSuffixByte(c byte) bool {
	return isDigit(c) || isLetter(c) || c == '.' || c == '_' || c == '+' || c == '~' || c == '-'
}

// formatError builds an error wrapping ErrUnknownFormat that quotes input,
// says what is wrong with it and what was expected.
func formatError(input, reason, expected string) error {
	q := input
	if len(q) > maxQuoted {
		q = q[:maxQuoted]
		return fmt.Errorf("%w: %q... (%d bytes): %s; expected %s", ErrUnknownFormat, q, len(input), reason, expected)
	}
	return fmt.Errorf("%w: %q: %s; expected %s", ErrUnknownFormat, q, reason, expected)
}
