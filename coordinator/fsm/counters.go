package fsm

import (
	"slices"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/capacity"
)

// The scheduler's per-datacenter inputs are maintained incrementally so
// that a grant, a heartbeat answer or a registration costs O(1) in the
// datacenter's agents instead of a walk over its hosts. They are derived
// state, never persisted: rebuilt from Hosts and the slots on restore
// (State.reindex), so snapshots and replayed logs do not change.
//
// Every host's contribution (hostMark) is recorded on the host; State.touch
// subtracts the old one and adds the current one, and every mutation of
// what a mark reads — a host registered, moved, removed or expired, its
// phase, unhealthy mark, silent mark, gossip view or FleetLock status, a
// slot granted, released, force-released or dropped with its host —
// touches the host. FleetLock-only hosts, whose liveness is time-based
// (heard from within the FleetLock freshness), are not counted: each
// datacenter keeps them in a set that the readers walk (few in practice,
// and unconfirmed ids are bounded by MaxUnconfirmedFleetLockPerDC).
//
// The serving, alive and gossip-view counts use the flag liveness rule
// (an agent is alive unless marked silent); they are read only while it
// is in force (State.LivenessByFlag). Replays of formats 1 and 2 decide
// by walking the hosts (hostStatesAndView), as they did.

// dcCounts are one datacenter's counters.
type dcCounts struct {
	// agents is the number of registered agent hosts (not FleetLock-only).
	agents int
	// holding is the number of agents holding a slot in the datacenter.
	holding int
	// serving is the number of agents not marked silent, not holding a
	// slot, not unhealthy, not in an out-of-service phase.
	serving int
	// alive is the number of agents not marked silent.
	alive int
	// views counts the gossip views of alive agents by their
	// out-of-service count (see quorumView); reporters is their sum.
	views     map[int]int
	reporters int
	// fleetLock holds the datacenter's FleetLock-only hosts, by id.
	fleetLock map[string]*Host
	// silent holds the datacenter's agents marked silent, by id: with
	// fleetLock, the only hosts an expiry scan under the flag liveness
	// rule can expire (see expireHosts).
	silent map[string]*Host
	// seeds are the agents that can be gossip seeds (not marked silent,
	// with a gossip address), sorted by id (see State.gossipSeeds).
	seeds []*Host
}

// hostMark is what one host contributes to its datacenter's counters.
type hostMark struct {
	dc                                       string
	fleetLock, holding, serving, alive, view bool
	// seed: alive with a gossip address (a gossip seed for the others).
	seed bool
	// on: the host is counted (its contribution is this mark). Kept here,
	// in the padding, rather than in a field of Host of its own: it keeps
	// a Host in a smaller size class.
	on  bool
	oos int
}

// markOf computes h's contribution from the current state.
func (s *State) markOf(h *Host) hostMark {
	m := hostMark{dc: h.Datacenter, fleetLock: h.FleetLock, on: true}
	if h.FleetLock {
		return m
	}
	if dc := s.Datacenters[h.Datacenter]; dc != nil && dc.Slots[h.ID] != nil {
		m.holding = true
	}
	m.alive = !h.Silent
	m.seed = m.alive && h.GossipAddr != ""
	m.serving = m.alive && !m.holding && !h.Unhealthy && !capacity.OutOfService(h.Phase)
	if h.View != nil && m.alive {
		m.view, m.oos = true, outOfService(*h.View)
	}
	return m
}

// add adds (sign 1) or subtracts (sign -1) mark m of host h.
func (s *State) add(h *Host, id string, m hostMark, sign int) {
	c := s.counts[m.dc]
	if c == nil {
		c = &dcCounts{views: map[int]int{}, fleetLock: map[string]*Host{}, silent: map[string]*Host{}}
		s.counts[m.dc] = c
	}
	if m.fleetLock {
		if sign > 0 {
			c.fleetLock[id] = h
		} else {
			delete(c.fleetLock, id)
		}
		return
	}
	c.agents += sign
	if !m.alive {
		if sign > 0 {
			c.silent[id] = h
		} else {
			delete(c.silent, id)
		}
	}
	c.holding += b2i(m.holding) * sign
	c.serving += b2i(m.serving) * sign
	c.alive += b2i(m.alive) * sign
	if m.seed {
		i, found := slices.BinarySearchFunc(c.seeds, id, byHostID)
		switch {
		case sign > 0 && !found:
			c.seeds = slices.Insert(c.seeds, i, h)
		case sign > 0:
			c.seeds[i] = h
		case found:
			c.seeds = slices.Delete(c.seeds, i, i+1)
		}
	}
	if m.view {
		c.reporters += sign
		if c.views[m.oos] += sign; c.views[m.oos] == 0 {
			delete(c.views, m.oos)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// touch brings host id's contribution to the counters up to date: call it
// after every change of the host or of its slot (a removed host is
// untouched instead, see dropHost).
func (s *State) touch(id string) {
	if h := s.Hosts[id]; h != nil {
		s.touchHost(h)
	}
}

// touchHost is touch for a host in hand. The host keeps the contribution
// it made (Host.mark): no lookup by id.
func (s *State) touchHost(h *Host) {
	m := s.markOf(h)
	if h.mark.on && m == h.mark {
		// Most heartbeats change nothing the counters read.
		return
	}
	if h.mark.on {
		s.add(h, h.ID, h.mark, -1)
	}
	s.add(h, h.ID, m, 1)
	h.mark = m
}

// untouch takes host h's contribution out of the counters (it is being
// removed).
func (s *State) untouch(h *Host) {
	if h.mark.on {
		s.add(h, h.ID, h.mark, -1)
		h.mark = hostMark{}
	}
}

// recount rebuilds the counters from Hosts and the slots.
func (s *State) recount() {
	s.counts = map[string]*dcCounts{}
	for _, h := range s.Hosts {
		h.mark = hostMark{}
		s.touchHost(h)
	}
}

// fleetLockCounts reports whether FleetLock-only host h of datacenter dc
// counts toward its slot limit base at now (confirmed and heard from
// within fresh) and whether it holds a slot (then it is listed anyway; see
// hostStatesAndView).
func (s *State) fleetLockCounts(h *Host, dc *Datacenter, now time.Time, fresh time.Duration) (counts, holding bool) {
	return h.counts() && s.alive(h, now, fresh), dc.Slots[h.ID] != nil
}

// scheduleInputs returns what Decide needs about dc for a request by
// requester, and the datacenter's gossip view of itself (see
// hostStatesAndView): from the counters when the flag liveness rule is in
// force, plus a walk over the datacenter's FleetLock-only hosts; by
// walking every host under the time rule of formats 1 and 2.
func (s *State) scheduleInputs(dc *Datacenter, t Timing, requester string) (schedule.Counts, int) {
	if !s.LivenessByFlag {
		hosts, oos := s.hostStatesAndView(dc, t, requester)
		return schedule.Count(hosts, requester), oos
	}
	var sc schedule.Counts
	c := s.counts[dc.Name]
	if c == nil {
		return sc, 0
	}
	sc.Registered, sc.Holders, sc.Serving = c.agents, c.holding, c.serving
	fresh := t.fleetLockFresh()
	for id, h := range c.fleetLock {
		counts, holding := s.fleetLockCounts(h, dc, s.Now, fresh)
		if !holding && !counts && id != requester {
			continue
		}
		serving := counts && !holding && !h.Unhealthy && !capacity.OutOfService(h.Phase)
		sc.Registered++
		sc.Holders += b2i(holding)
		sc.Serving += b2i(serving)
		if id == requester {
			sc.Found, sc.RequesterHolding, sc.RequesterServing = true, holding, serving
		}
	}
	if h := s.Hosts[requester]; h != nil && h.mark.on && !h.mark.fleetLock && h.mark.dc == dc.Name {
		sc.Found, sc.RequesterHolding, sc.RequesterServing = true, h.mark.holding, h.mark.serving
	}
	return sc, quorumCounts(c.views, c.reporters, len(s.byDC[dc.Name]))
}

// quorumCounts is quorumView on views counted by value (reporters in
// all).
func quorumCounts(views map[int]int, reporters, registered int) int {
	quorum := max(reporters/2+1, 2)
	if reporters < quorum {
		return 0
	}
	keys := make([]int, 0, len(views))
	for k := range views {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// The value at index reporters-quorum of the sorted views.
	i := reporters - quorum
	for _, k := range keys {
		if i < views[k] {
			return min(k, registered)
		}
		i -= views[k]
	}
	return 0
}

// countedFast is countedHosts from the counters: the agents (all count),
// plus the FleetLock-only hosts that hold a slot or are confirmed and
// heard from within fresh at now.
func (s *State) countedFast(dc *Datacenter, now time.Time, fresh time.Duration) int {
	c := s.counts[dc.Name]
	if c == nil {
		return 0
	}
	n := c.agents
	for _, h := range c.fleetLock {
		if counts, holding := s.fleetLockCounts(h, dc, now, fresh); counts || holding {
			n++
		}
	}
	return n
}

// registeredFast is registered from the counters: the agents and the
// confirmed FleetLock-only hosts, and the unconfirmed ones.
func (s *State) registeredFast(dc string) (counted, unconfirmed int) {
	c := s.counts[dc]
	if c == nil {
		return 0, 0
	}
	counted = c.agents
	for _, h := range c.fleetLock {
		if h.counts() {
			counted++
		} else {
			unconfirmed++
		}
	}
	return counted, unconfirmed
}
