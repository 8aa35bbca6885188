package packaging

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allowedLicenses reads packaging/allowed-licenses: one SPDX name a line,
// # comments.
func allowedLicenses(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("allowed-licenses")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allowed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			allowed[line] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return allowed
}

// licenseViolations returns one line per library of a go-licenses CSV
// report (library,licence URL,licence name) whose licence is not allowed,
// and an error when the report is malformed or lists no library at all.
func licenseViolations(report string, allowed map[string]bool) ([]string, error) {
	records, err := csv.NewReader(strings.NewReader(report)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("go-licenses report: %w", err)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("go-licenses report lists no library")
	}
	var bad []string
	for _, r := range records {
		if len(r) != 3 {
			return nil, fmt.Errorf("go-licenses report: want library,url,licence, got %q", r)
		}
		if !allowed[r[2]] {
			bad = append(bad, fmt.Sprintf("%s: licence %q is not in packaging/allowed-licenses", r[0], r[2]))
		}
	}
	return bad, nil
}

func TestLicenseViolations(t *testing.T) {
	allowed := map[string]bool{"MIT": true, "MPL-2.0": true}
	for _, c := range []struct {
		name, report string
		bad          []string
		err          bool
	}{
		{name: "all allowed", report: "a.example/x,https://a.example/x/LICENSE,MIT\nb.example/y,Unknown,MPL-2.0\n"},
		{name: "unrecognised", report: "a.example/x,Unknown,Unknown\n",
			bad: []string{`a.example/x: licence "Unknown" is not in packaging/allowed-licenses`}},
		{name: "copyleft among allowed", report: "a.example/x,u,MIT\nc.example/gpl,u,GPL-3.0\nd.example/z,u,AGPL-3.0\n",
			bad: []string{`c.example/gpl: licence "GPL-3.0" is not in packaging/allowed-licenses`,
				`d.example/z: licence "AGPL-3.0" is not in packaging/allowed-licenses`}},
		{name: "case matters", report: "a.example/x,u,mit\n",
			bad: []string{`a.example/x: licence "mit" is not in packaging/allowed-licenses`}},
		{name: "empty report", report: "", err: true},
		{name: "malformed", report: "a.example/x,MIT\n", err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad, err := licenseViolations(c.report, allowed)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if !slices.Equal(bad, c.bad) {
				t.Errorf("got %q, want %q", bad, c.bad)
			}
		})
	}
}

// TestDependencyLicenses is the CI licence check: go-licenses (its own
// modfile, tools/go-licenses/go.mod) classifies the licence of every
// library that kroll's packages link (test-only imports aside); each must
// be in packaging/allowed-licenses. kroll's own packages must be found
// under LICENSE (Apache-2.0).
func TestDependencyLicenses(t *testing.T) {
	need(t, "go")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goLicenses := func(args ...string) string {
		t.Helper()
		args = append([]string{"tool", "-modfile=tools/go-licenses/go.mod", "go-licenses", "report"}, args...)
		cmd := exec.Command("go", args...)
		cmd.Dir = repo
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	allowed := allowedLicenses(t)

	report := goLicenses("--ignore", "github.com/kroll-dev/kroll", "./...")
	bad, err := licenseViolations(report, allowed)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
	// The report covers the real graph: modules the coordinator and the
	// agent are known to link, with their licences.
	for _, want := range []string{",MPL-2.0", "github.com/hashicorp/raft,", "github.com/cilium/ebpf,", "github.com/BurntSushi/toml,"} {
		if !strings.Contains(report, want) {
			t.Errorf("go-licenses report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "github.com/kroll-dev/kroll") {
		t.Errorf("kroll's own packages in the third-party report:\n%s", report)
	}

	own := goLicenses("./pkg/buildinfo")
	if want := "github.com/kroll-dev/kroll/pkg/buildinfo,"; !strings.HasPrefix(own, want) || !strings.HasSuffix(strings.TrimSpace(own), ",Apache-2.0") {
		t.Errorf("kroll's own licence: got %q, want %s…,Apache-2.0 (LICENSE)", own, want)
	}
}
