package fsm

import (
	"fmt"
	"sort"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// The read views below turn state into API types. now is the reader's
// clock: reads are not replicated, so they may use it.

// DatacenterView returns one datacenter with live counts.
func (s *State) DatacenterView(name string, now time.Time, aliveWithin time.Duration) (wire.Datacenter, bool) {
	dc, ok := s.Datacenters[name]
	if !ok {
		return wire.Datacenter{}, false
	}
	v := wire.Datacenter{
		Name: dc.Name, Tier: dc.Tier, SlotLimit: dc.Policy.SlotLimit, SlotPct: dc.Policy.SlotPct,
		MinHealthyPct: dc.Policy.MinHealthyPct, Window: dc.Policy.Window.String(), Paused: dc.Policy.Paused,
		PauseReason: dc.PauseReason, FailureBudget: dc.Policy.FailureBudget, Failures: dc.Policy.Failures,
		SlotsHeld: len(dc.Slots), LineRule: s.lineRuleView(dc),
	}
	for line, t := range dc.Targets {
		if v.Targets == nil {
			v.Targets = map[string]string{}
		}
		v.Targets[line] = t.Release
	}
	fresh := Timing{FleetLockFresh: s.FleetLockFresh}.fleetLockFresh()
	for _, h := range s.byDC[name] {
		v.Hosts++
		if s.serving(h, dc, now, aliveWithin, fresh) {
			v.Serving++
		}
	}
	v.EffectiveLimit = dc.Policy.Limit(s.countedHosts(dc, now, fresh))
	return v, true
}

// countedHosts is the base of dc's slot limit and capacity floor at time
// now: its registered hosts, less the FleetLock-only hosts holding no slot
// that are unconfirmed or not heard from within fresh (see
// hostStatesAndView).
func (s *State) countedHosts(dc *Datacenter, now time.Time, fresh time.Duration) int {
	return s.countedFast(dc, now, fresh)
}

// countedWalk is countedHosts by walking dc's hosts (the reference the
// counters are tested against).
func (s *State) countedWalk(dc *Datacenter, now time.Time, fresh time.Duration) int {
	n := 0
	for id, h := range s.byDC[dc.Name] {
		if h.FleetLock && (!h.counts() || !s.alive(h, now, fresh)) && dc.Slots[id] == nil {
			continue
		}
		n++
	}
	return n
}

// DatacenterViews returns every datacenter, by name.
func (s *State) DatacenterViews(now time.Time, aliveWithin time.Duration) []wire.Datacenter {
	out := make([]wire.Datacenter, 0, len(s.Datacenters))
	for _, name := range sortedKeys(s.Datacenters) {
		v, _ := s.DatacenterView(name, now, aliveWithin)
		out = append(out, v)
	}
	return out
}

// HostView returns one host.
func (s *State) HostView(id string, now time.Time, aliveWithin time.Duration) (wire.Host, bool) {
	h, ok := s.Hosts[id]
	if !ok {
		return wire.Host{}, false
	}
	dc := s.Datacenters[h.Datacenter]
	v := wire.Host{
		ID: h.ID, Datacenter: h.Datacenter, KernelLine: h.KernelLine, LineSource: h.LineSource, AgentLine: h.AgentLine,
		OperatorLine: h.OperatorLine, AssignedLine: h.FollowedLine, PendingLine: h.PendingLine, LineWait: h.LineWait,
		Kernel: h.Kernel, Phase: h.Phase,
		LastHeartbeat: h.LastHeartbeat, Unhealthy: h.Unhealthy,
		Alive:    s.alive(h, now, h.aliveWindow(aliveWithin, Timing{FleetLockFresh: s.FleetLockFresh}.fleetLockFresh())),
		Policies: append([]wire.PolicyStatus(nil), h.Policies...),
	}
	if dc != nil {
		if sl := dc.Slots[id]; sl != nil {
			v.Slot = sl.wire(dc.Name)
			v.Lost = sl.Lost
		}
	}
	return v, true
}

// HostViews returns the hosts of datacenter dc (all when dc is ""), by id.
func (s *State) HostViews(dc string, now time.Time, aliveWithin time.Duration) []wire.Host {
	out := []wire.Host{}
	for _, id := range sortedKeys(s.Hosts) {
		if dc != "" && s.Hosts[id].Datacenter != dc {
			continue
		}
		v, _ := s.HostView(id, now, aliveWithin)
		out = append(out, v)
	}
	return out
}

// SlotViews returns the held slots of datacenter dc (all when dc is ""),
// by datacenter and host.
func (s *State) SlotViews(dc string) []wire.Slot {
	out := []wire.Slot{}
	for _, name := range sortedKeys(s.Datacenters) {
		if dc != "" && name != dc {
			continue
		}
		d := s.Datacenters[name]
		for _, host := range sortedKeys(d.Slots) {
			out = append(out, *d.Slots[host].wire(name))
		}
	}
	return out
}

// EventViews returns up to limit events with ID > since, oldest first,
// from the last MaxEvents.
func (s *State) EventViews(since uint64, limit int) []wire.Event {
	out := []wire.Event{}
	events := s.Events
	if len(events) > MaxEvents {
		events = events[len(events)-MaxEvents:]
	}
	for _, e := range events {
		if e.ID > since {
			out = append(out, e)
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out
}

// PhaseCounts counts hosts per datacenter per phase, and per running
// kernel.
func (s *State) PhaseCounts() (phases, kernels map[string]map[string]int) {
	phases, kernels = map[string]map[string]int{}, map[string]map[string]int{}
	for _, h := range s.Hosts {
		if phases[h.Datacenter] == nil {
			phases[h.Datacenter], kernels[h.Datacenter] = map[string]int{}, map[string]int{}
		}
		phases[h.Datacenter][orDefault(h.Phase, "unknown")]++
		kernels[h.Datacenter][orDefault(h.Kernel, "unknown")]++
	}
	return phases, kernels
}

// ReleaseViews returns every release, oldest first (by creation, then id).
func (s *State) ReleaseViews() []wire.Release {
	out := make([]wire.Release, 0, len(s.Releases))
	for _, id := range sortedKeys(s.Releases) {
		r := s.Releases[id]
		v := wire.Release{ID: r.ID, Line: r.Line, KernelVersion: r.KernelVersion, UpstreamVersion: r.UpstreamVersion,
			Kind: r.Kind, Created: r.Created, Added: r.Added, KeyID: r.KeyID, State: r.State, StateReason: r.StateReason, Source: r.Source}
		for _, name := range sortedKeys(s.Datacenters) {
			if t, ok := s.Datacenters[name].Targets[r.Line]; ok && t.Release == id {
				v.Targeted = append(v.Targeted, name)
			}
		}
		for line, rej := range r.Rejected {
			if v.Rejected == nil {
				v.Rejected = map[string]string{}
			}
			v.Rejected[line] = rej.Reason
			if rej.Rollout != "" {
				v.Rejected[line] = fmt.Sprintf("rollout %s: %s", rej.Rollout, rej.Reason)
			}
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// PolicyViews returns every pushed policy with its coverage per datacenter:
// how many hosts report each state and version, and how many alive hosts
// of a targeted datacenter do not report it at all.
func (s *State) PolicyViews(now time.Time, aliveWithin time.Duration) []wire.Policy {
	out := make([]wire.Policy, 0, len(s.Policies))
	for _, id := range sortedKeys(s.Policies) {
		p := s.Policies[id]
		v := wire.Policy{ID: p.ID, Version: p.Version, CVE: p.CVE, Kind: p.Kind, Mode: p.Mode, Datacenters: p.Datacenters,
			Expires: p.Expires, Pushed: p.Pushed, KeyID: p.KeyID, Retired: p.Retired, Coverage: map[string]map[string]int{}}
		for _, dc := range sortedKeys(s.Datacenters) {
			counts := map[string]int{}
			for _, h := range s.byDC[dc] {
				if h.FleetLock {
					continue
				}
				reported := false
				for _, ps := range h.Policies {
					if ps.ID == id {
						counts[fmt.Sprintf("%s v%d", ps.State, ps.Version)]++
						reported = true
					}
				}
				if !reported && !p.Retired && p.appliesTo(dc) && s.alive(h, now, aliveWithin) {
					counts["missing"]++
				}
			}
			if len(counts) > 0 {
				v.Coverage[dc] = counts
			}
		}
		out = append(out, v)
	}
	return out
}

// RolloutViews returns every rollout with its progress, newest first.
func (s *State) RolloutViews(now time.Time, aliveWithin time.Duration) []wire.Rollout {
	out := make([]wire.Rollout, 0, len(s.Rollouts))
	for _, id := range sortedKeys(s.Rollouts) {
		out = append(out, s.RolloutView(s.Rollouts[id], now, aliveWithin))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// RolloutView returns one rollout with per-wave, per-datacenter counts.
func (s *State) RolloutView(r *Rollout, now time.Time, aliveWithin time.Duration) wire.Rollout {
	v := wire.Rollout{ID: r.ID, Release: r.Release, Line: r.Line, Kernel: r.Kernel, State: r.State, PauseReason: r.PauseReason,
		Expedite: r.Expedite, Reason: r.Reason, Created: r.Created, SoakSeconds: int64(r.Soak / time.Second),
		CycleSeconds: int64(r.Cycle / time.Second), Budget: r.Budget}
	for _, w := range r.Waves {
		wv := wire.RolloutWave{Name: w.Name, Gates: w.Gates, Started: w.Started, Completed: w.Completed, Passed: w.Passed}
		for _, dc := range w.Datacenters {
			c := wire.RolloutDCCount{Datacenter: dc}
			for _, h := range s.lineHosts(dc, r.Line) {
				c.Hosts++
				switch {
				case h.Unhealthy || h.Phase == wire.PhaseFailed:
					c.Failed++
				case h.Kernel == r.Kernel && (h.Phase == wire.PhaseIdle || h.Phase == wire.PhaseHealthy || h.Phase == ""):
					c.Healthy++
				case h.Phase == wire.PhaseDraining:
					c.Draining++
				case h.Phase == wire.PhaseRebooting || h.Phase == wire.PhaseVerifying || h.Phase == wire.PhaseRollback ||
					h.Phase == wire.PhaseWrongKernel || h.Phase == wire.PhaseUnhealthy || h.Phase == wire.PhaseHealthy:
					c.Rebooting++
				case h.Phase == wire.PhaseStaged || h.Phase == wire.PhaseWaitingSlot:
					c.Staged++
				default:
					c.Pending++
				}
			}
			wv.Progress = append(wv.Progress, c)
		}
		v.Waves = append(v.Waves, wv)
	}
	return v
}
