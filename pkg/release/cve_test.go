package release

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestCheckCVE(t *testing.T) {
	for _, tc := range []struct {
		id, bad string
	}{
		{"CVE-2026-31431", ""},
		{"CVE-2014-0160", ""},
		{"CVE-1999-0001", ""},
		{"CVE-2026-1234567890123456789", ""},
		{"", `must start with "CVE-"`},
		{"cve-2026-31431", `must start with "CVE-"`},
		{"CVE-26-31431", "four digits"},
		{"CVE-2026-123", "4 to 19 digits"},
		{"CVE-2026-12345678901234567890", "4 to 19 digits"},
		{"CVE-2026-031431", "leading zero"},
		{"CVE-1998-0001", "before 1999"},
		{"CVE-2026-3143a", "4 to 19 digits"},
		{"CVE-2026-31431 ", "4 to 19 digits"},
	} {
		err := CheckCVE(tc.id)
		if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("CheckCVE(%q) = %v; want %q", tc.id, err, tc.bad)
		}
	}
}

func TestCompareCVE(t *testing.T) {
	ordered := []string{"CVE-2025-99999", "CVE-2026-0001", "CVE-2026-9999", "CVE-2026-10000", "CVE-2026-31431", "CVE-2027-0001", "bogus"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareCVE(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareCVE(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestValidateFixes(t *testing.T) {
	many := make([]string, MaxFixes+1)
	for i := range many {
		many[i] = "CVE-2026-" + strings.Repeat("1", 4) + string(rune('0'+i%10))
	}
	for _, tc := range []struct {
		name  string
		fixes []string
		want  string
	}{
		{"none", nil, ""},
		{"one", []string{"CVE-2026-31431"}, ""},
		{"sorted numerically", []string{"CVE-2026-9999", "CVE-2026-10000", "CVE-2027-0001"}, ""},
		{"unsorted", []string{"CVE-2026-31431", "CVE-2026-10000"}, "fixes[1]: must be sorted: CVE-2026-10000 comes before CVE-2026-31431"},
		{"string order is not numeric order", []string{"CVE-2026-10000", "CVE-2026-9999"}, "fixes[1]: must be sorted"},
		{"duplicate", []string{"CVE-2026-31431", "CVE-2026-31431"}, "fixes[1]: duplicate CVE-2026-31431"},
		{"garbage", []string{"CVE-2026-31431", "copy fail"}, `fixes[1]: "copy fail" is not a CVE id`},
		{"too many", many, "fixes: must have at most 256 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			m.Fixes = tc.fixes
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				// The fixes survive the canonical encoding and the signature.
				_, priv := testKey(1)
				sig, err := SignManifest(priv, m)
				if err != nil {
					t.Fatal(err)
				}
				doc := mustCanonical(t, m)
				v, err := Open(doc, sig.Marshal(), []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got := v.Manifest().Fixes; strings.Join(got, ",") != strings.Join(tc.fixes, ",") {
					t.Errorf("fixes after Open = %q, want %q", got, tc.fixes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
