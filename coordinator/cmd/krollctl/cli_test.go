package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// refusedURL returns a loopback URL nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// TestGlobalFlagPlacement: the global flags work before the command,
// between its words and after it, in every spelling.
func TestGlobalFlagPlacement(t *testing.T) {
	f, url := newFakeCoord(t)
	tests := []struct {
		name string
		args []string
		json bool
	}{
		{"before", []string{"--coordinator", url, "cluster", "members"}, false},
		{"before-equals", []string{"--coordinator=" + url, "-o", "json", "cluster", "members"}, true},
		{"between", []string{"cluster", "--coordinator", url, "members"}, false},
		{"after", []string{"cluster", "members", "--coordinator", url, "--output", "json"}, true},
		{"short-output-before", []string{"-ojson", "--coordinator", url, "cluster", "members"}, true},
		{"go-style-single-dash", []string{"cluster", "members", "-coordinator", url, "-output=json"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/cluster/members", reply{200, membersJSON})
			code, stdout, stderr := krollctlEnv(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := json.Valid([]byte(stdout)); got != tt.json {
				t.Errorf("JSON output %v, want %v:\n%s", got, tt.json, stdout)
			}
			if !tt.json && !strings.Contains(stdout, "c1  10.0.0.1:7001") {
				t.Errorf("table output:\n%s", stdout)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// TestEnvironment: every connection setting has an environment variable
// and the flag beats it.
func TestEnvironment(t *testing.T) {
	f, url := newFakeCoord(t)
	tests := []struct {
		name     string
		environ  map[string]string
		args     []string
		code     int
		wantAuth string
		stderr   string
	}{
		{"coordinator-and-token", map[string]string{envCoordinator: url, envToken: "tok-env"}, nil, 0, "Bearer tok-env", ""},
		{"token-flag-wins", map[string]string{envCoordinator: url, envToken: "tok-env"}, []string{"--token", "tok-flag"}, 0, "Bearer tok-flag", ""},
		{"tls-ca-env", map[string]string{envCoordinator: url, envTLSCA: "/nonexistent/ca.pem"}, nil, 1, "", "/nonexistent/ca.pem"},
		{"tls-cert-env-without-key", map[string]string{envCoordinator: url, envTLSCert: "c.pem"}, nil, 2, "", "--tls-cert and --tls-key go together"},
		{"tls-key-env-without-cert", map[string]string{envCoordinator: url, envTLSKey: "k.pem"}, nil, 2, "", "--tls-cert and --tls-key go together"},
		{"tls-cert-and-key-env", map[string]string{envCoordinator: url, envTLSCert: "/nonexistent/c.pem", envTLSKey: "/nonexistent/k.pem"}, nil, 1, "", "TLS client certificate"},
		{"empty-url-in-list", map[string]string{envCoordinator: url + ",,"}, nil, 2, "", "an empty entry"},
		{"token-off-loopback-in-list", map[string]string{envCoordinator: url + ",http://10.9.9.9:8001", envToken: "t"}, nil, 2, "", "refusing to send a token in clear text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/status", reply{200, `{"leader":"c1"}`})
			code, _, stderr := krollctlEnv(t, tt.environ, append([]string{"status"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr, tt.code, tt.stderr)
			}
			reqs := f.requests()
			switch {
			case tt.code != 0 && len(reqs) != 0:
				t.Errorf("sent %+v, want nothing", reqs)
			case tt.code == 0 && (len(reqs) != 1 || reqs[0].Auth != tt.wantAuth):
				t.Errorf("sent %+v, want one request with Authorization %q", reqs, tt.wantAuth)
			}
		})
	}
}

// TestCoordinatorFallback: KROLL_COORDINATOR lists several nodes, tried
// in turn on connection errors and 503; an answer is final.
func TestCoordinatorFallback(t *testing.T) {
	down := refusedURL(t)
	noLeader, noLeaderURL := newFakeCoord(t)
	good, goodURL := newFakeCoord(t)
	forbidden, forbiddenURL := newFakeCoord(t)
	tests := []struct {
		name   string
		urls   []string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
		// hits: requests each fake must have seen.
		noLeader, good, forbidden int
	}{
		{"first-down", []string{down, goodURL}, []string{"status"}, 0, "leader: c1", "", 0, 1, 0},
		{"first-no-leader", []string{noLeaderURL, goodURL}, []string{"status"}, 0, "leader: c1", "", 1, 1, 0},
		{"down-then-no-leader-then-good", []string{down, noLeaderURL, goodURL}, []string{"status"}, 0, "leader: c1", "", 1, 1, 0},
		{"write-moves-on-from-refused", []string{down, goodURL}, []string{"dc", "pause", "fra1"}, 0, "fra1", "", 0, 1, 0},
		{"answer-is-final", []string{forbiddenURL, goodURL}, []string{"status"}, 1, "", "forbidden: no (HTTP 403)", 0, 0, 1},
		{"all-down", []string{down, down}, []string{"status"}, 1, "", "coordinators " + down + ", " + down + ": connection refused", 0, 0, 0},
		{"all-unavailable", []string{noLeaderURL, down}, []string{"status"}, 1, "", "no_leader: election", 1, 0, 0},
		{"flag-list", nil, []string{"status", "--coordinator", down + "," + goodURL}, 0, "leader: c1", "", 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeader.serve("GET /api/v1/status", reply{503, `{"kind":"no_leader","value":"election"}`})
			good.serve("GET /api/v1/status", reply{200, `{"leader":"c1"}`}, map[string]reply{"POST /api/v1/datacenters/fra1/pause": {200, fra1JSON}})
			forbidden.serve("GET /api/v1/status", reply{403, `{"kind":"forbidden","value":"no"}`})
			environ := map[string]string{}
			if tt.urls != nil {
				environ[envCoordinator] = strings.Join(tt.urls, ",")
			}
			code, stdout, stderr := krollctlEnv(t, environ, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
			for _, h := range []struct {
				f    *fakeCoord
				want int
			}{{noLeader, tt.noLeader}, {good, tt.good}, {forbidden, tt.forbidden}} {
				if n := len(h.f.requests()); n != h.want {
					t.Errorf("a node got %d requests, want %d", n, h.want)
				}
			}
		})
	}
}

// TestOutputJSON: -o json prints valid JSON on every command that prints.
func TestOutputJSON(t *testing.T) {
	f, url := newFakeCoord(t)
	routes := map[string]reply{
		"GET /api/v1/status":             {200, statusJSON},
		"GET /api/v1/cluster/members":    {200, membersJSON},
		"GET /api/v1/datacenters":        {200, datacentersJSON},
		"GET /api/v1/datacenters/fra1":   {200, fra1JSON},
		"PUT /api/v1/datacenters/fra1":   {200, fra1JSON},
		"GET /api/v1/slots":              {200, slotsJSON},
		"GET /api/v1/hosts":              {200, hostsJSON},
		"GET /api/v1/hosts/h1":           {200, hostJSON},
		"GET /api/v1/events":             {200, eventsJSON},
		"GET /api/v1/releases":           {200, `[]`},
		"GET /api/v1/policies":           {200, `[]`},
		"GET /api/v1/rollouts":           {200, `[]`},
		"GET /api/v1/rollouts/r1":        {200, rolloutJSON("r1", "done", "", time.Time{})},
		"POST /api/v1/rollouts/r1/pause": {200, rolloutJSON("r1", "paused", "by hand", time.Time{})},
	}
	for _, args := range [][]string{
		{"status"}, {"cluster", "members"}, {"dc", "list"}, {"dc", "set", "fra1", "--slots", "2"}, {"slots", "list"},
		{"host", "list"}, {"host", "show", "h1"}, {"events"}, {"release", "list"}, {"policy", "list"},
		{"rollout", "status"}, {"rollout", "status", "r1"}, {"rollout", "watch", "r1"}, {"rollout", "pause", "r1"},
		{"simulate", "--dcs", "10", "--hosts", "300", "--expedite"}, {"version"},
	} {
		t.Run(strings.Join(args, "-"), func(t *testing.T) {
			f.serve("GET /", reply{404, `{}`}, routes)
			code, stdout, stderr := krollctlEnv(t, map[string]string{envCoordinator: url}, append([]string{"-o", "json"}, args...)...)
			if code != 0 || !json.Valid([]byte(stdout)) {
				t.Fatalf("exit %d, stderr %q, stdout not JSON:\n%s", code, stderr, stdout)
			}
		})
	}
}

// rolloutJSON is a canned rollout: a canary wave of 4 hosts in fra1
// (completed at completed unless zero) and an edge wave.
func rolloutJSON(id, state, reason string, completed time.Time) string {
	r := wire.Rollout{ID: id, Release: id, Line: "6.1", Kernel: "6.1.0-56-amd64", State: state, PauseReason: reason,
		Created: time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), SoakSeconds: 3600, CycleSeconds: 7200, Budget: 2,
		Waves: []wire.RolloutWave{
			{Name: "canary", Gates: true, Started: time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), Completed: completed,
				Progress: []wire.RolloutDCCount{{Datacenter: "fra1", Hosts: 4, Healthy: 4}}},
			{Name: "edge-100%", Gates: true, Progress: []wire.RolloutDCCount{{Datacenter: "ams1", Hosts: 3, Pending: 3}}},
		}}
	if state == "failed" || state == "paused" && strings.Contains(reason, "budget") {
		r.Waves[1].Started = r.Created.Add(2 * time.Hour)
		r.Waves[1].Progress[0] = wire.RolloutDCCount{Datacenter: "ams1", Hosts: 3, Healthy: 1, Failed: 2}
	}
	data, _ := json.Marshal(r)
	return string(data)
}

// TestRolloutWatchExit: watch ends 0 on done, 1 on aborted, failed and
// paused on failures, and waits out an operator's pause.
func TestRolloutWatchExit(t *testing.T) {
	f, url := newFakeCoord(t)
	tests := []struct {
		name, state, reason string
		code                int
		stderr              string
	}{
		{"done", "done", "", 0, ""},
		{"aborted", "aborted", "aborted by an operator", 1, "krollctl: rollout r1 aborted: aborted by an operator\n"},
		{"failed", "failed", "wave canary: host h1 in fra1 reported unhealthy", 1, "krollctl: rollout r1 failed: wave canary: host h1 in fra1 reported unhealthy\n"},
		{"paused-on-failures", "paused", "wave edge-100%: 3 unhealthy reports counted, over the wave's failure budget of 2", 1,
			"krollctl: rollout r1 paused on failures: wave edge-100%: 3 unhealthy reports counted, over the wave's failure budget of 2 (after a look: krollctl rollout resume r1)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/rollouts/r1", reply{200, rolloutJSON("r1", tt.state, tt.reason, time.Time{})})
			code, stdout, stderr := krollctlEnv(t, map[string]string{envCoordinator: url}, "rollout", "watch", "r1", "--interval", "100ms")
			if code != tt.code || stderr != tt.stderr || !strings.Contains(stdout, "rollout r1:") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q", code, stdout, stderr, tt.code, tt.stderr)
			}
		})
	}

	// An operator's pause is waited out: watch ends when the rollout does.
	f.serve("GET /api/v1/rollouts/r1", reply{200, rolloutJSON("r1", "paused", "looking at graphs", time.Time{})})
	go func() {
		for deadline := time.Now().Add(10 * time.Second); len(f.requests()) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		}
		f.mu.Lock()
		f.routes["GET /api/v1/rollouts/r1"] = reply{200, rolloutJSON("r1", "aborted", "gave up", time.Time{})}
		f.mu.Unlock()
	}()
	code, stdout, stderr := krollctlEnv(t, map[string]string{envCoordinator: url}, "rollout", "watch", "r1", "--interval", "100ms")
	if code != 1 || !strings.Contains(stdout, "paused: looking at graphs") || !strings.Contains(stderr, "aborted: gave up") {
		t.Fatalf("operator pause: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestRolloutWatchInterrupted: a watch interrupted while the rollout
// runs exits 1 and says the rollout continues.
func TestRolloutWatchInterrupted(t *testing.T) {
	f, url := newFakeCoord(t)
	f.serve("GET /api/v1/rollouts/r1", reply{200, rolloutJSON("r1", "running", "", time.Time{})})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(10 * time.Second); len(f.requests()) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		}
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Name: "krollctl", Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return map[string]string{envCoordinator: url}[k] }}
	code := cli.ExitCode(env, run(ctx, env, []string{"rollout", "watch", "r1", "--interval", "100ms"}))
	if want := "krollctl: rollout r1: watch interrupted; the rollout continues\n"; code != 1 || stderr.String() != want {
		t.Fatalf("exit %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}

// TestWatchView: the soak countdown, why later waves wait, pacing, the
// ETA, and at 330 datacenters a readable view.
func TestWatchView(t *testing.T) {
	t0 := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	now := t0.Add(90 * time.Minute)
	var r wire.Rollout
	if err := json.Unmarshal([]byte(rolloutJSON("r1", "running", "", t0.Add(time.Hour))), &r); err != nil {
		t.Fatal(err)
	}
	v := newWatchView(&r, nil, now, progressSample{at: now, healthy: 4})
	var b strings.Builder
	v.render(&b)
	for _, want := range []string{
		"canary     soaking", "soak: 30m0s left (until 2026-05-04T02:00:00Z)",
		"edge-100%  waiting", "waits: after wave canary passes its soak (30m0s left)",
		"ETA 2026-05-04T02:00:00Z",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("view lacks %q:\n%s", want, b.String())
		}
	}

	// 330 datacenters in one running wave: a summary line, the busiest
	// datacenters in detail, the rest counted; waits from the settings.
	big := wire.Rollout{ID: "big", State: "running", SoakSeconds: 60, CycleSeconds: 3600, Waves: []wire.RolloutWave{
		{Name: "edge-100%", Gates: true, Started: t0}}}
	dcs := map[string]wire.Datacenter{}
	for i := range 330 {
		name := fmt.Sprintf("dc%03d", i)
		p := wire.RolloutDCCount{Datacenter: name, Hosts: 300, Healthy: 100, Pending: 200}
		if i == 7 {
			p.Draining, p.Pending = 2, 198
		}
		big.Waves[0].Progress = append(big.Waves[0].Progress, p)
		dcs[name] = wire.Datacenter{Name: name, EffectiveLimit: 2, Window: "always"}
	}
	dcs["dc007"] = wire.Datacenter{Name: "dc007", Paused: true, PauseReason: "bgp", EffectiveLimit: 2}
	v = newWatchView(&big, dcs, now, progressSample{at: now.Add(-time.Hour), healthy: 32000})
	b.Reset()
	v.render(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) > maxDCDetail+3 {
		t.Errorf("%d lines for 330 datacenters, want at most %d:\n%s", len(lines), maxDCDetail+3, b.String())
	}
	for _, want := range []string{"33000/99000 healthy", "in 330 DCs", "dc007", "waits: paused: bgp", "… 310 more datacenters in motion", "ETA 2026-05-06T19:30:00Z (in 2d18h; 66000 hosts left at 1000.0/h)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("view lacks %q:\n%s", want, b.String())
		}
	}
	if !strings.Contains(lines[1], "dc007") && !strings.Contains(lines[2], "dc007") {
		t.Errorf("the busiest datacenter is not first:\n%s", b.String())
	}
}

// TestCommandTree: completion scripts, unknown commands, help and the
// hidden man page generator.
func TestCommandTree(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args             []string
		code             int
		inStdout, stderr string
	}{
		{[]string{"completion", "bash"}, 0, "bash completion V2 for krollctl", ""},
		{[]string{"completion", "zsh"}, 0, "#compdef krollctl", ""},
		{[]string{"completion", "fish"}, 0, "complete -c krollctl", ""},
		{[]string{"frobnicate"}, 2, "", "krollctl: unknown command \"frobnicate\" for \"krollctl\" (see 'krollctl --help')\n"},
		{nil, 2, "krollctl [command]", "krollctl: no command given\n"},
		{[]string{"help", "rollout", "watch"}, 0, "Exit status: 0 when the rollout is done", ""},
		{[]string{"--version"}, 0, "krollctl dev", ""},
		{[]string{"gen-man", dir}, 0, "manual pages to " + dir, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "-"), func(t *testing.T) {
			code, stdout, stderr := krollctl(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.inStdout) || stderr != tt.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tt.code, tt.inStdout, tt.stderr)
			}
		})
	}
	for _, page := range []string{"krollctl.1", "krollctl-dc-set.1", "krollctl-rollout-watch.1"} {
		data, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(data), ".TH ") {
			t.Errorf("%s: %v %q", page, err, data)
		}
	}
}

// TestLegacyCommand: a command written against prepare (raw arguments)
// wired in with legacyCommand sees the global flags wherever they are.
func TestLegacyCommand(t *testing.T) {
	f, url := newFakeCoord(t)
	f.serve("GET /api/v1/status", reply{200, `{"leader":"c1"}`})
	for _, args := range [][]string{
		{"--coordinator", url, "legacy", "x"},
		{"legacy", "x", "--coordinator", url},
		{"legacy", "--coordinator=" + url, "x"},
	} {
		var stdout, stderr strings.Builder
		env := cli.Env{Name: "krollctl", Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		root := newRoot(env)
		a := &app{env: env}
		root.AddCommand(a.legacyCommand("legacy ARG", "a legacy command", func(ctx context.Context, env cli.Env, args []string) error {
			c, pos, err := prepare(env, "legacy ARG", args, 1, nil, nil)
			if err != nil {
				return err
			}
			st, err := c.client.Status(ctx)
			if err != nil {
				return c.fail(err)
			}
			fmt.Fprintf(env.Stdout, "%s %s\n", pos[0], st.Leader)
			return nil
		}))
		if code := cli.ExitCode(env, cli.Execute(context.Background(), env, root, args)); code != 0 || stdout.String() != "x c1\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
}
