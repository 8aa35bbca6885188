package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

var (
	t0     = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // 04:00 in Berlin: inside a 02:00-05:00 window
	timing = Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: 30 * time.Second}
)

func ptr[T any](v T) *T { return &v }

// apply encodes and applies one command at time now.
func apply(t testing.TB, f *FSM, typ Type, now time.Time, payload any) Result {
	t.Helper()
	data, err := NewCommand(typ, now, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Data: data}).(Result)
}

func kind(r Result) string {
	if r.Err == nil {
		return "ok"
	}
	return r.Err.Kind
}

// fleet sets up datacenter dc with n hosts that just sent heartbeats.
func fleet(t testing.TB, f *FSM, dc string, n int, u wire.DatacenterUpdate) {
	t.Helper()
	if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: u}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for i := 0; i < n; i++ {
		hb := Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("%s-h%d", dc, i), Datacenter: dc, Kernel: "6.12.85", Phase: wire.PhaseIdle}}
		if r := apply(t, f, TypeHeartbeat, t0, hb); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func acquire(t testing.TB, f *FSM, now time.Time, dc, host string) Result {
	t.Helper()
	return apply(t, f, TypeAcquire, now, Acquire{Datacenter: dc, Host: host, Owner: OwnerAgent, Timing: timing})
}

func TestSlotLifecycle(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(2), MinHealthyPct: ptr(70), Window: ptr("Mon-Sun 02:00-05:00 Europe/Berlin"), FailureBudget: ptr(2)})
	steps := []struct {
		name string
		do   func() Result
		want string
		tok  uint64 // expected token when granted
	}{
		{"grant-1", func() Result { return acquire(t, f, t0, "fra", "fra-h0") }, "ok", 1},
		{"recursive-same-token", func() Result { return acquire(t, f, t0, "fra", "fra-h0") }, "ok", 1},
		{"grant-2", func() Result { return acquire(t, f, t0, "fra", "fra-h1") }, "ok", 2},
		{"semaphore-full", func() Result { return acquire(t, f, t0, "fra", "fra-h2") }, wire.KindSemaphoreFull, 0},
		{"unknown-host", func() Result { return acquire(t, f, t0, "fra", "nope") }, wire.KindUnknownHost, 0},
		{"unknown-dc", func() Result { return acquire(t, f, t0, "ams", "fra-h3") }, wire.KindUnknownHost, 0},
		{"renew-stale-token", func() Result {
			return apply(t, f, TypeRenew, t0, Renew{Datacenter: "fra", Host: "fra-h0", Token: 2, Timing: timing})
		}, wire.KindStaleToken, 0},
		{"renew", func() Result {
			return apply(t, f, TypeRenew, t0.Add(10*time.Second), Renew{Datacenter: "fra", Host: "fra-h0", Token: 1, Timing: timing})
		}, "ok", 1},
		{"release-not-holder", func() Result {
			return apply(t, f, TypeRelease, t0, SlotRelease{Datacenter: "fra", Host: "fra-h5", Token: 1})
		}, wire.KindNotHolder, 0},
		{"release", func() Result {
			return apply(t, f, TypeRelease, t0, SlotRelease{Datacenter: "fra", Host: "fra-h0", Token: 1})
		}, "ok", 1},
		{"token-never-reused", func() Result { return acquire(t, f, t0, "fra", "fra-h0") }, "ok", 3},
		{"outside-window", func() Result { return acquire(t, f, t0.Add(6*time.Hour), "fra", "fra-h3") }, wire.KindOutsideWindow, 0},
		{"expedite-ignores-window-not-limit", func() Result {
			return apply(t, f, TypeAcquire, t0.Add(6*time.Hour), Acquire{Datacenter: "fra", Host: "fra-h3", Owner: OwnerAgent, Expedite: true, Timing: timing})
		}, wire.KindSemaphoreFull, 0},
	}
	for _, s := range steps {
		r := s.do()
		if kind(r) != s.want {
			t.Fatalf("%s: got %s (%+v), want %s", s.name, kind(r), r.Err, s.want)
		}
		if s.tok != 0 && (r.Slot == nil || r.Slot.Token != s.tok) {
			t.Fatalf("%s: slot %+v, want token %d", s.name, r.Slot, s.tok)
		}
	}
}

func TestCapacityFloorCountsDeadHosts(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: ptr(80)})
	// Hosts 8 and 9 stop sending heartbeats; the rest keep going.
	later := t0.Add(time.Minute)
	for i := 0; i < 8; i++ {
		apply(t, f, TypeHeartbeat, later, Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("fra-h%d", i), Datacenter: "fra", Phase: wire.PhaseIdle}})
	}
	// The leader marks the two silent.
	if got := markStale(t, f, later); len(got) != 2 {
		t.Fatalf("marked %v silent, want fra-h8 and fra-h9", got)
	}
	// 8 serving; floor 8: granting would leave 7.
	if r := acquire(t, f, later, "fra", "fra-h0"); kind(r) != wire.KindCapacityFloor {
		t.Fatalf("got %s, want capacity floor: %+v", kind(r), r.Err)
	}
	// A dead host asking counts as already out of service: 8 stay.
	if r := acquire(t, f, later, "fra", "fra-h9"); kind(r) != "ok" {
		t.Fatalf("dead host: got %s, want ok: %+v", kind(r), r.Err)
	}
}

func TestLostHolderPausesDatacenter(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 4, wire.DatacenterUpdate{SlotLimit: ptr(2)})
	r := acquire(t, f, t0, "fra", "fra-h0")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	// Lease runs out but the deadline has not passed: the slot stays held.
	apply(t, f, TypeTick, t0.Add(5*time.Minute), Tick{})
	f.View(func(s *State) {
		if sl := s.Datacenters["fra"].Slots["fra-h0"]; sl == nil || sl.Lost {
			t.Fatalf("slot before deadline: %+v", sl)
		}
	})
	apply(t, f, TypeTick, t0.Add(16*time.Minute), Tick{})
	f.View(func(s *State) {
		dc := s.Datacenters["fra"]
		if sl := dc.Slots["fra-h0"]; sl == nil || !sl.Lost {
			t.Fatalf("slot after deadline: %+v", sl)
		}
		if !dc.Policy.Paused {
			t.Fatal("datacenter not paused after a lost host")
		}
	})
	if r := apply(t, f, TypeRenew, t0.Add(17*time.Minute), Renew{Datacenter: "fra", Host: "fra-h0", Token: r.Slot.Token, Timing: timing}); kind(r) != wire.KindStaleToken {
		t.Fatalf("renew of lost slot: %s", kind(r))
	}
	if r := acquire(t, f, t0.Add(17*time.Minute), "fra", "fra-h1"); kind(r) != wire.KindPaused {
		t.Fatalf("grant in paused dc: %s", kind(r))
	}
	if r := apply(t, f, TypeForceRelease, t0.Add(18*time.Minute), ForceRelease{Datacenter: "fra", Host: "fra-h0", Reason: "checked: host is dead"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	apply(t, f, TypeResume, t0.Add(18*time.Minute), Resume{Name: "fra"})
	for i := 1; i < 4; i++ { // fresh heartbeats
		apply(t, f, TypeHeartbeat, t0.Add(18*time.Minute), Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("fra-h%d", i), Datacenter: "fra"}})
	}
	if r := acquire(t, f, t0.Add(18*time.Minute), "fra", "fra-h1"); r.Err != nil {
		t.Fatalf("grant after release+resume: %+v", r.Err)
	}
}

func TestFailureBudgetPauses(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(3), FailureBudget: ptr(2)})
	for i, want := range []bool{false, true} {
		host := fmt.Sprintf("fra-h%d", i)
		r := acquire(t, f, t0, "fra", host)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		apply(t, f, TypeHealth, t0, Health{wire.HealthReport{HostID: host, Datacenter: "fra", Token: r.Slot.Token, Healthy: false, Detail: "unit foo failed"}})
		var paused bool
		f.View(func(s *State) { paused = s.Datacenters["fra"].Policy.Paused })
		if paused != want {
			t.Fatalf("after %d failures paused=%v, want %v", i+1, paused, want)
		}
	}
}

func TestFleetLockSemantics(t *testing.T) {

	f := New()
	fleet(t, f, "fra", 0, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	lock := func(id string) Result {
		return apply(t, f, TypeAcquire, t0, Acquire{Datacenter: "fra", Host: id, Owner: OwnerFleetLock, Timing: timing})
	}
	unlock := func(id string) Result {
		return apply(t, f, TypeRelease, t0, SlotRelease{Datacenter: "fra", Host: id, Owner: OwnerFleetLock})
	}
	for _, s := range []struct {
		name string
		r    Result
		want string
	}{
		{"lock-a", lock("a"), "ok"},
		{"relock-a", lock("a"), "ok"},
		{"lock-b-full", lock("b"), wire.KindSemaphoreFull},
		{"unlock-b-not-holder-is-ok", unlock("b"), "ok"},
		{"unlock-a", unlock("a"), "ok"},
		{"lock-b", lock("b"), "ok"},
		{"unknown-group", apply(t, f, TypeAcquire, t0, Acquire{Datacenter: "nope", Host: "c", Owner: OwnerFleetLock, Timing: timing}), wire.KindUnknownDC},
	} {
		if kind(s.r) != s.want {
			t.Fatalf("%s: %s (%+v), want %s", s.name, kind(s.r), s.r.Err, s.want)
		}
	}
	f.View(func(s *State) {
		if _, ok := s.Hosts["c"]; ok {
			t.Error("a refused lock for an unknown group registered the host")
		}
	})
}

// TestRandomCommandsKeepInvariants applies random command sequences and
// checks after every step: no datacenter has more holders than its limit
// allowed at grant time, fencing tokens strictly increase per datacenter,
// and a snapshot restores to an identical state.
func TestRandomCommandsKeepInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		f := New()
		dcs := []string{"a", "b", "c"}
		for _, dc := range dcs {
			fleet(t, f, dc, 3+rng.IntN(8), wire.DatacenterUpdate{SlotLimit: ptr(1 + rng.IntN(3)), MinHealthyPct: ptr(rng.IntN(80))})
		}
		lastToken := map[string]uint64{}
		held := map[string]map[string]uint64{} // dc → host → token (our model of grants)
		for _, dc := range dcs {
			held[dc] = map[string]uint64{}
		}
		now := t0
		for step := 0; step < 400; step++ {
			now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
			dc := dcs[rng.IntN(len(dcs))]
			host := fmt.Sprintf("%s-h%d", dc, rng.IntN(10))
			switch rng.IntN(7) {
			case 0, 1:
				r := acquire(t, f, now, dc, host)
				if r.Err == nil {
					if old, ok := held[dc][host]; ok {
						if r.Slot.Token != old {
							t.Fatalf("seed %d: recursive acquire changed token %d → %d", seed, old, r.Slot.Token)
						}
						break
					}
					if r.Slot.Token <= lastToken[dc] {
						t.Fatalf("seed %d: token %d not above %d", seed, r.Slot.Token, lastToken[dc])
					}
					lastToken[dc] = r.Slot.Token
					held[dc][host] = r.Slot.Token
					var limit, holders int
					f.View(func(s *State) {
						v, _ := s.DatacenterView(dc, now, timing.AliveWithin)
						limit, holders = v.EffectiveLimit, v.SlotsHeld
					})
					if holders > limit {
						t.Fatalf("seed %d step %d: %d holders > limit %d in %s", seed, step, holders, limit, dc)
					}
				}
			case 2:
				tok := held[dc][host]
				if rng.IntN(4) == 0 {
					tok += 1 // sometimes stale
				}
				r := apply(t, f, TypeRelease, now, SlotRelease{Datacenter: dc, Host: host, Token: tok})
				if r.Err == nil {
					delete(held[dc], host)
				}
			case 3:
				apply(t, f, TypeRenew, now, Renew{Datacenter: dc, Host: host, Token: held[dc][host], Timing: timing})
			case 4:
				if rng.IntN(20) == 0 { // a host moves datacenter
					dc = dcs[rng.IntN(len(dcs))]
				}
				apply(t, f, TypeHeartbeat, now, Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle}})
			case 5:
				apply(t, f, TypeTick, now, Tick{})
			case 6:
				if rng.IntN(10) == 0 {
					apply(t, f, TypeSetDatacenter, now, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(1 + rng.IntN(3))}})
				}
				if rng.IntN(10) == 1 { // an operator removes a host, sometimes by force
					if r := apply(t, f, TypeRemoveHost, now, RemoveHost{Host: host, Force: rng.IntN(2) == 0, Reason: "decommissioned"}); r.Err == nil {
						for _, h := range held {
							delete(h, host)
						}
					}
				}
			}
		}
		assertSnapshotRoundTrip(t, f)
		f.View(func(s *State) { assertIndex(t, s) })
	}
}

// assertIndex checks the per-datacenter host index against Hosts.
func assertIndex(t *testing.T, s *State) {
	t.Helper()
	n := 0
	for dc, hosts := range s.byDC {
		for id, h := range hosts {
			if s.Hosts[id] != h || h.Datacenter != dc {
				t.Fatalf("index: %s under %s, host says %s", id, dc, h.Datacenter)
			}
			n++
		}
	}
	if n != len(s.Hosts) {
		t.Fatalf("index holds %d hosts, state %d", n, len(s.Hosts))
	}
}

// restoredCopy returns a new FSM restored from a streamed snapshot of f.
func restoredCopy(t testing.TB, f *FSM) *FSM {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return g
}

// assertSnapshotRoundTrip checks that a state restored from a snapshot of
// f equals f's and returns it.
func assertSnapshotRoundTrip(t *testing.T, f *FSM) *FSM {
	t.Helper()
	g := restoredCopy(t, f)
	var a, b []byte
	f.View(func(s *State) { a, _ = json.Marshal(s) })
	g.View(func(s *State) { b, _ = json.Marshal(s); assertIndex(t, s) })
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	return g
}

func TestRestoreRejectsGarbage(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 2, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("{not json")))); err == nil {
		t.Fatal("garbage snapshot restored")
	}
	f.View(func(s *State) {
		if len(s.Hosts) != 2 {
			t.Fatalf("failed restore changed the state: %d hosts", len(s.Hosts))
		}
	})
}

func TestTimeNeverGoesBackwards(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 2, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	r := acquire(t, f, t0.Add(time.Hour), "fra", "fra-h0")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	// A new leader with a slow clock stamps an earlier time: deadlines
	// are still measured from the latest time seen.
	apply(t, f, TypeTick, t0, Tick{})
	f.View(func(s *State) {
		if !s.Now.Equal(t0.Add(time.Hour)) {
			t.Fatalf("state time went back to %s", s.Now)
		}
	})
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

// TestGossipViewTightensFloor: every host heartbeats (the coordinator sees
// all ten serving), but a quorum of agents' gossip views shows two of them
// down; the floor then refuses the grant. Stale views no longer count.
func TestGossipViewTightensFloor(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 10, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: ptr(80)})
	for _, h := range []string{"fra-h1", "fra-h2", "fra-h3"} {
		apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: h, Datacenter: "fra", Phase: wire.PhaseIdle,
			View: &wire.DCView{Alive: 8, Dead: 2}}})
	}
	if r := acquire(t, f, t0, "fra", "fra-h0"); kind(r) != wire.KindCapacityFloor || !strings.Contains(r.Err.Value, "gossip view") {
		t.Fatalf("with the gossip view: %s %+v, want a capacity floor denial naming it", kind(r), r.Err)
	}
	// Everyone heartbeats again later, without a view; the old views are
	// gone.
	later := t0.Add(timing.AliveWithin + time.Second)
	for i := 0; i < 10; i++ {
		apply(t, f, TypeHeartbeat, later, Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("fra-h%d", i), Datacenter: "fra", Phase: wire.PhaseIdle}})
	}
	if r := acquire(t, f, later, "fra", "fra-h0"); kind(r) != "ok" {
		t.Fatalf("after the views went away: %s %+v", kind(r), r.Err)
	}
}

func TestGossipSeeds(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 0, wire.DatacenterUpdate{SlotLimit: ptr(1)})
	beat := func(host, dc, addr string) Result {
		return apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: dc, GossipAddr: addr}})
	}
	if r := beat("h0", "fra", "10.0.0.1:7946"); len(r.GossipSeeds) != 0 {
		t.Fatalf("first host got seeds %v", r.GossipSeeds)
	}
	for i := 1; i < 8; i++ {
		beat(fmt.Sprintf("h%d", i), "fra", fmt.Sprintf("10.0.0.%d:7946", i+1))
	}
	beat("x0", "ams", "10.1.0.1:7946")
	r := beat("h3", "fra", "10.0.0.4:7946")
	if len(r.GossipSeeds) != 5 {
		t.Fatalf("seeds %v, want 5", r.GossipSeeds)
	}
	for _, a := range r.GossipSeeds {
		if a == "10.0.0.4:7946" || strings.HasPrefix(a, "10.1.") {
			t.Fatalf("seeds %v include the host itself or another datacenter", r.GossipSeeds)
		}
	}
	if r := beat("h9", "fra", ""); len(r.GossipSeeds) != 0 {
		t.Fatalf("a host without gossip got seeds %v", r.GossipSeeds)
	}
}

// TestExecMatchesApply: the typed path (the simulator's) and the encoded
// path (Raft's) reach the same state.
func TestExecMatchesApply(t *testing.T) {
	a, b := New(), New()
	steps := []struct {
		typ     Type
		payload any
	}{
		{TypeSetDatacenter, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}}},
		{TypeHeartbeat, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra", Phase: wire.PhaseIdle}}},
		{TypeHeartbeat, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h2", Datacenter: "fra", Phase: wire.PhaseIdle}}},
		{TypeAcquire, Acquire{Datacenter: "fra", Host: "h1", Owner: OwnerAgent, Timing: timing}},
		{TypeAcquire, Acquire{Datacenter: "fra", Host: "h2", Owner: OwnerAgent, Timing: timing}},
		{TypeRelease, SlotRelease{Datacenter: "fra", Host: "h1", Token: 1, Owner: OwnerAgent}},
		{TypeTick, Tick{Timing: timing}},
	}
	for i, st := range steps {
		now := t0.Add(time.Duration(i) * time.Second)
		ra := apply(t, a, st.typ, now, st.payload)
		rb := b.ExecType(st.typ, now, st.payload)
		if kind(ra) != kind(rb) {
			t.Fatalf("step %d: apply %s, exec %s", i, kind(ra), kind(rb))
		}
	}
	var sa, sb []byte
	a.View(func(s *State) { sa, _ = json.Marshal(s) })
	b.View(func(s *State) { sb, _ = json.Marshal(s) })
	if string(sa) != string(sb) {
		t.Fatalf("states differ:\n%s\n%s", sa, sb)
	}
}
