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
	// Rollouts are the newest rollout of each kernel line.
	Rollouts []*Rollout
	// Policies are the coverage of the policies in force (not retired).
	Policies []PolicyCoverage
}

// DCStats are one datacenter's counts.
type DCStats struct {
	Hosts int
	// Phases counts the hosts by phase ("unknown" for a host that
	// reported none).
	Phases map[string]int
	// Silent counts the hosts not heard from within the liveness window
	// (agents marked silent; FleetLock-only hosts by their last call).
	Silent int
	// Unhealthy counts the hosts whose last health report failed.
	Unhealthy int
	// SlotsHeld and SlotsLost count the reboot slots held and those of
	// hosts lost mid-reboot.
	SlotsHeld, SlotsLost int
	Paused               bool
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
	fs := FleetStats{Datacenters: make(map[string]*DCStats, len(s.Datacenters)), Kernels: map[KernelKey]int{}}
	dcOf := func(name string) *DCStats {
		d := fs.Datacenters[name]
		if d == nil {
			d = &DCStats{Phases: map[string]int{}}
			fs.Datacenters[name] = d
		}
		return d
	}
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
	var policies []*Policy
	for _, id := range sortedKeys(s.Policies) {
		if p := s.Policies[id]; !p.Retired {
			policies = append(policies, p)
			fs.Policies = append(fs.Policies, PolicyCoverage{ID: p.ID, Version: p.Version, Pushed: p.Pushed})
		}
	}
	for _, h := range s.Hosts {
		d := dcOf(h.Datacenter)
		d.Hosts++
		d.Phases[cmp.Or(h.Phase, PhaseUnknown)]++
		fs.Kernels[KernelKey{Datacenter: h.Datacenter, Line: h.KernelLine, Kernel: cmp.Or(h.Kernel, PhaseUnknown)}]++
		alive := s.alive(h, now, aliveWithin)
		if !alive {
			d.Silent++
		}
		if h.Unhealthy {
			d.Unhealthy++
		}
		if h.FleetLock || !alive {
			continue
		}
		for i, p := range policies {
			if !p.appliesTo(h.Datacenter) {
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
	newest := map[string]*Rollout{}
	for _, r := range s.Rollouts {
		if n := newest[r.Line]; n == nil || r.Created.After(n.Created) || (r.Created.Equal(n.Created) && r.ID > n.ID) {
			newest[r.Line] = r
		}
	}
	for _, line := range sortedKeys(newest) {
		fs.Rollouts = append(fs.Rollouts, newest[line])
	}
	return fs
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
