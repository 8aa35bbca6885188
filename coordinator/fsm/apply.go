package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/capacity"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// ValidName reports whether s is a valid datacenter or host id: 1 to 128
// bytes of ASCII letters, digits, '.', '_', ':' and '-', starting with a
// letter or digit (the regular expression
// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$, checked by hand: it is on every
// command's path).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (s *State) setDatacenter(p SetDatacenter) Result {
	if !ValidName(p.Name) {
		return refused(wire.KindInvalidRequest, "invalid datacenter name %q", p.Name)
	}
	dc, exists := s.Datacenters[p.Name]
	next := Datacenter{Name: p.Name, Tier: TierEdge, NextToken: 1}
	if exists {
		next = *dc
	}
	u := p.Update
	if u.Tier != nil {
		switch *u.Tier {
		case TierEdge, TierControl, TierStaging:
			next.Tier = *u.Tier
		default:
			return refused(wire.KindInvalidRequest, "tier %q: want edge, control or staging", *u.Tier)
		}
	}
	// --slots and --slots-pct replace each other.
	if u.SlotLimit != nil {
		next.Policy.SlotLimit, next.Policy.SlotPct = *u.SlotLimit, 0
	}
	if u.SlotPct != nil {
		next.Policy.SlotPct, next.Policy.SlotLimit = *u.SlotPct, 0
	}
	if u.MinHealthyPct != nil {
		next.Policy.MinHealthyPct = *u.MinHealthyPct
	}
	if u.FailureBudget != nil {
		next.Policy.FailureBudget = *u.FailureBudget
	}
	if u.Window != nil {
		w, err := schedule.ParseWindow(*u.Window)
		if err != nil {
			return refused(wire.KindInvalidRequest, "window: %v", err)
		}
		next.Policy.Window = w
	}
	if u.TargetRelease != nil || u.UntargetLine != nil {
		targets := map[string]Target{}
		for l, t := range next.Targets {
			targets[l] = t
		}
		if u.UntargetLine != nil {
			delete(targets, *u.UntargetLine)
		}
		if u.TargetRelease != nil {
			rel := s.Releases[*u.TargetRelease]
			if rel == nil {
				return refused(wire.KindNotFound, "unknown release %q", *u.TargetRelease)
			}
			targets[rel.Line] = Target{Release: rel.ID}
		}
		next.Targets = targets
	}
	if e := s.setLineRule(&next, u); e != nil {
		return Result{Err: e}
	}
	if err := next.Policy.Validate(); err != nil {
		return refused(wire.KindInvalidRequest, "datacenter %s: %v", p.Name, err)
	}
	if next.Slots == nil {
		next.Slots = map[string]*Slot{}
	}
	s.Datacenters[p.Name] = &next
	for id := range s.byDC[p.Name] {
		s.touch(id)
	}
	verb := "updated"
	if !exists {
		verb = "created"
	}
	s.event("dc_set", p.Name, "", "datacenter %s %s", p.Name, verb)
	if exists {
		s.lineRuleChanged(&next, dc.LineRule)
	} else {
		s.lineRuleChanged(&next, nil)
	}
	return Result{}
}

func (s *State) pause(p Pause) Result { return s.setPaused(p, true) }

func (s *State) resume(p Resume) Result { return s.setPaused(Pause{Name: p.Name}, false) }

func (s *State) setPaused(p Pause, pause bool) Result {
	dc, ok := s.Datacenters[p.Name]
	if !ok {
		return refused(wire.KindNotFound, "unknown datacenter %q", p.Name)
	}
	dc.Policy.Paused = pause
	if pause {
		dc.PauseReason = p.Reason
		s.event("dc_paused", dc.Name, "", "paused: %s", orDefault(p.Reason, "by operator"))
	} else {
		dc.PauseReason = ""
		// Resuming also resets the failure count: the operator has looked.
		dc.Policy.Failures = 0
		s.event("dc_resumed", dc.Name, "", "resumed")
	}
	return Result{}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *State) heartbeat(p Heartbeat) Result {
	if !ValidName(p.HostID) || !ValidName(p.Datacenter) {
		return refused(wire.KindInvalidRequest, "invalid host id %q or datacenter %q", p.HostID, p.Datacenter)
	}
	if s.Datacenters[p.Datacenter] == nil {
		// A typo must not create hosts nobody schedules, nor let state
		// grow without bound.
		return refused(wire.KindUnknownDatacenter, "unknown datacenter %q: hosts register only in datacenters an operator created (krollctl dc set)", p.Datacenter)
	}
	h, ok := s.Hosts[p.HostID]
	if ok && h.Datacenter != p.Datacenter {
		if old := s.Datacenters[h.Datacenter]; old != nil && old.Slots[h.ID] != nil {
			return refused(wire.KindConflict, "host %s holds a slot in %s; it cannot move to %s", h.ID, h.Datacenter, p.Datacenter)
		}
	}
	if !ok || h.Datacenter != p.Datacenter || (!p.FleetLock && !h.counts()) {
		// Unconfirmed FleetLock ids have their own small bound: a flood of
		// them must not fill max_per_dc against real registrations.
		counted, unconfirmed := s.registered(p.Datacenter)
		switch {
		case p.FleetLock && (!ok || !h.counts()):
			if unconfirmed >= MaxUnconfirmedFleetLockPerDC {
				return refused(wire.KindHostLimit, "datacenter %s already has %d FleetLock hosts that have not completed a lock and steady-state cycle, the most allowed; they expire after [fleetlock] fresh_within of silence", p.Datacenter, unconfirmed)
			}
		case counted >= p.Timing.maxHostsPerDC():
			return refused(wire.KindHostLimit, "datacenter %s already has %d registered hosts, the most [hosts] max_per_dc allows; remove decommissioned hosts with 'krollctl host remove'", p.Datacenter, counted)
		}
	}
	var (
		old string
		was hostShared // what h shared before (internHost)
	)
	if ok {
		was = sharedOf(h)
	}
	if !ok {
		h = &Host{ID: p.HostID, Registered: s.Now}
		s.Hosts[p.HostID] = h
		if s.Now.IsZero() {
			s.expiryWalk = true // no time it was heard from
		}
		s.event("host_registered", p.Datacenter, p.HostID, "host registered")
	} else {
		old = h.Datacenter
	}
	if !ok || old != p.Datacenter {
		// A known host heard from in its datacenter is indexed there.
		h.Datacenter = p.Datacenter
		s.indexHost(h, old)
	}
	if p.FleetLock {
		// Heard from: a FleetLock-only host counts only while fresh.
		h.FleetLock = true
		h.LastHeartbeat = s.Now
		s.internHost(h, was)
		s.touchHost(h)
		return Result{}
	}
	registering := !ok || h.FleetLock
	h.FleetLock = false
	h.Kernel, h.Phase, h.BootID = p.Kernel, p.Phase, p.BootID
	h.Policies = p.Policies
	h.View = p.View
	h.GossipAddr = p.GossipAddr
	h.LastHeartbeat = s.Now
	s.heardAgain(h)
	if p.Phase == wire.PhaseHealthy || p.Phase == wire.PhaseIdle {
		h.Unhealthy = false
	}
	s.lineHeartbeat(h, p.Heartbeat, registering)
	s.internHost(h, was)
	s.touchHost(h)
	// Answer the host's desired state: the slot it holds and its
	// datacenter's target release when the host is on that line.
	res := s.desired(h, p.Timing)
	if s.format < FormatV5 {
		res.KernelLine = ""
	}
	return res
}

// pushPolicy records a policy version; pushing the same version again is a
// no-op, an older one is refused. A newer version of a retired policy
// brings it back.
func (s *State) pushPolicy(p PushPolicy) Result {
	np := p.Policy
	if old := s.Policies[np.ID]; old != nil {
		switch {
		case np.Version == old.Version && np.Document == old.Document && !old.Retired:
			return Result{}
		case np.Version <= old.Version:
			return refused(wire.KindConflict, "policy %s version %d is not newer than version %d", np.ID, np.Version, old.Version)
		}
	}
	np.Pushed = s.Now
	s.Policies[np.ID] = &np
	scope := "all datacenters"
	if len(np.Datacenters) > 0 {
		scope = strings.Join(np.Datacenters, ",")
	}
	s.event("policy_pushed", "", "", "policy %s v%d (%s, %s) pushed to %s, signed by %s", np.ID, np.Version, np.Kind, np.Mode, scope, np.KeyID)
	return Result{}
}

// retirePolicy retires a policy fleet-wide; retiring it again is a no-op.
func (s *State) retirePolicy(p RetirePolicy) Result {
	pol := s.Policies[p.ID]
	if pol == nil {
		return refused(wire.KindNotFound, "unknown policy %q", p.ID)
	}
	if !pol.Retired {
		pol.Retired = true
		s.event("policy_retired", "", "", "policy %s v%d retired: %s", p.ID, pol.Version, orDefault(p.Reason, "no reason given"))
	}
	return Result{}
}

// maxGossipSeeds is how many peers a heartbeat answer names for joining
// the datacenter's gossip pool.
const maxGossipSeeds = 5

// gossipSeedWithin is how recent a seed's heartbeat must be under the time
// rule (formats 1 and 2; see State.alive).
const gossipSeedWithin = 2 * time.Minute

// gossipSeeds returns up to n gossip addresses of other hosts of h's
// datacenter that are alive (State.alive; by time: heard from within
// gossipSeedWithin), chosen deterministically
// (replicas must agree) but spread over the hosts by h's id.
func (s *State) gossipSeeds(h *Host, n int) []string {
	if h.GossipAddr == "" || n <= 0 {
		return nil
	}
	// The candidates, in id order: the datacenter's other alive hosts
	// with a gossip address. The seeds are the n candidates from rank
	// start mod count on, wrapping around.
	start := 0
	for _, c := range h.ID {
		start += int(c)
	}
	if !s.LivenessByFlag {
		return s.gossipSeedsWalk(h, n, start)
	}
	// By the flag rule the counters keep the candidates, plus h itself
	// when it is one: rank k is seeds[k], or seeds[k+1] from h's place on.
	var seeds []*Host
	if c := s.counts[h.Datacenter]; c != nil {
		seeds = c.seeds
	}
	skip, count := len(seeds), len(seeds)
	if i, found := slices.BinarySearchFunc(seeds, h.ID, byHostID); found && seeds[i] == h {
		skip, count = i, count-1
	}
	if count == 0 {
		return nil
	}
	out := make([]string, 0, min(n, count))
	for r := start % count; len(out) < cap(out); r = (r + 1) % count {
		k := r
		if k >= skip {
			k++
		}
		out = append(out, seeds[k].GossipAddr)
	}
	return out
}

// gossipSeedsWalk is gossipSeeds under the time rule of formats 1 and
// 2 (replays only): the candidates collected from the datacenter's hosts
// and sorted by id.
func (s *State) gossipSeedsWalk(h *Host, n, start int) []string {
	var ids []string
	for id, o := range s.byDC[h.Datacenter] {
		if o != h && o.GossipAddr != "" && s.alive(o, s.Now, gossipSeedWithin) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	out := make([]string, 0, min(n, len(ids)))
	for i := 0; i < len(ids) && len(out) < n; i++ {
		out = append(out, s.Hosts[ids[(start+i)%len(ids)]].GossipAddr)
	}
	return out
}

// targetRelease returns the release dc's hosts of line should run now: its
// target, unless the rollout that set it is paused, aborted or failed, or
// (FormatV5) the release is rejected for the line.
func (s *State) targetRelease(dc *Datacenter, line string) *Release {
	t, ok := dc.Targets[line]
	if !ok {
		return nil
	}
	if t.Rollout != "" {
		if r := s.Rollouts[t.Rollout]; r == nil || (r.State != RolloutRunning && r.State != RolloutDone) {
			return nil
		}
	}
	rel := s.Releases[t.Release]
	if rel == nil || rel.Line != line {
		return nil
	}
	if _, rejected := rel.Rejected[line]; rejected && s.format >= FormatV5 {
		// Rejected after its rollout completed here (an operator's
		// release reject): never handed out again.
		return nil
	}
	return rel
}

// expedited reports whether the host's current target comes from an
// expedited (CVE) rollout: its reboots ignore the maintenance window.
func (s *State) expedited(dc *Datacenter, host string) bool {
	h := s.Hosts[host]
	if dc == nil || h == nil {
		return false
	}
	t, ok := dc.Targets[h.KernelLine]
	return ok && t.Expedite && s.targetRelease(dc, h.KernelLine) != nil
}

// addRelease records a release; adding the same release again is a no-op,
// a different one under a known id is refused.
func (s *State) addRelease(p AddRelease) Result {
	r := p.Release
	if !ValidName(r.ID) {
		return refused(wire.KindInvalidRequest, "invalid release id %q", r.ID)
	}
	if old := s.Releases[r.ID]; old != nil {
		if bytes.Equal(old.Manifest, r.Manifest) {
			return Result{}
		}
		return refused(wire.KindConflict, "release %s exists with a different manifest", r.ID)
	}
	r.Added = s.Now
	r.State, r.StateReason = "", "" // derived (refreshRelease)
	s.Releases[r.ID] = &r
	s.event("release_added", "", "", "release %s (line %s, kernel %s) added, signed by %s", r.ID, r.Line, r.KernelVersion, r.KeyID)
	s.refreshRelease(r.ID)
	return Result{}
}

// hostStatesAndView lists dc's hosts for the scheduler and, in the same
// pass, the datacenter's gossip view of itself: how many of its hosts its
// agents see out of service (dead + draining + rebooting), as confirmed by
// a quorum of the alive hosts (State.alive) that report a view
// (schedule.Request.ObservedOutOfService; see quorumView). A FleetLock-only
// host that holds no slot is left out altogether unless it is confirmed
// (see Host.counts) and heard from within t.FleetLockFresh: a phantom id
// must inflate neither the slot limit base nor the serving count. The
// requester is always listed (the scheduler must find it), an unconfirmed
// or stale FleetLock requester as not serving. The slice is scratch space
// reused by the next call: Decide does not keep it.
func (s *State) hostStatesAndView(dc *Datacenter, t Timing, requester string) ([]schedule.HostState, int) {
	hosts := s.byDC[dc.Name]
	out := s.scratch[:0]
	views := s.viewScratch[:0]
	fresh := t.fleetLockFresh()
	// Holders are few (the slot limit): compare host pointers instead of
	// hashing every host id into dc.Slots.
	holders := s.holderScratch[:0]
	for id := range dc.Slots {
		if h := hosts[id]; h != nil {
			holders = append(holders, h)
		}
	}
	s.holderScratch = holders
	for id, h := range hosts {
		holding := false
		for _, x := range holders {
			if x == h {
				holding = true
				break
			}
		}
		counts := !h.FleetLock || (h.counts() && s.alive(h, s.Now, fresh))
		if !holding && !counts && id != requester {
			continue
		}
		serving := counts && !holding && !h.Unhealthy && !capacity.OutOfService(h.Phase) && s.alive(h, s.Now, h.aliveWindow(t.AliveWithin, fresh))
		out = append(out, schedule.HostState{ID: id, Holding: holding, Serving: serving})
		if h.View != nil && !h.FleetLock && s.alive(h, s.Now, t.AliveWithin) {
			views = append(views, h.View.Dead+h.View.Draining+h.View.Rebooting)
		}
	}
	s.scratch, s.viewScratch = out, views
	return out, quorumView(views, len(hosts))
}

// quorumView aggregates the out-of-service counts of a datacenter's
// gossip views, each clamped to its registered hosts: the largest count
// that a quorum — a majority, and at least two — of the reporters report
// or exceed. One host (or a minority) reporting a huge outage cannot halt
// the datacenter; a sole reporter is not trusted at all (the coordinator's
// own count of serving hosts still applies). views is sorted in place.
func quorumView(views []int, registered int) int {
	quorum := max(len(views)/2+1, 2)
	if len(views) < quorum {
		return 0
	}
	slices.Sort(views)
	return min(views[len(views)-quorum], registered)
}

func (s *State) acquire(p Acquire) Result {
	if p.Owner != OwnerAgent && p.Owner != OwnerFleetLock {
		return refused(wire.KindInvalidRequest, "unknown slot owner %q", p.Owner)
	}
	if p.Owner == OwnerFleetLock && s.format >= FormatV4 {
		if r := s.fleetLockRefused(p.Host, p.Datacenter, p.Stay, false); r.Err != nil {
			return r
		}
	}
	if _, known := s.Datacenters[p.Datacenter]; known && p.Owner == OwnerFleetLock && ValidName(p.Host) {
		// FleetLock clients (Zincati) never send heartbeats: asking for the
		// lock registers them.
		if h, ok := s.Hosts[p.Host]; !ok || (h.FleetLock && h.Datacenter != p.Datacenter) {
			if r := s.heartbeat(Heartbeat{Heartbeat: wire.Heartbeat{HostID: p.Host, Datacenter: p.Datacenter}, FleetLock: true, Timing: p.Timing}); r.Err != nil {
				return r
			}
		} else if h.FleetLock {
			h.LastHeartbeat = s.Now
		}
	}
	dc, exists := s.Datacenters[p.Datacenter]
	if h, ok := s.Hosts[p.Host]; ok && h.Datacenter != p.Datacenter {
		return refused(wire.KindUnknownHost, "host %s is registered in %s, not %s", p.Host, h.Datacenter, p.Datacenter)
	}
	var (
		policy schedule.Policy
		counts schedule.Counts
	)
	req := schedule.Request{Host: p.Host, Expedite: p.Expedite || s.expedited(dc, p.Host), Now: s.Now}
	if exists {
		policy = dc.Policy
		counts, req.ObservedOutOfService = s.scheduleInputs(dc, p.Timing, p.Host)
	}
	if p.Release != "" && p.Owner == OwnerAgent && s.format >= FormatV5 {
		if e := s.releaseWithdrawn(dc, p.Host, p.Release); e != nil {
			return Result{Err: e}
		}
	}
	d := schedule.DecideCounts(policy, exists, counts, req)
	switch {
	case d.Reason == schedule.ReasonAlreadyHeld:
		sl := dc.Slots[p.Host]
		if sl.Owner != p.Owner {
			return refused(wire.KindConflict, "host %s holds its slot through %s, not %s", p.Host, sl.Owner, p.Owner)
		}
		if sl.Lost {
			return refused(wire.KindStaleToken, "slot of %s was marked lost at its reboot deadline; an operator must release it", p.Host)
		}
		s.extend(sl, p.Timing)
		return Result{Slot: sl.wire(dc.Name), Reason: string(d.Reason)}
	case !d.Grant:
		return Result{Err: &wire.Error{Kind: denialKind(d.Reason), Value: d.Detail}, Reason: string(d.Reason)}
	}
	sl := &Slot{Host: p.Host, Token: dc.NextToken, Owner: p.Owner, Granted: s.Now}
	dc.NextToken++
	s.extend(sl, p.Timing)
	dc.Slots[p.Host] = sl
	if h := s.Hosts[p.Host]; h != nil {
		h.LastToken = sl.Token
	}
	s.touch(p.Host)
	s.event("slot_granted", dc.Name, p.Host, "slot granted to %s (token %d, %s)", p.Host, sl.Token, d.Detail)
	return Result{Slot: sl.wire(dc.Name), Reason: string(d.Reason)}
}

// extend renews a slot's lease and reboot deadline from now.
func (s *State) extend(sl *Slot, t Timing) {
	sl.LeaseExpires = s.Now.Add(t.Lease)
	sl.RebootDeadline = s.Now.Add(t.RebootDeadline)
}

// denialKind maps a scheduler reason to its API error kind.
func denialKind(r schedule.Reason) string {
	switch r {
	case schedule.ReasonSemaphoreFull:
		return wire.KindSemaphoreFull
	case schedule.ReasonCapacityFloor:
		return wire.KindCapacityFloor
	case schedule.ReasonPaused:
		return wire.KindPaused
	case schedule.ReasonOutsideWindow:
		return wire.KindOutsideWindow
	case schedule.ReasonFailureBudget:
		return wire.KindFailureBudget
	case schedule.ReasonUnknownDC:
		return wire.KindUnknownDC
	case schedule.ReasonUnknownHost:
		return wire.KindUnknownHost
	}
	return wire.KindInternal
}

// heldSlot finds the slot a renew/release names and checks its token.
func (s *State) heldSlot(p SlotRelease) (*Datacenter, *Slot, *wire.Error) {
	dc, ok := s.Datacenters[p.Datacenter]
	if !ok {
		return nil, nil, &wire.Error{Kind: wire.KindNotFound, Value: fmt.Sprintf("unknown datacenter %q", p.Datacenter)}
	}
	sl, ok := dc.Slots[p.Host]
	if !ok {
		return dc, nil, &wire.Error{Kind: wire.KindNotHolder, Value: fmt.Sprintf("%s holds no slot in %s", p.Host, p.Datacenter)}
	}
	if p.Owner == OwnerFleetLock && p.Token == 0 {
		if sl.Owner != OwnerFleetLock {
			return dc, nil, &wire.Error{Kind: wire.KindConflict, Value: fmt.Sprintf("%s holds its slot through %s, not fleetlock", p.Host, sl.Owner)}
		}
		return dc, sl, nil
	}
	if sl.Token != p.Token {
		return dc, nil, &wire.Error{Kind: wire.KindStaleToken, Value: fmt.Sprintf("token %d is stale: %s holds token %d in %s", p.Token, p.Host, sl.Token, p.Datacenter)}
	}
	return dc, sl, nil
}

func (s *State) renew(p Renew) Result {
	dc, sl, e := s.heldSlot(SlotRelease{Datacenter: p.Datacenter, Host: p.Host, Token: p.Token, Owner: p.Owner})
	if e != nil {
		return Result{Err: e}
	}
	if sl.Lost {
		return refused(wire.KindStaleToken, "slot of %s was marked lost at its reboot deadline; an operator must release it", p.Host)
	}
	if p.Release != "" && sl.Owner == OwnerAgent && s.format >= FormatV5 {
		if e := s.releaseWithdrawn(dc, p.Host, p.Release); e != nil {
			return Result{Err: e}
		}
	}
	s.extend(sl, p.Timing)
	return Result{Slot: sl.wire(dc.Name)}
}

// fleetLockRefused refuses (FormatV4) a FleetLock request for a host a
// kroll agent registered: its agent takes and gives back its slots, and
// FleetLock taking one for it would hold a semaphore seat in its name and
// lock the agent out. A steady-state release (release) is still taken
// from a host that holds a FleetLock slot (a Zincati node on which an
// agent was installed mid-lock gives it back). With stay it also refuses
// naming a datacenter other than the registered host's: requests without
// credentials never move a host.
func (s *State) fleetLockRefused(host, dc string, stay, release bool) Result {
	h, ok := s.Hosts[host]
	if !ok {
		return Result{}
	}
	if !h.FleetLock {
		if d := s.Datacenters[h.Datacenter]; release && d != nil && d.Slots[host] != nil && d.Slots[host].Owner == OwnerFleetLock {
			return Result{}
		}
		return refused(wire.KindConflict, "host %s is registered by a kroll agent (in %s): its agent takes and releases its slots, FleetLock cannot", host, h.Datacenter)
	}
	if stay && h.Datacenter != dc {
		return refused(wire.KindConflict, "host %s is registered in %s, not %s: a FleetLock request without credentials cannot move it (remove it with 'krollctl host remove' or let it expire first)", host, h.Datacenter, dc)
	}
	return Result{}
}

func (s *State) release(p SlotRelease) Result {
	if p.Owner == OwnerFleetLock && s.format >= FormatV4 {
		if r := s.fleetLockRefused(p.Host, p.Datacenter, false, true); r.Err != nil {
			return r
		}
	}
	if h := s.Hosts[p.Host]; p.Owner == OwnerFleetLock && h != nil && h.FleetLock && h.Datacenter == p.Datacenter {
		// Steady-state: the FleetLock host is heard from.
		h.LastHeartbeat = s.Now
	}
	dc, sl, e := s.heldSlot(p)
	if e != nil {
		if p.Owner == OwnerFleetLock && e.Kind == wire.KindNotHolder {
			// FleetLock steady-state is idempotent: a node that holds no
			// lock reports steady state at every boot.
			return Result{}
		}
		return Result{Err: e}
	}
	delete(dc.Slots, p.Host)
	if h := s.Hosts[p.Host]; h != nil && h.FleetLock && sl.Owner == OwnerFleetLock && !sl.Lost && s.Now.Sub(sl.Granted) >= FleetLockConfirmAfter {
		// A lock held across a reboot and given back at steady-state: a
		// real node, from now on part of its datacenter's base.
		h.FleetLockConfirmed = true
	}
	s.touch(p.Host)
	if p.Reason != "" {
		s.event("slot_released", dc.Name, p.Host, "slot released by %s (token %d): %s", p.Host, sl.Token, p.Reason)
	} else {
		s.event("slot_released", dc.Name, p.Host, "slot released by %s (token %d)", p.Host, sl.Token)
	}
	return Result{Slot: sl.wire(dc.Name)}
}

func (s *State) setMember(p SetMember) Result {
	s.Members[p.ID] = &Member{ID: p.ID, RaftAddr: p.RaftAddr, HTTPAddr: p.HTTPAddr}
	return Result{}
}

func (s *State) removeMember(p RemoveMember) Result {
	delete(s.Members, p.ID)
	return Result{}
}

func (s *State) forceRelease(p ForceRelease) Result {
	dc, ok := s.Datacenters[p.Datacenter]
	if !ok {
		return refused(wire.KindNotFound, "unknown datacenter %q", p.Datacenter)
	}
	sl, ok := dc.Slots[p.Host]
	if !ok {
		return refused(wire.KindNotHolder, "%s holds no slot in %s", p.Host, p.Datacenter)
	}
	delete(dc.Slots, p.Host)
	s.touch(p.Host)
	s.event("slot_force_released", dc.Name, p.Host, "operator released slot of %s (token %d): %s", p.Host, sl.Token, orDefault(p.Reason, "no reason given"))
	return Result{Slot: sl.wire(dc.Name)}
}

// health records a host's verdict on its new kernel. An unhealthy report
// counts against the failure budget only when it carries the fencing token
// of the host's latest grant (the slot it holds or held for this reboot),
// and once per grant: a host without a slot, or one repeating itself,
// cannot exhaust the budget.
func (s *State) health(p Health) Result {
	h, ok := s.Hosts[p.HostID]
	if !ok || h.Datacenter != p.Datacenter {
		return refused(wire.KindNotFound, "host %s is not registered in %s", p.HostID, p.Datacenter)
	}
	defer s.touch(h.ID)
	dc := s.Datacenters[p.Datacenter]
	var sl *Slot
	if dc != nil {
		sl = dc.Slots[p.HostID]
	}
	granted := p.Token != 0 && (p.Token == h.LastToken || (sl != nil && sl.Token == p.Token))
	if p.Token != 0 && !granted {
		return refused(wire.KindStaleToken, "token %d does not match a slot of %s", p.Token, p.HostID)
	}
	if p.Kernel != "" {
		h.Kernel = p.Kernel
	}
	if p.Healthy {
		h.Unhealthy = false
		s.event("host_healthy", p.Datacenter, p.HostID, "healthy on %s", orDefault(p.Kernel, h.Kernel))
		return Result{}
	}
	counts := granted && h.CountedToken != p.Token
	if !counts {
		if !h.Unhealthy {
			h.Unhealthy = true
			why := "no slot token"
			if granted {
				why = fmt.Sprintf("already counted for token %d", p.Token)
			}
			s.event("host_unhealthy", p.Datacenter, p.HostID, "unhealthy on %s: %s (not counted against the failure budget: %s)", orDefault(p.Kernel, h.Kernel), p.Detail, why)
		}
		// Staging and canary gates fail closed on any unhealthy report.
		s.hostUnhealthy(h, orDefault(p.Kernel, h.Kernel), p.Detail)
		return Result{}
	}
	h.Unhealthy = true
	h.CountedToken = p.Token
	s.event("host_unhealthy", p.Datacenter, p.HostID, "unhealthy on %s (token %d, boot %s): %s", orDefault(p.Kernel, h.Kernel), p.Token, orDefault(h.BootID, "unknown"), p.Detail)
	s.hostUnhealthy(h, orDefault(p.Kernel, h.Kernel), p.Detail)
	s.countWaveFailure(h)
	if dc != nil {
		dc.Policy.Failures++
		if b := dc.Policy.FailureBudget; b > 0 && dc.Policy.Failures >= b && !dc.Policy.Paused {
			dc.Policy.Paused = true
			dc.PauseReason = fmt.Sprintf("failure budget exhausted: %d unhealthy reports (budget %d)", dc.Policy.Failures, b)
			s.event("dc_paused", dc.Name, "", "%s", dc.PauseReason)
		}
	}
	return Result{}
}

// removeHost forgets a decommissioned host. A holder is refused unless
// forced with a reason; its slot goes with it.
func (s *State) removeHost(p RemoveHost) Result {
	h, ok := s.Hosts[p.Host]
	if !ok {
		return refused(wire.KindNotFound, "unknown host %q", p.Host)
	}
	if dc := s.Datacenters[h.Datacenter]; dc != nil {
		if sl := dc.Slots[h.ID]; sl != nil {
			switch {
			case !p.Force:
				return refused(wire.KindConflict, "host %s holds a slot in %s (token %d); remove it with --force and a --reason, or release the slot first", h.ID, dc.Name, sl.Token)
			case strings.TrimSpace(p.Reason) == "":
				return refused(wire.KindInvalidRequest, "forcing the removal of slot holder %s needs a reason (it is recorded in the event log)", h.ID)
			}
			delete(dc.Slots, h.ID)
			s.event("slot_force_released", dc.Name, h.ID, "operator released slot of %s (token %d) removing the host: %s", h.ID, sl.Token, p.Reason)
		}
	}
	s.dropHost(h)
	s.event("host_removed", h.Datacenter, h.ID, "host removed: %s", orDefault(p.Reason, "no reason given"))
	return Result{}
}

// dropHost deletes h from the state and its index.
func (s *State) dropHost(h *Host) {
	delete(s.Hosts, h.ID)
	delete(s.byDC[h.Datacenter], h.ID)
	s.untouch(h)
}

// expiryScanEvery is how often Tick looks for silent hosts to expire (more
// often when ExpireAfter is shorter than 4 minutes).
const expiryScanEvery = time.Minute

// expireHosts removes the hosts, not holding a slot, that were silent for
// longer than t's ExpireAfter — an agent: by flag (State.LivenessByFlag)
// marked silent (MarkSilent) that long ago, by time (formats 1 and 2) not
// heard from for that long; an unconfirmed FleetLock id: not heard from
// for longer than its FleetLockFresh — by the command's stamped time
// (never a follower's clock). A host without any time it was heard from (restored from a
// snapshot of an older version) is taken as heard from now.
func (s *State) expireHosts(t Timing) {
	after := t.expireAfter()
	if after <= 0 || (!s.ExpiryScanned.IsZero() && s.Now.Sub(s.ExpiryScanned) < min(expiryScanEvery, after/4, t.fleetLockFresh()/4)) {
		return
	}
	s.ExpiryScanned = s.Now
	var expired []*Host
	fresh := t.fleetLockFresh()
	check := func(h *Host) {
		if h.lastHeard().IsZero() {
			// Registered before the state recorded when (a snapshot of an
			// older version): heard from now, not silent since year 1.
			h.Registered = s.Now
			return
		}
		limit := after
		if !h.counts() {
			// An unconfirmed FleetLock id counts for nothing; it is kept
			// only while fresh.
			limit = min(after, fresh)
		}
		if since := s.silentSince(h); since.IsZero() || s.Now.Sub(since) <= limit {
			return
		}
		if dc := s.Datacenters[h.Datacenter]; dc != nil && dc.Slots[h.ID] != nil {
			return
		}
		expired = append(expired, h)
	}
	if !s.LivenessByFlag || s.expiryWalk {
		for _, h := range s.Hosts {
			check(h)
		}
		s.expiryWalk = s.Now.IsZero()
	} else {
		// By the flag rule an agent not marked silent has no silent-since
		// time: only FleetLock-only hosts and silent agents can expire,
		// and every host has a time it was heard from (expiryWalk), so
		// the scan reads those alone (the counters keep them) instead of
		// every host of the region under the write lock. It finds what
		// the walk would.
		for _, c := range s.counts {
			for _, h := range c.fleetLock {
				check(h)
			}
			for _, h := range c.silent {
				check(h)
			}
		}
	}
	slices.SortFunc(expired, func(a, b *Host) int { return strings.Compare(a.ID, b.ID) })
	for _, h := range expired {
		s.dropHost(h)
		if h.counts() {
			s.event("host_expired", h.Datacenter, h.ID, "host expired: silent since %s (longer than %s)", s.silentSince(h).Format(time.RFC3339), after)
		} else {
			s.event("host_expired", h.Datacenter, h.ID, "unconfirmed FleetLock host expired: silent since %s (longer than [fleetlock] fresh_within %s)", h.lastHeard().Format(time.RFC3339), fresh)
		}
	}
}

// tick marks holders past their reboot deadline lost and pauses their
// datacenters: an operator decides what happened to them.
func (s *State) tick(p Tick) Result {
	defer s.advanceRollouts(p)
	s.FleetLockFresh = p.Timing.FleetLockFresh
	s.expireHosts(p.Timing)
	if s.format >= FormatV5 {
		s.settleWaitingLines()
	}
	for _, name := range sortedKeys(s.Datacenters) {
		dc := s.Datacenters[name]
		for _, host := range sortedKeys(dc.Slots) {
			sl := dc.Slots[host]
			if sl.Lost || !s.Now.After(sl.RebootDeadline) {
				continue
			}
			sl.Lost = true
			s.event("host_lost", name, host, "%s passed its reboot deadline %s without renewing its slot (token %d)", host, sl.RebootDeadline.Format("2006-01-02T15:04:05Z07:00"), sl.Token)
			if !dc.Policy.Paused {
				dc.Policy.Paused = true
				dc.PauseReason = fmt.Sprintf("host %s lost mid-reboot; release its slot with 'krollctl slots release' after checking it", host)
				s.event("dc_paused", name, "", "%s", dc.PauseReason)
			}
		}
	}
	return Result{}
}
