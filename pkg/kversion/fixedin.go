package kversion

import (
	"errors"
	"fmt"
	"strings"
)

// FixForm says how a fixed-in entry names the first kernel with a fix.
type FixForm uint8

// The forms of a fixed-in entry.
const (
	// FixUpstream is a plain upstream release, "6.12.80": every kernel of
	// the line whose upstream version is at least it contains the fix.
	FixUpstream FixForm = iota + 1
	// FixBuild is an internal build, "6.12.80-cf1": an upstream release
	// with a local suffix that starts with a letter. Its series is the
	// suffix up to its first digit ("-cf"); kernels of the same line and
	// series whose build is at least it (Debian version order) contain the
	// fix.
	FixBuild
	// FixPackage is a Debian package version, "6.12.80-1~deb12u1": an
	// upstream version and a Debian revision that starts with a digit.
	// Kernels of the line whose Debian package version is known and at
	// least it (Debian version order) contain the fix.
	FixPackage
)

// String returns the form's name.
func (f FixForm) String() string {
	switch f {
	case FixUpstream:
		return "upstream"
	case FixBuild:
		return "build"
	case FixPackage:
		return "debian-package"
	default:
		return "invalid"
	}
}

// Fix is one parsed fixed-in entry: the first kernel of a line, in one of
// the three forms, that contains a fix. The zero Fix is invalid.
type Fix struct {
	raw    string
	form   FixForm
	v      Version // upstream part (line, patch level, rc)
	series string  // FixBuild: the suffix up to its first digit
}

// String returns the entry as written.
func (f Fix) String() string { return f.raw }

// Form reports the entry's form.
func (f Fix) Form() FixForm { return f.form }

// Line returns the kernel line of the entry, "6.12".
func (f Fix) Line() string { return f.v.Line() }

// Key identifies what an entry is the first fixed kernel of: its line, form
// and (for a build) series. A list of fixed-in entries has at most one entry
// per key.
func (f Fix) Key() string {
	return f.Line() + " " + f.form.String() + f.series
}

const expectFix = `an upstream release ("6.12.80"), an internal build ("6.12.80-cf1") ` +
	`or a Debian package version ("6.12.80-1~deb12u1")`

// ParseFix parses a fixed-in entry. The form follows from the text after
// the upstream version: nothing is an upstream release; "-" and a digit
// (or "~rcN-" and a digit) a Debian package version; "-" and a letter an
// internal build. Debian release names ("6.12.117+deb12-amd64",
// "6.1.0-47-amd64") and builds naming a kernel flavour ("6.12.80-cf1-amd64")
// are refused: they name a kernel image, not the build a fix went into;
// list the build ("6.12.80-cf1") or the package version instead.
func ParseFix(s string) (Fix, error) {
	bad := func(reason string) (Fix, error) {
		return Fix{}, formatError(s, reason, expectFix)
	}
	if len(s) > maxRelease {
		return bad(fmt.Sprintf("longer than %d bytes", maxRelease))
	}
	// A Debian package version: "-" and a digit after the upstream part.
	if i := strings.LastIndexByte(s, '-'); i >= 0 && i+1 < len(s) && isDigit(s[i+1]) &&
		!strings.Contains(s[:i], "-") {
		v, err := ParseDebianPackageVersion(s)
		if err != nil {
			return Fix{}, fmt.Errorf("kversion: fixed-in entry %q: %w", s, err)
		}
		if _, err := ParseDpkgVersion(s); err != nil {
			return Fix{}, fmt.Errorf("kversion: fixed-in entry %q: %w", s, err)
		}
		return Fix{raw: s, form: FixPackage, v: v}, nil
	}
	v, err := Parse(s)
	if err != nil {
		return Fix{}, fmt.Errorf("kversion: fixed-in entry: %w", err)
	}
	switch {
	case v.kind == KindDebianABI || v.kind == KindDebianVersioned:
		return bad("a Debian kernel release name, not the version a fix was built in; list the Debian package version (e.g. 6.12.117-1~deb12u1)")
	case v.suffix == "":
		return Fix{raw: s, form: FixUpstream, v: v}, nil
	case len(v.suffix) < 2 || v.suffix[0] != '-' || !isLetter(v.suffix[1]):
		return bad(fmt.Sprintf("local suffix %q: an internal build's suffix starts with \"-\" and a letter (e.g. 6.12.80-cf1)", v.suffix))
	}
	if _, flavour := cutFlavour(v.suffix); flavour != "" {
		return bad(fmt.Sprintf("names the kernel flavour %q; list the build without it (%s)", flavour, strings.TrimSuffix(s, "-"+flavour)))
	}
	if _, err := ParseDpkgVersion(s); err != nil {
		return Fix{}, fmt.Errorf("kversion: fixed-in entry %q is not a Debian version: %w", s, err)
	}
	return Fix{raw: s, form: FixBuild, v: v, series: buildSeries(v.suffix)}, nil
}

// ParseFixes parses every entry with ParseFix and refuses two entries with
// the same Key. The error names the index of the first bad entry.
func ParseFixes(ss []string) ([]Fix, error) {
	out := make([]Fix, 0, len(ss))
	seen := make(map[string]int, len(ss))
	for i, s := range ss {
		f, err := ParseFix(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if j, dup := seen[f.Key()]; dup {
			return nil, fmt.Errorf("entry %d: %q and entry %d %q are both the first fixed %s of line %s; list one",
				i, s, j, ss[j], f.form, f.Line())
		}
		seen[f.Key()] = i
		out = append(out, f)
	}
	return out, nil
}

// buildSeries is a build suffix up to its first digit: "-cf" for "-cf12".
func buildSeries(suffix string) string {
	if i := strings.IndexFunc(suffix, func(r rune) bool { return r >= '0' && r <= '9' }); i >= 0 {
		return suffix[:i]
	}
	return suffix
}

// buildShape returns a build suffix with every dotted number ("2026.5.1",
// "1.1", "12") replaced by "#": "-cf-2026.5.1" → "-cf-#", "-cf1.1" →
// "-cf#", "-cf1-debug" → "-cf#-debug". Builds of one shape differ only in
// their numbers, which dpkg orders the same way in both; builds of
// different shapes have no order.
func buildShape(suffix string) string {
	var b strings.Builder
	for suffix != "" {
		d, rest := leadingDigits(suffix)
		if d == "" {
			b.WriteByte(suffix[0])
			suffix = suffix[1:]
			continue
		}
		for len(rest) >= 2 && rest[0] == '.' && isDigit(rest[1]) {
			_, rest = leadingDigits(rest[1:])
		}
		b.WriteByte('#')
		suffix = rest
	}
	return b.String()
}

// debianRevision reports whether pkg is a Debian package version whose
// revision starts with a digit ("6.12.80-1~deb12u1", not "6.12.80-cf1").
func debianRevision(pkg string) bool {
	if pkg == "" {
		return false
	}
	d, err := ParseDpkgVersion(pkg)
	return err == nil && d.Revision != "" && isDigit(d.Revision[0])
}

// cutFlavour splits a known Debian flavour off the end of a local suffix:
// "-cf1-cloud-amd64" → "-cf1", "cloud-amd64". flavour is "" when the
// suffix does not end in one.
func cutFlavour(suffix string) (rest, flavour string) {
	for i := 1; i < len(suffix); i++ {
		if suffix[i] == '-' && isDebianFlavour(suffix[i+1:]) {
			return suffix[:i], suffix[i+1:]
		}
	}
	return suffix, ""
}

// Build returns the internal build a running kernel release belongs to,
// and whether it is one: an upstream release with a local suffix that
// starts with "-" and a letter, less a trailing Debian flavour. The
// release "6.12.80-cf1-amd64" (or "6.12.80-cf1") is build "6.12.80-cf1".
// This is how a release string alone maps to a build: builds are packaged
// with the kernel flavour appended to their version, as Debian does.
func (v Version) Build() (string, bool) {
	build, _, ok := v.build()
	return build, ok
}

// build returns Build and the build's local suffix ("-cf1" for
// "6.12.80-cf1-amd64").
func (v Version) build() (build, suffix string, ok bool) {
	if v.kind != KindUpstream || len(v.suffix) < 2 || v.suffix[0] != '-' || !isLetter(v.suffix[1]) {
		return "", "", false
	}
	rest, _ := cutFlavour(v.suffix)
	return strings.TrimSuffix(v.raw, v.suffix) + rest, rest, true
}

// FixedBy reports whether the running kernel contains a fix first shipped
// in the kernels fixes lists (at most one per Key, see ParseFixes). The
// running kernel contains it iff an entry of its line says so:
//
//   - FixUpstream "6.12.80": its upstream version is known and at least
//     6.12.80 (a release candidate is older than its release), whatever its
//     local suffix or Debian revision;
//   - FixBuild "6.12.80-cf1": it is a build of the same series and shape
//     (Build: "6.12.80-cf1-amd64" is build 6.12.80-cf1, series "-cf",
//     shape "-cf#": the suffix with every dotted number taken as one) and
//     its build is at least the entry in Debian version order (DpkgCompare:
//     6.12.80-cf1 < 6.12.80-cf1.1 < 6.12.80-cf2 < 6.12.81-cf1). Builds of
//     a series are taken to be cumulative; a plain upstream kernel, a
//     build of another series or one with another shape
//     ("6.12.80-cf1-debug": an extra part that is not a known flavour)
//     does not match;
//   - FixPackage "6.12.80-1~deb12u1": its Debian package version is known
//     (from /proc/version, see ParseProcVersion), has a revision that
//     starts with a digit like the entry's (another vendor's "6.12.80-cf1"
//     does not match), and is at least the entry in Debian version order
//     (6.12.80-1~deb12u1 < 6.12.80-1 < 6.12.80-1+b1).
//
// No entry of the running kernel's line means (false, nil): no fix known,
// the mitigation stays. An error is returned for the zero Version or a
// running kernel whose upstream version is unknown (a bare Debian ABI
// name), and for a zero Fix; callers must treat an error as "not fixed".
func FixedBy(running Version, fixes []Fix) (bool, error) {
	for i, f := range fixes {
		if f.form == 0 {
			return false, fmt.Errorf("kversion: fixed-in entry %d is the zero Fix", i)
		}
	}
	switch {
	case running.kind == 0:
		return false, errors.New("kversion: running kernel is the zero Version")
	case !running.upstream:
		return false, fmt.Errorf("kversion: cannot tell whether %q contains the fix: it is a Debian ABI name whose upstream version is unknown (read it from /proc/version)",
			running.raw)
	}
	build, suffix, isBuild := running.build()
	for _, f := range fixes {
		if !f.v.SameLine(running) {
			continue
		}
		switch f.form {
		case FixUpstream:
			if cmpUpstream(running, f.v) >= 0 {
				return true, nil
			}
		case FixBuild:
			// Only a build of the entry's shape is ordered against it: an
			// extra "-part" ("6.12.80-cf1-debug" against "6.12.80-cf2")
			// makes dpkg split the running build elsewhere than the entry
			// and compare its build number as upstream text. Another shape
			// is another build series: not fixed.
			if !isBuild || buildSeries(suffix) != f.series || buildShape(suffix) != buildShape(f.v.suffix) {
				continue
			}
			if c, err := DpkgCompare(build, f.raw); err == nil && c >= 0 {
				return true, nil
			}
		case FixPackage:
			// Only a Debian package version proper: its revision starts
			// with a digit like the entry's. Another vendor's build
			// packaged as "6.12.80-cf1" is not ordered against Debian's
			// revisions ("cf1" would sort above "1~deb12u1").
			if !debianRevision(running.pkg) {
				continue
			}
			if c, err := DpkgCompare(running.pkg, f.raw); err == nil && c >= 0 {
				return true, nil
			}
		}
	}
	return false, nil
}

// SameSeries reports whether a and b are kernels of one build series of
// one line, so that a later one can be taken to contain what an earlier
// one does (the rule FixedBy applies to build entries): two plain upstream
// releases; two internal builds (Build) of the same series and shape,
// whatever their Debian flavours ("6.12.80-cf1-amd64", "6.12.82-cf3");
// two Debian versioned names of one distribution tag; two Debian ABI names
// of one ABI series. Anything else, a plain release against a build
// ("6.12.82" against "6.12.80-cf1") included, is not one series: callers
// must not infer a fix from the order of the two.
func SameSeries(a, b Version) bool {
	if a.kind == 0 || a.kind != b.kind || !a.SameLine(b) {
		return false
	}
	switch a.kind {
	case KindUpstream:
		if a.suffix == "" || b.suffix == "" {
			return a.suffix == b.suffix
		}
		_, sa, okA := a.build()
		_, sb, okB := b.build()
		return okA && okB && buildSeries(sa) == buildSeries(sb) && buildShape(sa) == buildShape(sb)
	case KindDebianVersioned:
		return a.tag == b.tag
	case KindDebianABI:
		sa, _, okA := splitABI(a.abi)
		sb, _, okB := splitABI(b.abi)
		return okA && okB && sa == sb
	case KindDebianPackage:
		return debianRevision(a.pkg) && debianRevision(b.pkg)
	}
	return false
}
