package kversion

import (
	"errors"
	"fmt"
	"strings"
)

// Compare orders two versions. It returns -1 if a is older than b, +1 if a
// is newer, 0 if they are equivalent, and an error if the order cannot be
// decided from the strings alone.
//
// The rules, in order:
//
//  1. MAJOR, then MINOR. This is decidable for every valid Version, also
//     for Debian ABI names: 6.1.0-47-amd64 < 6.12.85.
//  2. Within a line, if both upstream versions are known: PATCH, then the
//     release candidate, a release candidate being older than the final
//     release (6.18.0-rc3 < 6.18.0 = 6.18). "6.1" and "6.1.0" are the same
//     upstream version.
//  3. Within a line, if either upstream version is unknown: two Debian ABI
//     names of the same ABI series are ordered by ABI number
//     (6.1.0-47-amd64 < 6.1.0-56-cloud-amd64); names with equal ABI numbers
//     and unknown upstream versions are ordered by flavour. Everything else
//     is undecidable and returns an error: an ABI name with unknown upstream
//     version against any other kind, against an ABI name of the same ABI
//     but known upstream, or against an ABI name of another series
//     ("47" against the backport form "0.deb11.17").
//  4. Equal upstream versions are ordered by kind: upstream release <
//     Debian ABI name < Debian versioned name < Debian package version,
//     then within the kind as listed below.
//
// Tie-breaks within a kind at equal upstream version:
//
//   - upstream releases by local suffix, the plain release first
//     (6.12.85 < 6.12.85+ < 6.12.85-cloudflare-2026.5.9 <
//     6.12.85-cloudflare-2026.5.10);
//   - Debian ABI names (upstream known from /proc/version) by ABI, then
//     Debian revision, then flavour;
//   - Debian versioned names by distribution tag (bpo < deb12 < deb13), then
//     Debian revision, then flavour;
//   - Debian package versions by Debian revision
//     (6.12.117-1~deb12u1 < 6.12.117-1 < 6.12.117-1+b1 < 6.12.117-2).
//
// Suffixes, revisions, tags, ABIs and flavours are compared segment-wise the
// way dpkg compares versions: runs of digits numerically, other characters
// by byte with letters before punctuation, and "~" before anything, even the
// end of the string. This tie-break is deterministic, but a different kind
// or flavour at the same upstream version is a different build rather than
// a newer one.
//
// Compare is antisymmetric, and transitive over the pairs it decides as
// long as ABI numbers and upstream versions of Debian names rise together
// (as they do in Debian's archive), so it can drive a sort of versions for
// which it never fails.
func Compare(a, b Version) (int, error) {
	if a.kind == 0 || b.kind == 0 {
		return 0, errors.New("kversion: cannot compare the zero Version")
	}
	if c := cmpInt(a.major, b.major); c != 0 {
		return c, nil
	}
	if c := cmpInt(a.minor, b.minor); c != 0 {
		return c, nil
	}
	if a.upstream && b.upstream {
		if c := cmpUpstream(a, b); c != 0 {
			return c, nil
		}
		return tieBreak(a, b), nil
	}
	if a.kind == KindDebianABI && b.kind == KindDebianABI {
		sa, na, _ := splitABI(a.abi)
		sb, nb, _ := splitABI(b.abi)
		if sa != sb {
			return 0, fmt.Errorf("kversion: cannot order %q and %q: their Debian ABIs %q and %q belong to different series and their upstream versions are not both known",
				a.raw, b.raw, a.abi, b.abi)
		}
		if c := cmpInt(na, nb); c != 0 {
			return c, nil
		}
		if a.upstream != b.upstream {
			return 0, fmt.Errorf("kversion: cannot order %q and %q: same Debian ABI %s, but the upstream version of only one is known",
				a.raw, b.raw, a.abi)
		}
		return naturalCompare(a.flavour, b.flavour), nil
	}
	unknown := a
	if unknown.upstream {
		unknown = b
	}
	return 0, fmt.Errorf("kversion: cannot order %q and %q: the upstream version of the Debian ABI name %q is unknown (read it from /proc/version)",
		a.raw, b.raw, unknown.raw)
}

// cmpUpstream compares the known upstream patch level and release candidate
// of two versions of the same line.
func cmpUpstream(a, b Version) int {
	if c := cmpInt(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case a.rc == b.rc:
		return 0
	case a.rc == 0: // final release is newer than any release candidate
		return 1
	case b.rc == 0:
		return -1
	default:
		return cmpInt(a.rc, b.rc)
	}
}

// tieBreak orders two versions of equal upstream version (rule 4 of Compare).
func tieBreak(a, b Version) int {
	if c := cmpInt(int(a.kind), int(b.kind)); c != 0 {
		return c
	}
	var keys [][2]string
	switch a.kind {
	case KindUpstream:
		keys = [][2]string{{a.suffix, b.suffix}}
	case KindDebianABI:
		keys = [][2]string{{a.abi, b.abi}, {a.rev, b.rev}, {a.flavour, b.flavour}}
	case KindDebianVersioned:
		keys = [][2]string{{a.tag, b.tag}, {a.rev, b.rev}, {a.flavour, b.flavour}}
	case KindDebianPackage:
		keys = [][2]string{{a.rev, b.rev}}
	}
	for _, k := range keys {
		if c := naturalCompare(k[0], k[1]); c != 0 {
			return c
		}
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// naturalCompare compares two strings segment-wise with the rules dpkg uses
// for version strings: the strings are split into alternating runs of
// non-digits and digits; non-digit runs are compared byte by byte with
// sortWeight, digit runs numerically (of any length, without overflow).
func naturalCompare(a, b string) int {
	for a != "" || b != "" {
		// Non-digit run. A digit or the end of the string weighs 0.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			wa, wb := sortWeight(a), sortWeight(b)
			if wa != wb {
				return cmpInt(wa, wb)
			}
			// Equal non-zero weights: both start with the same non-digit.
			a, b = a[1:], b[1:]
		}
		// Digit run.
		da, ra := leadingDigits(a)
		db, rb := leadingDigits(b)
		da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
		if c := cmpInt(len(da), len(db)); c != 0 {
			return c
		}
		if c := strings.Compare(da, db); c != 0 {
			return c
		}
		a, b = ra, rb
	}
	return 0
}

// sortWeight is the weight of the first byte of s in a non-digit run:
// "~" sorts before the end of the run (a digit or the end of the string),
// which sorts before letters, which sort before all other bytes.
func sortWeight(s string) int {
	switch {
	case s == "" || isDigit(s[0]):
		return 0
	case s[0] == '~':
		return -1
	case isLetter(s[0]):
		return int(s[0])
	default:
		return int(s[0]) + 256
	}
}
