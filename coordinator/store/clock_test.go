package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// newClockCluster is n real nodes (Raft on disk, loopback) whose wall
// clocks the test steps.
func newClockCluster(t testing.TB, n int) (*testCluster, map[string]*clock.Stepped) {
	t.Helper()
	c := &testCluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Store{}}
	clocks := map[string]*clock.Stepped{}
	peers := freePeers(t, n)
	for id, addr := range peers {
		clocks[id] = clock.NewStepped()
		c.cfgs[id] = Config{
			NodeID: id, DataDir: t.TempDir(), RaftAddr: addr, HTTPAddr: "127.0.0.1:1" + addr[len(addr)-4:],
			Peers: peers, TickInterval: 100 * time.Millisecond, Clock: clocks[id], PeerToken: "peer-token-for-store-tests",
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond,
		}
		c.start(id)
	}
	t.Cleanup(func() {
		for _, s := range c.nodes {
			s.Close()
		}
	})
	return c, clocks
}

// stateNow returns the FSM's time.
func stateNow(s *Store) time.Time {
	var now time.Time
	s.FSM().View(func(st *fsm.State) { now = st.Now })
	return now
}

// slotOf returns a copy of host's slot in dc and whether dc is paused.
func slotOf(t testing.TB, s *Store, dc, host string) (Slot fsm.Slot, paused bool) {
	t.Helper()
	s.FSM().View(func(st *fsm.State) {
		d := st.Datacenters[dc]
		if d == nil || d.Slots[host] == nil {
			t.Fatalf("%s holds no slot in %s", host, dc)
		}
		Slot, paused = *d.Slots[host], d.Policy.Paused
	})
	return Slot, paused
}

// watchStateTime samples the FSM's time for d and reports an error (once)
// when it moves backwards, runs ahead of the host's real clock or lags it
// by more than maxLag (ticks stamp every 100 ms; a loaded machine delays
// them, so callers allow 2 s and watch longer than that to catch a freeze).
func watchStateTime(t *testing.T, s *Store, d, maxLag time.Duration) {
	t.Helper()
	prev, end := stateNow(s), time.Now().Add(d)
	for ; time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		now, real := stateNow(s), time.Now()
		var bad string
		switch {
		case now.Before(prev):
			bad = fmt.Sprintf("state time moved backwards: %s → %s", prev, now)
		case now.Sub(real) > 50*time.Millisecond:
			bad = fmt.Sprintf("state time %s is %s ahead of the real clock", now, now.Sub(real))
		case real.Sub(now) > maxLag:
			bad = fmt.Sprintf("state time %s lags the real clock by %s", now, real.Sub(now))
		}
		if bad != "" {
			// Keep the test's timing so that its other checks still see
			// what the bad state time did.
			t.Error(bad)
			time.Sleep(time.Until(end))
			return
		}
		prev = now
	}
}

// TestClockStepOnLeader steps the leader's wall clock (not its monotonic
// clock) while a host holds a slot, on a real Raft node, and checks that
// state time follows real time: no holder lost or datacenter paused by a
// forward step, deadlines not moved out, state time never backwards nor
// frozen by a backward step, every step counted.
func TestClockStepOnLeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []time.Duration
		// reboot is the slot's reboot deadline; wantLost whether the
		// holder must be lost at the end (the deadline passed in real
		// time).
		reboot   time.Duration
		wantLost bool
	}{
		{name: "forward 2h", steps: []time.Duration{2 * time.Hour}, reboot: 20 * time.Minute},
		{name: "forward 2h then corrected", steps: []time.Duration{2 * time.Hour, -2 * time.Hour}, reboot: 20 * time.Minute},
		{name: "forward 90s", steps: []time.Duration{90 * time.Second}, reboot: time.Minute},
		{name: "backward 2h", steps: []time.Duration{-2 * time.Hour}, reboot: 1500 * time.Millisecond, wantLost: true},
		{name: "backward 2h then corrected", steps: []time.Duration{-2 * time.Hour, 2 * time.Hour}, reboot: 20 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clocks := newClockCluster(t, 1)
			l := c.leader(10 * time.Second)
			timing := fsm.Timing{Lease: time.Minute, RebootDeadline: tc.reboot, AliveWithin: 45 * time.Second}
			mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
			mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h0", Datacenter: "fra"}})
			r := mustApply(t, l, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h0", Owner: fsm.OwnerAgent, Timing: timing})
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			granted, _ := slotOf(t, l, "fra", "h0")
			start := time.Now()

			for _, step := range tc.steps {
				clocks[l.NodeID()].Step(step)
				watchStateTime(t, l, 3*time.Second, 2*time.Second)
			}
			if tc.wantLost {
				// The deadline passes in real time: the holder is lost on
				// time, not 2h late.
				watchStateTime(t, l, tc.reboot, 2*time.Second)
			}

			sl, paused := slotOf(t, l, "fra", "h0")
			if sl.Lost != tc.wantLost || paused != tc.wantLost {
				t.Fatalf("after %v: holder lost %v, datacenter paused %v; want %v", tc.steps, sl.Lost, paused, tc.wantLost)
			}
			if !sl.LeaseExpires.Equal(granted.LeaseExpires) || !sl.RebootDeadline.Equal(granted.RebootDeadline) {
				t.Fatalf("deadlines moved without a renewal: lease %s → %s, reboot %s → %s",
					granted.LeaseExpires, sl.LeaseExpires, granted.RebootDeadline, sl.RebootDeadline)
			}
			if !tc.wantLost {
				// A renewal extends the lease from the real time, not
				// from a stepped clock.
				r := mustApply(t, l, fsm.TypeRenew, fsm.Renew{Datacenter: "fra", Host: "h0", Token: granted.Token, Owner: fsm.OwnerAgent, Timing: timing})
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				moved := r.Slot.LeaseExpires.Sub(granted.LeaseExpires)
				if elapsed := time.Since(start); moved < 0 || moved > elapsed+time.Second {
					t.Fatalf("renewal moved the lease by %s after %s of real time", moved, elapsed)
				}
			}
			mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra"}})
			var hb time.Time
			l.FSM().View(func(st *fsm.State) { hb = st.Hosts["h1"].LastHeartbeat })
			if d := time.Since(hb); d < -50*time.Millisecond || d > time.Second {
				t.Fatalf("heartbeat stamped %s, %s from the real clock", hb, -d)
			}
			if _, n := l.ClockSteps(); n != uint64(len(tc.steps)) {
				t.Fatalf("%d clock steps counted, want %d", n, len(tc.steps))
			}
		})
	}
}

// TestClockFailoverBehindLastStamp fails the leader over to nodes whose
// wall clocks are an hour behind its last stamp: the new leader stamps from
// the FSM's last time on, never earlier, and state time keeps running.
func TestClockFailoverBehindLastStamp(t *testing.T) {
	c, clocks := newClockCluster(t, 3)
	l := c.leader(10 * time.Second)
	timing := fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: 45 * time.Second}
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(2)}})
	for _, h := range []string{"h0", "h1"} {
		mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: h, Datacenter: "fra"}})
	}
	if r := mustApply(t, l, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h0", Owner: fsm.OwnerAgent, Timing: timing}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for id, clk := range clocks {
		if id != l.NodeID() {
			clk.Step(-time.Hour)
		}
	}
	c.stop(l.NodeID())
	last := stateNow(l)
	l2 := c.leader(10 * time.Second)

	stamp, err := l2.stamp()
	if err != nil {
		t.Fatal(err)
	}
	if stamp.Before(last) {
		t.Fatalf("new leader stamps %s, before the FSM's last time %s", stamp, last)
	}
	r := mustApply(t, l2, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h1", Owner: fsm.OwnerAgent, Timing: timing})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Slot.LeaseExpires.Before(last.Add(timing.Lease)) {
		t.Fatalf("slot granted after failover expires %s, before the old leader's last time + lease %s", r.Slot.LeaseExpires, last.Add(timing.Lease))
	}
	if now := stateNow(l2); now.Before(last) {
		t.Fatalf("state time %s went back from %s", now, last)
	}
	// State time runs at the rate of real time from there (ticks), not
	// frozen until the new leader's wall clock catches up in an hour.
	before, real0 := stateNow(l2), time.Now()
	time.Sleep(time.Second)
	if ran, real := stateNow(l2).Sub(before), time.Since(real0); ran < real-300*time.Millisecond || ran > real+300*time.Millisecond {
		t.Fatalf("state time ran %s in %s of real time", ran, real)
	}
	if off, n := l2.ClockSteps(); n < 1 || off > -59*time.Minute {
		t.Fatalf("new leader reports offset %s, %d steps; want about -1h, ≥ 1", off, n)
	}
}

// clockHolders sets up datacenter fra with h0 holding a slot (reboot
// deadline 20 min) and h1 registered, on leader l.
func clockHolders(t *testing.T, l *Store) fsm.Timing {
	t.Helper()
	timing := fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: 45 * time.Second}
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(2)}})
	for _, h := range []string{"h0", "h1"} {
		mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: h, Datacenter: "fra"}})
	}
	if r := mustApply(t, l, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h0", Owner: fsm.OwnerAgent, Timing: timing}); r.Err != nil {
		t.Fatal(r.Err)
	}
	return timing
}

// clockWantSafe checks that h0 is neither lost nor its datacenter paused,
// and that a fresh heartbeat is stamped at the real time.
func clockWantSafe(t *testing.T, l *Store) {
	t.Helper()
	if sl, paused := slotOf(t, l, "fra", "h0"); sl.Lost || paused {
		t.Fatalf("holder lost %v, datacenter paused %v after the failover; want neither", sl.Lost, paused)
	}
	mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra"}})
	var hb time.Time
	l.FSM().View(func(st *fsm.State) { hb = st.Hosts["h1"].LastHeartbeat })
	// A new leader continues the state's time from what it last applied,
	// so it inherits that entry's replication lag (longer on a loaded
	// machine); a 2h step would show as hours.
	if d := time.Since(hb); d < -50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("heartbeat stamped %s, %s from the real clock", hb, -d)
	}
}

// TestClockFailoverAheadOfLastStamp fails the leader over to nodes whose
// wall clocks were stepped 2h ahead: the new leader anchors at the state's
// time plus the real time it saw pass, not at its wall clock; no holder is
// lost, no datacenter paused, state time runs at real speed, and the
// step is reported.
func TestClockFailoverAheadOfLastStamp(t *testing.T) {
	c, clocks := newClockCluster(t, 3)
	l := c.leader(10 * time.Second)
	clockHolders(t, l)
	for id, clk := range clocks {
		if id != l.NodeID() {
			clk.Step(2 * time.Hour)
		}
	}
	// Followers keep applying the leader's ticks after their step.
	time.Sleep(300 * time.Millisecond)
	c.stop(l.NodeID())
	l2 := c.leader(10 * time.Second)
	if _, err := l2.stamp(); err != nil {
		t.Fatal(err)
	}
	watchStateTime(t, l2, 3*time.Second, 2*time.Second)
	clockWantSafe(t, l2)
	if off, n := l2.ClockSteps(); n < 1 || off < 119*time.Minute {
		t.Fatalf("new leader reports offset %s, %d steps; want about +2h, ≥ 1", off, n)
	}
}

// TestClockLeadershipRegainedOnSteppedNode: the leader's wall clock is
// stepped 2h ahead while it leads; it loses leadership and regains it. Its
// new term continues the state's time at real speed instead of anchoring
// at its stepped wall clock.
func TestClockLeadershipRegainedOnSteppedNode(t *testing.T) {
	c, clocks := newClockCluster(t, 3)
	l := c.leader(10 * time.Second)
	clockHolders(t, l)
	clocks[l.NodeID()].Step(2 * time.Hour)
	watchStateTime(t, l, 500*time.Millisecond, 2*time.Second)
	if err := l.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("transfer leadership away: %v", err)
	}
	other := c.leader(10 * time.Second)
	for other == l {
		time.Sleep(20 * time.Millisecond)
		other = c.leader(10 * time.Second)
	}
	watchStateTime(t, other, 500*time.Millisecond, 2*time.Second)
	if err := other.raft.LeadershipTransferToServer(raft.ServerID(l.NodeID()), raft.ServerAddress(c.cfgs[l.NodeID()].RaftAddr)).Error(); err != nil {
		t.Fatalf("transfer leadership back: %v", err)
	}
	// Leadership may flap on a loaded machine: wait until the stepped node
	// leads and has stamped a command of its term.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l.IsLeader() {
			if _, err := l.stamp(); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("regained leadership but cannot stamp: %v", err)
			}
		} else if time.Now().After(deadline) {
			t.Fatal("leadership not regained")
		}
		time.Sleep(20 * time.Millisecond)
	}
	watchStateTime(t, l, 3*time.Second, 2*time.Second)
	clockWantSafe(t, l)
	if off, _ := l.ClockSteps(); off < 119*time.Minute {
		t.Fatalf("regained leader reports offset %s; want about +2h", off)
	}
}
