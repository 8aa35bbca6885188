package release

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/kroll-dev/kroll/pkg/validation"
)

// MaxFixes is the most CVE ids a manifest's Fixes may list.
const MaxFixes = 256

// CheckCVE returns nil if id is a CVE id: "CVE-", a four-digit year from
// 1999, "-" and a sequence number of 4 to 19 digits (with leading zeros
// only in a four-digit number, as MITRE assigns them: CVE-2014-0160,
// CVE-2026-31431). Otherwise the error says what is wrong.
func CheckCVE(id string) error {
	_, _, err := splitCVE(id)
	return err
}

// splitCVE checks id and returns its year and sequence number digits.
func splitCVE(id string) (year int, seq string, err error) {
	bad := func(why string) (int, string, error) {
		q := id
		if len(q) > 64 {
			q = q[:64] + "..."
		}
		return 0, "", fmt.Errorf("%q is not a CVE id such as CVE-2026-31431: %s", q, why)
	}
	rest, ok := strings.CutPrefix(id, "CVE-")
	if !ok {
		return bad(`must start with "CVE-"`)
	}
	y, seq, ok := strings.Cut(rest, "-")
	if !ok || len(y) != 4 || !digits(y) {
		return bad("the year must be four digits")
	}
	year, _ = strconv.Atoi(y)
	switch {
	case year < 1999:
		return bad("no CVE ids before 1999")
	case len(seq) < 4 || len(seq) > 19 || !digits(seq):
		return bad("the sequence number must be 4 to 19 digits")
	case len(seq) > 4 && seq[0] == '0':
		return bad("a sequence number longer than four digits has no leading zero")
	}
	return year, seq, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// CompareCVE orders two valid CVE ids by year, then sequence number
// numerically (CVE-2026-9999 < CVE-2026-10000). Invalid ids sort after
// valid ones, by string.
func CompareCVE(a, b string) int {
	ya, sa, ea := splitCVE(a)
	yb, sb, eb := splitCVE(b)
	switch {
	case ea != nil || eb != nil:
		return cmp.Or(cmp.Compare(boolInt(ea != nil), boolInt(eb != nil)), strings.Compare(a, b))
	}
	return cmp.Or(cmp.Compare(ya, yb), cmp.Compare(len(sa), len(sb)), strings.Compare(sa, sb))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateFixes checks a manifest's Fixes: at most MaxFixes CVE ids, each
// valid, in ascending CompareCVE order without duplicates (so that one
// list has one written form and its signature covers it).
func validateFixes(p *validation.Problems, fixes []string) {
	if len(fixes) > MaxFixes {
		p.Add("fixes", fmt.Sprintf("must have at most %d entries, not %d", MaxFixes, len(fixes)))
		return
	}
	for i, id := range fixes {
		f := "fixes[" + strconv.Itoa(i) + "]"
		if err := CheckCVE(id); err != nil {
			p.Add(f, err.Error())
			continue
		}
		if i == 0 || CheckCVE(fixes[i-1]) != nil {
			continue
		}
		switch c := CompareCVE(fixes[i-1], id); {
		case c == 0:
			p.Add(f, fmt.Sprintf("duplicate %s", id))
		case c > 0:
			p.Add(f, fmt.Sprintf("must be sorted: %s comes before %s", id, fixes[i-1]))
		}
	}
}
