package adversary

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// clockAgent returns an agent client of co.
func clockAgent(t *testing.T, co *testcoord.Coordinator) *client.Client {
	t.Helper()
	c, err := client.New(co.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clockMetric reads a metric without labels from co's /metrics.
func clockMetric(t *testing.T, co *testcoord.Coordinator, name string) float64 {
	t.Helper()
	resp, err := http.Get(co.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s/metrics (%v)", name, co.URL, sc.Err())
	return 0
}

// clockHeartbeat sends a heartbeat for host and returns when the
// coordinator recorded it. Only a heartbeat with a durable change (a new
// host, a phase change…) goes through Raft and is stamped; an unchanged
// one leaves the recorded time as it was.
func clockHeartbeat(ctx context.Context, t *testing.T, co *testcoord.Coordinator, host string) time.Time {
	t.Helper()
	return clockPhaseHeartbeat(ctx, t, co, host, "")
}

// clockPhaseHeartbeat is clockHeartbeat reporting phase; it fails the
// test unless the coordinator recorded the phase (the heartbeat went
// through Raft when the phase changed).
func clockPhaseHeartbeat(ctx context.Context, t *testing.T, co *testcoord.Coordinator, host, phase string) time.Time {
	t.Helper()
	if _, err := clockAgent(t, co).Heartbeat(ctx, wire.Heartbeat{HostID: host, Datacenter: "fra", Phase: phase}); err != nil {
		t.Fatal(err)
	}
	h, err := co.Client.Host(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if h.Phase != phase {
		t.Fatalf("host %s: phase %q recorded, sent %q", host, h.Phase, phase)
	}
	return h.LastHeartbeat
}

// clockSlot returns host's slot in fra and whether fra is paused, as the
// operator API shows them.
func clockSlot(ctx context.Context, t *testing.T, co *testcoord.Coordinator, host string) (wire.Slot, bool) {
	t.Helper()
	slots, err := co.Client.Slots(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := co.Client.Datacenter(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.HostID == host {
			return s, dc.Paused
		}
	}
	t.Fatalf("%s holds no slot in fra: %+v", host, slots)
	return wire.Slot{}, false
}

// TestClockStepOnLeader steps the wall clock of a running coordinator
// (its monotonic clock runs on) while a host holds a reboot slot, and
// checks through the HTTP API that slot timing follows real time: no
// holder marked lost and no datacenter paused by a forward step, lease
// deadlines not moved out, heartbeats stamped at the real time after a
// step either way (so a dead host does not look alive for hours), and
// every step counted in /metrics.
func TestClockStepOnLeader(t *testing.T) {
	timing := fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: time.Minute}
	for _, tc := range []struct {
		name  string
		steps []time.Duration
	}{
		{name: "forward 2h", steps: []time.Duration{2 * time.Hour}},
		{name: "forward 2h then corrected", steps: []time.Duration{2 * time.Hour, -2 * time.Hour}},
		{name: "backward 2h", steps: []time.Duration{-2 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			clk := clock.NewStepped()
			co := testcoord.StartCluster(t, 1, testcoord.Options{Timing: timing, Clocks: map[string]clock.Clock{"c1": clk}})[0]
			one := 1
			if _, err := co.Client.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
				t.Fatal(err)
			}
			clockHeartbeat(ctx, t, co, "h0")
			granted, err := clockAgent(t, co).AcquireSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra"})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var total time.Duration
			for _, step := range tc.steps {
				clk.Step(step)
				total += step
				time.Sleep(2500 * time.Millisecond) // the leader ticks every second
			}

			sl, paused := clockSlot(ctx, t, co, "h0")
			if sl.Lost || paused {
				t.Fatalf("after steps %v: holder lost %v, datacenter paused %v", tc.steps, sl.Lost, paused)
			}
			if !sl.LeaseExpires.Equal(granted.LeaseExpires) || !sl.RebootDeadline.Equal(granted.RebootDeadline) {
				t.Fatalf("deadlines moved without a renewal: %+v → %+v", granted, sl)
			}
			renewed, err := clockAgent(t, co).RenewSlot(ctx, wire.SlotRequest{HostID: "h0", Datacenter: "fra", Token: granted.Token})
			if err != nil {
				t.Fatal(err)
			}
			if moved, elapsed := renewed.LeaseExpires.Sub(granted.LeaseExpires), time.Since(start); moved < 0 || moved > elapsed+time.Second {
				t.Fatalf("renewal moved the lease by %s after %s of real time", moved, elapsed)
			}
			if hb := clockHeartbeat(ctx, t, co, "h1"); time.Since(hb) < -100*time.Millisecond || time.Since(hb) > time.Second {
				t.Fatalf("heartbeat stamped %s, %s behind the real time", hb, time.Since(hb))
			}
			if n := clockMetric(t, co, "kroll_coordinator_clock_steps_total"); n != float64(len(tc.steps)) {
				t.Fatalf("kroll_coordinator_clock_steps_total %v, want %d", n, len(tc.steps))
			}
			if off := clockMetric(t, co, "kroll_coordinator_clock_step_seconds"); off < total.Seconds()-1 || off > total.Seconds()+1 {
				t.Fatalf("kroll_coordinator_clock_step_seconds %v, want about %v", off, total.Seconds())
			}
		})
	}
}

// TestClockFailoverBehindLastStamp kills the leader of a three-node quorum
// whose other nodes' wall clocks run an hour behind: the new leader
// continues from the old leader's last time (no grant expiring before it,
// heartbeats not frozen at it for an hour) and reports the offset.
func TestClockFailoverBehindLastStamp(t *testing.T) {
	ctx := t.Context()
	timing := fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: time.Minute}
	clocks := map[string]clock.Clock{}
	stepped := map[string]*clock.Stepped{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("c%d", i)
		stepped[id] = clock.NewStepped()
		clocks[id] = stepped[id]
	}
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{Timing: timing, Clocks: clocks})
	var old *testcoord.Coordinator
	for _, n := range nodes {
		if n.Store.IsLeader() {
			old = n
		}
	}
	two := 2
	if _, err := old.Client.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{SlotLimit: &two}); err != nil {
		t.Fatal(err)
	}
	clockHeartbeat(ctx, t, old, "h0")
	for id, c := range stepped {
		if id != old.Store.NodeID() {
			c.Step(-time.Hour)
		}
	}
	time.Sleep(1200 * time.Millisecond) // a tick stamps the old leader's time
	old.Stop()
	var last time.Time
	old.Store.FSM().View(func(s *fsm.State) { last = s.Now })

	var leader *testcoord.Coordinator
	for deadline := time.Now().Add(20 * time.Second); leader == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no new leader within 20 s")
		}
		for _, n := range nodes {
			if n != old && n.Store.IsLeader() {
				leader = n
			}
		}
	}
	first := clockHeartbeat(ctx, t, leader, "h1")
	if first.Before(last) {
		t.Fatalf("new leader stamped a heartbeat %s, before the old leader's last time %s", first, last)
	}
	slot, err := clockAgent(t, leader).AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra"})
	if err != nil {
		t.Fatal(err)
	}
	if slot.LeaseExpires.Before(last.Add(timing.Lease)) {
		t.Fatalf("grant after failover expires %s, before the old leader's last time + lease", slot.LeaseExpires)
	}
	time.Sleep(2 * time.Second)
	// An unchanged heartbeat is answered off the Raft log and stamps
	// nothing: a phase change (a durable change) is stamped.
	if ran := clockPhaseHeartbeat(ctx, t, leader, "h1", wire.PhaseStaged).Sub(first); ran < 1500*time.Millisecond || ran > 3*time.Second {
		t.Fatalf("2 s of real time moved the new leader's stamps by %s", ran)
	}
	if off := clockMetric(t, leader, "kroll_coordinator_clock_step_seconds"); off > -3500 || off < -3700 {
		t.Fatalf("new leader's kroll_coordinator_clock_step_seconds %v, want about -3600", off)
	}
	if n := clockMetric(t, leader, "kroll_coordinator_clock_steps_total"); n < 1 {
		t.Fatalf("new leader counted %v clock steps, want ≥ 1", n)
	}
}
