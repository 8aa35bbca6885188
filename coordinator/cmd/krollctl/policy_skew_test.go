package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/policy"
)

// TestPolicyPushSkewWarning: a policy whose fixed_in uses the build or
// Debian-package form is pushed with a warning naming those entries
// (older agents reject the whole policy); upstream entries only, none.
func TestPolicyPushSkewWarning(t *testing.T) {
	key := cveKey(9)
	for _, tc := range []struct {
		name    string
		fixedIn []string
		want    []string // in the warning; nil: no warning
	}{
		{"upstream only", []string{"6.12.80", "6.18.30"}, nil},
		{"build", []string{"6.12.80-cf1", "6.18.30"}, []string{"6.12.80-cf1 (build)", "agents older than this release reject the whole policy"}},
		{"debian package", []string{"6.12.80-1~deb12u1"}, []string{"6.12.80-1~deb12u1 (debian-package)", "upgrade them first"}},
		{"both", []string{"6.12.80-cf1", "6.12.80-1~deb12u1"}, []string{"6.12.80-cf1 (build), 6.12.80-1~deb12u1 (debian-package)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Policy{ID: "copy-fail", CVE: "CVE-2026-31431", Version: 1, Kind: policy.KindSocketFamily, Mode: policy.ModeEnforce,
				Params:    policy.Params{Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind}},
				AppliesTo: policy.AppliesTo{FixedIn: tc.fixedIn}, Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
			doc, err := p.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := policy.Sign(key, p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "copy-fail.json")
			if err := os.WriteFile(path, doc, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".sig", sig.Marshal(), 0o644); err != nil {
				t.Fatal(err)
			}
			_, warn, err := readPolicyPush(path, "")
			if err != nil {
				t.Fatal(err)
			}
			if (warn == "") != (tc.want == nil) {
				t.Fatalf("warning %q, want one: %v", warn, tc.want != nil)
			}
			for _, w := range tc.want {
				if !strings.Contains(warn, w) {
					t.Errorf("warning %q lacks %q", warn, w)
				}
			}
		})
	}
}
