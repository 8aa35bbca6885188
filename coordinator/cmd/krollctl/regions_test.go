package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// regionsJSON is the -o json output of a command across regions.
type regionsJSON map[string]struct {
	Result json.RawMessage `json:"result"`
	Error  *string         `json:"error"`
}

// writeFile writes content to dir/name with mode and returns the path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRegionsAgainstRealCoordinators runs krollctl across three regions,
// each its own real coordinator quorum: ap (one node, token), eu (three
// nodes behind a dead first URL, token), us (TLS, client certificate
// only). Status and policy push reach all of them; with ap down, retire
// and status still finish in eu and us, exit 1 and name ap.
func TestRegionsAgainstRealCoordinators(t *testing.T) {
	dir := t.TempDir()
	// The Copy Fail policy, signed by the operators' key.
	keyPrefix := filepath.Join(dir, "ops")
	pol := copyExample(t, dir, "copy-fail.yaml")
	for _, args := range [][]string{{"keygen", "--out", keyPrefix}, {"sign", "--key", keyPrefix + ".key", pol}} {
		if code, _, stderr := krollctl(t, args...); code != 0 {
			t.Fatalf("krollctl %v: %s", args, stderr)
		}
	}
	pub, err := signing.LoadPublicKey(keyPrefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	ca := testpki.NewCA(t)
	ap := testcoord.Start(t, testcoord.Options{PolicyKeys: []ed25519.PublicKey{pub}})
	eu := testcoord.StartCluster(t, 3, testcoord.Options{PolicyKeys: []ed25519.PublicKey{pub}})
	us := testcoord.Start(t, testcoord.Options{PolicyKeys: []ed25519.PublicKey{pub}, CA: ca})
	opsCert, opsKey, caFile := ca.WriteFiles(t, dir, ca.Issue(t, "admin", "ops"))
	clients := map[string]*client.Client{"ap": ap.Client, "eu": eu[0].Client, "us": us.Client}
	for region, c := range clients {
		tier, slots := "edge", 1
		if _, err := c.SetDatacenter(t.Context(), region+"1", wire.DatacenterUpdate{Tier: &tier, SlotLimit: &slots}); err != nil {
			t.Fatalf("%s: %v", region, err)
		}
	}

	writeFile(t, dir, "ops.token", testcoord.OperatorToken+"\n", 0o600)
	fleet := writeFile(t, dir, "fleet.toml", fmt.Sprintf(`# three regions, three quorums
[defaults]
token_file = "ops.token"
timeout = "20s"

[regions.ap]
coordinators = [%q]

[regions.eu]
coordinators = [%q, %q, %q, %q]

[regions.us]
coordinators = [%q]
ca = %q
cert = %q
key = %q
`, ap.URL, refusedURL(t), eu[0].URL, eu[1].URL, eu[2].URL, us.URL, caFile, opsCert, opsKey), 0o644)
	env := map[string]string{envFleet: fleet}
	ctl := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := krollctlEnv(t, env, args...)
		if code != wantCode {
			t.Fatalf("krollctl %v: exit %d, want %d\nstdout:\n%s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}
	// lineOf is the result line of a region.
	lineOf := func(out, prefix string) string {
		t.Helper()
		_, results, ok := strings.Cut(out, "REGION  RESULT\n")
		if !ok {
			t.Fatalf("no per-region results in:\n%s", out)
		}
		for l := range strings.Lines(results) {
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l)
			}
		}
		t.Fatalf("no result line starting %q in:\n%s", prefix, out)
		return ""
	}

	t.Run("status-all-regions", func(t *testing.T) {
		out, _ := ctl(0, "--all-regions", "status")
		if !strings.HasPrefix(out, "REGION  LEADER  DC ") {
			t.Errorf("table does not start with REGION LEADER DC:\n%s", out)
		}
		// One row per region's datacenter, sorted by region.
		var rows []string
		for l := range strings.Lines(out) {
			if f := strings.Fields(l); len(f) > 3 && strings.HasSuffix(f[2], "1") {
				rows = append(rows, f[0]+"/"+f[2])
			}
		}
		if want := []string{"ap/ap1", "eu/eu1", "us/us1"}; !slices.Equal(rows, want) {
			t.Errorf("rows %v, want %v:\n%s", rows, want, out)
		}
		for _, r := range []string{"ap", "eu", "us"} {
			if l := lineOf(out, r+" "); !strings.Contains(l, "ok: leader c") {
				t.Errorf("result of %s: %q", r, l)
			}
		}
	})

	t.Run("status-json", func(t *testing.T) {
		out, _ := ctl(0, "status", "--all-regions", "-o", "json")
		var got regionsJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(got) != 3 {
			t.Fatalf("regions %v, want ap, eu, us", got)
		}
		for r, v := range got {
			var st wire.Status
			if v.Error != nil || json.Unmarshal(v.Result, &st) != nil || st.Leader == "" || len(st.Datacenters) != 1 || st.Datacenters[0].Name != r+"1" {
				t.Errorf("%s: error %v, result %s", r, v.Error, v.Result)
			}
		}
	})

	t.Run("policy-push-all-regions", func(t *testing.T) {
		out, _ := ctl(0, "policy", "push", pol, "--all-regions")
		for _, r := range []string{"ap", "eu", "us"} {
			if l := lineOf(out, r+" "); !strings.Contains(l, "ok: pushed copy-fail version 1") {
				t.Errorf("%s: %q", r, l)
			}
			ps, err := clients[r].Policies(t.Context())
			if err != nil || len(ps) != 1 || ps[0].ID != "copy-fail" || ps[0].Retired {
				t.Errorf("%s has policies %+v, %v; want copy-fail", r, ps, err)
			}
		}
		if f := strings.Fields(out); len(f) < 3 || f[0] != "REGION" || f[1] != "POLICY" || strings.Count(out, "copy-fail") != 6 {
			t.Errorf("want a table of copy-fail in each region, then each region's result:\n%s", out)
		}
	})

	t.Run("policy-push-again-is-a-no-op", func(t *testing.T) {
		ctl(0, "--all-regions", "policy", "push", pol)
	})

	t.Run("policy-list-some-regions", func(t *testing.T) {
		out, _ := ctl(0, "policy", "list", "--region", "us,eu", "-o", "json")
		var got regionsJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if _, ok := got["ap"]; ok || len(got) != 2 {
			t.Fatalf("regions %v, want eu and us only", got)
		}
		for r, v := range got {
			var ps []wire.Policy
			if v.Error != nil || json.Unmarshal(v.Result, &ps) != nil || len(ps) != 1 || ps[0].ID != "copy-fail" {
				t.Errorf("%s: %v %s", r, v.Error, v.Result)
			}
		}
	})

	t.Run("cve-show-all-regions", func(t *testing.T) {
		out, _ := ctl(0, "--all-regions", "cve", "show", "CVE-2026-31431", "-o", "json")
		var got regionsJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(got) != 3 {
			t.Fatalf("regions %v, want ap, eu, us", got)
		}
		for r, v := range got {
			var rep wire.CVEReport
			if v.Error != nil || json.Unmarshal(v.Result, &rep) != nil || rep.CVE != "CVE-2026-31431" {
				t.Errorf("%s: error %v, result %s", r, v.Error, v.Result)
			}
		}
		out, _ = ctl(0, "--all-regions", "cve", "show", "CVE-2026-31431")
		// No hosts: no line rows, a result line per region.
		if !strings.HasPrefix(out, "REGION  RESULT") {
			t.Errorf("want only the result lines:\n%s", out)
		}
		for _, r := range []string{"ap", "eu", "us"} {
			if l := lineOf(out, r+" "); !strings.Contains(l, "ok: 0 hosts") {
				t.Errorf("result of %s: %q", r, l)
			}
		}
		ctl(2, "--all-regions", "cve", "show", "not-a-cve")
	})

	t.Run("train-across-regions", func(t *testing.T) {
		for region, c := range clients {
			tier, slots := "staging", 1
			if _, err := c.SetDatacenter(t.Context(), region+"-stg", wire.DatacenterUpdate{Tier: &tier, SlotLimit: &slots}); err != nil {
				t.Fatalf("%s: %v", region, err)
			}
			if _, err := c.SetTrain(t.Context(), "6.12", wire.TrainSetRequest{Staging: []string{region + "-stg"}, StagingSoakSeconds: 3600,
				ControlSoakSeconds: 3600, EdgeCycleSeconds: 7 * 24 * 3600, Departure: "Tue 09:00 UTC"}); err != nil {
				t.Fatalf("%s: %v", region, err)
			}
		}
		out, _ := ctl(0, "--all-regions", "train", "show")
		if !strings.HasPrefix(out, "REGION  LINE ") || strings.Count(out, "6.12") != 3 {
			t.Errorf("want a train row per region:\n%s", out)
		}
		for _, r := range []string{"ap", "eu", "us"} {
			if l := lineOf(out, r+" "); !strings.Contains(l, "ok: 1 trains") {
				t.Errorf("result of %s: %q", r, l)
			}
		}
		ctl(0, "train", "hold", "6.12", "--reason", "holiday freeze", "--all-regions")
		for r, c := range clients {
			tr, err := c.Train(t.Context(), "6.12")
			if err != nil || !tr.Held || !strings.HasPrefix(tr.HoldReason, "holiday freeze") {
				t.Errorf("%s: train %+v, %v; want held", r, tr, err)
			}
		}
		ctl(2, "train", "hold", "6.12", "--all-regions")
		ctl(0, "--region", "eu", "train", "resume", "6.12", "--reason", "over")
		for r, c := range clients {
			tr, err := c.Train(t.Context(), "6.12")
			if err != nil || tr.Held != (r != "eu") {
				t.Errorf("%s: held %v, %v; want held only outside eu", r, tr.Held, err)
			}
		}
		ctl(2, "train", "skip", "6.12", "--reason", "x", "--all-regions")
	})

	ap.Stop()

	t.Run("one-region-down-retire", func(t *testing.T) {
		out, stderr := ctl(1, "--all-regions", "policy", "retire", "copy-fail", "--reason", "fixed kernels everywhere")
		if want := "krollctl: 1 of 3 regions failed: ap (re-run for them with --region ap)\n"; stderr != want {
			t.Errorf("stderr %q, want %q", stderr, want)
		}
		l := lineOf(out, "ap ")
		if !strings.Contains(l, "error: coordinator "+ap.URL+": connection refused") || !strings.Contains(l, "see region ap in "+fleet) {
			t.Errorf("ap result: %q", l)
		}
		if strings.Contains(l, "may have been applied") {
			t.Errorf("refused connection reported as maybe applied: %q", l)
		}
		for _, r := range []string{"eu", "us"} {
			if l := lineOf(out, r+" "); strings.Contains(l, "error") {
				t.Errorf("%s: %q", r, l)
			}
			ps, err := clients[r].Policies(t.Context())
			if err != nil || len(ps) != 1 || !ps[0].Retired {
				t.Errorf("%s: policies %+v, %v; want copy-fail retired", r, ps, err)
			}
		}
	})

	t.Run("one-region-down-status-json", func(t *testing.T) {
		out, stderr := ctl(1, "--all-regions", "status", "-o", "json")
		var got regionsJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if v := got["ap"]; v.Error == nil || !strings.Contains(*v.Error, "connection refused") || string(v.Result) != "null" {
			t.Errorf("ap: error %v result %s", v.Error, v.Result)
		}
		for _, r := range []string{"eu", "us"} {
			if v := got[r]; v.Error != nil || len(v.Result) < 10 {
				t.Errorf("%s: error %v result %s", r, v.Error, v.Result)
			}
		}
		if !strings.Contains(stderr, "1 of 3 regions failed: ap") {
			t.Errorf("stderr %q", stderr)
		}
	})
}

// TestRegionsRefused: wrong region flags, fleet files and credentials
// stop the command before any request, with one clear line.
func TestRegionsRefused(t *testing.T) {
	f, url := newFakeCoord(t)
	dir := t.TempDir()
	writeFile(t, dir, "ops.token", "operator-token-0123\n", 0o600)
	writeFile(t, dir, "open.token", "operator-token-0123\n", 0o644)
	good := writeFile(t, dir, "fleet.toml", fmt.Sprintf("[defaults]\ntoken_file = \"ops.token\"\n[regions.eu]\ncoordinators = [%q]\n[regions.us]\ncoordinators = [%q]\n", url, url+"/us"), 0o644)
	openToken := writeFile(t, dir, "open.toml", fmt.Sprintf("[regions.eu]\ncoordinators = [%q]\ntoken_file = \"open.token\"\n[regions.us]\ncoordinators = [%q]\n", url, url+"/us"), 0o644)
	broken := writeFile(t, dir, "broken.toml", "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\n\n[regions.eu]\n", 0o644)
	home := t.TempDir()
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		code    int
		stderr  string
	}{
		{"region-and-all", map[string]string{envFleet: good}, []string{"status", "--region", "eu", "--all-regions"}, 2, "--region and --all-regions exclude each other"},
		{"region-and-coordinator", map[string]string{envFleet: good}, []string{"status", "--region", "eu", "--coordinator", url}, 2, "drop --coordinator, --token and --tls-*"},
		{"region-and-token", map[string]string{envFleet: good}, []string{"status", "--all-regions", "--token", "x"}, 2, "drop --coordinator"},
		{"fleet-without-region", nil, []string{"status", "--fleet", good}, 2, "--fleet needs --region or --all-regions"},
		{"unsupported-command", map[string]string{envFleet: good}, []string{"dc", "list", "--all-regions"}, 2, "krollctl dc list does not run across regions (those that do: cve show, policy list, policy push, policy retire, status, train hold, train resume, train show)"},
		{"unknown-region", map[string]string{envFleet: good}, []string{"status", "--region", "eu,mars"}, 2, `no region "mars" in ` + good + " (regions: eu, us)"},
		{"region-twice", map[string]string{envFleet: good}, []string{"status", "--region", "eu,eu"}, 2, `region "eu" named twice`},
		{"empty-region-entry", map[string]string{envFleet: good}, []string{"status", "--region", "eu,"}, 2, "an empty entry"},
		{"zero-parallel", map[string]string{envFleet: good}, []string{"status", "--all-regions", "--region-parallel", "0"}, 2, "want at least 1"},
		{"missing-fleet-file", map[string]string{"HOME": home}, []string{"status", "--all-regions"}, 1,
			"fleet file " + filepath.Join(home, ".config", "kroll", "fleet.toml") + ": file does not exist (give --fleet or KROLL_FLEET"},
		{"duplicate-region-line", nil, []string{"status", "--all-regions", "--fleet", broken}, 1, "fleet file " + broken + ":4: "},
		{"readable-token-refused-before-any-region", nil, []string{"policy", "list", "--all-regions", "--fleet", openToken}, 1, "region eu: token_file " + filepath.Join(dir, "open.token") + ": mode 0644"},
		{"missing-policy-file", map[string]string{envFleet: good}, []string{"policy", "push", filepath.Join(dir, "nope.yaml"), "--all-regions"}, 1, "nope.yaml: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/status", reply{200, `{"leader":"c1"}`})
			code, stdout, stderr := krollctlEnv(t, tt.environ, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q\nstdout:\n%s", code, stderr, tt.code, tt.stderr, stdout)
			}
			if reqs := f.requests(); len(reqs) != 0 {
				t.Errorf("sent %+v, want nothing", reqs)
			}
		})
	}
}

// TestRegionsTimeout: a region that does not answer within
// --region-timeout is an error row naming the bound, the other regions
// still report, and a write that timed out says it may have applied.
func TestRegionsTimeout(t *testing.T) {
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(stop) }) // runs first: frees the handlers
	f, url := newFakeCoord(t)
	dir := t.TempDir()
	writeFile(t, dir, "ops.token", "operator-token-0123\n", 0o600)
	fleet := writeFile(t, dir, "fleet.toml", fmt.Sprintf("[defaults]\ntoken_file = \"ops.token\"\n[regions.eu]\ncoordinators = [%q]\n[regions.slow]\ncoordinators = [%q]\n", url, hang.URL), 0o644)
	tests := []struct {
		name     string
		args     []string
		slowLine string
	}{
		{"read", []string{"status"}, "error: no answer within 300ms (--region-timeout): "},
		{"write", []string{"policy", "retire", "copy-fail"}, "(the change may have been applied: check the region before re-running)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/status", reply{200, statusJSON}, map[string]reply{
				"POST /api/v1/policies/retire": {200, `{"id":"copy-fail","version":1,"kind":"socket-family","mode":"audit","retired":true}`}})
			code, stdout, stderr := krollctlEnv(t, map[string]string{envFleet: fleet}, append(tt.args, "--all-regions", "--region-timeout", "300ms")...)
			if code != 1 || !strings.Contains(stderr, "1 of 2 regions failed: slow (re-run for them with --region slow)") {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			_, results, _ := strings.Cut(stdout, "REGION  RESULT\n")
			lines := strings.Split(strings.TrimSpace(results), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "eu ") || !strings.Contains(lines[0], " ok") ||
				!strings.HasPrefix(lines[1], "slow ") || !strings.Contains(lines[1], tt.slowLine) {
				t.Errorf("results %q, want eu ok and slow with %q:\n%s", lines, tt.slowLine, stdout)
			}
		})
	}
}

// TestRegionsCompletionAndManual: --region completes the fleet file's
// region names, and the manual pages carry the region flags.
func TestRegionsCompletionAndManual(t *testing.T) {
	dir := t.TempDir()
	fleet := writeFile(t, dir, "fleet.toml", "[regions.eu-central]\ncoordinators = [\"https://c1.eu:8001\"]\n[regions.eu-west]\ncoordinators = [\"https://c1.euw:8001\"]\n[regions.us]\ncoordinators = [\"https://c1.us:8001\"]\n", 0o644)
	env := map[string]string{envFleet: fleet}
	tests := []struct {
		toComplete string
		want       []string
	}{
		{"eu", []string{"eu-central", "eu-west"}},
		{"", []string{"eu-central", "eu-west", "us"}},
		{"eu-west,", []string{"eu-west,eu-central", "eu-west,us"}},
		{"mars", nil},
	}
	for _, tt := range tests {
		code, stdout, stderr := krollctlEnv(t, env, "__complete", "status", "--region", tt.toComplete)
		if code != 0 {
			t.Fatalf("__complete: exit %d %s", code, stderr)
		}
		var got []string
		for l := range strings.Lines(stdout) {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("complete --region %q = %v, want %v", tt.toComplete, got, tt.want)
		}
	}
	man := t.TempDir()
	if code, _, stderr := krollctlEnv(t, env, "gen-man", man); code != 0 {
		t.Fatal(stderr)
	}
	for _, page := range []string{"krollctl-status.1", "krollctl-policy-push.1"} {
		data, err := os.ReadFile(filepath.Join(man, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"all-regions", "fleet", "REGION column"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s lacks %q", page, want)
			}
		}
	}
}
