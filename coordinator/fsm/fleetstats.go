package fsm

import (
	"cmp"
	"time"
)

// FleetStats are the fleet's gauges (the coordinator's /metrics), counted
// in one pass over the hosts.
type FleetStats struct {
	// Datacenters are the per-datacenter counts, by name (every
	// datacenter, also one without hosts).
	Datacenters map[string]*DCStats
	// Kernels counts the hosts per datacenter, kernel line and kernel.
	Kernels map[KernelKey]int
	// Rollouts are the newest rollout of each kernel line, copied: the
	// stats hold no references into the state (they are read after the
	// state's lock is released).
	Rollouts []RolloutStats
	// Policies are the coverage of the policies in force (not retired).
	Policies []PolicyCoverage
}

// DCStats are one datacenter's counts.
type DCStats struct {
	Hosts int
	// Phases counts the hosts by phase ("unknown" for a host that
	// reported none).
	Phases map[string]int
	// Silent counts the agents not heard from within the liveness window
	// (FleetLock-only hosts call only around their reboots: not counted).
	Silent int
	// Unhealthy counts the hosts whose last health report failed.
	Unhealthy int
	// SlotsHeld and SlotsLost count the reboot slots held and those of
	// hosts lost mid-reboot.
	SlotsHeld, SlotsLost int
	Paused               bool
}

// RolloutStats are a rollout's gauges.
type RolloutStats struct {
	ID, Line, Release, State string
	// Waves counts the rollout's waves; WavesCompleted those completed.
	Waves, WavesCompleted int
}

// KernelKey is a label set of FleetStats.Kernels.
type KernelKey struct{ Datacenter, Line, Kernel string }

// PolicyCoverage is how far a policy reached: of the alive agent hosts in
// the datacenters it targets, how many report its current version in
// force (enforcing or auditing).
type PolicyCoverage struct {
	ID       string
	Version  int64
	Pushed   time.Time
	Targeted int
	InForce  int
}

// PhaseUnknown is the phase counted for a host that reported none.
const PhaseUnknown = "unknown"

// FleetStats counts the fleet at now; aliveWithin is the liveness window
// of the time rule (see State.alive).
func (s *State) FleetStats(now time.Time, aliveWithin time.Duration) FleetStats {
	return CountFleet(func(fn func(*State)) { fn(s) }, now, aliveWithin)
}

// CountFleet is FleetStats with the state read through view (FSM.View or
// a named FSM.ViewAs): the datacenters, policies and rollouts in one call,
// then each datacenter's hosts in a call of its own, so that counting a
// region of 100,000 hosts never holds the state's lock for more than one
// datacenter (a write waits for the hold, and every read behind the
// write). A host moving between datacenters while it counts may be
// counted twice or not at all; gauges tolerate that.
func CountFleet(view func(func(*State)), now time.Time, aliveWithin time.Duration) FleetStats {
	fs := FleetStats{Datacenters: map[string]*DCStats{}, Kernels: map[KernelKey]int{}}
	dcOf := func(name string) *DCStats {
		d := fs.Datacenters[name]
		if d == nil {
			d = &DCStats{Phases: map[string]int{}}
			fs.Datacenters[name] = d
		}
		return d
	}
	var (
		// policies are copies: nothing of the state is kept between
		// views.
		policies []Policy
		dcs      []string
	)
	view(func(s *State) {
		for name, dc := range s.Datacenters {
			d := dcOf(name)
			d.Paused = dc.Policy.Paused
			d.SlotsHeld = len(dc.Slots)
			for _, sl := range dc.Slots {
				if sl.Lost {
					d.SlotsLost++
				}
			}
		}
		for _, id := range sortedKeys(s.Policies) {
			if p := s.Policies[id]; !p.Retired {
				policies = append(policies, *p)
				fs.Policies = append(fs.Policies, PolicyCoverage{ID: p.ID, Version: p.Version, Pushed: p.Pushed})
			}
		}
		newest := map[string]*Rollout{}
		for _, r := range s.Rollouts {
			if n := newest[r.Line]; n == nil || r.Created.After(n.Created) || (r.Created.Equal(n.Created) && r.ID > n.ID) {
				newest[r.Line] = r
			}
		}
		for _, line := range sortedKeys(newest) {
			r := newest[line]
			fs.Rollouts = append(fs.Rollouts, RolloutStats{ID: r.ID, Line: r.Line, Release: r.Release, State: r.State,
				Waves: len(r.Waves), WavesCompleted: r.WavesCompleted()})
		}
		dcs = s.HostDatacenters()
	})
	// Per datacenter, phases and kernels are few: counted in small
	// slices (no hashing per host), turned into maps at the end.
	type kernelCount struct {
		line, kernel string
		n            int
	}
	var (
		phases  []counted
		kernels []kernelCount
	)
	for _, name := range dcs {
		d := dcOf(name)
		phases, kernels = phases[:0], kernels[:0]
		view(func(s *State) {
			for _, h := range s.byDC[name] {
				d.Hosts++
				phases = count(phases, h.Phase)
				found := false
				for i := range kernels {
					if kernels[i].kernel == h.Kernel && kernels[i].line == h.KernelLine {
						kernels[i].n++
						found = true
						break
					}
				}
				if !found {
					kernels = append(kernels, kernelCount{line: h.KernelLine, kernel: h.Kernel, n: 1})
				}
				alive := s.alive(h, now, aliveWithin)
				if !alive && !h.FleetLock {
					d.Silent++
				}
				if h.Unhealthy {
					d.Unhealthy++
				}
				if h.FleetLock || !alive {
					continue
				}
				for i := range policies {
					p := &policies[i]
					if !p.appliesTo(name) {
						continue
					}
					fs.Policies[i].Targeted++
					for _, ps := range h.Policies {
						if ps.ID == p.ID && ps.Version == p.Version && ps.State.InForce() {
							fs.Policies[i].InForce++
							break
						}
					}
				}
			}
		})
		for _, c := range phases {
			d.Phases[cmp.Or(c.key, PhaseUnknown)] += c.n
		}
		for _, k := range kernels {
			fs.Kernels[KernelKey{Datacenter: name, Line: k.line, Kernel: cmp.Or(k.kernel, PhaseUnknown)}] += k.n
		}
	}
	return fs
}

// counted is a value with its count.
type counted struct {
	key string
	n   int
}

// count adds one to key's count in cs.
func count(cs []counted, key string) []counted {
	for i := range cs {
		if cs[i].key == key {
			cs[i].n++
			return cs
		}
	}
	return append(cs, counted{key: key, n: 1})
}

// RolloutStates returns the states a rollout can be in.
func RolloutStates() []string {
	return []string{RolloutRunning, RolloutPaused, RolloutAborted, RolloutDone, RolloutFailed}
}

// WavesCompleted counts the waves of r that completed.
func (r *Rollout) WavesCompleted() int {
	n := 0
	for _, w := range r.Waves {
		if !w.Completed.IsZero() {
			n++
		}
	}
	return n
}
