package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestHeartbeatDesiredVersion: an agent that sends the version of the
// documents it holds gets them only when they changed, from any node; the
// slot, limits and retirements always come.
func TestHeartbeatDesiredVersion(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.followers(l)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	l.api.cfg.PolicyKeys = []ed25519.PublicKey{key}
	mustOK(t, l.do(t, http.MethodPut, wire.PathDatacenter+"fra1", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}))
	mustOK(t, l.do(t, http.MethodPost, wire.PathPolicies, tokOperate, signedPolicy(t, 1, 2, "fra1")))

	have := "" // the version the agent holds
	var seen []string
	steps := []struct {
		name string
		node *clusterNode
		// before runs first (an operator's change).
		before func()
		// send overrides the version sent ("" = have).
		send          *string
		wantUnchanged bool
		wantPolicy    int64 // version of the policy sent; 0: none
		wantSlot      bool
		wantRetired   bool
	}{
		{name: "first heartbeat gets everything", node: l, wantPolicy: 2},
		{name: "same node, unchanged", node: l, wantUnchanged: true},
		{name: "node switch: no resend", node: f[0], wantUnchanged: true},
		{name: "other follower: no resend", node: f[1], wantUnchanged: true},
		{name: "no version sent: everything", node: f[0], send: ptr(""), wantPolicy: 2},
		{name: "unknown version: everything", node: f[0], send: ptr(strings.Repeat("0", 64)), wantPolicy: 2},
		{name: "policy push: resend", node: f[1], before: func() {
			mustOK(t, l.do(t, http.MethodPost, wire.PathPolicies, tokOperate, signedPolicy(t, 1, 3, "fra1")))
		}, wantPolicy: 3},
		{name: "after the push, unchanged", node: f[0], wantUnchanged: true},
		{name: "slot is carried when unchanged", node: f[1], before: func() {
			mustOK(t, l.do(t, http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra1"}))
		}, wantUnchanged: true, wantSlot: true},
		{name: "retirement: resend without the policy", node: l, before: func() {
			mustOK(t, l.do(t, http.MethodPost, wire.PathPolicyRetire, tokOperate, wire.PolicyRetireRequest{ID: "copy-fail", Reason: "fixed"}))
		}, wantSlot: true, wantRetired: true},
		{name: "retirements are carried when unchanged", node: f[0], wantUnchanged: true, wantSlot: true, wantRetired: true},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		// A heartbeat without a durable change is answered from the
		// receiving node's own state: a follower shows a change once it
		// has applied it (a commit round after the leader).
		caughtUp(t, st.node, l)
		send := have
		if st.send != nil {
			send = *st.send
		}
		ds := decodeOK[wire.DesiredState](t, st.node.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent,
			wire.Heartbeat{HostID: "h1", Datacenter: "fra1", Phase: wire.PhaseIdle, DesiredVersion: send}))
		if !wire.ValidDesiredVersion(ds.DesiredVersion) || ds.DesiredVersion == "" {
			t.Fatalf("%s: desired_version %q", st.name, ds.DesiredVersion)
		}
		if ds.Unchanged != st.wantUnchanged {
			t.Fatalf("%s: unchanged = %v, want %v (sent %q, got %q)", st.name, ds.Unchanged, st.wantUnchanged, send, ds.DesiredVersion)
		}
		if st.wantUnchanged {
			if ds.DesiredVersion != send || len(ds.Policies) != 0 || ds.Release != nil {
				t.Fatalf("%s: unchanged answer carries version %q (sent %q), %d policies, release %v", st.name, ds.DesiredVersion, send, len(ds.Policies), ds.Release)
			}
		} else {
			if want := wire.DesiredVersion(ds.Release, ds.Policies); ds.DesiredVersion != want {
				t.Fatalf("%s: desired_version %q is not the version of the documents sent (%q)", st.name, ds.DesiredVersion, want)
			}
			switch {
			case st.wantPolicy == 0 && len(ds.Policies) != 0:
				t.Fatalf("%s: policies %+v, want none", st.name, ds.Policies)
			case st.wantPolicy != 0 && (len(ds.Policies) != 1 || ds.Policies[0].Version != st.wantPolicy):
				t.Fatalf("%s: policies %+v, want copy-fail v%d", st.name, ds.Policies, st.wantPolicy)
			}
		}
		if ds.Datacenter == nil || ds.Datacenter.EffectiveLimit != 1 {
			t.Fatalf("%s: limits %+v missing", st.name, ds.Datacenter)
		}
		if (ds.Slot != nil) != st.wantSlot {
			t.Fatalf("%s: slot %+v, want one: %v", st.name, ds.Slot, st.wantSlot)
		}
		if got := len(ds.Retirements) == 1 && ds.Retirements[0].ID == "copy-fail" && ds.Retirements[0].Version == 3; got != st.wantRetired {
			t.Fatalf("%s: retirements %+v, want copy-fail v3: %v", st.name, ds.Retirements, st.wantRetired)
		}
		have = ds.DesiredVersion
		seen = append(seen, have)
	}
	// Three different documents sets were sent: v2, v3, none.
	distinct := map[string]bool{}
	for _, v := range seen {
		distinct[v] = true
	}
	if len(distinct) != 3 {
		t.Fatalf("%d distinct versions over the steps, want 3: %v", len(distinct), seen)
	}
	// The version sent is no part of the replicated host.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(l.do(t, http.MethodGet, wire.PathHost+"h1", tokRead, nil).body, &raw); err != nil || raw["desired_version"] != nil {
		t.Fatalf("host h1 %v: %v", raw, err)
	}
}

// caughtUp waits (bounded) until node has applied everything the leader
// applied.
func caughtUp(t *testing.T, node, leader *clusterNode) {
	t.Helper()
	want := leader.store.FSM().Index()
	waitFor(t, 10*time.Second, fmt.Sprintf("%s applied index %d", node.id, want), func() bool { return node.store.FSM().Index() >= want })
}

// blockedHeartbeat sends a heartbeat whose body stays open until the
// returned function is called: its handler holds an admission place.
func blockedHeartbeat(t *testing.T, e *env, host string) (finish func() response) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+wire.PathHeartbeat, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokAgent)
	got := make(chan response, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			got <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- response{status: resp.StatusCode, header: resp.Header, body: body}
	}()
	return func() response {
		data, _ := json.Marshal(wire.Heartbeat{HostID: host, Datacenter: "fra", Phase: wire.PhaseIdle})
		if _, err := pw.Write(data); err != nil {
			t.Errorf("write blocked heartbeat: %v", err)
		}
		pw.Close()
		return <-got
	}
}

// TestHeartbeatShedding: with every heartbeat place taken by blocked
// handlers, heartbeats are answered 429 overloaded with a jittered
// Retry-After, while slot acquire, renew, release and health reports
// (their own admission) are still served.
func TestHeartbeatShedding(t *testing.T) {
	e := newEnv(t)
	e.api = New(Config{Store: e.store, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer,
		Admission: Admission{HeartbeatConcurrency: 2, HeartbeatQueue: -1}})
	e.srv.Config.Handler = e.api
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h1", "fra")
	e.heartbeat("h2", "fra")

	finish := []func() response{blockedHeartbeat(t, e, "b1"), blockedHeartbeat(t, e, "b2")}
	waitFor(t, 10*time.Second, "both heartbeat places taken", func() bool { return len(e.api.heartbeats.places) == 2 })

	retryAfter := map[int]bool{}
	for i := range 20 {
		r := e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra"})
		checkError(t, r, http.StatusTooManyRequests, wire.KindOverloaded)
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs < 5 || secs > 15 {
			t.Fatalf("shed heartbeat %d: Retry-After %q, want whole seconds in [5, 15]", i, r.header.Get("Retry-After"))
		}
		retryAfter[secs] = true
	}
	if len(retryAfter) < 2 {
		t.Fatalf("20 shed heartbeats all got Retry-After %v: not jittered", retryAfter)
	}

	// The priority class is untouched by the heartbeat load: its calls
	// are served while the heartbeats stay blocked.
	for _, host := range []string{"h1", "h2"} {
		sl := decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: host, Datacenter: "fra"}))
		mustOK(t, e.do(http.MethodPost, wire.PathSlotRenew, tokAgent, wire.SlotRequest{HostID: host, Datacenter: "fra", Token: sl.Token}))
		mustOK(t, e.do(http.MethodPost, wire.PathHealth, tokAgent, wire.HealthReport{HostID: host, Datacenter: "fra", Token: sl.Token, Healthy: true}))
		mustOK(t, e.do(http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: host, Datacenter: "fra", Token: sl.Token}))
	}
	mustOK(t, e.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, wire.FleetLockRequest{ClientParams: wire.FleetLockClientParams{ID: "z1", Group: "fra"}}, wire.FleetLockHeader, "true"))

	metrics := string(e.do(http.MethodGet, "/metrics", "", nil).body)
	if !strings.Contains(metrics, `kroll_api_shed_total{class="heartbeat"} 20`) || strings.Contains(metrics, `kroll_api_shed_total{class="priority"}`) {
		t.Fatalf("shed counter: %s", grepLines(metrics, "kroll_api_shed_total"))
	}

	for i, fin := range finish {
		if r := fin(); r.status != http.StatusOK {
			t.Fatalf("blocked heartbeat %d: %d %s", i, r.status, r.body)
		}
	}
	e.heartbeat("h1", "fra") // places are given back
}

// TestForwardedShedding: a follower passes the leader's shedding of a
// forwarded heartbeat on as 429 overloaded with its own Retry-After.
func TestForwardedShedding(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.followers(l)[0]
	mustOK(t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}))
	ctx := context.Background()
	for range cap(l.api.heartbeats.places) {
		if !l.api.heartbeats.admit(ctx) {
			t.Fatal("could not take a free heartbeat place")
		}
		defer l.api.heartbeats.done()
	}
	// A new host's heartbeat is a durable change: it goes to the leader.
	r := f.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "new1", Datacenter: "fra"})
	checkError(t, r, http.StatusTooManyRequests, wire.KindOverloaded)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// A slot call forwarded to the same leader is served.
	mustOK(t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(2)}))
	checkError(t, f.do(t, http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "new1", Datacenter: "fra"}), http.StatusConflict, wire.KindUnknownHost)
}

// TestAdmission: places, the bounded queue, the wait, and giving back.
func TestAdmission(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		concurrency int
		queue       int
		wait        time.Duration
		// taken places before the probe.
		taken     int
		wantProbe bool
	}{
		{"free place", 2, 0, time.Hour, 1, true},
		{"full, no queue", 2, 0, time.Hour, 2, false},
		{"full, wait runs out", 1, 4, time.Millisecond, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission("test", tc.concurrency, tc.queue, tc.wait)
			for range tc.taken {
				if !a.admit(ctx) {
					t.Fatal("a free place was refused")
				}
			}
			if got := a.admit(ctx); got != tc.wantProbe {
				t.Fatalf("admit = %v, want %v", got, tc.wantProbe)
			}
		})
	}
	t.Run("queued request gets the freed place; a full queue sheds", func(t *testing.T) {
		a := newAdmission("test", 1, 1, time.Hour)
		if !a.admit(ctx) {
			t.Fatal("first admit refused")
		}
		queued := make(chan bool, 1)
		go func() { queued <- a.admit(ctx) }()
		waitFor(t, 10*time.Second, "one waiter", func() bool { return a.waiting.Load() == 1 })
		if a.admit(ctx) {
			t.Fatal("admitted past the queue")
		}
		a.done()
		if !<-queued {
			t.Fatal("the queued request was shed although a place was freed")
		}
		if a.waiting.Load() != 0 || len(a.places) != 1 {
			t.Fatalf("waiting %d, places %d", a.waiting.Load(), len(a.places))
		}
	})
	t.Run("cancelled while queued", func(t *testing.T) {
		a := newAdmission("test", 1, 1, time.Hour)
		a.admit(ctx)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if a.admit(cctx) {
			t.Fatal("admitted with a cancelled context")
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
