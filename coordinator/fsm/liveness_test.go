package fsm

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// markStale does what the leader does outside its liveness grace: it
// marks silent every agent host whose last heartbeat is older than
// timing.AliveWithin at now (in these tests every heartbeat is applied, so
// LastHeartbeat is when the host was last heard). It returns the hosts it
// named.
func markStale(t testing.TB, f *FSM, now time.Time) []string {
	t.Helper()
	var ids []string
	f.View(func(s *State) {
		for _, id := range sortedKeys(s.Hosts) {
			h := s.Hosts[id]
			if !h.FleetLock && !h.Silent && now.Sub(h.LastHeartbeat) > timing.AliveWithin {
				ids = append(ids, id)
			}
		}
	})
	if len(ids) > 0 {
		if r := apply(t, f, TypeMarkSilent, now, MarkSilent{Hosts: ids, Timing: timing}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return ids
}

// leaderMarksSilent is markStale unless the leader of term is in its
// liveness grace at now (a tick of a new term starts one).
func leaderMarksSilent(t testing.TB, f *FSM, now time.Time, term uint64) {
	t.Helper()
	grace := false
	f.View(func(s *State) {
		newTerm := term != 0 && term != s.Grace.Term
		grace = newTerm || (s.Grace.Term != 0 && now.Sub(s.Grace.Since) <= timing.livenessGrace())
	})
	if !grace {
		markStale(t, f, now)
		// The term's first pass after the grace settles it, as the
		// store's leader does.
		var settle uint64
		f.View(func(s *State) {
			if s.Grace.Term != 0 && s.LivenessSettled < s.Grace.Term {
				settle = s.Grace.Term
			}
		})
		if settle != 0 {
			if r := apply(t, f, TypeMarkSilent, now, MarkSilent{Term: settle, Timing: timing}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
}

func silent(f *FSM, id string) bool {
	var out bool
	f.View(func(s *State) { out = s.Hosts[id] != nil && s.Hosts[id].Silent })
	return out
}

// TestDurableChange: only a heartbeat that changes what the state holds
// goes through Raft.
func TestDurableChange(t *testing.T) {
	pol := []wire.PolicyStatus{{ID: "copy-fail", Version: 2, State: "enforcing"}}
	base := wire.Heartbeat{HostID: "fra-h0", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle,
		BootID: "b1", Policies: pol, GossipAddr: "10.0.0.1:7946", View: &wire.DCView{Alive: 9, Dead: 1}}
	tests := []struct {
		name   string
		setup  func(t *testing.T, f *FSM)
		change func(hb *wire.Heartbeat)
		want   string
	}{
		{"unchanged", nil, func(*wire.Heartbeat) {}, ""},
		{"view alive count only", nil, func(hb *wire.Heartbeat) { hb.View = &wire.DCView{Alive: 8, Dead: 1} }, ""},
		{"view shifts dead to draining", nil, func(hb *wire.Heartbeat) { hb.View = &wire.DCView{Alive: 9, Draining: 1} }, ""},
		{"new host", nil, func(hb *wire.Heartbeat) { hb.HostID = "fra-h9" }, "new host"},
		{"unknown datacenter", nil, func(hb *wire.Heartbeat) { hb.Datacenter = "nowhere" }, "unknown datacenter"},
		{"datacenter move", nil, func(hb *wire.Heartbeat) { hb.Datacenter = "ams" }, "datacenter move"},
		{"phase", nil, func(hb *wire.Heartbeat) { hb.Phase = wire.PhaseDraining }, "phase"},
		{"kernel line", nil, func(hb *wire.Heartbeat) { hb.KernelLine = "6.18" }, "kernel line"},
		{"kernel", nil, func(hb *wire.Heartbeat) { hb.Kernel = "6.12.90" }, "kernel"},
		{"boot id", nil, func(hb *wire.Heartbeat) { hb.BootID = "b2" }, "boot id"},
		{"policy version", nil, func(hb *wire.Heartbeat) {
			hb.Policies = []wire.PolicyStatus{{ID: "copy-fail", Version: 3, State: "enforcing"}}
		}, "policy states"},
		{"policy state", nil, func(hb *wire.Heartbeat) {
			hb.Policies = []wire.PolicyStatus{{ID: "copy-fail", Version: 2, State: "auditing"}}
		}, "policy states"},
		{"policy gone", nil, func(hb *wire.Heartbeat) { hb.Policies = nil }, "policy states"},
		{"gossip address", nil, func(hb *wire.Heartbeat) { hb.GossipAddr = "10.0.0.2:7946" }, "gossip address"},
		{"view out of service", nil, func(hb *wire.Heartbeat) { hb.View = &wire.DCView{Alive: 8, Dead: 1, Rebooting: 1} }, "gossip view"},
		{"view gone", nil, func(hb *wire.Heartbeat) { hb.View = nil }, "gossip view"},
		{"silent host", func(t *testing.T, f *FSM) {
			apply(t, f, TypeMarkSilent, t0.Add(time.Minute), MarkSilent{Hosts: []string{"fra-h0"}, Timing: timing})
		}, func(*wire.Heartbeat) {}, "silent host heard again"},
		{"unhealthy host reports idle", func(t *testing.T, f *FSM) {
			apply(t, f, TypeHealth, t0, Health{HealthReport: wire.HealthReport{HostID: "fra-h0", Datacenter: "fra", Detail: "x"}})
		}, func(*wire.Heartbeat) {}, "clears unhealthy"},
		{"unhealthy host still unhealthy", func(t *testing.T, f *FSM) {
			hb := base
			hb.Phase = wire.PhaseUnhealthy
			apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: hb})
			apply(t, f, TypeHealth, t0, Health{HealthReport: wire.HealthReport{HostID: "fra-h0", Datacenter: "fra", Detail: "x"}})
		}, func(hb *wire.Heartbeat) { hb.Phase = wire.PhaseUnhealthy }, ""},
		{"fleetlock host starts heartbeating", func(t *testing.T, f *FSM) {
			hostsFleetLock(t, f, t0, "fra", "z1", true, timing)
		}, func(hb *wire.Heartbeat) { hb.HostID = "z1" }, "FleetLock host heartbeats"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			fleet(t, f, "ams", 0, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			fleet(t, f, "fra", 0, wire.DatacenterUpdate{SlotLimit: ptr(1)})
			if r := apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: base}); r.Err != nil {
				t.Fatal(r.Err)
			}
			if tc.setup != nil {
				tc.setup(t, f)
			}
			hb := base
			tc.change(&hb)
			var got string
			f.View(func(s *State) { got = s.DurableChange(hb) })
			if got != tc.want {
				t.Fatalf("DurableChange = %q, want %q", got, tc.want)
			}
			if got != "" {
				return
			}
			// Not durable: applying it would change nothing but the
			// heartbeat's time.
			var before, after Host
			f.View(func(s *State) { before = *s.Hosts[hb.HostID] })
			apply(t, f, TypeHeartbeat, t0.Add(time.Second), Heartbeat{Heartbeat: hb})
			f.View(func(s *State) { after = *s.Hosts[hb.HostID] })
			after.LastHeartbeat, after.View = before.LastHeartbeat, before.View
			if !equalHosts(before, after) {
				t.Fatalf("a heartbeat judged not durable changed the host:\n%+v\n%+v", before, after)
			}
		})
	}
}

func equalHosts(a, b Host) bool {
	return a.ID == b.ID && a.Datacenter == b.Datacenter && a.KernelLine == b.KernelLine && a.Kernel == b.Kernel &&
		a.Phase == b.Phase && a.BootID == b.BootID && a.FleetLock == b.FleetLock && a.Unhealthy == b.Unhealthy &&
		a.GossipAddr == b.GossipAddr && a.Silent == b.Silent && len(a.Policies) == len(b.Policies)
}

// TestHeartbeatAnswerMatchesApply: the answer a node gives from its local
// state is the one a proposed heartbeat gets.
func TestHeartbeatAnswerMatchesApply(t *testing.T) {
	f := New()
	rolloutFleet(t, f, map[string]int{"e1": 3}, []string{"stg1"}, nil)
	var id string
	f.View(func(s *State) { id = sortedKeys(s.HostsIn("e1"))[0] })
	var hb wire.Heartbeat
	f.View(func(s *State) {
		h := s.Hosts[id]
		hb = wire.Heartbeat{HostID: id, Datacenter: h.Datacenter, KernelLine: h.KernelLine, Kernel: h.Kernel, Phase: h.Phase,
			BootID: h.BootID, Policies: h.Policies, GossipAddr: h.GossipAddr, View: h.View}
	})
	var local Result
	var ok bool
	f.View(func(s *State) {
		if why := s.DurableChange(hb); why != "" {
			t.Fatalf("unchanged heartbeat judged durable: %s", why)
		}
		local, ok = s.HeartbeatAnswer(id, timing)
	})
	if !ok {
		t.Fatal("no answer for a registered host")
	}
	applied := apply(t, f, TypeHeartbeat, t0, Heartbeat{Heartbeat: hb, Timing: timing})
	if a, b := mustJSON(t, local), mustJSON(t, applied); a != b {
		t.Fatalf("local answer differs from the applied one:\n%s\n%s", a, b)
	}
	f.View(func(s *State) {
		if _, ok := s.HeartbeatAnswer("nobody", timing); ok {
			t.Fatal("an answer for an unknown host")
		}
	})
}

// TestMarkSilent: the leader's mark takes a host out of the serving
// hosts, its next heartbeat brings it back; hosts heard within
// AliveWithin (by a proposed heartbeat), FleetLock-only and unknown hosts
// are left alone; the mark survives a snapshot.
func TestMarkSilent(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 4, wire.DatacenterUpdate{SlotLimit: ptr(2), MinHealthyPct: ptr(60)})
	hostsFleetLock(t, f, t0, "fra", "z1", true, timing)
	later := t0.Add(timing.AliveWithin + time.Second)
	hostsBeat(t, f, later, "fra", "fra-h3", timing) // fra-h3 was heard
	apply(t, f, TypeMarkSilent, later, MarkSilent{Hosts: []string{"fra-h2", "fra-h3", "z1", "ghost", "fra-h2"}, Timing: timing})
	for id, want := range map[string]bool{"fra-h0": false, "fra-h2": true, "fra-h3": false, "z1": false} {
		if got := silent(f, id); got != want {
			t.Errorf("%s silent = %v, want %v", id, got, want)
		}
	}
	if n := hostsEvents(f)["host_silent"]; n != 1 {
		t.Errorf("%d host_silent events, want 1", n)
	}
	// 4 agents and z1 (holding) registered, floor 60 % = 3: fra-h2 silent
	// leaves 3 serving;
	// granting fra-h0 would leave 2.
	if r := acquire(t, f, later, "fra", "fra-h0"); kind(r) != wire.KindCapacityFloor {
		t.Fatalf("with fra-h2 silent: %s, want %s", kind(r), wire.KindCapacityFloor)
	}
	assertSnapshotRoundTrip(t, f)
	var view wire.Host
	f.View(func(s *State) { view, _ = s.HostView("fra-h2", later, timing.AliveWithin) })
	if view.Alive {
		t.Error("a silent host shows alive")
	}
	hostsBeat(t, f, later.Add(time.Second), "fra", "fra-h2", timing)
	if silent(f, "fra-h2") {
		t.Fatal("a heartbeat did not clear the silent mark")
	}
	if n := hostsEvents(f)["host_heard"]; n != 1 {
		t.Errorf("%d host_heard events, want 1", n)
	}
	if r := acquire(t, f, later.Add(time.Second), "fra", "fra-h0"); r.Err != nil {
		t.Fatalf("fra-h2 back: %+v", r.Err)
	}
}

// TestAliveIsNotTimeBased: without a mark, a host whose last proposed
// heartbeat is old still serves (unchanged heartbeats are not proposed).
func TestAliveIsNotTimeBased(t *testing.T) {
	f := New()
	fleet(t, f, "fra", 4, wire.DatacenterUpdate{SlotLimit: ptr(1), MinHealthyPct: ptr(75)})
	later := t0.Add(24 * time.Hour)
	if r := acquire(t, f, later, "fra", "fra-h0"); r.Err != nil {
		t.Fatalf("got %+v, want a grant", r.Err)
	}
	var v wire.Datacenter
	f.View(func(s *State) { v, _ = s.DatacenterView("fra", later, timing.AliveWithin) })
	if v.Serving != 3 {
		t.Fatalf("serving %d, want 3", v.Serving)
	}
}

// TestLivenessGraceHoldsWaves: in the leader grace of a new term, a host
// not heard this term holds a soaking wave even though nobody marked it
// silent.
func TestLivenessGraceHoldsWaves(t *testing.T) {
	f := gateFleet(t, nil)
	end := gateStagingHealthy(t, f)
	// The old leader dies; the new one's first tick comes after the soak.
	apply(t, f, TypeTick, end.Add(time.Minute), Tick{Timing: timing, Term: 7})
	if targeted(f, "e1", "6.12") != "" {
		t.Fatal("staging passed in the grace on liveness nobody checked")
	}
	gateTermTickAt(t, f, end.Add(time.Minute+time.Second), 7)
	if targeted(f, "e1", "6.12") != "r612" {
		t.Fatalf("staging did not pass once every host was heard: %+v", rollout(f, "ro"))
	}
	if r := rollout(f, "ro"); r.State != RolloutRunning {
		t.Fatalf("rollout %s", r.State)
	}
}

// TestLivenessSettleHoldsWaves: between the end of the gates' grace and
// the new leader's first liveness pass after its own grace, a host not
// heard in the term is neither marked silent nor vouched for: a soaking
// wave must not pass on it. The leader's settling pass (MarkSilent.Term)
// vouches for every host it did not mark.
func TestLivenessSettleHoldsWaves(t *testing.T) {
	f := gateFleet(t, nil)
	end := gateStagingHealthy(t, f)
	at := end.Add(time.Minute)
	apply(t, f, TypeTick, at, Tick{Timing: timing, Term: 7})
	// Past the grace: no heartbeat was applied this term (unchanged ones
	// are answered off the log) and the leader has not made its pass yet.
	at = at.Add(timing.livenessGrace() + time.Second)
	apply(t, f, TypeTick, at, Tick{Timing: timing, Term: 7})
	if targeted(f, "e1", "6.12") != "" {
		t.Fatal("staging passed before the new leader's first liveness pass vouched for its hosts")
	}
	if r := rollout(f, "ro"); r.State != RolloutRunning {
		t.Fatalf("rollout %s (%s) while waiting for the leader's pass", r.State, r.PauseReason)
	}
	// The pass marks nobody (the leader heard every host in memory) and
	// settles the term.
	apply(t, f, TypeMarkSilent, at, MarkSilent{Term: 7, Timing: timing})
	apply(t, f, TypeTick, at.Add(time.Second), Tick{Timing: timing, Term: 7})
	if targeted(f, "e1", "6.12") != "r612" {
		t.Fatalf("staging did not pass once the term was settled: %+v", rollout(f, "ro"))
	}
	snap := gateRestored(t, f)
	var settled uint64
	snap.View(func(s *State) { settled = s.LivenessSettled })
	if settled != 7 {
		t.Fatalf("snapshot carries liveness_settled %d, want 7", settled)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// livenessApplyV encodes and applies one command written in format v
// (FormatV1: no version field), as a node of that format proposed it.
func livenessApplyV(t testing.TB, f *FSM, v int, typ Type, now time.Time, payload any) Result {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	c := Command{Type: typ, V: v, Time: now.UTC(), Payload: raw}
	if v == FormatV1 {
		c.V = 0
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	res := f.ApplyCommand(data)
	if res.Halted || res.Err != nil {
		t.Fatalf("%s (v%d): %+v (halted: %v)", typ, v, res.Err, f.Halted())
	}
	return res
}

// TestLivenessRuleByFormat: the liveness rule is the format's. A state
// that only applied commands of formats 1 and 2 decides liveness by time
// (a host whose last heartbeat is older than AliveWithin is not alive and
// expires ExpireAfter after it), as their code did; the first command of
// format 3 switches it, for good, to the flag rule (alive unless marked
// silent, expiry ExpireAfter after the mark), with no host silent yet.
func TestLivenessRuleByFormat(t *testing.T) {
	tm := Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: 30 * time.Second, ExpireAfter: time.Hour}
	beat := func(host string) Heartbeat {
		return Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: "fra", KernelLine: "lts", Kernel: "6.12.85", Phase: wire.PhaseIdle}, Timing: tm}
	}
	for _, tc := range []struct {
		name      string
		v         int  // the format of the commands after the v2 setup
		byFlag    bool // the rule in force then
		staleLive bool // h1, last heard 2 minutes ago, counts as alive
		serving   int
	}{
		{"format 1", FormatV1, false, false, 1},
		{"format 2", FormatV2, false, false, 1},
		{"format 3", FormatV3, true, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			livenessApplyV(t, f, FormatV2, TypeSetDatacenter, t0, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
			livenessApplyV(t, f, FormatV2, TypeHeartbeat, t0, beat("h1"))
			livenessApplyV(t, f, FormatV2, TypeHeartbeat, t0, beat("h2"))
			now := t0.Add(2 * time.Minute)
			livenessApplyV(t, f, tc.v, TypeHeartbeat, now, beat("h2"))
			livenessApplyV(t, f, tc.v, TypeTick, now, Tick{Timing: tm, Term: 1})
			check := func(f *FSM, now time.Time, what string) {
				t.Helper()
				f.View(func(s *State) {
					hv, _ := s.HostView("h1", now, tm.AliveWithin)
					dv, _ := s.DatacenterView("fra", now, tm.AliveWithin)
					if s.LivenessByFlag != tc.byFlag || hv.Alive != tc.staleLive || dv.Serving != tc.serving || s.Hosts["h1"].Silent {
						t.Fatalf("%s: by flag %v, h1 alive %v (silent %v), serving %d; want %v, %v, %d",
							what, s.LivenessByFlag, hv.Alive, s.Hosts["h1"].Silent, dv.Serving, tc.byFlag, tc.staleLive, tc.serving)
					}
				})
			}
			check(f, now, "switch")
			// A later command of an older format switches nothing back.
			now = now.Add(time.Second)
			livenessApplyV(t, f, FormatV2, TypeTick, now, Tick{Timing: tm, Term: 1})
			check(f, now, "after a v2 command")
			// Snapshots keep the rule.
			var sink memSink
			snap, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := snap.Persist(&sink); err != nil {
				t.Fatal(err)
			}
			g := New()
			if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
				t.Fatal(err)
			}
			check(g, now, "restored")
			// Expiry: by time both hosts, unheard for longer than
			// ExpireAfter, go; by flag neither (never marked silent) until
			// the leader marks h1 silent and ExpireAfter passes after that.
			now = now.Add(2 * time.Hour)
			livenessApplyV(t, g, tc.v, TypeTick, now, Tick{Timing: tm, Term: 1})
			if got, want := hostsCount(g), map[bool]int{false: 0, true: 2}[tc.byFlag]; got != want {
				t.Fatalf("%d hosts left after 2h of silence, want %d", got, want)
			}
			if !tc.byFlag {
				return
			}
			livenessApplyV(t, g, tc.v, TypeMarkSilent, now, MarkSilent{Hosts: []string{"h1"}, Timing: tm})
			livenessApplyV(t, g, tc.v, TypeHeartbeat, now, beat("h2"))
			now = now.Add(tm.ExpireAfter + time.Minute)
			livenessApplyV(t, g, tc.v, TypeTick, now, Tick{Timing: tm, Term: 1})
			g.View(func(s *State) {
				if s.Hosts["h1"] != nil || s.Hosts["h2"] == nil {
					t.Fatalf("h1 kept %v, h2 kept %v: want h1 expired an ExpireAfter after its mark, h2 kept", s.Hosts["h1"] != nil, s.Hosts["h2"] != nil)
				}
			})
		})
	}
}
