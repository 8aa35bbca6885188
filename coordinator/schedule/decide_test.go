package schedule

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// fleet returns the hosts of a datacenter: serving hosts "s0", "s1", …,
// slot holders "k0", "k1", … and hosts down for other reasons "d0", "d1", ….
func fleet(serving, holding, down int) []HostState {
	var hosts []HostState
	for i := range serving {
		hosts = append(hosts, HostState{ID: fmt.Sprintf("s%d", i), Serving: true})
	}
	for i := range holding {
		hosts = append(hosts, HostState{ID: fmt.Sprintf("k%d", i), Holding: true})
	}
	for i := range down {
		hosts = append(hosts, HostState{ID: fmt.Sprintf("d%d", i)})
	}
	return hosts
}

func TestDecide(t *testing.T) {
	berlin := mustWindow(t, "Mon-Sun 02:00-05:00 Europe/Berlin")
	inside := mustTime(t, "2026-11-27T02:30:00+01:00")
	outside := mustTime(t, "2026-11-26T12:00:00+01:00")

	// base is a typical edge DC policy: 3 slots, 90% floor, Berlin nights.
	base := Policy{SlotLimit: 3, MinHealthyPct: 90, Window: berlin, FailureBudget: 3}
	with := func(f func(*Policy)) Policy {
		p := base
		f(&p)
		return p
	}
	req := func(host string, now time.Time) Request { return Request{Host: host, Now: now} }
	expedite := func(host string, now time.Time) Request { return Request{Host: host, Now: now, Expedite: true} }

	tests := []struct {
		name      string
		p         Policy
		unknownDC bool
		hosts     []HostState
		req       Request
		grant     bool
		reason    Reason
		detail    string // "" = not checked
	}{
		// Identity.
		{name: "unknown dc", p: base, unknownDC: true, hosts: fleet(20, 0, 0), req: req("s0", inside),
			reason: ReasonUnknownDC, detail: "datacenter is not registered"},
		{name: "unknown dc beats everything", p: with(func(p *Policy) { p.Paused = true }), unknownDC: true,
			hosts: fleet(0, 1, 0), req: req("k0", outside), reason: ReasonUnknownDC},
		{name: "unknown host", p: base, hosts: fleet(20, 0, 0), req: req("x9", inside),
			reason: ReasonUnknownHost, detail: `host "x9" is not registered in this datacenter`},
		{name: "unknown host in empty dc", p: base, hosts: nil, req: req("s0", inside), reason: ReasonUnknownHost},
		{name: "empty host id", p: base, hosts: fleet(20, 0, 0), req: req("", inside), reason: ReasonUnknownHost},

		// Recursion: the holder keeps its slot whatever else holds.
		{name: "already held", p: base, hosts: fleet(18, 2, 0), req: req("k1", inside),
			grant: true, reason: ReasonAlreadyHeld, detail: `host "k1" already holds a slot; 2 of 3 slots held`},
		{name: "already held while paused", p: with(func(p *Policy) { p.Paused = true }), hosts: fleet(18, 2, 0),
			req: req("k0", inside), grant: true, reason: ReasonAlreadyHeld},
		{name: "already held outside window", p: base, hosts: fleet(18, 2, 0), req: req("k0", outside),
			grant: true, reason: ReasonAlreadyHeld},
		{name: "already held with budget exhausted", p: with(func(p *Policy) { p.Failures = 3 }), hosts: fleet(18, 2, 0),
			req: req("k0", inside), grant: true, reason: ReasonAlreadyHeld},
		{name: "already held over the limit", p: base, hosts: fleet(10, 5, 5), req: req("k4", inside),
			grant: true, reason: ReasonAlreadyHeld, detail: `host "k4" already holds a slot; 5 of 3 slots held`},
		{name: "already held under a pct limit", p: Policy{SlotPct: 10}, hosts: fleet(24, 1, 0), req: req("k0", inside),
			grant: true, reason: ReasonAlreadyHeld, detail: `host "k0" already holds a slot; 1 of 2 slots held (10% of 25 hosts)`},

		// Pause and failure budget.
		{name: "paused", p: with(func(p *Policy) { p.Paused = true }), hosts: fleet(20, 0, 0), req: req("s0", inside),
			reason: ReasonPaused, detail: "datacenter is paused"},
		{name: "paused beats budget and window", p: with(func(p *Policy) { p.Paused = true; p.Failures = 9 }),
			hosts: fleet(20, 0, 0), req: req("s0", outside), reason: ReasonPaused},
		{name: "budget exhausted", p: with(func(p *Policy) { p.Failures = 3 }), hosts: fleet(20, 0, 0),
			req: req("s0", inside), reason: ReasonFailureBudget, detail: "3 failed reboots reached the failure budget of 3"},
		{name: "budget exceeded beats window", p: with(func(p *Policy) { p.Failures = 4 }), hosts: fleet(20, 0, 0),
			req: req("s0", outside), reason: ReasonFailureBudget},
		{name: "budget not yet exhausted", p: with(func(p *Policy) { p.Failures = 2 }), hosts: fleet(20, 0, 0),
			req: req("s0", inside), grant: true, reason: ReasonGranted},
		{name: "budget unlimited", p: with(func(p *Policy) { p.FailureBudget = 0; p.Failures = 100 }),
			hosts: fleet(20, 0, 0), req: req("s0", inside), grant: true, reason: ReasonGranted},

		// Window.
		{name: "outside window", p: base, hosts: fleet(20, 0, 0), req: req("s0", outside),
			reason: ReasonOutsideWindow,
			detail: "outside window Mon-Sun 02:00-05:00 Europe/Berlin; next opens 2026-11-27T02:00:00+01:00"},
		{name: "outside window beats full semaphore", p: base, hosts: fleet(17, 3, 0), req: req("s0", outside),
			reason: ReasonOutsideWindow},
		{name: "window end is exclusive", p: base, hosts: fleet(20, 0, 0),
			req: req("s0", mustTime(t, "2026-11-27T05:00:00+01:00")), reason: ReasonOutsideWindow,
			detail: "outside window Mon-Sun 02:00-05:00 Europe/Berlin; next opens 2026-11-28T02:00:00+01:00"},
		{name: "zero window is always", p: with(func(p *Policy) { p.Window = Window{} }), hosts: fleet(20, 0, 0),
			req: req("s0", outside), grant: true, reason: ReasonGranted},
		{name: "inside window", p: base, hosts: fleet(20, 0, 0), req: req("s0", inside), grant: true, reason: ReasonGranted,
			detail: "1 of 3 slots held after grant; serving 19 of 20 hosts after grant, floor 18 (90%)"},

		// Expedite ignores the window, nothing else.
		{name: "expedite outside window", p: base, hosts: fleet(20, 0, 0), req: expedite("s0", outside),
			grant: true, reason: ReasonGranted,
			detail: "1 of 3 slots held after grant; serving 19 of 20 hosts after grant, floor 18 (90%); " +
				"expedited outside window Mon-Sun 02:00-05:00 Europe/Berlin"},
		{name: "expedite inside window", p: base, hosts: fleet(20, 0, 0), req: expedite("s0", inside),
			grant: true, reason: ReasonGranted,
			detail: "1 of 3 slots held after grant; serving 19 of 20 hosts after grant, floor 18 (90%)"},
		{name: "expedite does not ignore pause", p: with(func(p *Policy) { p.Paused = true }), hosts: fleet(20, 0, 0),
			req: expedite("s0", outside), reason: ReasonPaused},
		{name: "expedite does not ignore budget", p: with(func(p *Policy) { p.Failures = 3 }), hosts: fleet(20, 0, 0),
			req: expedite("s0", outside), reason: ReasonFailureBudget},
		{name: "expedite does not ignore limit", p: base, hosts: fleet(17, 3, 0), req: expedite("s0", outside),
			reason: ReasonSemaphoreFull, detail: "3 of 3 slots held"},
		{name: "expedite does not ignore floor", p: base, hosts: fleet(18, 0, 2), req: expedite("s0", outside),
			reason: ReasonCapacityFloor},

		// Slot limit.
		{name: "semaphore full", p: base, hosts: fleet(27, 3, 0), req: req("s0", inside),
			reason: ReasonSemaphoreFull, detail: "3 of 3 slots held"},
		{name: "semaphore over-full after limit lowered", p: with(func(p *Policy) { p.SlotLimit = 1 }),
			hosts: fleet(27, 3, 0), req: req("s0", inside), reason: ReasonSemaphoreFull, detail: "3 of 1 slots held"},
		{name: "last slot", p: with(func(p *Policy) { p.MinHealthyPct = 50 }), hosts: fleet(28, 2, 0), req: req("s0", inside),
			grant: true, reason: ReasonGranted,
			detail: "3 of 3 slots held after grant; serving 27 of 30 hosts after grant, floor 15 (50%)"},
		{name: "semaphore checked before floor", p: base, hosts: fleet(5, 3, 12), req: req("s0", inside),
			reason: ReasonSemaphoreFull},
		{name: "pct limit: 25 hosts 10% = 2, full", p: Policy{SlotPct: 10}, hosts: fleet(23, 2, 0), req: req("s0", inside),
			reason: ReasonSemaphoreFull, detail: "2 of 2 slots held (10% of 25 hosts)"},
		{name: "pct limit: 25 hosts 10% = 2, one free", p: Policy{SlotPct: 10}, hosts: fleet(24, 1, 0), req: req("s0", inside),
			grant: true, reason: ReasonGranted,
			detail: "2 of 2 slots held (10% of 25 hosts) after grant; serving 23 of 25 hosts after grant, floor 0 (0%)"},
		{name: "pct limit: 1 host 10% = 1", p: Policy{SlotPct: 10}, hosts: fleet(1, 0, 0), req: req("s0", inside),
			grant: true, reason: ReasonGranted},
		{name: "pct limit: 2 hosts 10% = 1, full", p: Policy{SlotPct: 10}, hosts: fleet(1, 1, 0), req: req("s0", inside),
			reason: ReasonSemaphoreFull, detail: "1 of 1 slots held (10% of 2 hosts)"},
		{name: "invalid policy without limit grants nothing", p: Policy{}, hosts: fleet(20, 0, 0), req: req("s0", inside),
			reason: ReasonSemaphoreFull, detail: "0 of 0 slots held (0% of 20 hosts)"},

		// Capacity floor: 10 hosts at 90% → floor 9.
		{name: "floor: 10 serving, requester serving → 9 ≥ 9", p: with(func(p *Policy) { p.Window = Window{} }),
			hosts: fleet(10, 0, 0), req: req("s3", outside), grant: true, reason: ReasonGranted,
			detail: "1 of 3 slots held after grant; serving 9 of 10 hosts after grant, floor 9 (90%)"},
		{name: "floor: 9 serving, requester serving → 8 < 9", p: base, hosts: fleet(9, 0, 1), req: req("s3", inside),
			reason: ReasonCapacityFloor, detail: "serving 9 of 10 hosts; granting would leave 8 < floor 9 (90%)"},
		{name: "floor: 9 serving, requester down → 9 ≥ 9", p: base, hosts: fleet(9, 0, 1), req: req("d0", inside),
			grant: true, reason: ReasonGranted,
			detail: "1 of 3 slots held after grant; serving 9 of 10 hosts after grant, floor 9 (90%)"},
		{name: "floor: 8 serving, requester down → 8 < 9", p: base, hosts: fleet(8, 0, 2), req: req("d1", inside),
			reason: ReasonCapacityFloor, detail: "serving 8 of 10 hosts (requester not serving) < floor 9 (90%)"},
		{name: "floor: holders count against it", p: base, hosts: fleet(9, 1, 0), req: req("s0", inside),
			reason: ReasonCapacityFloor, detail: "serving 9 of 10 hosts; granting would leave 8 < floor 9 (90%)"},
		{name: "floor: 20 hosts 90%, 2 down", p: base, hosts: fleet(18, 0, 2), req: req("s0", inside),
			reason: ReasonCapacityFloor, detail: "serving 18 of 20 hosts; granting would leave 17 < floor 18 (90%)"},
		{name: "floor: 20 hosts 90%, 1 down", p: base, hosts: fleet(19, 0, 1), req: req("s0", inside),
			grant: true, reason: ReasonGranted},
		{name: "floor: 11 hosts 90% rounds up to 10", p: base, hosts: fleet(10, 0, 1), req: req("s0", inside),
			reason: ReasonCapacityFloor, detail: "serving 10 of 11 hosts; granting would leave 9 < floor 10 (90%)"},
		{name: "floor: 0% allows the last serving host", p: with(func(p *Policy) { p.MinHealthyPct = 0 }),
			hosts: fleet(1, 0, 9), req: req("s0", inside), grant: true, reason: ReasonGranted},
		{name: "floor: 100% allows nothing", p: with(func(p *Policy) { p.MinHealthyPct = 100 }),
			hosts: fleet(10, 0, 0), req: req("s0", inside), reason: ReasonCapacityFloor,
			detail: "serving 10 of 10 hosts; granting would leave 9 < floor 10 (100%)"},
		{name: "floor: 100% even for a down requester", p: with(func(p *Policy) { p.MinHealthyPct = 100 }),
			hosts: fleet(9, 0, 1), req: req("d0", inside), reason: ReasonCapacityFloor},
		{name: "floor: single-host dc at 50%", p: with(func(p *Policy) { p.MinHealthyPct = 50 }),
			hosts: fleet(1, 0, 0), req: req("s0", inside), reason: ReasonCapacityFloor,
			detail: "serving 1 of 1 hosts; granting would leave 0 < floor 1 (50%)"},
		{name: "floor: invalid pct fails closed", p: with(func(p *Policy) { p.MinHealthyPct = 150 }),
			hosts: fleet(10, 0, 0), req: req("s0", inside), reason: ReasonCapacityFloor},

		// Inconsistent input fails safe.
		{name: "holding and serving counts as holding", p: with(func(p *Policy) { p.SlotLimit = 1; p.MinHealthyPct = 0 }),
			hosts: append(fleet(5, 0, 0), HostState{ID: "x", Holding: true, Serving: true}), req: req("s0", inside),
			reason: ReasonSemaphoreFull, detail: "1 of 1 slots held"},
		{name: "holding and serving does not serve", p: base,
			hosts: append(fleet(9, 0, 0), HostState{ID: "x", Holding: true, Serving: true}), req: req("s0", inside),
			reason: ReasonCapacityFloor, detail: "serving 9 of 10 hosts; granting would leave 8 < floor 9 (90%)"},
		{name: "duplicate id, any entry holding", p: base,
			hosts: append(fleet(20, 0, 0), HostState{ID: "s0", Holding: true}), req: req("s0", inside),
			grant: true, reason: ReasonAlreadyHeld},
		{name: "negative budget fails closed", p: with(func(p *Policy) { p.FailureBudget = -1 }),
			hosts: fleet(20, 0, 0), req: req("s0", inside), reason: ReasonFailureBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.p, !tt.unknownDC, tt.hosts, tt.req)
			if got.Grant != tt.grant || got.Reason != tt.reason {
				t.Fatalf("Decide = {%v %s %q}, want {%v %s}", got.Grant, got.Reason, got.Detail, tt.grant, tt.reason)
			}
			if tt.detail != "" && got.Detail != tt.detail {
				t.Errorf("Detail = %q\nwant     %q", got.Detail, tt.detail)
			}
			if got.Detail == "" {
				t.Error("empty Detail")
			}
			// The order of hosts never matters.
			rev := slices.Clone(tt.hosts)
			slices.Reverse(rev)
			if again := Decide(tt.p, !tt.unknownDC, rev, tt.req); again != got {
				t.Errorf("reversed hosts: %+v, want %+v", again, got)
			}
		})
	}
}

// TestDecideProperty runs Decide on random datacenters and requests and
// checks that it is deterministic, independent of host order, and never
// grants a new slot that breaks a rule.
func TestDecideProperty(t *testing.T) {
	windows := []Window{
		{}, {}, {},
		mustWindow(t, "Mon-Sun 02:00-05:00 Europe/Berlin"),
		mustWindow(t, "Mon-Fri 22:00-02:00 Asia/Tokyo"),
		mustWindow(t, "Sat,Sun 01:00-04:30 America/New_York"),
	}
	rng := rand.New(rand.NewPCG(2026, 31431))
	epoch := mustTime(t, "2026-01-01T00:00:00Z")
	// small returns a value in 0..n-1, or an out-of-range one 1 time in 20.
	small := func(n int) int {
		if rng.IntN(20) == 0 {
			return rng.IntN(3*n) - n
		}
		return rng.IntN(n)
	}
	seen := map[Reason]int{}
	const cases = 20000
	for i := range cases {
		p := Policy{
			MinHealthyPct: small(91),
			Window:        windows[rng.IntN(len(windows))],
			Paused:        rng.IntN(10) == 0,
			FailureBudget: small(8),
			Failures:      small(6),
		}
		if rng.IntN(2) == 0 {
			p.SlotLimit = small(6)
		} else {
			p.SlotPct = small(101)
		}
		n := rng.IntN(40)
		hosts := make([]HostState, n)
		for j := range hosts {
			hosts[j] = HostState{ID: fmt.Sprintf("h%d", rng.IntN(n+n/10+1)), Holding: rng.IntN(8) == 0, Serving: rng.IntN(20) > 0}
		}
		req := Request{
			Host:     fmt.Sprintf("h%d", rng.IntN(n+2)),
			Expedite: rng.IntN(4) == 0,
			Now:      epoch.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))),
		}
		if n > 0 && rng.IntN(5) > 0 {
			req.Host = hosts[rng.IntN(n)].ID
		}
		exists := rng.IntN(30) != 0

		d := Decide(p, exists, hosts, req)
		if again := Decide(p, exists, hosts, req); again != d {
			t.Fatalf("case %d: not deterministic: %+v then %+v", i, d, again)
		}
		shuffled := slices.Clone(hosts)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if again := Decide(p, exists, shuffled, req); again != d {
			t.Fatalf("case %d: depends on host order: %+v then %+v", i, d, again)
		}

		// An independent tally of the datacenter.
		var holders, serving int
		var found, reqHolding, reqServing bool
		for _, h := range hosts {
			if h.Holding {
				holders++
			} else if h.Serving {
				serving++
			}
			if h.ID == req.Host {
				found = true
				reqHolding = reqHolding || h.Holding
				reqServing = reqServing || h.Serving && !h.Holding
			}
		}
		after := serving
		if reqServing {
			after--
		}
		limit, floor := p.Limit(n), p.Floor(n)
		budgetGone := p.FailureBudget < 0 || p.FailureBudget > 0 && p.Failures >= p.FailureBudget

		fail := func(msg string) {
			t.Helper()
			t.Fatalf("case %d: %s: policy %+v exists %v hosts %+v req %+v → %+v", i, msg, p, exists, hosts, req, d)
		}
		seen[d.Reason]++
		if d.Grant != (d.Reason == ReasonGranted || d.Reason == ReasonAlreadyHeld) {
			fail("Grant disagrees with Reason")
		}
		if d.Detail == "" {
			fail("empty Detail")
		}
		switch d.Reason {
		case ReasonAlreadyHeld:
			if !exists || !reqHolding {
				fail("already_held for a host without a slot")
			}
		case ReasonGranted:
			switch {
			case !exists || !found:
				fail("granted to an unknown dc or host")
			case reqHolding:
				fail("granted a second slot")
			case p.Paused:
				fail("granted while paused")
			case budgetGone:
				fail("granted with the failure budget exhausted")
			case !req.Expedite && !p.Window.Contains(req.Now):
				fail("granted outside the window")
			case holders >= limit:
				fail("granted with holders ≥ limit")
			case after < floor:
				fail("granted below the capacity floor")
			}
		case ReasonUnknownDC:
			if exists {
				fail("unknown_dc for a known dc")
			}
		case ReasonUnknownHost:
			if !exists || found {
				fail("unknown_host for a registered host")
			}
		case ReasonPaused:
			if !p.Paused || reqHolding {
				fail("dc_paused wrongly")
			}
		case ReasonFailureBudget:
			if !budgetGone || p.Paused {
				fail("failure_budget_exhausted wrongly")
			}
		case ReasonOutsideWindow:
			if req.Expedite || p.Window.Contains(req.Now) || budgetGone {
				fail("outside_window wrongly")
			}
		case ReasonSemaphoreFull:
			if holders < limit {
				fail("semaphore_full with a free slot")
			}
		case ReasonCapacityFloor:
			if after >= floor || holders >= limit {
				fail("capacity_floor wrongly")
			}
		default:
			fail("unknown reason")
		}
	}
	// The generator must reach every outcome, and grant often enough.
	for _, r := range []Reason{ReasonGranted, ReasonAlreadyHeld, ReasonUnknownDC, ReasonUnknownHost, ReasonPaused,
		ReasonOutsideWindow, ReasonSemaphoreFull, ReasonCapacityFloor, ReasonFailureBudget} {
		if seen[r] < cases/500 {
			t.Errorf("reason %s decided only %d times in %d cases", r, seen[r], cases)
		}
	}
	if seen[ReasonGranted] < cases/20 {
		t.Errorf("only %d of %d cases granted a new slot", seen[ReasonGranted], cases)
	}
	t.Logf("outcomes: %v", seen)
}

// TestDecideSequence applies Decide over and over to an evolving
// datacenter, as the state machine does, with hosts failing, recovering and
// finishing their reboots in between: however the requests arrive, the
// holders never exceed the limit and no grant leaves the datacenter below
// its floor.
func TestDecideSequence(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	now := mustTime(t, "2026-11-27T02:00:00+01:00")
	for run := range 200 {
		n := 1 + rng.IntN(40)
		p := Policy{MinHealthyPct: rng.IntN(101)}
		if rng.IntN(2) == 0 {
			p.SlotLimit = 1 + rng.IntN(5)
		} else {
			p.SlotPct = 1 + rng.IntN(100)
		}
		limit, floor := p.Limit(n), p.Floor(n)
		hosts := fleet(n, 0, 0)
		for step := range 500 {
			i := rng.IntN(n)
			h := &hosts[i]
			switch rng.IntN(10) {
			case 0: // a host fails or recovers on its own
				if !h.Holding {
					h.Serving = !h.Serving
				}
			case 1, 2: // a holder finishes and releases its slot
				if h.Holding {
					h.Holding, h.Serving = false, true
				}
			default: // a host asks for a slot
				d := Decide(p, true, hosts, Request{Host: h.ID, Now: now})
				if d.Reason == ReasonGranted {
					h.Holding, h.Serving = true, false
					serving := 0
					for _, h := range hosts {
						if h.Serving {
							serving++
						}
					}
					if serving < floor {
						t.Fatalf("run %d step %d: grant left %d serving < floor %d (policy %+v, %d hosts)",
							run, step, serving, floor, p, n)
					}
				}
			}
			holders := 0
			for _, h := range hosts {
				if h.Holding {
					holders++
				}
			}
			if holders > limit {
				t.Fatalf("run %d step %d: %d holders > limit %d (policy %+v, %d hosts)", run, step, holders, limit, p, n)
			}
		}
	}
}

// TestDecideGossipView: the datacenter's own gossip view of hosts out of
// service tightens the capacity floor; it never loosens it.
func TestDecideGossipView(t *testing.T) {
	p := Policy{SlotLimit: 3, MinHealthyPct: 80}
	hosts := make([]HostState, 10)
	for i := range hosts {
		hosts[i] = HostState{ID: fmt.Sprintf("h%d", i), Serving: true}
	}
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		observed int
		grant    bool
	}{
		{0, true},  // 10 serving, 9 after ≥ 8
		{1, true},  // gossip: 9 serving, 8 after ≥ 8
		{2, false}, // gossip: 8 serving, 7 after < 8
		{12, false},
	} {
		d := Decide(p, true, hosts, Request{Host: "h0", Now: now, ObservedOutOfService: tc.observed})
		if d.Grant != tc.grant {
			t.Errorf("observed %d: %+v, want grant=%v", tc.observed, d, tc.grant)
		}
		if !tc.grant && (d.Reason != ReasonCapacityFloor || !strings.Contains(d.Detail, "gossip view")) {
			t.Errorf("observed %d: denial %+v does not name the gossip view", tc.observed, d)
		}
	}
}
