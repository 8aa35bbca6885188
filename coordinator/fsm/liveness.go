package fsm

import (
	"slices"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Liveness is soft state: the node that receives a heartbeat records when
// it heard the host in memory and the leader aggregates those records
// (coordinator/store). A heartbeat reaches the replicated log only when it
// carries a durable change (DurableChange); silence enters it only as a
// MarkSilent command the leader proposes, and a silent host's next
// heartbeat, a durable change, clears the mark. "Alive" in the state
// machine is therefore !Host.Silent for agents (FleetLock-only hosts, which
// send no heartbeats, keep their stamped-time freshness rules).

// TypeMarkSilent marks hosts silent (see MarkSilent).
const TypeMarkSilent Type = "mark_silent"

// MarkSilent marks registered agent hosts silent: the leader has not heard
// from them (on any node) for Timing.AliveWithin, and its term is older
// than its liveness grace. A host whose last proposed heartbeat is more
// recent than AliveWithin by the command's time is left alone (it was
// heard), as are unknown, FleetLock-only and already silent hosts.
type MarkSilent struct {
	Hosts []string `json:"hosts"`
	Timing
}

// markSilent applies MarkSilent.
func (s *State) markSilent(p MarkSilent) Result {
	ids := slices.Clone(p.Hosts)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		h := s.Hosts[id]
		if h == nil || h.FleetLock || h.Silent {
			continue
		}
		if p.AliveWithin > 0 && s.Now.Sub(h.LastHeartbeat) < p.AliveWithin {
			continue
		}
		h.Silent, h.SilentSince = true, s.Now
		s.event("host_silent", h.Datacenter, h.ID, "host silent: not heard from for %s (last proposed heartbeat %s)", p.AliveWithin, h.LastHeartbeat.Format(time.RFC3339))
	}
	return Result{}
}

// heardAgain clears h's silent mark (a heartbeat applied).
func (s *State) heardAgain(h *Host) {
	if !h.Silent {
		return
	}
	h.Silent, h.SilentSince = false, time.Time{}
	s.event("host_heard", h.Datacenter, h.ID, "host heard from again")
}

// live reports whether h counts as alive: an agent unless the leader
// marked it silent; a FleetLock-only host (no heartbeats) when heard from
// within fresh by the stamped times.
func (h *Host) live(now time.Time, fresh time.Duration) bool {
	if h.FleetLock {
		return h.alive(now, fresh)
	}
	return !h.Silent
}

// DurableChange reports why heartbeat hb must go through Raft, or "" when
// it carries nothing the replicated state does not already hold: then the
// receiving node records liveness in memory and answers from its local
// state (HeartbeatAnswer). Durable are: a new host, an unknown
// datacenter (refused by the state machine), a move between datacenters,
// a FleetLock-only host that starts heartbeating, a silent host heard
// again, phase, kernel line, kernel, boot id, policy states, gossip
// address, a healthy or idle phase that clears an unhealthy mark, and a
// material change of the gossip view (ViewChanged).
func (s *State) DurableChange(hb wire.Heartbeat) string {
	h := s.Hosts[hb.HostID]
	switch {
	case h == nil:
		return "new host"
	case s.Datacenters[hb.Datacenter] == nil:
		return "unknown datacenter"
	case h.Datacenter != hb.Datacenter:
		return "datacenter move"
	case h.FleetLock:
		return "FleetLock host heartbeats"
	case h.Silent:
		return "silent host heard again"
	case h.Phase != hb.Phase:
		return "phase"
	case h.KernelLine != hb.KernelLine:
		return "kernel line"
	case h.Kernel != hb.Kernel:
		return "kernel"
	case h.BootID != hb.BootID:
		return "boot id"
	case !slices.Equal(h.Policies, hb.Policies):
		return "policy states"
	case h.GossipAddr != hb.GossipAddr:
		return "gossip address"
	case h.Unhealthy && (hb.Phase == wire.PhaseHealthy || hb.Phase == wire.PhaseIdle):
		return "clears unhealthy"
	case ViewChanged(h.View, hb.View):
		return "gossip view"
	}
	return ""
}

// ViewChanged reports whether gossip view next differs materially from
// the one held: one is missing, or the out-of-service count the capacity
// floor reads (dead + draining + rebooting, see quorumView) differs. A
// view kept while it only changes immaterially stays as exact as the
// floor needs: it is only read while its host is not silent.
func ViewChanged(held, next *wire.DCView) bool {
	if held == nil || next == nil {
		return (held == nil) != (next == nil)
	}
	return outOfService(*held) != outOfService(*next)
}

func outOfService(v wire.DCView) int { return v.Dead + v.Draining + v.Rebooting }

// HeartbeatAnswer returns the desired state a heartbeat from a registered
// host gets (as a proposed heartbeat would answer it), computed from the
// state without changing it; ok is false when the host is not registered.
func (s *State) HeartbeatAnswer(hostID string, t Timing) (res Result, ok bool) {
	h := s.Hosts[hostID]
	if h == nil {
		return Result{}, false
	}
	return s.desired(h, t), true
}

// desired is a heartbeat's answer: the slot h holds, its datacenter's
// target release for its line and limits, gossip seeds and policies.
func (s *State) desired(h *Host, t Timing) Result {
	var res Result
	if dc := s.Datacenters[h.Datacenter]; dc != nil {
		if sl := dc.Slots[h.ID]; sl != nil {
			res.Slot = sl.wire(dc.Name)
		}
		if rel := s.targetRelease(dc, h.KernelLine); rel != nil {
			res.Release = &wire.SignedRelease{ID: rel.ID, Manifest: rel.Manifest, Signature: rel.Signature}
		}
		n := s.countedHosts(dc, s.Now, t.fleetLockFresh())
		res.Limits = &wire.DatacenterLimits{EffectiveLimit: dc.Policy.Limit(n), MinHealthyPct: dc.Policy.MinHealthyPct, Hosts: n}
	}
	res.GossipSeeds = s.gossipSeeds(h, maxGossipSeeds)
	for _, id := range sortedKeys(s.Policies) {
		pol := s.Policies[id]
		switch {
		case pol.Retired:
			res.RetiredPolicies = append(res.RetiredPolicies, id)
			res.Retirements = append(res.Retirements, wire.PolicyRetirement{ID: id, Version: pol.Version})
		case pol.appliesTo(h.Datacenter):
			res.Policies = append(res.Policies, wire.SignedPolicy{ID: id, Version: pol.Version, Document: pol.Document, Signature: pol.Signature})
		}
	}
	return res
}

// livenessGrace is how long after the first tick of a leader's term
// silence is forgiven: t.LivenessGrace, at least t.AliveWithin.
func (t Timing) livenessGrace() time.Duration {
	return max(t.AliveWithin, t.LivenessGrace)
}

// silentExpired reports whether h is an agent host silent for longer than
// after (see expireHosts).
func (s *State) silentExpired(h *Host, after time.Duration) bool {
	return h.Silent && !h.FleetLock && s.Now.Sub(h.SilentSince) > after
}
