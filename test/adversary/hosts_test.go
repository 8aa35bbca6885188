package adversary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Issue 12, items 4 and 6: hosts that register where they should not,
// never leave, or lie — phantom FleetLock ids, a huge gossip view, health
// reports without a slot — against real coordinator quorums over HTTP.

// hostsCluster starts a 3-node quorum with timing tm and returns an
// operator client of one node and an agent-token client of another (a
// follower when possible: writes are forwarded to the leader).
func hostsCluster(t *testing.T, tm fsm.Timing) (admin, agent *client.Client) {
	t.Helper()
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{Timing: tm})
	leader, follower := nodes[0], nodes[1]
	for _, n := range nodes {
		if n.Store.IsLeader() {
			leader = n
		}
	}
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	// The follower forwards writes once it knows the leader's address.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if id, addr := follower.Store.Leader(); id != "" && addr != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower does not learn the leader's HTTP address")
		}
	}
	agent, err := client.New(follower.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	return leader.Client, agent
}

// hostsTiming is testcoord's default timing with the host settings given.
func hostsTiming(f func(*fsm.Timing)) fsm.Timing {
	tm := fsm.Timing{Lease: 2 * time.Minute, RebootDeadline: 10 * time.Minute, AliveWithin: time.Minute}
	f(&tm)
	return tm
}

func hostsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hostsSetDC(t *testing.T, ctx context.Context, admin *client.Client, name string, u wire.DatacenterUpdate) {
	t.Helper()
	if _, err := admin.SetDatacenter(ctx, name, u); err != nil {
		t.Fatal(err)
	}
}

func hostsBeat(ctx context.Context, agent *client.Client, dc, host string, view *wire.DCView) error {
	_, err := agent.Heartbeat(ctx, wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle, Kernel: "6.12.85", View: view})
	return err
}

func hostsMustBeat(t *testing.T, ctx context.Context, agent *client.Client, dc string, hosts ...string) {
	t.Helper()
	for _, h := range hosts {
		if err := hostsBeat(ctx, agent, dc, h, nil); err != nil {
			t.Fatalf("heartbeat %s: %v", h, err)
		}
	}
}

func hostsIDs(t *testing.T, ctx context.Context, admin *client.Client, dc string) []string {
	t.Helper()
	hosts, err := admin.Hosts(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hosts {
		ids = append(ids, h.ID)
	}
	return ids
}

// hostsWantErr checks err is an API error of kind (and status, unless 0);
// kind "" wants success.
func hostsWantErr(t *testing.T, what string, err error, status int, kind string) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	ae, ok := errors.AsType[*client.APIError](err)
	if !ok || ae.Kind != kind || (status != 0 && ae.Status != status) {
		t.Fatalf("%s: %v, want HTTP %d %s", what, err, status, kind)
	}
}

func hostsNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestHostsRegisterOnlyInKnownDatacenters: a heartbeat or FleetLock call
// for a datacenter nobody created registers nothing (404 unknown_dc for
// the agent API), and a datacenter takes at most [hosts] max_per_dc hosts
// that count (agents, confirmed FleetLock hosts).
func TestHostsRegisterOnlyInKnownDatacenters(t *testing.T) {
	admin, agent := hostsCluster(t, hostsTiming(func(tm *fsm.Timing) { tm.MaxHostsPerDC = 5 }))
	ctx := hostsCtx(t)
	hostsSetDC(t, ctx, admin, "fra1", wire.DatacenterUpdate{SlotLimit: hostsPtr(1)})
	hostsMustBeat(t, ctx, agent, "fra1", hostsNames("h", 5)...)
	steps := []struct {
		name   string
		do     func() error
		status int
		kind   string
	}{
		{"heartbeat for a typo", func() error { return hostsBeat(ctx, agent, "fra1x", "n1", nil) }, 404, wire.KindUnknownDatacenter},
		{"pre-reboot for a typo", func() error { return agent.PreReboot(ctx, "n2", "fra1x") }, 0, wire.KindUnknownDC},
		{"steady-state for a typo", func() error { return agent.SteadyState(ctx, "n3", "fra1x") }, 404, wire.KindNotFound},
		{"sixth host", func() error { return hostsBeat(ctx, agent, "fra1", "h5", nil) }, 409, wire.KindHostLimit},
		// An unconfirmed FleetLock id takes no max_per_dc place (its own
		// bound: coordinator/fsm TestFleetLockPhantomsInsideFreshness).
		{"unconfirmed FleetLock host beside a full datacenter", func() error { return agent.PreReboot(ctx, "z1", "fra1") }, 0, ""},
		{"a registered host still beats", func() error { return hostsBeat(ctx, agent, "fra1", "h4", nil) }, 0, ""},
	}
	for _, st := range steps {
		hostsWantErr(t, st.name, st.do(), st.status, st.kind)
	}
	if ids := hostsIDs(t, ctx, admin, ""); strings.Join(ids, ",") != "h0,h1,h2,h3,h4,z1" {
		t.Fatalf("registered hosts %v, want h0..h4 and z1 only", ids)
	}
}

// TestHostsRemoveDecommissioned: 2 live hosts of 4 registered at
// min-healthy 50 % are refused slots until an operator removes the 2
// decommissioned ones; a slot holder goes only with --force and a reason.
func TestHostsRemoveDecommissioned(t *testing.T) {
	admin, agent := hostsCluster(t, hostsTiming(func(tm *fsm.Timing) { tm.AliveWithin = 2 * time.Second }))
	ctx := hostsCtx(t)
	hostsSetDC(t, ctx, admin, "fra1", wire.DatacenterUpdate{SlotLimit: hostsPtr(1), MinHealthyPct: hostsPtr(50)})
	hostsMustBeat(t, ctx, agent, "fra1", "h0", "h1", "old0", "old1")
	// old0 and old1 are gone for good: alive means "not marked silent",
	// which the leader does after alive_within (and its term's grace).
	hostsWaitAlive(t, ctx, admin, agent, "fra1", []string{"h0", "h1"}, []string{"old0", "old1"}, 30*time.Second)
	hostsMustBeat(t, ctx, agent, "fra1", "h0", "h1")
	_, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra1"})
	hostsWantErr(t, "acquire with 2 of 4 alive", err, 409, wire.KindCapacityFloor)

	steps := []struct {
		name   string
		host   string
		req    wire.HostRemoveRequest
		status int
		kind   string
	}{
		{"unknown", "nope", wire.HostRemoveRequest{}, 404, wire.KindNotFound},
		{"decommissioned", "old0", wire.HostRemoveRequest{Reason: "rack 7 retired"}, 0, ""},
		{"decommissioned too", "old1", wire.HostRemoveRequest{}, 0, ""},
	}
	for _, st := range steps {
		_, err := admin.RemoveHost(ctx, st.host, st.req)
		hostsWantErr(t, "remove "+st.name, err, st.status, st.kind)
	}
	hostsMustBeat(t, ctx, agent, "fra1", "h0", "h1")
	sl, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra1"})
	if err != nil {
		t.Fatalf("acquire after removing the decommissioned hosts: %v", err)
	}
	holder := []struct {
		name   string
		req    wire.HostRemoveRequest
		status int
		kind   string
	}{
		{"holder", wire.HostRemoveRequest{}, 409, wire.KindConflict},
		{"holder forced, no reason", wire.HostRemoveRequest{Force: true}, 400, wire.KindInvalidRequest},
		{"holder forced", wire.HostRemoveRequest{Force: true, Reason: "motherboard dead mid-reboot"}, 0, ""},
	}
	for _, st := range holder {
		_, err := admin.RemoveHost(ctx, "h0", st.req)
		hostsWantErr(t, "remove "+st.name, err, st.status, st.kind)
	}
	if ids := hostsIDs(t, ctx, admin, "fra1"); strings.Join(ids, ",") != "h1" {
		t.Fatalf("hosts %v, want h1", ids)
	}
	// The removed holder's token is dead: no renewal, no slot.
	_, err = agent.RenewSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra1", Token: sl.Token})
	hostsWantErr(t, "renew of the removed holder", err, 409, wire.KindNotHolder)
	hostsWantEvents(t, ctx, admin, map[string]int{"host_removed": 3, "slot_force_released": 1})
}

// hostsWaitAlive keeps the talkers heartbeating (every 250 ms) until the
// leader has marked every one of silent silent while the talkers stay
// alive; it fails the test after within.
func hostsWaitAlive(t *testing.T, ctx context.Context, admin, agent *client.Client, dc string, talkers, silent []string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(250 * time.Millisecond) {
		hostsMustBeat(t, ctx, agent, dc, talkers...)
		hosts, err := admin.Hosts(ctx, dc)
		if err != nil {
			t.Fatal(err)
		}
		alive := map[string]bool{}
		for _, h := range hosts {
			alive[h.ID] = h.Alive
		}
		done := true
		for _, id := range talkers {
			done = done && alive[id]
		}
		for _, id := range silent {
			a, ok := alive[id]
			done = done && ok && !a
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: alive %v, want %v alive and %v marked silent", within, alive, talkers, silent)
		}
	}
}

// hostsWantEvents checks that at least want[type] events of each type
// were recorded.
func hostsWantEvents(t *testing.T, ctx context.Context, admin *client.Client, want map[string]int) {
	t.Helper()
	events, err := admin.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range events {
		got[e.Type]++
	}
	for typ, n := range want {
		if got[typ] < n {
			t.Fatalf("%d %s events, want %d (events %v)", got[typ], typ, n, got)
		}
	}
}

// TestHostsExpireSilent: the leader expires a host silent for [hosts]
// expire_after through a replicated command; the quorum agrees and the
// host that keeps talking stays. Expiry counts from the leader marking
// the host silent (after alive_within and its term's grace), not from its
// last heartbeat.
func TestHostsExpireSilent(t *testing.T) {
	admin, agent := hostsCluster(t, hostsTiming(func(tm *fsm.Timing) {
		tm.AliveWithin = 2 * time.Second
		tm.ExpireAfter = 3 * time.Second
	}))
	ctx := hostsCtx(t)
	hostsSetDC(t, ctx, admin, "fra1", wire.DatacenterUpdate{SlotLimit: hostsPtr(1)})
	hostsMustBeat(t, ctx, agent, "fra1", "talker", "silent")
	hostsWaitAlive(t, ctx, admin, agent, "fra1", []string{"talker"}, []string{"silent"}, 30*time.Second)
	marked := time.Now()
	const within = 20 * time.Second
	for deadline := marked.Add(within); ; time.Sleep(500 * time.Millisecond) {
		hostsMustBeat(t, ctx, agent, "fra1", "talker")
		ids := hostsIDs(t, ctx, admin, "fra1")
		if strings.Join(ids, ",") == "talker" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosts %v %s after the leader marked silent silent, with expire_after 3s", ids, within)
		}
	}
	hostsWantEvents(t, ctx, admin, map[string]int{"host_silent": 1, "host_expired": 1})
}

// TestHostsFleetLockPhantoms: with the shared agent token, 90 phantom
// FleetLock ids registered by pre-reboot/steady-state must not let the 10
// real hosts of a datacenter (slots 10 %, min-healthy 50 %) hold more than
// one slot at once, even while the phantoms are fresh: an id that never
// held its lock across a reboot counts neither in the slot limit base nor
// as serving, and only a bounded number of them is tracked.
func TestHostsFleetLockPhantoms(t *testing.T) {
	admin, agent := hostsCluster(t, hostsTiming(func(tm *fsm.Timing) { tm.FleetLockFresh = time.Hour }))
	ctx := hostsCtx(t)
	hostsSetDC(t, ctx, admin, "fra1", wire.DatacenterUpdate{SlotPct: hostsPtr(10), MinHealthyPct: hostsPtr(50)})
	real := hostsNames("h", 10)
	hostsMustBeat(t, ctx, agent, "fra1", real...)
	for _, id := range hostsNames("phantom-", 90) {
		_ = agent.PreReboot(ctx, id, "fra1") // granted, denied or over the bound
		if err := agent.SteadyState(ctx, id, "fra1"); err != nil {
			t.Fatalf("steady-state %s: %v", id, err)
		}
	}
	if n := len(hostsIDs(t, ctx, admin, "fra1")); n != 10+fsm.MaxUnconfirmedFleetLockPerDC {
		t.Fatalf("%d hosts registered, want %d", n, 10+fsm.MaxUnconfirmedFleetLockPerDC)
	}
	// Inside the freshness window (1 h).
	hostsMustBeat(t, ctx, agent, "fra1", real...)
	granted := 0
	for _, h := range real {
		_, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: h, Datacenter: "fra1"})
		switch kind := client.ErrorKind(err); {
		case err == nil:
			granted++
		case kind != wire.KindSemaphoreFull && kind != wire.KindCapacityFloor:
			t.Fatalf("acquire %s: %v", h, err)
		}
	}
	if granted != 1 {
		t.Fatalf("%d of the 10 real hosts hold a slot at once, want 1 (10%% of 10)", granted)
	}
	dc, err := admin.Datacenter(ctx, "fra1")
	if err != nil {
		t.Fatal(err)
	}
	if dc.EffectiveLimit != 1 || dc.Serving != 9 {
		t.Fatalf("datacenter: limit %d, serving %d; want 1 and 9", dc.EffectiveLimit, dc.Serving)
	}
}

// TestHostsGossipLiarCannotHaltDatacenter: one host reporting
// dead=1048576 no longer blocks every grant of its datacenter; a view
// confirmed by a quorum of reporters still tightens the floor.
func TestHostsGossipLiarCannotHaltDatacenter(t *testing.T) {
	admin, agent := hostsCluster(t, fsm.Timing{})
	ctx := hostsCtx(t)
	tests := []struct {
		name  string
		views map[string]wire.DCView
		kind  string
	}{
		{"one liar", map[string]wire.DCView{"h1": {Alive: 1, Dead: 1 << 20}}, ""},
		{"one liar, two honest", map[string]wire.DCView{"h1": {Dead: 1 << 20}, "h2": {Alive: 10}, "h3": {Alive: 10}}, ""},
		{"a quorum sees 2 of 10 down", map[string]wire.DCView{"h1": {Alive: 8, Dead: 2}, "h2": {Alive: 8, Dead: 2}, "h3": {Alive: 10}}, wire.KindCapacityFloor},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dc := fmt.Sprintf("dc%d", i)
			hostsSetDC(t, ctx, admin, dc, wire.DatacenterUpdate{SlotLimit: hostsPtr(3), MinHealthyPct: hostsPtr(80)})
			hostsMustBeat(t, ctx, agent, dc, hostsNames(dc+"-h", 10)...)
			for host, v := range tc.views {
				if err := hostsBeat(ctx, agent, dc, dc+"-"+host, &v); err != nil {
					t.Fatalf("heartbeat %s with view %+v: %v", host, v, err)
				}
			}
			_, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: dc + "-h0", Datacenter: dc})
			hostsWantErr(t, "acquire", err, 409, tc.kind)
		})
	}
}

// TestHostsHealthReportsNeedTheSlot: unhealthy reports without the
// reporter's slot token never count against the failure budget, and a
// holder's repeated reports count once.
func TestHostsHealthReportsNeedTheSlot(t *testing.T) {
	admin, agent := hostsCluster(t, fsm.Timing{})
	ctx := hostsCtx(t)
	hostsSetDC(t, ctx, admin, "fra1", wire.DatacenterUpdate{SlotLimit: hostsPtr(3), FailureBudget: hostsPtr(2)})
	hostsMustBeat(t, ctx, agent, "fra1", hostsNames("h", 10)...)
	report := func(host string, token uint64) error {
		return agent.ReportHealth(ctx, wire.HealthReport{HostID: host, Datacenter: "fra1", Token: token, Healthy: false, Kernel: "6.12.85", Detail: "forged"})
	}
	// A hostile host (or a token thief) files unhealthy reports for
	// hosts that hold no slot, again and again.
	for i := range 5 {
		for _, h := range []string{"h5", "h6", "h7"} {
			if err := report(h, 0); err != nil {
				t.Fatalf("report %d for %s: %v", i, h, err)
			}
		}
	}
	hostsWantFailures(t, ctx, admin, 0, false)
	sl, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra1"})
	if err != nil {
		t.Fatal(err)
	}
	hostsWantErr(t, "another host with h0's token", report("h5", sl.Token), 409, wire.KindStaleToken)
	for range 3 {
		hostsWantErr(t, "h0 reports its bad kernel", report("h0", sl.Token), 0, "")
	}
	hostsWantFailures(t, ctx, admin, 1, false)
	sl1, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1"})
	if err != nil {
		t.Fatal(err)
	}
	hostsWantErr(t, "h1 reports its bad kernel", report("h1", sl1.Token), 0, "")
	hostsWantFailures(t, ctx, admin, 2, true)
}

func hostsWantFailures(t *testing.T, ctx context.Context, admin *client.Client, failures int, paused bool) {
	t.Helper()
	dc, err := admin.Datacenter(ctx, "fra1")
	if err != nil {
		t.Fatal(err)
	}
	if dc.Failures != failures || dc.Paused != paused {
		t.Fatalf("failures %d paused %v (%s), want %d and %v", dc.Failures, dc.Paused, dc.PauseReason, failures, paused)
	}
}

func hostsPtr[T any](v T) *T { return &v }
