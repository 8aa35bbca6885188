package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// hostsBeat sends an agent heartbeat for host in dc at now.
func hostsBeat(t testing.TB, f *FSM, now time.Time, dc, host string, tm Timing) Result {
	t.Helper()
	return apply(t, f, TypeHeartbeat, now, Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle}, Timing: tm})
}

// hostsFleetLock calls pre-reboot (lock) or steady-state (unlock) for id in dc.
func hostsFleetLock(t testing.TB, f *FSM, now time.Time, dc, id string, lock bool, tm Timing) Result {
	t.Helper()
	if lock {
		return apply(t, f, TypeAcquire, now, Acquire{Datacenter: dc, Host: id, Owner: OwnerFleetLock, Timing: tm})
	}
	return apply(t, f, TypeRelease, now, SlotRelease{Datacenter: dc, Host: id, Owner: OwnerFleetLock})
}

func hostsCount(f *FSM) int {
	n := 0
	f.View(func(s *State) { n = len(s.Hosts) })
	return n
}

func hostsEvents(f *FSM) map[string]int {
	out := map[string]int{}
	f.View(func(s *State) {
		for _, e := range s.Events {
			out[e.Type]++
		}
	})
	return out
}

// TestRegistrationNeedsKnownDatacenter: neither a heartbeat nor a FleetLock
// call registers a host in a datacenter no operator created, and a
// datacenter takes at most MaxHostsPerDC hosts.
func TestRegistrationNeedsKnownDatacenter(t *testing.T) {
	capped := timing
	capped.MaxHostsPerDC = 3
	tests := []struct {
		name      string
		do        func(f *FSM) Result
		want      string
		wantHosts int // registered hosts afterwards (fra starts with 3)
	}{
		{"heartbeat into a typo", func(f *FSM) Result { return hostsBeat(t, f, t0, "fra1x", "n1", capped) }, wire.KindUnknownDatacenter, 3},
		{"fleetlock into a typo", func(f *FSM) Result { return hostsFleetLock(t, f, t0, "fra1x", "n1", true, capped) }, wire.KindUnknownDC, 3},
		{"steady-state into a typo", func(f *FSM) Result { return hostsFleetLock(t, f, t0, "fra1x", "n1", false, capped) }, wire.KindNotFound, 3},
		{"heartbeat over the cap", func(f *FSM) Result { return hostsBeat(t, f, t0, "fra", "n1", capped) }, wire.KindHostLimit, 3},
		// An unconfirmed FleetLock id does not take a max_per_dc place
		// (it has its own bound, see TestFleetLockPhantomsInsideFreshness).
		{"unconfirmed fleetlock beside a full datacenter", func(f *FSM) Result { return hostsFleetLock(t, f, t0, "fra", "n1", true, capped) }, "ok", 4},
		{"known host under the cap", func(f *FSM) Result { return hostsBeat(t, f, t0, "fra", "fra-h1", capped) }, "ok", 3},
		{"moving into a full datacenter", func(f *FSM) Result { return hostsBeat(t, f, t0, "fra", "ams-h0", capped) }, wire.KindHostLimit, 3},
		{"default cap", func(f *FSM) Result { return hostsBeat(t, f, t0, "fra", "n1", timing) }, "ok", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "fra", 3, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			fleet(t, f, "ams", 1, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			if r := tc.do(f); kind(r) != tc.want {
				t.Fatalf("got %s (%+v), want %s", kind(r), r.Err, tc.want)
			}
			f.View(func(s *State) {
				assertIndex(t, s)
				if fra, all := len(s.HostsIn("fra")), len(s.Hosts); fra != tc.wantHosts || all != tc.wantHosts+1 {
					t.Fatalf("fra has %d hosts and the state %d, want %d and %d", fra, all, tc.wantHosts, tc.wantHosts+1)
				}
			})
		})
	}
}

// TestRemoveHost: a decommissioned host leaves the floor's denominator; a
// holder goes only by force with a reason, and its slot with it.
func TestRemoveHost(t *testing.T) {
	tests := []struct {
		name       string
		p          RemoveHost
		want       string
		gone       bool
		slotsAfter int
		event      string
	}{
		{"unknown host", RemoveHost{Host: "nope"}, wire.KindNotFound, false, 1, ""},
		{"dead host", RemoveHost{Host: "fra-h3", Reason: "decommissioned"}, "ok", true, 1, "host_removed"},
		{"holder", RemoveHost{Host: "fra-h0"}, wire.KindConflict, false, 1, ""},
		{"holder forced without reason", RemoveHost{Host: "fra-h0", Force: true, Reason: "  "}, wire.KindInvalidRequest, false, 1, ""},
		{"holder forced", RemoveHost{Host: "fra-h0", Force: true, Reason: "hardware gone"}, "ok", true, 0, "slot_force_released"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "fra", 6, wire.DatacenterUpdate{SlotLimit: ptr(2), MinHealthyPct: ptr(10)})
			if r := acquire(t, f, t0, "fra", "fra-h0"); r.Err != nil {
				t.Fatal(r.Err)
			}
			r := apply(t, f, TypeRemoveHost, t0, tc.p)
			if kind(r) != tc.want {
				t.Fatalf("got %s (%+v), want %s", kind(r), r.Err, tc.want)
			}
			f.View(func(s *State) {
				_, present := s.Hosts[tc.p.Host]
				if present == tc.gone && tc.p.Host != "nope" {
					t.Fatalf("host present=%v after removal, want gone=%v", present, tc.gone)
				}
				if n := len(s.Hosts); n != 6-hostsBoolInt(tc.gone) {
					t.Fatalf("%d hosts left", n)
				}
				if n := len(s.Datacenters["fra"].Slots); n != tc.slotsAfter {
					t.Fatalf("%d slots held, want %d", n, tc.slotsAfter)
				}
				assertIndex(t, s)
			})
			if tc.event != "" && hostsEvents(f)[tc.event] == 0 {
				t.Fatalf("no %s event", tc.event)
			}
			assertSnapshotRoundTrip(t, f)
		})
	}
}

// TestRemovedHostsLeaveTheFloor: 2 live hosts of 4 registered at
// min-healthy 50 % are refused forever; removing the 2 decommissioned ones
// lets them reboot.
func TestRemovedHostsLeaveTheFloor(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 4, wire.DatacenterUpdate{SlotLimit: ptr(1), MinHealthyPct: ptr(50)})
	later := t0.Add(time.Hour)
	for _, h := range []string{"fra-h0", "fra-h1"} {
		hostsBeat(t, f, later, "fra", h, timing)
	}
	markStale(t, f, later)
	if r := acquire(t, f, later, "fra", "fra-h0"); kind(r) != wire.KindCapacityFloor {
		t.Fatalf("before removal: %s, want %s", kind(r), wire.KindCapacityFloor)
	}
	for _, h := range []string{"fra-h2", "fra-h3"} {
		if r := apply(t, f, TypeRemoveHost, later, RemoveHost{Host: h, Reason: "decommissioned"}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := acquire(t, f, later, "fra", "fra-h0"); r.Err != nil {
		t.Fatalf("after removal: %+v", r.Err)
	}
}

// TestHostExpiry: Tick, by its stamped time, removes hosts silent for
// ExpireAfter that hold no slot; it looks at most once a minute.
func TestHostExpiry(t *testing.T) {
	week := 7 * 24 * time.Hour
	tests := []struct {
		name        string
		expireAfter time.Duration
		tickAt      time.Duration // after t0
		wantGone    []string
		wantKept    []string
	}{
		// z1 never completed a lock cycle: it goes once not fresh.
		{"unconfirmed fleetlock id after fresh_within", 0, 16 * time.Minute, []string{"z1"}, []string{"fra-h0", "fra-h1", "fra-h2"}},
		{"before the deadline", 0, week - time.Minute, []string{"z1"}, []string{"fra-h0", "fra-h1", "fra-h2"}},
		{"default week", 0, week + time.Minute, []string{"fra-h1", "z1"}, []string{"fra-h0", "fra-h2"}},
		{"configured hour", time.Hour, time.Hour + time.Minute, []string{"fra-h1", "z1"}, []string{"fra-h0", "fra-h2"}},
		{"never", -1, 10 * week, nil, []string{"fra-h0", "fra-h1", "fra-h2", "z1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			tm := timing
			tm.ExpireAfter = tc.expireAfter
			fleet(t, f, "fra", 3, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			if r := acquire(t, f, t0, "fra", "fra-h0"); r.Err != nil {
				t.Fatal(r.Err)
			}
			// z1, a FleetLock host, registers but finds the slot taken.
			if r := hostsFleetLock(t, f, t0, "fra", "z1", true, tm); kind(r) != wire.KindSemaphoreFull {
				t.Fatalf("z1: %s", kind(r))
			}
			// fra-h0 holds its slot; fra-h2 keeps talking; the leader
			// marks fra-h0 and fra-h1 silent after AliveWithin.
			markStale(t, f, t0.Add(timing.AliveWithin+time.Second))
			hostsBeat(t, f, t0.Add(tc.tickAt-time.Minute), "fra", "fra-h2", tm)
			apply(t, f, TypeTick, t0.Add(tc.tickAt), Tick{Timing: tm})
			f.View(func(s *State) {
				for _, h := range tc.wantGone {
					if s.Hosts[h] != nil {
						t.Errorf("%s not expired", h)
					}
				}
				for _, h := range tc.wantKept {
					if s.Hosts[h] == nil {
						t.Errorf("%s expired", h)
					}
				}
				assertIndex(t, s)
			})
			if n := hostsEvents(f)["host_expired"]; n != len(tc.wantGone) {
				t.Errorf("%d host_expired events, want %d", n, len(tc.wantGone))
			}
			assertSnapshotRoundTrip(t, f)
		})
	}
}

// TestHostExpiryScansOncePerMinute: a host that went silent just after a
// scan waits for the next one.
func TestHostExpiryScansOncePerMinute(t *testing.T) {
	f := New()
	tm := timing
	tm.ExpireAfter = time.Hour
	fleet(t, f, "fra", 1, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	markStale(t, f, t0.Add(timing.AliveWithin+time.Second))
	apply(t, f, TypeTick, t0.Add(time.Hour+timing.AliveWithin+time.Second), Tick{Timing: tm}) // scans: not yet silent for > 1h
	apply(t, f, TypeTick, t0.Add(time.Hour+timing.AliveWithin+31*time.Second), Tick{Timing: tm})
	if hostsCount(f) != 1 {
		t.Fatal("expired between scans")
	}
	apply(t, f, TypeTick, t0.Add(time.Hour+timing.AliveWithin+time.Minute+time.Second), Tick{Timing: tm})
	if hostsCount(f) != 0 {
		t.Fatal("not expired at the next scan")
	}
}

// TestFleetLockPhantoms: with the shared agent token, 90 FleetLock ids
// registered by pre-reboot/steady-state must not let all 10 real hosts of
// a datacenter (slots 10 %, min-healthy 50 %) hold slots at once; once the
// phantoms are stale they count neither in the limit base nor as serving.
func TestFleetLockPhantoms(t *testing.T) {
	tm := timing
	tm.FleetLockFresh = 15 * time.Minute
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotPct: ptr(10), MinHealthyPct: ptr(50)})
	for i := range 90 {
		id := fmt.Sprintf("phantom-%d", i)
		hostsFleetLock(t, f, t0, "fra", id, true, tm)
		if r := hostsFleetLock(t, f, t0, "fra", id, false, tm); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	later := t0.Add(tm.FleetLockFresh + time.Minute)
	for i := range 10 {
		hostsBeat(t, f, later, "fra", fmt.Sprintf("fra-h%d", i), tm)
	}
	apply(t, f, TypeTick, later, Tick{Timing: tm})
	granted := 0
	for i := range 10 {
		if r := apply(t, f, TypeAcquire, later, Acquire{Datacenter: "fra", Host: fmt.Sprintf("fra-h%d", i), Owner: OwnerAgent, Timing: tm}); r.Err == nil {
			granted++
		}
	}
	if granted != 1 {
		t.Fatalf("%d of 10 real hosts granted a slot, want 1 (10%% of 10)", granted)
	}
	f.View(func(s *State) {
		v, _ := s.DatacenterView("fra", later, tm.AliveWithin)
		if v.EffectiveLimit != 1 || v.Serving != 9 {
			t.Errorf("view: limit %d serving %d, want 1 and 9", v.EffectiveLimit, v.Serving)
		}
		if hv, _ := s.HostView("phantom-0", later, tm.AliveWithin); hv.Alive {
			t.Error("a stale FleetLock host shows alive")
		}
	})
}

// TestFleetLockPhantomsInsideFreshness: 90 FleetLock ids made up by a
// holder of FleetLock access (pre-reboot, with or without steady-state)
// must not, while fresh, let the 10 real hosts of a datacenter (slots
// 10 %, min-healthy 50 %) hold more than one slot at once: an id that did
// not hold its lock across a reboot counts neither in the slot limit base
// nor as serving, takes no [hosts] max_per_dc place, has a bound of its
// own and expires after fresh_within.
func TestFleetLockPhantomsInsideFreshness(t *testing.T) {
	for _, steady := range []bool{true, false} {
		t.Run(fmt.Sprintf("steady-state %v", steady), func(t *testing.T) {
			tm := timing
			tm.FleetLockFresh, tm.MaxHostsPerDC = 15*time.Minute, 11
			f := New()
			fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotPct: ptr(10), MinHealthyPct: ptr(50)})
			limited := 0
			for i := range 90 {
				id := fmt.Sprintf("phantom-%d", i)
				if kind(hostsFleetLock(t, f, t0, "fra", id, true, tm)) == wire.KindHostLimit {
					limited++
				}
				if steady {
					if r := hostsFleetLock(t, f, t0, "fra", id, false, tm); r.Err != nil {
						t.Fatal(r.Err)
					}
				}
			}
			if limited != 90-MaxUnconfirmedFleetLockPerDC {
				t.Errorf("%d phantoms refused for the unconfirmed bound, want %d", limited, 90-MaxUnconfirmedFleetLockPerDC)
			}
			// Inside the freshness window.
			now := t0.Add(time.Minute)
			for i := range 10 {
				hostsBeat(t, f, now, "fra", fmt.Sprintf("fra-h%d", i), tm)
			}
			// A real new host still registers under max_per_dc 11.
			if r := hostsBeat(t, f, now, "fra", "fra-new", tm); r.Err != nil {
				t.Fatalf("real host refused beside the phantoms: %+v", r.Err)
			}
			granted := 0
			for i := range 10 {
				if r := apply(t, f, TypeAcquire, now, Acquire{Datacenter: "fra", Host: fmt.Sprintf("fra-h%d", i), Owner: OwnerAgent, Timing: tm}); r.Err == nil {
					granted++
				}
			}
			f.View(func(s *State) {
				if held := len(s.Datacenters["fra"].Slots); granted > 1 || held > 1 {
					t.Fatalf("%d of 10 real hosts granted a slot, %d slots held; want at most 1 (10%% of 11)", granted, held)
				}
				v, _ := s.DatacenterView("fra", now, tm.AliveWithin)
				if v.EffectiveLimit != 1 || v.Serving != 11-granted {
					t.Errorf("view: limit %d serving %d, want 1 and %d", v.EffectiveLimit, v.Serving, 11-granted)
				}
			})
			// Stale unconfirmed ids go at the first scan past fresh_within
			// (unless one holds its slot).
			apply(t, f, TypeTick, t0.Add(tm.FleetLockFresh+time.Minute), Tick{Timing: tm})
			f.View(func(s *State) {
				for id, h := range s.Hosts {
					if h.FleetLock && s.Datacenters["fra"].Slots[id] == nil {
						t.Fatalf("stale unconfirmed %s not expired", id)
					}
				}
			})
		})
	}
}

// TestFleetLockFreshness: a FleetLock-only host counts as serving while
// heard from (pre-reboot or steady-state) within FleetLockFresh.
func TestFleetLockFreshness(t *testing.T) {
	tm := timing
	tm.FleetLockFresh = 10 * time.Minute
	tests := []struct {
		name   string
		heard  time.Duration // when z1..z3 last spoke, after t0
		askAt  time.Duration
		want   string
		detail string
	}{
		// 4 FleetLock hosts at min-healthy 75 %: z0 asks, the others
		// serve only while fresh.
		{"all fresh", 0, 5 * time.Minute, "ok", ""},
		{"others stale: the base shrinks to the requester", 0, 11 * time.Minute, wire.KindCapacityFloor, "of 1 hosts"},
		{"others refreshed by steady-state", 9 * time.Minute, 11 * time.Minute, "ok", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "fra", 0, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			// Each host completes a real lock cycle (a reboot takes a
			// minute) and so is confirmed; then the floor goes up.
			start := hostsConfirmFleetLock(t, f, t0, "fra", tm, "z0", "z1", "z2", "z3")
			apply(t, f, TypeSetDatacenter, start, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{MinHealthyPct: ptr(75)}})
			for i := 1; i < 4; i++ {
				hostsFleetLock(t, f, start.Add(tc.heard), "fra", fmt.Sprintf("z%d", i), false, tm)
			}
			r := hostsFleetLock(t, f, start.Add(tc.askAt), "fra", "z0", true, tm)
			if kind(r) != tc.want || (tc.detail != "" && !strings.Contains(r.Err.Value, tc.detail)) {
				t.Fatalf("got %s (%+v), want %s %q", kind(r), r.Err, tc.want, tc.detail)
			}
		})
	}
}

// hostsConfirmFleetLock takes each FleetLock id through a lock cycle
// that spans a reboot (granted at one minute, steady-state the next), one
// after the other from start, and returns when the last one was done.
func hostsConfirmFleetLock(t testing.TB, f *FSM, start time.Time, dc string, tm Timing, ids ...string) time.Time {
	t.Helper()
	now := start
	for _, id := range ids {
		if r := hostsFleetLock(t, f, now, dc, id, true, tm); r.Err != nil {
			t.Fatalf("pre-reboot %s: %+v", id, r.Err)
		}
		now = now.Add(time.Minute)
		if r := hostsFleetLock(t, f, now, dc, id, false, tm); r.Err != nil {
			t.Fatalf("steady-state %s: %+v", id, r.Err)
		}
	}
	f.View(func(s *State) {
		for _, id := range ids {
			if !s.Hosts[id].FleetLockConfirmed {
				t.Fatalf("%s not confirmed by its lock cycle", id)
			}
		}
	})
	return now
}

// TestGossipViewQuorum: the floor takes the out-of-service count a quorum
// of fresh reporters confirm, clamped to the registered hosts; one host
// reporting a huge outage cannot halt its datacenter.
func TestGossipViewQuorum(t *testing.T) {
	tests := []struct {
		name  string
		views map[string]wire.DCView // reporter → view
		want  string
	}{
		{"no views", nil, "ok"},
		{"one liar alone", map[string]wire.DCView{"fra-h1": {Dead: 1 << 20}}, "ok"},
		{"one liar among honest", map[string]wire.DCView{"fra-h1": {Dead: 1 << 20}, "fra-h2": {Alive: 10}, "fra-h3": {Alive: 10}}, "ok"},
		{"two liars of five", map[string]wire.DCView{"fra-h1": {Dead: 1 << 20}, "fra-h2": {Rebooting: 9}, "fra-h3": {Alive: 10}, "fra-h4": {Alive: 10}, "fra-h5": {Alive: 10}}, "ok"},
		{"a quorum sees two down", map[string]wire.DCView{"fra-h1": {Alive: 8, Dead: 2}, "fra-h2": {Alive: 8, Draining: 1, Dead: 1}, "fra-h3": {Alive: 10}}, wire.KindCapacityFloor},
		{"two of two see two down", map[string]wire.DCView{"fra-h1": {Alive: 8, Dead: 2}, "fra-h2": {Alive: 8, Dead: 2}}, wire.KindCapacityFloor},
		{"a quorum reports a huge outage: clamped, still denied", map[string]wire.DCView{"fra-h1": {Dead: 1 << 20}, "fra-h2": {Dead: 1 << 20}}, wire.KindCapacityFloor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: ptr(80)})
			for host, v := range tc.views {
				apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: "fra", Phase: wire.PhaseIdle, View: &v}})
			}
			if r := acquire(t, f, t0, "fra", "fra-h0"); kind(r) != tc.want {
				t.Fatalf("got %s (%+v), want %s", kind(r), r.Err, tc.want)
			}
		})
	}
}

// TestGossipViewsGoStale: views of hosts whose heartbeat is no longer
// fresh do not count.
func TestGossipViewsGoStale(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: ptr(60)})
	for _, h := range []string{"fra-h1", "fra-h2", "fra-h3"} {
		apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: h, Datacenter: "fra", Phase: wire.PhaseIdle, View: &wire.DCView{Dead: 5}}})
	}
	if r := acquire(t, f, t0, "fra", "fra-h0"); kind(r) != wire.KindCapacityFloor {
		t.Fatalf("fresh views: %s, want %s", kind(r), wire.KindCapacityFloor)
	}
	later := t0.Add(timing.AliveWithin + time.Second)
	for i := 0; i < 10; i++ {
		if i < 1 || i > 3 {
			hostsBeat(t, f, later, "fra", fmt.Sprintf("fra-h%d", i), timing)
		}
	}
	markStale(t, f, later)
	// 7 serving by heartbeat, floor 6: the silent hosts' views no longer
	// count.
	if r := acquire(t, f, later, "fra", "fra-h0"); kind(r) != "ok" {
		t.Fatalf("stale views: %s (%+v), want ok", kind(r), r.Err)
	}
}

// TestHealthReportsCountOncePerGrant: an unhealthy report counts against
// the failure budget only with the fencing token of the host's latest
// grant, and once per grant; reports without a token never count.
func TestHealthReportsCountOncePerGrant(t *testing.T) {
	type report struct {
		host  string
		token string // "held": the host's token; "other": another host's; "": none; "old": the host's previous grant
		want  string
	}
	tests := []struct {
		name         string
		reports      []report
		wantFailures int
	}{
		{"tokenless reports never count", []report{{"fra-h5", "", "ok"}, {"fra-h5", "", "ok"}, {"fra-h6", "", "ok"}, {"fra-h7", "", "ok"}}, 0},
		{"the holder counts once", []report{{"fra-h0", "held", "ok"}, {"fra-h0", "held", "ok"}, {"fra-h0", "held", "ok"}}, 1},
		{"another host's token is stale", []report{{"fra-h5", "other", wire.KindStaleToken}}, 0},
		{"two holders count twice", []report{{"fra-h0", "held", "ok"}, {"fra-h1", "held", "ok"}}, 2},
		{"a released grant still counts, once", []report{{"fra-h2", "old", "ok"}, {"fra-h2", "old", "ok"}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(3), FailureBudget: ptr(3)})
			tokens := map[string]uint64{}
			for _, h := range []string{"fra-h0", "fra-h1", "fra-h2"} {
				r := acquire(t, f, t0, "fra", h)
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				tokens[h] = r.Slot.Token
			}
			if r := apply(t, f, TypeRelease, t0, SlotRelease{Datacenter: "fra", Host: "fra-h2", Token: tokens["fra-h2"]}); r.Err != nil {
				t.Fatal(r.Err)
			}
			for i, rep := range tc.reports {
				var tok uint64
				switch rep.token {
				case "held", "old":
					tok = tokens[rep.host]
				case "other":
					tok = tokens["fra-h0"]
				}
				r := apply(t, f, TypeHealth, t0, Health{wire.HealthReport{HostID: rep.host, Datacenter: "fra", Token: tok, Healthy: false, Detail: "boom"}})
				if kind(r) != rep.want {
					t.Fatalf("report %d: %s (%+v), want %s", i, kind(r), r.Err, rep.want)
				}
				if i == len(tc.reports)/2 {
					// A snapshot in the middle carries what was counted.
					f = hostsRestored(t, f)
				}
			}
			f.View(func(s *State) {
				if got := s.Datacenters["fra"].Policy.Failures; got != tc.wantFailures {
					t.Fatalf("%d failures counted, want %d", got, tc.wantFailures)
				}
			})
		})
	}
}

// hostsRestored returns a new FSM restored from a snapshot of f.
func hostsRestored(t *testing.T, f *FSM) *FSM {
	t.Helper()
	return restoredCopy(t, f)
}

// TestHostStateSurvivesSnapshot: expiry bookkeeping, FleetLock freshness
// and grant tokens come back from a snapshot and keep deciding alike.
func TestHostStateSurvivesSnapshot(t *testing.T) {
	tm := timing
	tm.FleetLockFresh, tm.ExpireAfter = 10*time.Minute, time.Hour
	f := New()
	fleet(t, f, "fra", 4, wire.DatacenterUpdate{SlotPct: ptr(50), MinHealthyPct: ptr(80)})
	heard := hostsConfirmFleetLock(t, f, t0, "fra", tm, "z1")
	apply(t, f, TypeTick, t0.Add(time.Minute), Tick{Timing: tm})
	g := hostsRestored(t, f)
	assertSnapshotRoundTrip(t, g)
	f.View(func(a *State) {
		g.View(func(b *State) {
			if !a.ExpiryScanned.Equal(b.ExpiryScanned) || a.FleetLockFresh != b.FleetLockFresh || b.FleetLockFresh != tm.FleetLockFresh {
				t.Fatalf("scan %v/%v fresh %v/%v", a.ExpiryScanned, b.ExpiryScanned, a.FleetLockFresh, b.FleetLockFresh)
			}
			if h := b.Hosts["z1"]; h == nil || !h.FleetLock || !h.FleetLockConfirmed || !h.LastHeartbeat.Equal(heard) || !h.Registered.Equal(t0) || h.LastToken == 0 {
				t.Fatalf("restored z1: %+v", b.Hosts["z1"])
			}
		})
	})
	// 4 agents and z1 (fresh for 10 min) at min-healthy 80 %: a grant
	// leaves 4 of 5 serving; once z1 is stale, 3 of 4 would be too few.
	for _, at := range []struct {
		after time.Duration
		want  string
	}{{5 * time.Minute, "ok"}, {12 * time.Minute, wire.KindCapacityFloor}} {
		for _, x := range []*FSM{hostsRestored(t, f), hostsRestored(t, g)} {
			now := t0.Add(at.after)
			for i := range 4 {
				hostsBeat(t, x, now, "fra", fmt.Sprintf("fra-h%d", i), tm)
			}
			r := apply(t, x, TypeAcquire, now, Acquire{Datacenter: "fra", Host: "fra-h0", Owner: OwnerAgent, Timing: tm})
			if kind(r) != at.want {
				t.Fatalf("after %s: got %s (%+v), want %s", at.after, kind(r), r.Err, at.want)
			}
		}
	}
}

func hostsBoolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestHostsFromOlderSnapshotDoNotExpireAtOnce: hosts restored from a
// snapshot written before hosts recorded when they registered or were
// last heard from (FleetLock hosts without a heartbeat time, agents in
// general) are taken as heard from at the first scan, and expire only
// after ExpireAfter (agents) or FleetLockFresh (unconfirmed FleetLock ids)
// from then.
func TestHostsFromOlderSnapshotDoNotExpireAtOnce(t *testing.T) {
	tm := timing
	tm.ExpireAfter = time.Hour
	f := New()
	fleet(t, f, "fra", 2, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	hostsFleetLock(t, f, t0, "fra", "z1", true, tm)
	hostsFleetLock(t, f, t0, "fra", "z1", false, tm)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	// The older version's snapshot: no registered time, no heartbeat time.
	var raw map[string]any
	if err := json.Unmarshal(sink.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, h := range raw["hosts"].(map[string]any) {
		h := h.(map[string]any)
		delete(h, "registered")
		h["last_heartbeat"] = time.Time{}
	}
	delete(raw, "expiry_scanned")
	old, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	upgraded := t0.Add(30 * 24 * time.Hour)
	for _, tc := range []struct {
		name     string
		tickAt   time.Duration // after the upgrade
		wantKept int
	}{
		{"first tick after the upgrade", 0, 3},
		{"unconfirmed fleetlock id after fresh_within", 16 * time.Minute, 2},
		{"agents after expire_after", time.Hour + time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			if err := g.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
				t.Fatal(err)
			}
			// The new leader marks the agents silent once it has not
			// heard them for AliveWithin.
			markStale(t, g, upgraded)
			apply(t, g, TypeTick, upgraded, Tick{Timing: tm})
			if tc.tickAt > 0 {
				apply(t, g, TypeTick, upgraded.Add(tc.tickAt), Tick{Timing: tm})
			}
			if n := hostsCount(g); n != tc.wantKept {
				t.Fatalf("%d hosts kept, want %d (events %v)", n, tc.wantKept, hostsEvents(g))
			}
		})
	}
}

// TestExpiryScanReadsCandidates checks that the expiry scan, which by the
// flag rule reads only FleetLock-only hosts and silent agents, finds what
// a walk over every host finds: two state machines apply the same
// commands, one of them walking every host at every scan.
func TestExpiryScanReadsCandidates(t *testing.T) {
	tm := timing
	tm.ExpireAfter = time.Hour
	tm.FleetLockFresh = 20 * time.Minute
	walk, scan := New(), New()
	both := func(typ Type, at time.Time, p any) {
		t.Helper()
		for _, f := range []*FSM{walk, scan} {
			if f == walk && typ == TypeTick {
				f.View(func(s *State) { s.expiryWalk = true })
			}
			apply(t, f, typ, at, p)
		}
	}
	dcs := wire.DatacenterUpdate{SlotLimit: ptr(2)}
	for _, dc := range []string{"fra", "ams"} {
		both(TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: dcs})
		for i := range 6 {
			both(TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("%s-h%d", dc, i), Datacenter: dc, Phase: wire.PhaseIdle}, Timing: tm})
		}
	}
	both(TypeAcquire, t0, Acquire{Datacenter: "fra", Host: "z1", Owner: OwnerFleetLock, Timing: tm}) // unconfirmed, holds
	both(TypeAcquire, t0, Acquire{Datacenter: "ams", Host: "z2", Owner: OwnerFleetLock, Timing: tm})
	both(TypeRelease, t0, SlotRelease{Datacenter: "ams", Host: "z2", Owner: OwnerFleetLock}) // unconfirmed, free
	both(TypeAcquire, t0, Acquire{Datacenter: "ams", Host: "ams-h5", Owner: OwnerAgent, Timing: tm})
	steps := []struct {
		after time.Duration
		typ   Type
		p     any
	}{
		{time.Minute, TypeMarkSilent, MarkSilent{Hosts: []string{"fra-h0", "fra-h1", "ams-h0", "ams-h5"}}},
		{10 * time.Minute, TypeMarkSilent, MarkSilent{Hosts: []string{"fra-h2"}}},
		{15 * time.Minute, TypeHeartbeat, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "fra-h1", Datacenter: "fra", Phase: wire.PhaseIdle}, Timing: tm}},
		{30 * time.Minute, TypeMarkSilent, MarkSilent{Hosts: []string{"ams-h1"}}},
	}
	at := t0
	next := 0
	for m := 0; m <= 150; m++ {
		at = t0.Add(time.Duration(m) * time.Minute)
		for next < len(steps) && steps[next].after <= time.Duration(m)*time.Minute {
			both(steps[next].typ, at, steps[next].p)
			next++
		}
		both(TypeTick, at, Tick{Timing: tm})
		var w, s []string
		walk.View(func(st *State) { w = sortedKeys(st.Hosts) })
		scan.View(func(st *State) { s = sortedKeys(st.Hosts) })
		if !slices.Equal(w, s) {
			t.Fatalf("minute %d: hosts %v after scans, %v after walks", m, s, w)
		}
	}
	a, b := snapshotBytes(t, walk), snapshotBytes(t, scan)
	if !bytes.Equal(a, b) {
		t.Fatalf("the states differ:\nwalk %s\nscan %s", a, b)
	}
	var left []string
	scan.View(func(st *State) { left = sortedKeys(st.Hosts) })
	// Expired: the silent agents not holding a slot, the free unconfirmed
	// FleetLock id. Kept: the agents heard, the holders.
	if want := []string{"ams-h2", "ams-h3", "ams-h4", "ams-h5", "fra-h1", "fra-h3", "fra-h4", "fra-h5", "z1"}; !slices.Equal(left, want) {
		t.Errorf("hosts left %v, want %v", left, want)
	}
}

// snapshotBytes is f's snapshot.
func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}
