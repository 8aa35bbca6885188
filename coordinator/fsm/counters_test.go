package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestValidNameMatchesPattern checks the hand-written ValidName against
// the regular expression it replaces.
func TestValidNameMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	cases := []string{"", "a", "A9", "dc-1", "h.1_2:3-4", "-a", ".a", "_a", ":a", "a b", "a\n", "a/b", "é", "a\x00",
		string(bytes.Repeat([]byte("a"), 128)), string(bytes.Repeat([]byte("a"), 129))}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aZ09._:-/ \n\x00\xff")
	for range 20000 {
		b := make([]byte, rng.IntN(132))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := ValidName(c), re.MatchString(c); got != want {
			t.Fatalf("ValidName(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}

// countersTiming is the timing of the counters test: short FleetLock
// freshness and expiry so both happen.
var countersTiming = Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: 30 * time.Second,
	FleetLockFresh: 2 * time.Minute, ExpireAfter: 5 * time.Minute}

// TestCountersMatchRecount applies random command sequences, by the typed
// path (Exec, the simulator's) and by the log's (Apply), and checks after
// every command that the incrementally maintained scheduler inputs equal
// a full recomputation and that the decisions read from them equal those
// from walking every host — and again after a snapshot and restore.
func TestCountersMatchRecount(t *testing.T) {
	for _, path := range []string{"exec", "log"} {
		results := map[string]int{} // successes by command type
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", path, seed), func(t *testing.T) {
				countersRun(t, path, seed, results)
			})
		}
		if results["digest match"] == 0 {
			t.Fatalf("%s: no heartbeat matched its held digest: the sequences do not exercise ShedDigest", path)
		}
		for _, k := range []Type{TypeAcquire, TypeRelease, TypeForceRelease, TypeRemoveHost, TypeHealth, TypeMarkSilent} {
			if results[string(k)] == 0 {
				t.Fatalf("%s: no %s succeeded: the sequences do not exercise it", path, k)
			}
		}
	}
}

func countersRun(t *testing.T, path string, seed uint64, results map[string]int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	f := New()
	now := t0
	do := func(typ Type, p any) Result {
		var r Result
		if path == "exec" {
			r = f.Exec(now, p)
		} else {
			r = apply(t, f, typ, now, p)
		}
		if r.Err == nil {
			results[string(typ)]++
		}
		return r
	}
	dcs := []string{"a", "b", "c", "d"}
	for _, dc := range dcs[:3] {
		do(TypeSetDatacenter, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(1 + rng.IntN(4)), MinHealthyPct: ptr(rng.IntN(80))}})
	}
	phases := []string{wire.PhaseIdle, wire.PhaseHealthy, wire.PhaseStaged, wire.PhaseDraining, wire.PhaseRebooting, wire.PhaseVerifying, wire.PhaseFailed, wire.PhaseUnhealthy, ""}
	host := func() string { return fmt.Sprintf("h%d", rng.IntN(24)) }
	fl := func() string { return fmt.Sprintf("fl%d", rng.IntN(8)) }
	tokens := map[string]uint64{}
	for step := range 600 {
		now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
		dc := dcs[rng.IntN(len(dcs))]
		// Mostly name a host in its own datacenter, so that grants,
		// releases and health reports succeed.
		hostIn := func(id string) (string, string) {
			if rng.IntN(5) > 0 {
				f.View(func(s *State) {
					if h := s.Hosts[id]; h != nil {
						dc = h.Datacenter
					}
				})
			}
			return id, dc
		}
		switch rng.IntN(12) {
		case 0, 1, 2:
			hb := wire.Heartbeat{HostID: host(), Datacenter: dc, Phase: phases[rng.IntN(len(phases))], Kernel: "6.12"}
			if rng.IntN(4) > 0 {
				hb.GossipAddr = fmt.Sprintf("10.0.0.%d:7946", rng.IntN(6))
			}
			if rng.IntN(3) == 0 {
				// The host's last heartbeat again (its view's alive
				// count may differ: not durable).
				f.View(func(s *State) {
					if h := s.Hosts[hb.HostID]; h != nil {
						hb = wire.Heartbeat{HostID: h.ID, Datacenter: h.Datacenter, KernelLine: h.KernelLine, Kernel: h.Kernel, Phase: h.Phase,
							BootID: h.BootID, Policies: h.Policies, GossipAddr: h.GossipAddr}
						if h.View != nil {
							v := *h.View
							v.Alive += rng.IntN(3)
							hb.View = &v
						}
					}
				})
			}
			if rng.IntN(2) == 0 {
				hb.View = &wire.DCView{Alive: 5, Dead: rng.IntN(4), Draining: rng.IntN(2), Rebooting: rng.IntN(2)}
			}
			f.View(func(s *State) {
				// A heartbeat whose digest matches what the state holds
				// may be shed unread: it must carry no durable change.
				if d, ok := s.ShedDigest(hb.HostID); ok && d == wire.HeartbeatDigest(hb) {
					if why := s.DurableChange(hb); why != "" {
						t.Fatalf("step %d: heartbeat %+v matches the held digest but is a durable change (%s)", step, hb, why)
					}
					results["digest match"]++
				}
			})
			do(TypeHeartbeat, Heartbeat{Heartbeat: hb, Timing: countersTiming})
		case 3, 4:
			owner, id := OwnerAgent, host()
			if rng.IntN(3) == 0 {
				owner, id = OwnerFleetLock, fl()
			}
			id, dc = hostIn(id)
			if r := do(TypeAcquire, Acquire{Datacenter: dc, Host: id, Owner: owner, Timing: countersTiming}); r.Err == nil && r.Slot != nil {
				tokens[id] = r.Slot.Token
			}
		case 5:
			id, owner := host(), OwnerAgent
			if rng.IntN(2) == 0 {
				id, owner = fl(), OwnerFleetLock
			}
			id, dc = hostIn(id)
			tok := tokens[id]
			if owner == OwnerFleetLock {
				tok = 0
			}
			do(TypeRelease, SlotRelease{Datacenter: dc, Host: id, Token: tok, Owner: owner})
		case 6:
			id, dc := hostIn(host())
			do(TypeHealth, Health{HealthReport: wire.HealthReport{HostID: id, Datacenter: dc, Token: tokens[id], Healthy: rng.IntN(2) == 0}})
		case 7:
			do(TypeMarkSilent, MarkSilent{Hosts: []string{host(), host(), fl()}, Timing: countersTiming})
		case 8:
			do(TypeTick, Tick{Timing: countersTiming})
		case 9:
			if rng.IntN(3) == 0 {
				id, dc := hostIn(host())
				do(TypeForceRelease, ForceRelease{Datacenter: dc, Host: id, Reason: "test"})
			} else {
				do(TypeRemoveHost, RemoveHost{Host: host(), Force: rng.IntN(2) == 0, Reason: "test"})
			}
		case 10:
			do(TypeSetDatacenter, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(1 + rng.IntN(4)), MinHealthyPct: ptr(rng.IntN(90))}})
		case 11:
			now = now.Add(time.Duration(rng.IntN(10)) * time.Minute)
		}
		f.View(func(s *State) { assertCounters(t, s, fmt.Sprintf("step %d", step)) })
	}
	g := restoredCopy(t, f)
	var hosts int
	g.View(func(s *State) { assertCounters(t, s, "restored"); hosts = len(s.Hosts) })
	f.View(func(s *State) { compareCounters(t, s.counts, g.state.counts, "restored vs live") })
	if hosts == 0 {
		t.Fatal("the sequence left no host: it tests nothing")
	}
}

// assertCounters checks s's counters against a recomputation from
// scratch, and the scheduler inputs, counted hosts and registered hosts
// read from them against the walks over every host.
func assertCounters(t *testing.T, s *State, when string) {
	t.Helper()
	if !s.LivenessByFlag {
		t.Fatalf("%s: the test must run by the flag rule", when)
	}
	x := &State{Hosts: s.Hosts, Datacenters: s.Datacenters, LivenessByFlag: s.LivenessByFlag}
	x.reindex()
	compareCounters(t, s.counts, x.counts, when)
	for _, h := range s.Hosts {
		for _, n := range []int{1, 3, maxGossipSeeds} {
			if got, want := s.gossipSeeds(h, n), gossipSeedsBySort(s, h, n); !slices.Equal(got, want) {
				t.Fatalf("%s: %s: %d gossip seeds %v, by sorting %v", when, h.ID, n, got, want)
			}
		}
	}
	// The expiry scan's candidates (see expireHosts): every silent agent.
	silent := 0
	for id, h := range s.Hosts {
		if h.FleetLock || !h.Silent {
			continue
		}
		silent++
		if c := s.counts[h.Datacenter]; c == nil || c.silent[id] != h {
			t.Fatalf("%s: silent agent %s is not among %s's silent hosts", when, id, h.Datacenter)
		}
	}
	for name, c := range s.counts {
		silent -= len(c.silent)
		for id, h := range c.silent {
			if h.FleetLock || !h.Silent || h.Datacenter != name || s.Hosts[id] != h {
				t.Fatalf("%s: %s is among %s's silent hosts", when, id, name)
			}
		}
	}
	if silent != 0 {
		t.Fatalf("%s: the counters hold %d silent hosts too few", when, silent)
	}
	fresh := countersTiming.fleetLockFresh()
	for name, dc := range s.Datacenters {
		if got, want := s.countedFast(dc, s.Now, fresh), s.countedWalk(dc, s.Now, fresh); got != want {
			t.Fatalf("%s: %s: counted hosts %d, walk %d", when, name, got, want)
		}
		gc, gu := s.registeredFast(name)
		if wc, wu := s.registeredWalk(name); gc != wc || gu != wu {
			t.Fatalf("%s: %s: registered %d/%d, walk %d/%d", when, name, gc, gu, wc, wu)
		}
		requesters := []string{"nobody"}
		for id := range s.byDC[name] {
			requesters = append(requesters, id)
		}
		for id := range s.Hosts {
			requesters = append(requesters, id) // some in other datacenters
		}
		for _, req := range requesters {
			got, gotView := s.scheduleInputs(dc, countersTiming, req)
			hosts, wantView := s.hostStatesAndView(dc, countersTiming, req)
			if want := schedule.Count(hosts, req); got != want || gotView != wantView {
				t.Fatalf("%s: %s, requester %s: inputs %+v view %d, walk %+v view %d", when, name, req, got, gotView, want, wantView)
			}
		}
	}
}

// compareCounters compares two counter sets, an absent datacenter equal
// to one with nothing counted.
func compareCounters(t *testing.T, got, want map[string]*dcCounts, when string) {
	t.Helper()
	norm := func(c *dcCounts) string {
		if c == nil {
			c = &dcCounts{}
		}
		var fl []string
		for id := range c.fleetLock {
			fl = append(fl, id)
		}
		slices.Sort(fl)
		var silent []string
		for id := range c.silent {
			silent = append(silent, id)
		}
		slices.Sort(silent)
		var views []string
		for k, n := range c.views {
			views = append(views, fmt.Sprintf("%d:%d", k, n))
		}
		slices.Sort(views)
		return fmt.Sprintf("agents=%d holding=%d serving=%d alive=%d reporters=%d views=%v fleetlock=%v silent=%v seeds=%v",
			c.agents, c.holding, c.serving, c.alive, c.reporters, views, fl, silent, hostIDs(c.seeds))
	}
	for name := range got {
		if g, w := norm(got[name]), norm(want[name]); g != w {
			t.Fatalf("%s: counters of %q:\n got  %s\n want %s", when, name, g, w)
		}
	}
	for name := range want {
		if g, w := norm(got[name]), norm(want[name]); g != w {
			t.Fatalf("%s: counters of %q:\n got  %s\n want %s", when, name, g, w)
		}
	}
}

// hostIDs returns the ids of hosts, in order.
func hostIDs(hosts []*Host) []string {
	ids := make([]string, len(hosts))
	for i, h := range hosts {
		ids[i] = h.ID
	}
	return ids
}

// gossipSeedsBySort is the gossip seed choice computed the plain way
// (collect the candidates, sort their ids, take n from the host's offset,
// wrapping around): what State.gossipSeeds must answer without sorting.
func gossipSeedsBySort(s *State, h *Host, n int) []string {
	if h.GossipAddr == "" {
		return nil
	}
	var ids []string
	for id, o := range s.byDC[h.Datacenter] {
		if id != h.ID && o.GossipAddr != "" && s.alive(o, s.Now, gossipSeedWithin) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	start := 0
	for _, c := range h.ID {
		start += int(c)
	}
	out := make([]string, 0, min(n, len(ids)))
	for i := 0; i < len(ids) && len(out) < n; i++ {
		out = append(out, s.Hosts[ids[(start+i)%len(ids)]].GossipAddr)
	}
	return out
}

// TestGossipSeedsTimeRule: under the time liveness rule of formats 1 and
// 2 (no counters read) the seeds are chosen by walking the datacenter's
// hosts in id order, and equal the plain sort-based choice.
func TestGossipSeedsTimeRule(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		s := &State{Hosts: map[string]*Host{}, Now: t0}
		for i := range 30 {
			h := &Host{ID: fmt.Sprintf("h%02d", rng.IntN(60)), Datacenter: []string{"a", "b"}[rng.IntN(2)]}
			if rng.IntN(4) > 0 {
				h.GossipAddr = fmt.Sprintf("10.0.%d.%d:7946", seed, i)
			}
			if rng.IntN(3) > 0 {
				h.LastHeartbeat = t0.Add(-time.Duration(rng.IntN(240)) * time.Second) // some past gossipSeedWithin
			}
			h.FleetLock = rng.IntN(10) == 0
			s.Hosts[h.ID] = h
		}
		s.reindex()
		matched := 0
		for _, h := range s.Hosts {
			for _, n := range []int{1, 2, maxGossipSeeds, 40} {
				got, want := s.gossipSeeds(h, n), gossipSeedsBySort(s, h, n)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d: %s: %d gossip seeds %v, by sorting %v", seed, h.ID, n, got, want)
				}
				matched += len(got)
			}
		}
		if matched == 0 {
			t.Fatalf("seed %d: no host got a seed: the case tests nothing", seed)
		}
	}
}
