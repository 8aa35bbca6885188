package kversion

import (
	"fmt"
	"strconv"
	"strings"
)

// maxDpkgVersion bounds the length of a version ParseDpkgVersion accepts.
const maxDpkgVersion = 256

const expectDpkg = `a Debian version [EPOCH:]UPSTREAM[-REVISION] such as "1.0~rc1", "2:1.2-3" or "6.12.80-1~deb12u1"`

// DpkgVersion is a Debian package version split into its parts as
// deb-version(7) defines them: [epoch:]upstream_version[-debian_revision].
type DpkgVersion struct {
	// Epoch is the number before the first ":" (0 when absent).
	Epoch uint32
	// Upstream is the part between the epoch and the last "-".
	Upstream string
	// Revision is the part after the last "-" ("" when absent).
	Revision string
}

// String returns the version in its canonical written form (the epoch only
// when non-zero).
func (d DpkgVersion) String() string {
	s := d.Upstream
	if d.Epoch != 0 {
		s = strconv.FormatUint(uint64(d.Epoch), 10) + ":" + s
	}
	if d.Revision != "" {
		s += "-" + d.Revision
	}
	return s
}

// ParseDpkgVersion parses a Debian package version following
// deb-version(7): an optional epoch (decimal digits, then ":"), an upstream
// version that starts with a digit and holds only letters, digits and
// ". + ~ -" (a "-" only when a revision follows, which is after the last
// "-"), and an optional revision of letters, digits and ". + ~". Nothing
// else is accepted (no spaces, no ":" in the upstream version, at most
// maxDpkgVersion bytes).
func ParseDpkgVersion(s string) (DpkgVersion, error) {
	bad := func(reason string) (DpkgVersion, error) {
		return DpkgVersion{}, formatError(s, reason, expectDpkg)
	}
	if s == "" {
		return bad("empty string")
	}
	if len(s) > maxDpkgVersion {
		return bad(fmt.Sprintf("longer than %d bytes", maxDpkgVersion))
	}
	var d DpkgVersion
	rest := s
	if ep, after, ok := strings.Cut(s, ":"); ok {
		if !allDigits(ep) {
			return bad(fmt.Sprintf("epoch %q is not a number", ep))
		}
		n, err := strconv.ParseUint(ep, 10, 31)
		if err != nil {
			return bad(fmt.Sprintf("epoch %q is out of range", ep))
		}
		d.Epoch, rest = uint32(n), after
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		d.Upstream, d.Revision = rest[:i], rest[i+1:]
		if d.Revision == "" {
			return bad(`empty revision after the last "-"`)
		}
	} else {
		d.Upstream = rest
	}
	switch {
	case d.Upstream == "":
		return bad("empty upstream version")
	case !isDigit(d.Upstream[0]):
		return bad(fmt.Sprintf("upstream version %q does not start with a digit", d.Upstream))
	}
	for i := 0; i < len(d.Upstream); i++ {
		if c := d.Upstream[i]; !isDigit(c) && !isLetter(c) && !strings.ContainsRune(".+~-", rune(c)) {
			return bad(fmt.Sprintf("character %q not allowed in the upstream version", c))
		}
	}
	for i := 0; i < len(d.Revision); i++ {
		if c := d.Revision[i]; !isDigit(c) && !isLetter(c) && !strings.ContainsRune(".+~", rune(c)) {
			return bad(fmt.Sprintf("character %q not allowed in the revision", c))
		}
	}
	return d, nil
}

// Compare orders d and e the way dpkg does: by epoch numerically, then the
// upstream versions, then the revisions, each compared with the dpkg string
// rule (see DpkgCompare). A missing revision is the empty string, which
// compares equal to "0" (1.0 = 1.0-0).
func (d DpkgVersion) Compare(e DpkgVersion) int {
	if c := cmpInt(int(d.Epoch), int(e.Epoch)); c != 0 {
		return c
	}
	if c := dpkgCompareString(d.Upstream, e.Upstream); c != 0 {
		return c
	}
	return dpkgCompareString(d.Revision, e.Revision)
}

// DpkgCompare parses a and b with ParseDpkgVersion and orders them as
// dpkg --compare-versions does: -1 if a is older, 0 if equal, +1 if newer.
//
// The algorithm (deb-version(7)): the epochs are compared as numbers; then
// the upstream versions, then the revisions, each as strings scanned from
// the left in alternating parts: a run of non-digits, compared character by
// character where "~" sorts before everything (even the end of the part),
// the end of the part sorts next, then letters (in ASCII order), then all
// other characters (in ASCII order); then a run of digits, compared as a
// number (an absent run counts as 0). So 1.0~rc1 < 1.0 < 1.0+b1 < 1.0a <
// 1.0.1, and 6.12.80-1~deb12u1 < 6.12.80-1.
func DpkgCompare(a, b string) (int, error) {
	da, err := ParseDpkgVersion(a)
	if err != nil {
		return 0, err
	}
	db, err := ParseDpkgVersion(b)
	if err != nil {
		return 0, err
	}
	return da.Compare(db), nil
}

// dpkgCompareString compares two version parts with the dpkg rule:
// alternating non-digit runs (by dpkgOrder, character by character) and
// digit runs (numerically, without overflow).
func dpkgCompareString(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		// Non-digit run: compare character weights until both reach a
		// digit or their end.
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			wa, wb := dpkgOrder(a, i), dpkgOrder(b, j)
			if wa != wb {
				return cmpInt(wa, wb)
			}
			i++
			j++
		}
		// Digit run: skip leading zeros, then the longer run is larger;
		// equal lengths compare digit by digit.
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		si, sj := i, j
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		na, nb := a[si:i], b[sj:j]
		if c := cmpInt(len(na), len(nb)); c != 0 {
			return c
		}
		if c := strings.Compare(na, nb); c != 0 {
			return c
		}
	}
	return 0
}

// dpkgOrder is the weight of s[i] in a non-digit run: "~" is -1, the end
// of the run (a digit or the end of s) 0, a letter its ASCII code, any
// other character its code + 256.
func dpkgOrder(s string, i int) int {
	switch {
	case i >= len(s) || isDigit(s[i]):
		return 0
	case s[i] == '~':
		return -1
	case isLetter(s[i]):
		return int(s[i])
	default:
		return int(s[i]) + 256
	}
}
