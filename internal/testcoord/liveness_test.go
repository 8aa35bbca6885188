package testcoord_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func agentClient(t *testing.T, c *testcoord.Coordinator) *client.Client {
	t.Helper()
	cl, err := client.New(c.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// setupDC creates datacenter dc once every node of cs can forward writes.
func setupDC(t *testing.T, cs []*testcoord.Coordinator, dc string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range cs {
		for !c.Store.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not know the leader's address", c.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := cs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: ptr(2)}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func beat(t *testing.T, c *testcoord.Coordinator, hb wire.Heartbeat) *wire.DesiredState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := agentClient(t, c).Heartbeat(ctx, hb)
	if err != nil {
		t.Fatalf("heartbeat %s via %s: %v", hb.HostID, c.ID, err)
	}
	return ds
}

// lastLog is node c's last Raft log index.
func lastLog(t *testing.T, c *testcoord.Coordinator) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(c.Store.Stats()["last_log_index"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// quiet waits until no node's Raft log grows for a second and every node
// applied the same index; it returns that index.
func quiet(t *testing.T, cs []*testcoord.Coordinator) uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var prev []uint64
	for {
		cur := make([]uint64, 0, len(cs))
		for _, c := range cs {
			cur = append(cur, lastLog(t, c), c.Store.FSM().Index())
		}
		same := prev != nil
		for i := range cur {
			same = same && cur[i] == prev[i]
		}
		allApplied := true
		for _, c := range cs {
			allApplied = allApplied && c.Store.FSM().Index() == cs[0].Store.FSM().Index()
		}
		if same && allApplied {
			return cs[0].Store.FSM().Index()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Raft log did not settle within 20 s: %v", cur)
		}
		prev = cur
		time.Sleep(time.Second)
	}
}

func hostOn(c *testcoord.Coordinator, id string) (fsm.Host, bool) {
	var h fsm.Host
	var ok bool
	c.Store.FSM().View(func(st *fsm.State) {
		if p := st.Hosts[id]; p != nil {
			h, ok = *p, true
		}
	})
	return h, ok
}

// TestHeartbeatsOffTheLog: on a real three-node cluster (ticks off), a
// heartbeat without a durable change, sent to any node, appends nothing
// to the Raft log and is answered from the node's state; a phase change
// appends one entry that every node applies.
func TestHeartbeatsOffTheLog(t *testing.T) {
	cs := testcoord.StartCluster(t, 3, testcoord.Options{TickInterval: time.Hour})
	setupDC(t, cs, "fra")
	hb := func(i int) wire.Heartbeat {
		return wire.Heartbeat{HostID: fmt.Sprintf("fra-h%d", i), Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85",
			Phase: wire.PhaseIdle, BootID: "boot-1", View: &wire.DCView{Alive: 4}}
	}
	for i := range 4 {
		beat(t, cs[i%3], hb(i))
	}
	base := quiet(t, cs)
	logs := make([]uint64, len(cs))
	for i, c := range cs {
		logs[i] = lastLog(t, c)
	}
	for round := range 5 {
		for i := range 4 {
			b := hb(i)
			b.View = &wire.DCView{Alive: 4 - round%2} // immaterial: nobody out of service
			ds := beat(t, cs[(i+round)%3], b)
			if ds.Datacenter == nil || ds.Datacenter.Hosts != 4 || ds.Datacenter.EffectiveLimit != 2 {
				t.Fatalf("local answer without the datacenter's limits: %+v", ds.Datacenter)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	for i, c := range cs {
		if got := lastLog(t, c); got != logs[i] {
			t.Errorf("%s: unchanged heartbeats grew the Raft log from %d to %d", c.ID, logs[i], got)
		}
		if got := c.Store.FSM().Index(); got != base {
			t.Errorf("%s: applied index moved from %d to %d", c.ID, base, got)
		}
	}
	// A phase change, sent to a follower, is proposed once and applied
	// everywhere before the agent gets its answer from that node.
	follower := cs[0]
	for _, c := range cs {
		if !c.Store.IsLeader() {
			follower = c
		}
	}
	changed := hb(1)
	changed.Phase = wire.PhaseStaged
	beat(t, follower, changed)
	if h, _ := hostOn(follower, "fra-h1"); h.Phase != wire.PhaseStaged {
		t.Fatalf("%s does not show the new phase after answering: %q", follower.ID, h.Phase)
	}
	after := quiet(t, cs)
	if after != base+1 {
		t.Errorf("a phase change moved the applied index from %d to %d, want one entry", base, after)
	}
	for _, c := range cs {
		if h, _ := hostOn(c, "fra-h1"); h.Phase != wire.PhaseStaged {
			t.Errorf("%s: phase %q, want %q", c.ID, h.Phase, wire.PhaseStaged)
		}
	}
}

// TestSilentHostsMarkedAndBack: a host heard only by a follower stays
// alive (the follower hands its liveness to the leader); a host that stops
// is marked silent by the leader after AliveWithin, on every node, and its
// next heartbeat brings it back.
func TestSilentHostsMarkedAndBack(t *testing.T) {
	cs := testcoord.StartCluster(t, 3, testcoord.Options{
		Timing:            fsm.Timing{Lease: 2 * time.Minute, RebootDeadline: 10 * time.Minute, AliveWithin: 1500 * time.Millisecond},
		HeartbeatInterval: 300 * time.Millisecond,
	})
	setupDC(t, cs, "fra")
	var follower *testcoord.Coordinator
	for _, c := range cs {
		if !c.Store.IsLeader() {
			follower = c
		}
	}
	kept := wire.Heartbeat{HostID: "fra-kept", Datacenter: "fra", Kernel: "6.12.85", Phase: wire.PhaseIdle}
	gone := wire.Heartbeat{HostID: "fra-gone", Datacenter: "fra", Kernel: "6.12.85", Phase: wire.PhaseIdle}
	beat(t, follower, gone)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			cl := agentClient(t, follower)
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = cl.Heartbeat(rctx, kept)
			rcancel()
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := true
		for _, c := range cs {
			h, _ := hostOn(c, "fra-gone")
			all = all && h.Silent
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fra-gone not marked silent on every node within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range cs {
		if h, _ := hostOn(c, "fra-kept"); h.Silent {
			t.Errorf("%s: fra-kept, heard every 300 ms by %s, marked silent", c.ID, follower.ID)
		}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if v, err := cs[0].Client.Host(rctx, "fra-gone"); err != nil || v.Alive {
		t.Errorf("host view of a silent host: %+v, %v", v, err)
	}
	beat(t, follower, gone)
	for _, c := range cs {
		if c != follower {
			if err := c.Store.WaitApplied(rctx, follower.Store.FSM().Index()); err != nil {
				t.Fatal(err)
			}
		}
		if h, _ := hostOn(c, "fra-gone"); h.Silent {
			t.Errorf("%s: fra-gone still silent after its heartbeat", c.ID)
		}
	}
	evs, err := cs[0].Client.Events(rctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == "host_silent" && e.Host == "fra-kept" {
			t.Errorf("event: %s", e.Message)
		}
	}
}

// TestFailoverLivenessGrace: hosts heard only by the leader go quiet when
// it dies; the new leader marks none of them silent within its grace
// (max(AliveWithin, 3 heartbeat intervals) = 3 s from its term start),
// and does once the grace is over.
func TestFailoverLivenessGrace(t *testing.T) {
	const interval = time.Second
	cs := testcoord.StartCluster(t, 3, testcoord.Options{
		Timing:            fsm.Timing{Lease: 2 * time.Minute, RebootDeadline: 10 * time.Minute, AliveWithin: time.Second},
		HeartbeatInterval: interval,
	})
	setupDC(t, cs, "fra")
	var leader *testcoord.Coordinator
	for _, c := range cs {
		if c.Store.IsLeader() {
			leader = c
		}
	}
	hosts := []string{"fra-h0", "fra-h1", "fra-h2"}
	for range 3 {
		for _, h := range hosts {
			beat(t, leader, wire.Heartbeat{HostID: h, Datacenter: "fra", Kernel: "6.12.85", Phase: wire.PhaseIdle})
		}
		time.Sleep(interval / 2)
	}
	killed := time.Now()
	leader.Stop()
	var rest []*testcoord.Coordinator
	for _, c := range cs {
		if c != leader {
			rest = append(rest, c)
		}
	}
	graceEnd := killed.Add(3 * interval)
	for time.Now().Before(graceEnd.Add(-100 * time.Millisecond)) {
		for _, c := range rest {
			for _, h := range hosts {
				if hh, _ := hostOn(c, h); hh.Silent {
					t.Fatalf("%s: %s marked silent %s after the leader died, within the new leader's grace", c.ID, h, time.Since(killed).Round(time.Millisecond))
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		for _, h := range hosts {
			if hh, _ := hostOn(rest[0], h); hh.Silent {
				n++
			}
		}
		if n == len(hosts) {
			t.Logf("silent hosts marked %s after the leader died", time.Since(killed).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d quiet hosts marked silent within 20 s after the grace", n, len(hosts))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
