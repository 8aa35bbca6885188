package fsm

import (
	"math"
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
// send no heartbeats, keep their stamped-time freshness rules) — once the
// state runs by format 3 (State.LivenessByFlag; see State.alive): a log of
// formats 1 and 2 replays with their time-based rule.

// TypeMarkSilent marks hosts silent (see MarkSilent).
const TypeMarkSilent Type = "mark_silent"

// MarkSilent marks registered agent hosts silent: the leader has not heard
// from them (on any node) for Timing.AliveWithin, and its term is older
// than its liveness grace. A host whose last proposed heartbeat is more
// recent than AliveWithin by the command's time is left alone (it was
// heard), as are unknown, FleetLock-only and already silent hosts.
//
// Term, when set, is the leader's term, and the command is the leader's
// first liveness pass after the grace of that term: it settles the term's
// liveness (State.LivenessSettled). Until then a host not heard in the
// term holds a soaking wave even after the gates' grace (see
// State.unsettled): the wave must not pass on liveness nobody checked.
type MarkSilent struct {
	Hosts []string `json:"hosts"`
	Term  uint64   `json:"term,omitempty"`
	Timing
}

// markSilent applies MarkSilent.
func (s *State) markSilent(p MarkSilent) Result {
	ids := slices.Clone(p.Hosts)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		h := s.Hosts[id]
		if h == nil || h.FleetLock || h.Silent || h.Unhealthy {
			continue
		}
		if p.AliveWithin > 0 && s.Now.Sub(h.LastHeartbeat) < p.AliveWithin {
			continue
		}
		h.Silent, h.SilentSince = true, s.Now
		s.touchHost(h)
		s.event("host_silent", h.Datacenter, h.ID, "host silent: not heard from for %s (last proposed heartbeat %s)", p.AliveWithin, h.LastHeartbeat.Format(time.RFC3339))
	}
	if p.Term > s.LivenessSettled {
		s.LivenessSettled = p.Term
	}
	return Result{}
}

// unsettled reports whether the leader of the current grace term has not
// yet made its first liveness pass after its grace (MarkSilent.Term): a
// host not heard in the term may be dead without being marked silent.
func (s *State) unsettled() bool {
	return s.LivenessByFlag && s.Grace.Term != 0 && s.LivenessSettled < s.Grace.Term
}

// heardAgain clears h's silent mark (a heartbeat applied).
func (s *State) heardAgain(h *Host) {
	if !h.Silent {
		return
	}
	h.Silent, h.SilentSince = false, time.Time{}
	s.touchHost(h)
	s.event("host_heard", h.Datacenter, h.ID, "host heard from again")
}

// noLimit, as the window of State.alive, counts any heartbeat age as
// alive under the time rule: the rollout gates and progress of formats 1
// and 2 read a zero AliveWithin (a tick without timing) so.
const noLimit = time.Duration(math.MaxInt64)

// alive is the liveness rule: whether h counts as alive at now. Every
// liveness decision of the state machine (capacity floor, gossip views
// and seeds, rollout gates and progress, read views) goes through it, and
// s.LivenessByFlag, the format in force, selects the rule:
//
//   - by flag (FormatV3 on): an agent is alive unless the leader marked it
//     silent (MarkSilent);
//   - by time (formats 1 and 2, exactly as their code decided): an agent
//     is alive when its last applied heartbeat is at most window old by
//     now (any age when window is noLimit).
//
// A FleetLock-only host, which sends no heartbeats, is alive under both
// rules when heard from (stamped times) within window, which the caller
// sets to its FleetLock freshness (see Host.aliveWindow).
func (s *State) alive(h *Host, now time.Time, window time.Duration) bool {
	switch {
	case s.LivenessByFlag && !h.FleetLock:
		return !h.Silent
	case window == noLimit:
		return true
	}
	return !h.LastHeartbeat.IsZero() && now.Sub(h.LastHeartbeat) <= window
}

// gateWindow is the time rule's window of the rollout gates and progress:
// aliveWithin, or no limit when it is not set (formats 1 and 2).
func gateWindow(aliveWithin time.Duration) time.Duration {
	if aliveWithin <= 0 {
		return noLimit
	}
	return aliveWithin
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
	case h.AgentLine != hb.KernelLine:
		return "kernel line"
	case h.FollowedLine != hb.AssignedLine:
		return "assigned line"
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
	res := Result{KernelLine: h.KernelLine}
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

// graceWindow is how long after the first tick of a leader's term the
// rollout gates forgive silence: by flag, the liveness grace (the leader
// marks no host silent as long); by time, t.AliveWithin, as formats 1 and
// 2 did.
func (s *State) graceWindow(t Timing) time.Duration {
	if s.LivenessByFlag {
		return t.livenessGrace()
	}
	return t.AliveWithin
}

// silentSince is when h went silent, by the rule in force (see
// State.alive), for host expiry: by flag, when the leader marked an agent
// silent (zero while it is not: a soft silence never expires it); by time,
// and for a FleetLock-only host, when it was last heard from.
func (s *State) silentSince(h *Host) time.Time {
	if s.LivenessByFlag && !h.FleetLock {
		if !h.Silent {
			return time.Time{}
		}
		return h.SilentSince
	}
	return h.lastHeard()
}

// ShedDigest returns wire.HeartbeatDigest of what the state holds of host
// id, and whether an unread heartbeat of it may be shed by load and still
// count as hearing it: a registered agent host (not FleetLock-only), not
// marked silent (coming back is a durable change) and not unhealthy (a
// healthy or idle phase clears the mark). A heartbeat whose digest equals
// it carries no durable change (see DurableChange).
func (s *State) ShedDigest(id string) (string, bool) {
	h := s.Hosts[id]
	if h == nil || h.FleetLock || h.Silent || h.Unhealthy {
		return "", false
	}
	return wire.HeartbeatDigest(wire.Heartbeat{Datacenter: h.Datacenter, KernelLine: h.AgentLine, AssignedLine: h.FollowedLine, Kernel: h.Kernel, Phase: h.Phase,
		BootID: h.BootID, Policies: h.Policies, View: h.View, GossipAddr: h.GossipAddr}), true
}
