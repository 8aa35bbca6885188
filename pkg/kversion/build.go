package kversion

import (
	"errors"
	"fmt"
	"strings"
)

// ParseBuild parses the version of a kernel build as a release manifest
// describes it: its release string (uname -r) and, optionally, its upstream
// version. The upstream version must be a plain one ("6.1.192"); it makes
// the upstream version of a Debian ABI name known (like ParseProcVersion
// does with the Debian package version) and must agree with a release that
// tells its own.
func ParseBuild(release, upstream string) (Version, error) {
	v, err := Parse(release)
	if err != nil {
		return Version{}, err
	}
	if upstream == "" {
		return v, nil
	}
	u, err := Parse(upstream)
	if err != nil {
		return Version{}, fmt.Errorf("kversion: upstream version of %q: %w", release, err)
	}
	if u.kind != KindUpstream || u.suffix != "" {
		return Version{}, formatError(upstream, "not a plain upstream version", `an upstream version such as "6.1.192"`)
	}
	if !v.SameLine(u) {
		return Version{}, fmt.Errorf("kversion: release %q is on line %s but upstream version %q is on line %s",
			release, v.Line(), upstream, u.Line())
	}
	if v.upstream {
		if v.patch != u.patch || v.rc != u.rc {
			vu, _ := v.Upstream()
			return Version{}, fmt.Errorf("kversion: release %q is upstream %s, not %s", release, vu, upstream)
		}
		return v, nil
	}
	v.patch, v.rc, v.upstream = u.patch, u.rc, true
	return v, nil
}

// ErrSameUpstreamBuild is wrapped by CompareBuild's error for two different
// builds of the same upstream version that have no order: of different
// kinds (an upstream release against a Debian name) or Debian flavours.
var ErrSameUpstreamBuild = errors.New("kversion: different builds of the same upstream version")

// CompareBuild orders two kernel builds by their full build version, for
// deciding whether a kernel is an upgrade of another: -1 if a is an older
// build than b, +1 if newer, 0 if no newer and no older (the same build as
// far as the strings tell). It is stricter than Compare:
//
//   - at equal upstream versions, builds of different kinds
//     (6.12.85 against 6.12.85+deb13-amd64) or Debian flavours
//     (amd64 against cloud-amd64) are not ordered: the error wraps
//     ErrSameUpstreamBuild;
//   - at equal upstream versions builds of one kind are ordered by their
//     build identity: the local suffix (6.12.85-kroll-2 < 6.12.85-kroll-3;
//     the plain release before any local build), but only the numbers of
//     two suffixes of the same shape (the same text once every run of
//     digits is taken as a number): unrelated suffixes such as -zz,
//     -kroll-3.old or -kroll-3-debug against -kroll-3 are not ordered and
//     the error wraps ErrSameUpstreamBuild;
//     the Debian ABI (6.1.0-47-amd64 < 6.1.0-56-amd64), the distribution
//     tag, and the Debian revision when both are known (Debian package
//     6.12.85-2 < 6.12.85-3); a revision known on one side only does not
//     order them;
//   - two Debian ABI names of one series must have their ABI numbers in
//     the order of their upstream versions: a build claiming a newer
//     upstream version under an older ABI is refused with an error.
//
// Everything Compare cannot decide is an error here too.
func CompareBuild(a, b Version) (int, error) {
	c, err := Compare(a, b)
	if err != nil {
		return 0, err
	}
	if a.kind == KindDebianABI && b.kind == KindDebianABI {
		sa, na, _ := splitABI(a.abi)
		sb, nb, _ := splitABI(b.abi)
		if sa == sb {
			if ca := cmpInt(na, nb); ca != 0 && ca != c {
				return 0, fmt.Errorf("kversion: cannot order %q and %q: the order of their Debian ABIs %s and %s contradicts their upstream versions %s",
					a.raw, b.raw, a.abi, b.abi, upstreamOf(a)+" and "+upstreamOf(b))
			}
		}
	}
	if !a.upstream || !b.upstream || a.major != b.major || a.minor != b.minor || cmpUpstream(a, b) != 0 {
		return c, nil
	}
	if a.kind != b.kind {
		return 0, fmt.Errorf("%w: %q (%s) and %q (%s)", ErrSameUpstreamBuild, a.raw, a.kind, b.raw, b.kind)
	}
	if a.flavour != b.flavour {
		return 0, fmt.Errorf("%w: %q (flavour %s) and %q (flavour %s)", ErrSameUpstreamBuild, a.raw, a.flavour, b.raw, b.flavour)
	}
	var keys [][2]string
	switch a.kind {
	case KindUpstream:
		if a.suffix != "" && b.suffix != "" && suffixShape(a.suffix) != suffixShape(b.suffix) {
			return 0, fmt.Errorf("%w: %q and %q have unrelated local suffixes (%s and %s)", ErrSameUpstreamBuild, a.raw, b.raw, a.suffix, b.suffix)
		}
		keys = [][2]string{{a.suffix, b.suffix}}
	case KindDebianABI:
		keys = [][2]string{{a.abi, b.abi}}
	case KindDebianVersioned:
		keys = [][2]string{{a.tag, b.tag}}
	}
	if a.rev != "" && b.rev != "" {
		keys = append(keys, [2]string{a.rev, b.rev})
	}
	for _, k := range keys {
		if c := naturalCompare(k[0], k[1]); c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

// suffixShape returns a local suffix with every run of digits replaced by
// "#" ("-kroll-12" → "-kroll-#"): two suffixes of one shape differ only in
// their numbers, which order them.
func suffixShape(s string) string {
	var b strings.Builder
	for s != "" {
		if d, rest := leadingDigits(s); d != "" {
			b.WriteByte('#')
			s = rest
			continue
		}
		b.WriteByte(s[0])
		s = s[1:]
	}
	return b.String()
}

// upstreamOf returns v's upstream version or "unknown".
func upstreamOf(v Version) string {
	if u, ok := v.Upstream(); ok {
		return u
	}
	return "unknown"
}

// Describe returns v with what is known of its build, for messages:
// "6.1.0-56-amd64 (upstream 6.1.192, Debian 6.1.192-2)".
func (v Version) Describe() string {
	if v.kind == 0 {
		return "(invalid version)"
	}
	s := v.raw
	var extra string
	if u, ok := v.Upstream(); ok && u != v.raw {
		extra = "upstream " + u
	}
	if v.pkg != "" && v.pkg != v.raw {
		if extra != "" {
			extra += ", "
		}
		extra += "Debian " + v.pkg
	}
	if extra != "" {
		s += " (" + extra + ")"
	}
	return s
}
