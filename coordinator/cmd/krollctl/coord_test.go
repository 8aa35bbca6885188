package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kroll-dev/kroll/pkg/cli"
)

// request is what the fake coordinator recorded of one request.
type request struct {
	Method, Path, Query, Body string
	Auth                      string
}

type reply struct {
	status int
	body   string
}

// fakeCoord serves canned wire responses keyed by "METHOD PATH" and
// records every request.
type fakeCoord struct {
	mu     sync.Mutex
	routes map[string]reply
	reqs   []request
}

func (f *fakeCoord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Header.Get("Authorization")})
	rep, ok := f.routes[r.Method+" "+r.URL.EscapedPath()]
	if !ok {
		rep = reply{404, `{"kind":"not_found","value":"no such route"}`}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

// serve resets the fake to answer route ("METHOD PATH") with rep, and
// more routes with theirs.
func (f *fakeCoord) serve(route string, rep reply, more ...map[string]reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = map[string]reply{route: rep}
	for _, m := range more {
		maps.Copy(f.routes, m)
	}
	f.reqs = nil
}

func (f *fakeCoord) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newFakeCoord(t *testing.T) (*fakeCoord, string) {
	t.Helper()
	f := &fakeCoord{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// krollctlEnv runs the CLI in-process with the given environment.
func krollctlEnv(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Name: "krollctl", Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return environ[k] }}
	code := cli.ExitCode(env, run(context.Background(), env, args))
	if n := strings.Count(stderr.String(), "\n"); n > 1 {
		t.Errorf("krollctl %v: error spans %d lines, want one: %q", args, n, stderr.String())
	}
	return code, stdout.String(), stderr.String()
}

// Canned coordinator answers, deliberately out of order.
const (
	membersJSON = `[
	  {"id":"c2","raft_addr":"10.0.0.2:7001","http_addr":"10.0.0.2:8001","leader":false,"voter":true},
	  {"id":"c1","raft_addr":"10.0.0.1:7001","http_addr":"10.0.0.1:8001","leader":true,"voter":true},
	  {"id":"c3","raft_addr":"10.0.0.3:7001","http_addr":"","leader":false,"voter":false}]`
	fra1JSON = `{"name":"fra1","tier":"edge","slot_limit":2,"min_healthy_pct":90,
	  "window":"Mon-Sun 02:00-05:00 Europe/Berlin","paused":true,"pause_reason":"bgp\tflap\u001b[2J",
	  "failure_budget":3,"failures":1,"hosts":40,"serving":38,"slots_held":2,"effective_limit":2}`
	ams1JSON = `{"name":"ams1","tier":"staging","slot_pct":10,"min_healthy_pct":80,"window":"","paused":false,
	  "failure_budget":2,"failures":0,"hosts":5,"serving":5,"slots_held":0,"effective_limit":1}`
	datacentersJSON = `[` + fra1JSON + `,` + ams1JSON + `]`
	statusJSON      = `{"leader":"c1","members":` + membersJSON + `,"datacenters":` + datacentersJSON + `,
	  "phases":{"fra1":{"idle":36,"draining":1,"rebooting":1,"healthy":2},"ams1":{"idle":5},"zzz9":{"staging":1}},
	  "kernels":{"fra1":{"6.12.117":30,"6.12.116":8,"6.18.3":1,"6.1.170":1},"ams1":{"6.12.117":5},"zzz9":{"6.12.110":1}}}`
	slotH2JSON = `{"datacenter":"fra1","host_id":"h2","token":8,"granted":"2026-05-04T02:10:00Z",
	  "lease_expires":"2026-05-04T02:20:00+02:00","reboot_deadline":"2026-05-04T02:40:00Z","owner":"agent","lost":true}`
	slotsJSON = `[` + slotH2JSON + `,
	  {"datacenter":"fra1","host_id":"h1","token":7,"granted":"2026-05-04T02:05:00Z","lease_expires":"2026-05-04T02:15:00Z",
	   "reboot_deadline":"2026-05-04T02:35:00Z","owner":"agent"},
	  {"datacenter":"ams1","host_id":"a1","token":3,"granted":"2026-05-04T01:00:00Z","lease_expires":"0001-01-01T00:00:00Z",
	   "reboot_deadline":"0001-01-01T00:00:00Z","owner":"fleetlock"}]`
	hostsJSON = `[
	  {"id":"h2","datacenter":"fra1","kernel_line":"6.12","kernel":"6.12.116","phase":"rebooting",
	   "last_heartbeat":"2026-05-04T02:11:00Z","alive":false,"lost":true,"slot":` + slotH2JSON + `},
	  {"id":"h1","datacenter":"fra1","kernel_line":"6.12","kernel":"6.12.117","phase":"healthy",
	   "last_heartbeat":"2026-05-04T02:30:00Z","alive":true,"unhealthy":true},
	  {"id":"a1","datacenter":"ams1","last_heartbeat":"0001-01-01T00:00:00Z","alive":false}]`
	hostJSON = `{"id":"h/1","datacenter":"fra1","kernel_line":"6.12","kernel":"6.12.117","phase":"draining",
	  "last_heartbeat":"2026-05-04T02:30:00Z","alive":true,
	  "policies":[{"id":"copy-fail","version":2,"state":"enforcing"},{"id":"af-alg-audit","version":1,"state":"retired","detail":"fixed in 6.12.117"}],
	  "slot":{"datacenter":"fra1","host_id":"h/1","token":9,"granted":"2026-05-04T02:25:00Z","lease_expires":"2026-05-04T02:35:00Z",
	   "reboot_deadline":"2026-05-04T02:55:00Z","owner":"agent"}}`
	eventsJSON = `[
	  {"id":44,"time":"2026-05-04T02:11:00Z","type":"slot_granted","datacenter":"fra1","host":"h2","message":"token 8"},
	  {"id":43,"time":"2026-05-04T02:10:00Z","type":"dc_paused","datacenter":"fra1","message":"operator: bgp flap"}]`
)

func TestCoordinatorCommands(t *testing.T) {
	f, url := newFakeCoord(t)
	environ := map[string]string{envCoordinator: url}
	ok := func(body string) reply { return reply{200, body} }

	tests := []struct {
		name  string
		args  []string
		route string // "METHOD PATH" the fake answers
		reply reply
		// want is the request the command must send; nil: none at all.
		want     *request
		code     int
		stdout   string // exact, unless inStdout is set
		inStdout string
		stderr   string // exact
	}{
		{
			name: "status", args: []string{"status"},
			route: "GET /api/v1/status", reply: ok(statusJSON),
			want: &request{Method: "GET", Path: "/api/v1/status"},
			stdout: `leader: c1  members: c1 (leader), c2, c3 (non-voter)

DC    TIER     HOSTS  SERVING  SLOTS  PAUSED  KERNELS                                      PHASES
ams1  staging  5      5        0/1    no      6.12.117×5                                   idle=5
fra1  edge     40     38       2/2    yes     6.12.117×30, 6.12.116×8, 6.1.170×1, +1 more  idle=36 draining=1 rebooting=1 healthy=2
zzz9  -        1      -        -      -       6.12.110×1                                   staging=1
`,
		},
		{
			name: "status-no-leader-no-dcs", args: []string{"status"},
			route: "GET /api/v1/status", reply: ok(`{"leader":"","members":null,"datacenters":null,"phases":null,"kernels":null}`),
			want:   &request{Method: "GET", Path: "/api/v1/status"},
			stdout: "leader: none  members: none\n\nno datacenters\n",
		},
		{
			name: "status-json", args: []string{"status", "--output", "json"},
			route: "GET /api/v1/status", reply: ok(`{"leader":"","members":null,"datacenters":[` + fra1JSON + `],"phases":{"fra1":{"idle":1}},"kernels":null}`),
			want: &request{Method: "GET", Path: "/api/v1/status"},
			stdout: `{
  "leader": "",
  "members": [],
  "datacenters": [
    {
      "name": "fra1",
      "tier": "edge",
      "slot_limit": 2,
      "min_healthy_pct": 90,
      "window": "Mon-Sun 02:00-05:00 Europe/Berlin",
      "paused": true,
      "pause_reason": "bgp\tflap\u001b[2J",
      "failure_budget": 3,
      "failures": 1,
      "hosts": 40,
      "serving": 38,
      "slots_held": 2,
      "effective_limit": 2
    }
  ],
  "phases": {
    "fra1": {
      "idle": 1
    }
  },
  "kernels": null
}
`,
		},
		{
			name: "cluster-members", args: []string{"cluster", "members"},
			route: "GET /api/v1/cluster/members", reply: ok(membersJSON),
			want: &request{Method: "GET", Path: "/api/v1/cluster/members"},
			stdout: `ID  RAFT-ADDR      HTTP-ADDR      ROLE      VOTER
c1  10.0.0.1:7001  10.0.0.1:8001  leader    yes
c2  10.0.0.2:7001  10.0.0.2:8001  follower  yes
c3  10.0.0.3:7001  -              follower  no
`,
		},
		{
			name: "cluster-members-json", args: []string{"cluster", "members", "--output=json"},
			route: "GET /api/v1/cluster/members", reply: ok(membersJSON),
			want: &request{Method: "GET", Path: "/api/v1/cluster/members"},
			stdout: `[
  {
    "id": "c1",
    "raft_addr": "10.0.0.1:7001",
    "http_addr": "10.0.0.1:8001",
    "leader": true,
    "voter": true
  },
  {
    "id": "c2",
    "raft_addr": "10.0.0.2:7001",
    "http_addr": "10.0.0.2:8001",
    "leader": false,
    "voter": true
  },
  {
    "id": "c3",
    "raft_addr": "10.0.0.3:7001",
    "http_addr": "",
    "leader": false,
    "voter": false
  }
]
`,
		},
		{
			name: "cluster-join", args: []string{"cluster", "join", "c4", "10.0.0.4:7001", "10.0.0.4:8001"},
			route: "POST /api/v1/cluster/join", reply: ok(membersJSON),
			want:     &request{Method: "POST", Path: "/api/v1/cluster/join", Body: `{"id":"c4","raft_addr":"10.0.0.4:7001","http_addr":"10.0.0.4:8001"}`},
			inStdout: "c4 joined the cluster\n\nID  RAFT-ADDR",
		},
		{
			name: "cluster-join-without-http-addr", args: []string{"cluster", "join", "c4", "[::1]:7004"},
			route: "POST /api/v1/cluster/join", reply: ok(`[]`),
			want:   &request{Method: "POST", Path: "/api/v1/cluster/join", Body: `{"id":"c4","raft_addr":"[::1]:7004"}`},
			stdout: "c4 joined the cluster\n\nID  RAFT-ADDR  HTTP-ADDR  ROLE  VOTER\n",
		},
		{
			name: "cluster-remove-json", args: []string{"cluster", "remove", "c2", "--output", "json"},
			route: "POST /api/v1/cluster/remove", reply: ok(`null`),
			want:   &request{Method: "POST", Path: "/api/v1/cluster/remove", Body: `{"id":"c2"}`},
			stdout: "[]\n",
		},
		{
			name: "dc-list", args: []string{"dc", "list"},
			route: "GET /api/v1/datacenters", reply: ok(datacentersJSON),
			want: &request{Method: "GET", Path: "/api/v1/datacenters"},
			stdout: `DC    TIER     HOSTS  SERVING  SLOTS  LIMIT  MIN-HEALTHY  FAILURES  WINDOW                             TARGET  LINE-RULE  PAUSED
ams1  staging  5      5        0/1    10%    80%          0/2       -                                  -       -          no
fra1  edge     40     38       2/2    2      90%          1/3       Mon-Sun 02:00-05:00 Europe/Berlin  -       -          yes: bgp flap?[2J
`,
		},
		{
			name: "dc-list-empty-json", args: []string{"dc", "list", "--output", "json"},
			route: "GET /api/v1/datacenters", reply: ok(`null`),
			want:   &request{Method: "GET", Path: "/api/v1/datacenters"},
			stdout: "[]\n",
		},
		{
			name: "dc-list-empty", args: []string{"dc", "list"},
			route: "GET /api/v1/datacenters", reply: ok(`[]`),
			want:   &request{Method: "GET", Path: "/api/v1/datacenters"},
			stdout: "no datacenters\n",
		},
		{
			name: "dc-set-slots", args: []string{"dc", "set", "ams1", "--slots", "2", "--create"},
			route: "PUT /api/v1/datacenters/ams1", reply: ok(ams1JSON),
			want: &request{Method: "PUT", Path: "/api/v1/datacenters/ams1", Body: `{"slot_limit":2}`},
			stdout: `DC    TIER     HOSTS  SERVING  SLOTS  LIMIT  MIN-HEALTHY  FAILURES  WINDOW  TARGET  LINE-RULE  PAUSED
ams1  staging  5      5        0/1    10%    80%          0/2       -       -       -          no
`,
		},
		{
			name: "dc-set-target", args: []string{"dc", "set", "ams1", "--target", "6.1.192-kroll.1", "--create"},
			route: "PUT /api/v1/datacenters/ams1", reply: ok(ams1JSON),
			want:   &request{Method: "PUT", Path: "/api/v1/datacenters/ams1", Body: `{"target_release":"6.1.192-kroll.1"}`},
			stdout: "DC    TIER     HOSTS  SERVING  SLOTS  LIMIT  MIN-HEALTHY  FAILURES  WINDOW  TARGET  LINE-RULE  PAUSED\nams1  staging  5      5        0/1    10%    80%          0/2       -       -       -          no\n",
		},
		{
			name: "policy-list", args: []string{"policy", "list"},
			route: "GET /api/v1/policies", reply: ok(`[{"id":"copy-fail","version":3,"cve":"CVE-2026-31431","kind":"socket-family","mode":"enforce","expires":"2099-01-01T00:00:00Z","pushed":"2026-11-26T00:00:00Z","key_id":"ab","coverage":{"fra1":{"missing":2,"enforcing v3":40,"unavailable v3":1},"ams1":{"auditing v2":5}}}]`),
			want:   &request{Method: "GET", Path: "/api/v1/policies"},
			stdout: "POLICY     VERSION  KIND           MODE     CVE             STATUS  DC    COVERAGE\ncopy-fail  3        socket-family  enforce  CVE-2026-31431  active  ams1  auditing v2=5\ncopy-fail  3        socket-family  enforce  CVE-2026-31431  active  fra1  enforcing v3=40 unavailable v3=1 missing=2\n",
		},
		{
			name: "policy-retire", args: []string{"policy", "retire", "copy-fail", "--reason", "fixed"},
			route: "POST /api/v1/policies/retire", reply: ok(`{"id":"copy-fail","version":3,"kind":"socket-family","mode":"enforce","retired":true,"expires":"2099-01-01T00:00:00Z","pushed":"2026-11-26T00:00:00Z","key_id":"ab","coverage":{}}`),
			want:   &request{Method: "POST", Path: "/api/v1/policies/retire", Body: `{"id":"copy-fail","reason":"fixed"}`},
			stdout: "POLICY     VERSION  KIND           MODE     CVE  STATUS   DC  COVERAGE\ncopy-fail  3        socket-family  enforce  -    retired  -   no hosts\n",
		},
		{
			name: "release-list", args: []string{"release", "list"},
			route: "GET /api/v1/releases", reply: ok(`[{"id":"6.1.192-kroll.1","line":"6.1","kernel_version":"6.1.0-56-amd64","upstream_version":"6.1.192","kind":"deb","created":"2026-11-01T00:00:00Z","added":"2026-11-02T00:00:00Z","key_id":"ab12","targeted":["fra1","ams1"]}]`),
			want:   &request{Method: "GET", Path: "/api/v1/releases"},
			stdout: "ID               LINE  KERNEL          UPSTREAM  KIND  STATE  SOURCE  CREATED               KEY   TARGETED   REJECTED\n6.1.192-kroll.1  6.1   6.1.0-56-amd64  6.1.192   deb   -      -       2026-11-01T00:00:00Z  ab12  fra1,ams1  -\n",
		},
		{
			name: "release-list-feed", args: []string{"release", "list"},
			route: "GET /api/v1/releases", reply: ok(`[{"id":"6.12.80-cf1","line":"6.12","kernel_version":"6.12.80-cf1-amd64","kind":"deb","created":"2026-11-01T00:00:00Z","added":"2026-11-02T00:00:00Z","key_id":"ab12","state":"candidate","state_reason":"new build from feed weekly","source":"feed:weekly"}]`),
			want:   &request{Method: "GET", Path: "/api/v1/releases"},
			stdout: "ID           LINE  KERNEL             UPSTREAM  KIND  STATE      SOURCE       CREATED               KEY   TARGETED  REJECTED\n6.12.80-cf1  6.12  6.12.80-cf1-amd64  -         deb   candidate  feed:weekly  2026-11-01T00:00:00Z  ab12  -         -\n",
		},
		{
			name: "release-list-rejected", args: []string{"release", "list"},
			route: "GET /api/v1/releases", reply: ok(`[{"id":"r2","line":"6.1","kernel_version":"6.1.0-57-amd64","kind":"deb","created":"2026-11-01T00:00:00Z","added":"2026-11-02T00:00:00Z","key_id":"ab12","rejected":{"6.1":"rollout r2: wave staging: host h1 in stg1 reported unhealthy"}}]`),
			want:     &request{Method: "GET", Path: "/api/v1/releases"},
			inStdout: "6.1 (rollout r2: wave staging: host h1 in stg1 reported unhealthy)",
		},
		{
			name:  "dc-set-flags-around-name",
			args:  []string{"dc", "set", "--create", "--tier", "staging", "ams1", "--min-healthy-pct", "0", "--window", "Mon-Fri 01:00-03:00 UTC", "--slots-pct=25", "--failure-budget", "0"},
			route: "PUT /api/v1/datacenters/ams1", reply: ok(ams1JSON),
			want: &request{Method: "PUT", Path: "/api/v1/datacenters/ams1",
				Body: `{"tier":"staging","slot_pct":25,"min_healthy_pct":0,"window":"Mon-Fri 01:00-03:00 UTC","failure_budget":0}`},
			inStdout: "ams1  staging",
		},
		{
			name: "dc-set-escapes-name", args: []string{"dc", "set", "a/b c", "--window", "", "--create"},
			route: "PUT /api/v1/datacenters/a%2Fb%20c", reply: ok(`{"name":"a/b c"}`),
			want:     &request{Method: "PUT", Path: "/api/v1/datacenters/a%2Fb%20c", Body: `{"window":""}`},
			inStdout: "a/b c",
		},
		{
			name: "dc-set-json", args: []string{"dc", "set", "ams1", "--tier", "edge", "--output", "json", "--create"},
			route: "PUT /api/v1/datacenters/ams1", reply: ok(`{"name":"ams1","tier":"edge","min_healthy_pct":80,"window":"a<b&c","paused":false,"failure_budget":2,"failures":0,"hosts":5,"serving":5,"slots_held":0,"effective_limit":1}`),
			want:     &request{Method: "PUT", Path: "/api/v1/datacenters/ams1", Body: `{"tier":"edge"}`},
			inStdout: "{\n  \"name\": \"ams1\",\n  \"tier\": \"edge\",\n  \"min_healthy_pct\": 80,\n  \"window\": \"a<b&c\",",
		},
		{
			name: "dc-set-slots-and-pct", args: []string{"dc", "set", "fra1", "--slots", "2", "--slots-pct", "10"},
			code: 2, stderr: "krollctl: --slots and --slots-pct are exclusive: give one\n",
		},
		{
			name: "dc-set-nothing", args: []string{"dc", "set", "fra1"},
			code: 2, stderr: "krollctl: dc set fra1: nothing to change (usage: krollctl " + dcSetUsage + ")\n",
		},
		{
			name: "dc-set-no-name", args: []string{"dc", "set", "--slots", "2"},
			code: 2, stderr: "krollctl: usage: krollctl " + dcSetUsage + "\n",
		},
		{
			name: "dc-set-two-names", args: []string{"dc", "set", "fra1", "ams1", "--slots", "2"},
			code: 2, stderr: "krollctl: usage: krollctl " + dcSetUsage + "\n",
		},
		{
			name: "dc-set-pct-over-100", args: []string{"dc", "set", "fra1", "--slots-pct", "101"},
			code: 2, stderr: "krollctl: --slots-pct 101: want 1 to 100\n",
		},
		{
			name: "rollout-start-force", args: []string{"rollout", "start", "r2", "--force", "--reason", "stg1 disk was bad"},
			route: "POST /api/v1/rollouts", reply: ok(`{"id":"r2","release":"r2","line":"6.1","kernel":"6.1.0-57-amd64","state":"failed","pause_reason":"wave staging: host h1 in stg1 was lost mid-reboot","created":"2026-11-01T00:00:00Z","soak_seconds":3600,"cycle_seconds":60,"budget":2,"waves":[]}`),
			want:     &request{Method: "POST", Path: "/api/v1/rollouts", Body: `{"release":"r2","reason":"stg1 disk was bad","force":true}`},
			inStdout: "failed: wave staging: host h1 in stg1 was lost mid-reboot",
		},
		{
			name: "rollout-start-force-without-reason", args: []string{"rollout", "start", "r2", "--force"},
			code: 2, stderr: "krollctl: --force needs --reason (why the rejected release may roll again)\n",
		},
		{
			name: "dc-set-zero-slots", args: []string{"dc", "set", "fra1", "--slots", "0"},
			code: 2, stderr: "krollctl: --slots 0: want at least 1\n",
		},
		{
			name: "dc-set-negative-budget", args: []string{"dc", "set", "fra1", "--failure-budget=-1"},
			code: 2, stderr: "krollctl: --failure-budget -1: want at least 0\n",
		},
		{
			name: "dc-set-bad-tier", args: []string{"dc", "set", "fra1", "--tier", "core"},
			code: 2, stderr: "krollctl: --tier \"core\": want edge, control or staging\n",
		},
		{
			name: "dc-set-not-a-number", args: []string{"dc", "set", "fra1", "--slots", "two"},
			code: 2, stderr: "krollctl: invalid argument \"two\" for \"--slots\" flag: strconv.ParseInt: parsing \"two\": invalid syntax (see 'krollctl dc set --help')\n",
		},
		{
			name: "dc-pause", args: []string{"dc", "pause", "fra1", "--reason", "bgp maintenance"},
			route: "POST /api/v1/datacenters/fra1/pause", reply: ok(fra1JSON),
			want:     &request{Method: "POST", Path: "/api/v1/datacenters/fra1/pause", Body: `{"reason":"bgp maintenance"}`},
			inStdout: "yes: bgp flap?[2J\n",
		},
		{
			name: "dc-pause-no-reason", args: []string{"dc", "pause", "fra1"},
			route: "POST /api/v1/datacenters/fra1/pause", reply: ok(fra1JSON),
			want:     &request{Method: "POST", Path: "/api/v1/datacenters/fra1/pause", Body: `{}`},
			inStdout: "fra1",
		},
		{
			name: "dc-resume", args: []string{"dc", "resume", "ams1"},
			route: "POST /api/v1/datacenters/ams1/resume", reply: ok(ams1JSON),
			want:     &request{Method: "POST", Path: "/api/v1/datacenters/ams1/resume"},
			inStdout: "ams1  staging",
		},
		{
			name: "dc-resume-no-name", args: []string{"dc", "resume"},
			code: 2, stderr: "krollctl: usage: krollctl dc resume NAME\n",
		},
		{
			name: "slots-list", args: []string{"slots", "list"},
			route: "GET /api/v1/slots", reply: ok(slotsJSON),
			want: &request{Method: "GET", Path: "/api/v1/slots"},
			stdout: `DC    HOST  TOKEN  OWNER      GRANTED               LEASE-EXPIRES         REBOOT-DEADLINE       STATE
ams1  a1    3      fleetlock  2026-05-04T01:00:00Z  -                     -                     held
fra1  h1    7      agent      2026-05-04T02:05:00Z  2026-05-04T02:15:00Z  2026-05-04T02:35:00Z  held
fra1  h2    8      agent      2026-05-04T02:10:00Z  2026-05-04T00:20:00Z  2026-05-04T02:40:00Z  lost
`,
		},
		{
			name: "slots-list-dc-empty", args: []string{"slots", "list", "--dc", "fra 1"},
			route: "GET /api/v1/slots", reply: ok(`[]`),
			want:   &request{Method: "GET", Path: "/api/v1/slots", Query: "dc=fra+1"},
			stdout: "no slots held\n",
		},
		{
			name: "slots-release", args: []string{"slots", "release", "--dc", "fra1", "--host", "h2", "--reason", "host dead, reimaged"},
			route: "POST /api/v1/slots/release", reply: ok(slotH2JSON),
			want: &request{Method: "POST", Path: "/api/v1/slots/release", Body: `{"datacenter":"fra1","host_id":"h2","reason":"host dead, reimaged"}`},
			stdout: `released the slot of host h2 in fra1 (token 8)

DC    HOST  TOKEN  OWNER  GRANTED               LEASE-EXPIRES         REBOOT-DEADLINE       STATE
fra1  h2    8      agent  2026-05-04T02:10:00Z  2026-05-04T00:20:00Z  2026-05-04T02:40:00Z  lost
`,
		},
		{
			name: "slots-release-json", args: []string{"slots", "release", "--output", "json", "--dc", "fra1", "--host", "h2"},
			route: "POST /api/v1/slots/release", reply: ok(slotH2JSON),
			want:     &request{Method: "POST", Path: "/api/v1/slots/release", Body: `{"datacenter":"fra1","host_id":"h2"}`},
			inStdout: "{\n  \"datacenter\": \"fra1\",\n  \"host_id\": \"h2\",\n  \"token\": 8,\n  \"granted\": \"2026-05-04T02:10:00Z\",\n  \"lease_expires\": \"2026-05-04T02:20:00+02:00\",",
		},
		{
			name: "slots-release-no-host", args: []string{"slots", "release", "--dc", "fra1"},
			code: 2, stderr: "krollctl: usage: krollctl " + slotsReleaseUsage + "\n",
		},
		{
			name: "host-list", args: []string{"host", "list", "--dc", "fra1"},
			route: "GET /api/v1/hosts", reply: ok(hostsJSON),
			want: &request{Method: "GET", Path: "/api/v1/hosts", Query: "dc=fra1"},
			stdout: `DC    HOST  LINE  FROM  KERNEL    PHASE      ALIVE  LAST-HEARTBEAT        SLOT  FLAGS
ams1  a1    -     -     -         -          no     -                     -     -
fra1  h1    6.12  -     6.12.117  healthy    yes    2026-05-04T02:30:00Z  -     unhealthy
fra1  h2    6.12  -     6.12.116  rebooting  no     2026-05-04T02:11:00Z  8     lost
`,
		},
		{
			name: "host-list-empty-json", args: []string{"host", "list", "-output", "json"},
			route: "GET /api/v1/hosts", reply: ok(`[]`),
			want:   &request{Method: "GET", Path: "/api/v1/hosts"},
			stdout: "[]\n",
		},
		{
			name: "host-show", args: []string{"host", "show", "h/1"},
			route: "GET /api/v1/hosts/h%2F1", reply: ok(hostJSON),
			want: &request{Method: "GET", Path: "/api/v1/hosts/h%2F1"},
			stdout: `Host:            h/1
Datacenter:      fra1
Kernel line:     6.12
Kernel:          6.12.117
Phase:           draining
Alive:           yes
Last heartbeat:  2026-05-04T02:30:00Z
Lost:            no
Unhealthy:       no
Slot:            token 9, owner agent, granted 2026-05-04T02:25:00Z, lease expires 2026-05-04T02:35:00Z, reboot deadline 2026-05-04T02:55:00Z
Policies:

  ID            VERSION  STATE      DETAIL
  af-alg-audit  1        retired    fixed in 6.12.117
  copy-fail     2        enforcing  -
`,
		},
		{
			name: "host-show-minimal", args: []string{"host", "show", "a1"},
			route: "GET /api/v1/hosts/a1", reply: ok(`{"id":"a1","datacenter":"ams1","last_heartbeat":"0001-01-01T00:00:00Z","alive":false}`),
			want:     &request{Method: "GET", Path: "/api/v1/hosts/a1"},
			inStdout: "Last heartbeat:  -\nLost:            no\nUnhealthy:       no\nSlot:            -\nPolicies:        none\n",
		},
		{
			name: "host-list-lines", args: []string{"host", "list"},
			route: "GET /api/v1/hosts", reply: ok(`[{"id":"e1","datacenter":"fra1","kernel_line":"6.18","line_source":"operator","agent_line":"6.12","operator_line":"6.18","assigned_line":"6.18","kernel":"6.18.4","phase":"idle","last_heartbeat":"0001-01-01T00:00:00Z","alive":true},` +
				`{"id":"e2","datacenter":"fra1","kernel_line":"6.12","line_source":"agent","agent_line":"6.12","pending_line":"6.18","line_wait":"deferred: it holds a reboot slot","kernel":"6.12.85","phase":"draining","last_heartbeat":"0001-01-01T00:00:00Z","alive":true},` +
				`{"id":"e3","datacenter":"fra1","kernel_line":"6.18","line_source":"agent","agent_line":"6.18","pending_line":"6.12","line_wait":"migration refused: never a downgrade","kernel":"6.18.4","phase":"idle","last_heartbeat":"0001-01-01T00:00:00Z","alive":true}]`),
			want: &request{Method: "GET", Path: "/api/v1/hosts"},
			stdout: `DC    HOST  LINE       FROM      KERNEL   PHASE     ALIVE  LAST-HEARTBEAT  SLOT  FLAGS
fra1  e1    6.18       operator  6.18.4   idle      yes    -               -     -
fra1  e2    6.12→6.18  agent     6.12.85  draining  yes    -               -     line-deferred
fra1  e3    6.18→6.12  agent     6.18.4   idle      yes    -               -     line-refused
`,
		},
		{
			name: "host-show-line", args: []string{"host", "show", "e2"},
			route: "GET /api/v1/hosts/e2", reply: ok(`{"id":"e2","datacenter":"fra1","kernel_line":"6.12","line_source":"dc-rule","agent_line":"6.10","assigned_line":"6.10","pending_line":"6.18","line_wait":"deferred: it holds a reboot slot","last_heartbeat":"0001-01-01T00:00:00Z","alive":true}`),
			want:     &request{Method: "GET", Path: "/api/v1/hosts/e2"},
			inStdout: "Kernel line:     6.12 (from dc-rule; agent configured 6.10; agent still follows 6.10)\nPending line:    6.18: deferred: it holds a reboot slot\nKernel:",
		},
		{
			name: "host-set-line", args: []string{"host", "set-line", "e1", "6.18", "--reason", "canary"},
			route: "POST /api/v1/hosts/e1/line", reply: ok(`{"id":"e1","datacenter":"fra1","kernel_line":"6.18","line_source":"operator","last_heartbeat":"0001-01-01T00:00:00Z","alive":true}`),
			want:   &request{Method: "POST", Path: "/api/v1/hosts/e1/line", Body: `{"line":"6.18","reason":"canary"}`},
			stdout: "host e1 follows kernel line 6.18 (operator)\n",
		},
		{
			name: "host-set-line-deferred", args: []string{"host", "set-line", "e2", "6.19", "--force"},
			route: "POST /api/v1/hosts/e2/line", reply: ok(`{"id":"e2","datacenter":"fra1","kernel_line":"6.12","line_source":"agent","pending_line":"6.19","line_wait":"deferred: it holds a reboot slot","last_heartbeat":"0001-01-01T00:00:00Z","alive":true}`),
			want:   &request{Method: "POST", Path: "/api/v1/hosts/e2/line", Body: `{"line":"6.19","force":true}`},
			stdout: "host e2 stays on kernel line 6.12 for now; line 6.19 deferred: it holds a reboot slot\n",
		},
		{
			name: "host-set-line-clear-json", args: []string{"host", "set-line", "e1", "--clear", "-o", "json"},
			route: "POST /api/v1/hosts/e1/line", reply: ok(`{"id":"e1","datacenter":"fra1","kernel_line":"6.12","line_source":"agent","last_heartbeat":"0001-01-01T00:00:00Z","alive":true}`),
			want:     &request{Method: "POST", Path: "/api/v1/hosts/e1/line", Body: `{}`},
			inStdout: "\"line_source\": \"agent\"",
		},
		{
			name: "host-set-line-refused", args: []string{"host", "set-line", "e1", "6.19"},
			route: "POST /api/v1/hosts/e1/line", reply: reply{400, `{"kind":"invalid_request","value":"kernel line 6.19: no registered release is of it"}`},
			want: &request{Method: "POST", Path: "/api/v1/hosts/e1/line", Body: `{"line":"6.19"}`},
			code: 1, stderr: "krollctl: invalid_request: kernel line 6.19: no registered release is of it (HTTP 400)\n",
		},
		{name: "host-set-line-not-a-line", args: []string{"host", "set-line", "e1", "lts"}, code: 2,
			stderr: "krollctl: host set-line: \"lts\" is not a kernel line (MAJOR.MINOR, such as 6.12)\n"},
		{name: "host-set-line-nothing", args: []string{"host", "set-line", "e1"}, code: 2,
			stderr: "krollctl: host set-line: give a LINE or --clear (usage: krollctl " + hostLineUsage + ")\n"},
		{name: "host-set-line-both", args: []string{"host", "set-line", "e1", "6.18", "--clear"}, code: 2,
			stderr: "krollctl: host set-line: give a LINE or --clear, not both (usage: krollctl " + hostLineUsage + ")\n"},
		{
			name: "dc-set-line", args: []string{"dc", "set", "fra1", "--line", "6.18", "--line-pct", "10", "--create"},
			route: "PUT /api/v1/datacenters/fra1", reply: ok(`{"name":"fra1","tier":"edge","slot_limit":2,"min_healthy_pct":90,"window":"","paused":false,"failure_budget":0,"failures":0,"line_rule":{"line":"6.18","pct":10,"hosts":4,"following":3},"hosts":40,"serving":40,"slots_held":0,"effective_limit":2}`),
			want:   &request{Method: "PUT", Path: "/api/v1/datacenters/fra1", Body: `{"line":"6.18","line_pct":10}`},
			stdout: "DC    TIER  HOSTS  SERVING  SLOTS  LIMIT  MIN-HEALTHY  FAILURES  WINDOW  TARGET  LINE-RULE       PAUSED\nfra1  edge  40     40       0/2    2      90%          0/0       -       -       6.18 10% (3/4)  no\n",
		},
		{name: "dc-set-line-no-pct", args: []string{"dc", "set", "fra1", "--line", "6.18"}, code: 2,
			stderr: "krollctl: --line needs --line-pct (the share of hosts, 1-100)\n"},
		{name: "dc-set-line-pct-range", args: []string{"dc", "set", "fra1", "--line", "6.18", "--line-pct", "150"}, code: 2,
			stderr: "krollctl: --line-pct 150: want 0 (no rule) to 100\n"},
		{name: "dc-set-line-bad", args: []string{"dc", "set", "fra1", "--line", "6.18.1", "--line-pct", "5"}, code: 2,
			stderr: "krollctl: --line \"6.18.1\": not a kernel line (MAJOR.MINOR, such as 6.18)\n"},
		{
			name: "host-show-json", args: []string{"host", "show", "h/1", "--output", "json"},
			route: "GET /api/v1/hosts/h%2F1", reply: ok(hostJSON),
			want:     &request{Method: "GET", Path: "/api/v1/hosts/h%2F1"},
			inStdout: "  \"policies\": [\n    {\n      \"id\": \"af-alg-audit\",",
		},
		{
			name: "host-show-no-id", args: []string{"host", "show"},
			code: 2, stderr: "krollctl: usage: krollctl host show ID\n",
		},
		{
			name: "events", args: []string{"events", "--since", "42", "--limit", "2"},
			route: "GET /api/v1/events", reply: ok(eventsJSON),
			want: &request{Method: "GET", Path: "/api/v1/events", Query: "limit=2&since=42"},
			stdout: `ID  TIME                  TYPE          DC    HOST  MESSAGE
43  2026-05-04T02:10:00Z  dc_paused     fra1  -     operator: bgp flap
44  2026-05-04T02:11:00Z  slot_granted  fra1  h2    token 8
`,
		},
		{
			name: "events-empty", args: []string{"events"},
			route: "GET /api/v1/events", reply: ok(`[]`),
			want:   &request{Method: "GET", Path: "/api/v1/events"},
			stdout: "no events\n",
		},
		{
			name: "events-negative-limit", args: []string{"events", "--limit", "-1"},
			code: 2, stderr: "krollctl: --limit -1: want a positive number\n",
		},
		{
			name: "events-bad-since", args: []string{"events", "--since", "-1"},
			code: 2, stderr: "krollctl: invalid argument \"-1\" for \"--since\" flag: strconv.ParseUint: parsing \"-1\": invalid syntax (see 'krollctl events --help')\n",
		},
		{
			name: "api-error", args: []string{"dc", "pause", "fra1"},
			route: "POST /api/v1/datacenters/fra1/pause", reply: reply{403, `{"kind":"forbidden","value":"token lacks role operate"}`},
			want: &request{Method: "POST", Path: "/api/v1/datacenters/fra1/pause", Body: `{}`},
			code: 1, stderr: "krollctl: forbidden: token lacks role operate (HTTP 403)\n",
		},
		{
			name: "api-error-not-found", args: []string{"host", "show", "nope"},
			route: "GET /api/v1/hosts/nope", reply: reply{404, `{"kind":"not_found","value":"host nope"}`},
			want: &request{Method: "GET", Path: "/api/v1/hosts/nope"},
			code: 1, stderr: "krollctl: not_found: host nope (HTTP 404)\n",
		},
		{
			name: "api-error-escapes", args: []string{"status"},
			route: "GET /api/v1/status", reply: reply{409, `{"kind":"conflict","value":"x\u001b]0;pwned\u0007\ny"}`},
			want: &request{Method: "GET", Path: "/api/v1/status"},
			code: 1, stderr: "krollctl: conflict: x?]0;pwned? y (HTTP 409)\n",
		},
		{
			name: "api-error-not-json", args: []string{"status"},
			route: "GET /api/v1/status", reply: reply{502, "<html>bad\ngateway</html>"},
			want: &request{Method: "GET", Path: "/api/v1/status"},
			code: 1, stderr: "krollctl: internal: <html>bad gateway</html> (HTTP 502)\n",
		},
		{
			name: "bad-output", args: []string{"dc", "list", "--output", "yaml"},
			code: 2, stderr: "krollctl: --output \"yaml\": want table or json\n",
		},
		{
			name: "extra-argument", args: []string{"status", "now"},
			code: 2, stderr: "krollctl: usage: krollctl status\n",
		},
		{
			name: "group-without-command", args: []string{"slots"},
			code: 2, inStdout: "krollctl slots [command]", stderr: "krollctl: slots: no command given (want list, release)\n",
		},
		{
			name: "group-unknown-command", args: []string{"cluster", "leave"},
			code: 2, stderr: "krollctl: cluster: unknown command \"leave\" (want join, members, remove)\n",
		},
		{
			name: "group-help", args: []string{"dc", "help"},
			inStdout: "  pause       stop new reboot slots in a datacenter\n",
		},
		{
			name: "command-help", args: []string{"dc", "set", "--help"},
			inStdout: "krollctl " + dcSetUsage,
		},
		{
			name: "join-bad-raft-addr", args: []string{"cluster", "join", "c4", "10.0.0.4"},
			code: 2, stderr: "krollctl: RAFT_ADDR \"10.0.0.4\": want HOST:PORT\n",
		},
		{
			name: "join-bad-http-addr", args: []string{"cluster", "join", "c4", "10.0.0.4:7001", "http://x"},
			code: 2, stderr: "krollctl: HTTP_ADDR \"http://x\": want HOST:PORT\n",
		},
		{
			name: "join-empty-host", args: []string{"cluster", "join", "c4", ":7001"},
			code: 2, stderr: "krollctl: RAFT_ADDR \":7001\": want HOST:PORT\n",
		},
		{
			name: "join-missing-addr", args: []string{"cluster", "join", "c4"},
			code: 2, stderr: "krollctl: usage: krollctl " + clusterJoinUsage + "\n",
		},
		{
			name: "remove-no-id", args: []string{"cluster", "remove"},
			code: 2, stderr: "krollctl: usage: krollctl cluster remove ID\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve(tt.route, tt.reply)
			code, stdout, stderr := krollctlEnv(t, environ, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if tt.inStdout != "" {
				if !strings.Contains(stdout, tt.inStdout) {
					t.Errorf("stdout:\n%s\nwant it to contain:\n%s", stdout, tt.inStdout)
				}
			} else if stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
			}
			if stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
			reqs := f.requests()
			switch {
			case tt.want == nil && len(reqs) != 0:
				t.Errorf("sent %+v, want no request", reqs)
			case tt.want != nil && (len(reqs) != 1 || reqs[0] != *tt.want):
				t.Errorf("sent %+v, want exactly %+v", reqs, *tt.want)
			}
			if tt.code == 0 && strings.Contains(strings.Join(tt.args, " "), "json") && !json.Valid([]byte(stdout)) {
				t.Errorf("--output json printed invalid JSON: %q", stdout)
			}
		})
	}
}

func TestMembersJSONShape(t *testing.T) {
	f, url := newFakeCoord(t)
	f.serve("GET /api/v1/cluster/members", reply{200, membersJSON})
	code, stdout, stderr := krollctlEnv(t, nil, "cluster", "members", "--output", "json", "--coordinator", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		keys := slices.Sorted(maps.Keys(m))
		if !slices.Equal(keys, []string{"http_addr", "id", "leader", "raft_addr", "voter"}) {
			t.Errorf("member keys %v", keys)
		}
		for _, k := range []string{"leader", "voter"} {
			if _, ok := m[k].(bool); !ok {
				t.Errorf("%s = %#v, want a bool", k, m[k])
			}
		}
	}
}

func TestConnectionSettings(t *testing.T) {
	f, url := newFakeCoord(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		environ  map[string]string
		args     []string
		code     int
		wantAuth string // Authorization header of the one request; "" with code 0: none sent
		stderr   string // substring
	}{
		{"env-url-no-token", map[string]string{envCoordinator: url}, nil, 0, "", ""},
		{"flag-url-beats-env", map[string]string{envCoordinator: refused}, []string{"--coordinator", url}, 0, "", ""},
		{"env-token", map[string]string{envCoordinator: url, envToken: "envtok"}, nil, 0, "Bearer envtok", ""},
		{"flag-token-beats-env", map[string]string{envCoordinator: url, envToken: "envtok"}, []string{"--token", "flagtok"}, 0, "Bearer flagtok", ""},
		{"token-in-clear-off-loopback", map[string]string{envToken: "t"}, []string{"--coordinator", "http://10.1.2.3:8001"}, 2, "",
			`krollctl: coordinator URL "http://10.1.2.3:8001": refusing to send a token in clear text to non-loopback host "10.1.2.3": use https://`},
		{"tls-ca-missing", map[string]string{envCoordinator: url}, []string{"--tls-ca", "/nonexistent/ca.pem"}, 1, "", "no such file"},
		{"tls-cert-without-key", map[string]string{envCoordinator: url}, []string{"--tls-cert", "c.pem"}, 2, "", "--tls-cert and --tls-key go together"},
		{"connection-refused", map[string]string{envCoordinator: refused}, nil, 1, "",
			"krollctl: coordinator " + refused + ": connection refused (is kroll-coordinator running there? see --coordinator, KROLL_COORDINATOR)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.serve("GET /api/v1/cluster/members", reply{200, `[]`})
			args := append([]string{"cluster", "members"}, tt.args...)
			code, _, stderr := krollctlEnv(t, tt.environ, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.stderr)
			}
			reqs := f.requests()
			if tt.code != 0 {
				if len(reqs) != 0 {
					t.Errorf("sent %+v, want nothing", reqs)
				}
				return
			}
			if len(reqs) != 1 || reqs[0].Auth != tt.wantAuth {
				t.Errorf("sent %+v, want one request with Authorization %q", reqs, tt.wantAuth)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantX   string
	}{
		{[]string{"a", "-x", "1", "b"}, []string{"a", "b"}, "1"},
		{[]string{"-x", "1", "a"}, []string{"a"}, "1"},
		{[]string{"a", "--", "-x", "b"}, []string{"a", "-x", "b"}, ""},
		{[]string{"-", "-x=2"}, []string{"-"}, "2"},
		{nil, nil, ""},
	}
	for _, tt := range tests {
		fs := cli.NewFlagSet(cli.Env{Stdout: io.Discard}, "t", "")
		x := fs.String("x", "", "")
		pos, err := cli.ParseInterspersed(fs, io.Discard, tt.args)
		if err != nil || !slices.Equal(pos, tt.wantPos) || *x != tt.wantX {
			t.Errorf("ParseInterspersed(%q) = %q, x=%q, %v; want %q, x=%q", tt.args, pos, *x, err, tt.wantPos, tt.wantX)
		}
	}
}

func TestDefaultCoordinator(t *testing.T) {
	tests := []struct {
		name    string
		environ map[string]string
		flag    string
		want    string
	}{
		{"default", nil, "", defaultCoordinator},
		{"env", map[string]string{envCoordinator: "https://c.example:8001/"}, "", "https://c.example:8001"},
		{"flag", map[string]string{envCoordinator: "https://c.example"}, "http://[::1]:9", "http://[::1]:9"},
	}
	for _, tt := range tests {
		env := cli.Env{Stdout: io.Discard, Getenv: func(k string) string { return tt.environ[k] }}
		c, err := (&globals{coordinator: tt.flag, output: "table"}).connect(env)
		if err != nil || c.client.BaseURL() != tt.want {
			t.Errorf("%s: %v, %v; want base URL %s", tt.name, c, err, tt.want)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	f := &fakeCoord{}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	f.serve("GET /api/v1/cluster/members", reply{200, membersJSON})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{envToken: "tok"}

	code, stdout, stderr := krollctlEnv(t, environ, "cluster", "members", "--coordinator", srv.URL, "--tls-ca", ca)
	if code != 0 || !strings.Contains(stdout, "c1  10.0.0.1:7001") {
		t.Fatalf("over TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if reqs := f.requests(); len(reqs) != 1 || reqs[0].Auth != "Bearer tok" {
		t.Fatalf("sent %+v", reqs)
	}

	code, _, stderr = krollctlEnv(t, environ, "cluster", "members", "--coordinator", srv.URL)
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("without --tls-ca: exit %d, stderr %q; want an untrusted certificate", code, stderr)
	}
	code, _, stderr = krollctlEnv(t, nil, "cluster", "members", "--coordinator", "http://127.0.0.1:8001", "--tls-ca", ca)
	if code != 2 || !strings.Contains(stderr, "not https://") {
		t.Fatalf("--tls-ca with http://: exit %d, stderr %q; want a usage error", code, stderr)
	}
}
