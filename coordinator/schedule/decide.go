package schedule

import (
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/pkg/capacity"
)

// HostState is what Decide needs to know about one registered host of the
// datacenter.
type HostState struct {
	// ID is the host id.
	ID string
	// Holding reports that the host holds a slot in this datacenter
	// (it is draining, rebooting or verifying).
	Holding bool
	// Serving reports that the host is alive (fresh heartbeat), not lost,
	// not holding a slot and not unhealthy: it counts toward the capacity
	// floor. A host reported both Holding and Serving is counted as holding
	// only.
	Serving bool
}

// Request asks for a slot.
type Request struct {
	// Host is the id of the requesting host.
	Host string
	// Expedite marks a CVE rollout: it ignores the maintenance window, but
	// never the pause, the failure budget, the slot limit or the floor.
	Expedite bool
	// Now is the time of the command, stamped by the Raft leader.
	Now time.Time
	// ObservedOutOfService is how many of the datacenter's hosts its own
	// agents see out of service (dead, draining, rebooting) in their
	// gossip pool, the most pessimistic recent report. The floor uses the
	// smaller of the serving count from heartbeats and registered hosts
	// minus this, so a datacenter that sees more of itself down than the
	// coordinator does is protected. 0 = no gossip view.
	ObservedOutOfService int
}

// Reason says why Decide granted or denied a slot. The set is fixed: the
// constants below.
type Reason string

// The reasons of a Decision, in the order Decide checks them.
const (
	// ReasonGranted: a new slot was granted.
	ReasonGranted Reason = "granted"
	// ReasonAlreadyHeld: the requester already holds a slot and is granted
	// it again (locks are recursive), even when the datacenter is paused or
	// outside its window.
	ReasonAlreadyHeld Reason = "already_held"
	// ReasonUnknownDC: the datacenter is not registered.
	ReasonUnknownDC Reason = "unknown_dc"
	// ReasonUnknownHost: the requester is not registered in this datacenter.
	ReasonUnknownHost Reason = "unknown_host"
	// ReasonPaused: the datacenter is paused.
	ReasonPaused Reason = "dc_paused"
	// ReasonOutsideWindow: the request is outside the maintenance window
	// and not expedited.
	ReasonOutsideWindow Reason = "outside_window"
	// ReasonSemaphoreFull: as many hosts as the slot limit allows already
	// hold slots.
	ReasonSemaphoreFull Reason = "semaphore_full"
	// ReasonCapacityFloor: granting would leave fewer serving hosts than
	// the capacity floor.
	ReasonCapacityFloor Reason = "capacity_floor"
	// ReasonFailureBudget: the datacenter's failure budget is used up.
	ReasonFailureBudget Reason = "failure_budget_exhausted"
)

// Decision is the outcome of Decide.
type Decision struct {
	// Grant reports whether the requester holds a slot after the decision;
	// it is true exactly for ReasonGranted and ReasonAlreadyHeld.
	Grant bool
	// Reason is the machine-readable cause.
	Reason Reason
	// Detail explains the decision to a human, e.g. "3 of 3 slots held".
	// It depends only on Decide's arguments.
	Detail string
}

// Decide decides whether req.Host may take a slot in a datacenter with
// policy p whose registered hosts are hosts (all of them, including the
// requester). exists is false when the datacenter is unknown.
//
// Checks, in order; the first that applies decides:
//
//  1. unknown_dc: exists is false.
//  2. unknown_host: no host in hosts has the id req.Host.
//  3. already_held (granted): the requester holds a slot; it keeps it even
//     when the datacenter is paused, out of budget or outside its window.
//  4. dc_paused: p.Paused.
//  5. failure_budget_exhausted: p.FailureBudget > 0 and
//     p.Failures ≥ p.FailureBudget.
//  6. outside_window: !p.Window.Contains(req.Now); skipped when
//     req.Expedite.
//  7. semaphore_full: the number of holders ≥ p.Limit(len(hosts)).
//  8. capacity_floor: serving hosts after the grant < p.Floor(len(hosts)).
//     The requester stops serving when it takes the slot, so after is
//     serving-1 if the requester is serving and serving otherwise; hosts that
//     are down for other reasons (neither serving nor holding) thus count
//     against the floor.
//  9. granted.
//
// Decide is pure: it reads no clock and its result does not depend on the
// order of hosts. Host ids are expected to be unique; should one repeat,
// every entry counts as a registered host and the requester holds (serves)
// if any of its entries does. Decide does not validate p (the state machine
// does when a policy is set); out-of-range values fail closed (see Limit and
// Floor; a negative FailureBudget counts as exhausted).
func Decide(p Policy, exists bool, hosts []HostState, req Request) Decision {
	if !exists {
		return deny(ReasonUnknownDC, "datacenter is not registered")
	}
	return DecideCounts(p, true, Count(hosts, req.Host), req)
}

// Counts is what Decide reads from a datacenter's hosts, summarized: a
// state machine that maintains it incrementally decides in O(1) with
// DecideCounts instead of listing every host per request.
type Counts struct {
	// Registered is the number of hosts listed (all of them, including
	// the requester).
	Registered int
	// Holders is the number of hosts holding a slot.
	Holders int
	// Serving is the number of hosts serving and not holding.
	Serving int
	// Found reports that the requester is among the hosts.
	Found bool
	// RequesterHolding reports that the requester holds a slot.
	RequesterHolding bool
	// RequesterServing reports that the requester serves and does not
	// hold a slot.
	RequesterServing bool
}

// Count summarizes hosts for a request by host, as Decide counts them.
func Count(hosts []HostState, host string) Counts {
	var c Counts
	for _, h := range hosts {
		c.Registered++
		isServing := h.Serving && !h.Holding
		if h.Holding {
			c.Holders++
		}
		if isServing {
			c.Serving++
		}
		if h.ID == host {
			c.Found = true
			c.RequesterHolding = c.RequesterHolding || h.Holding
			c.RequesterServing = c.RequesterServing || isServing
		}
	}
	return c
}

// DecideCounts is Decide on hosts summarized by c (see Count): the same
// checks in the same order, and the same decision for the same counts.
func DecideCounts(p Policy, exists bool, c Counts, req Request) Decision {
	if !exists {
		return deny(ReasonUnknownDC, "datacenter is not registered")
	}
	registered, holders, serving := c.Registered, c.Holders, c.Serving
	found, reqHolding, reqServing := c.Found, c.RequesterHolding, c.RequesterServing
	limit := p.Limit(registered)

	if !found {
		return deny(ReasonUnknownHost, fmt.Sprintf("host %q is not registered in this datacenter", req.Host))
	}
	if reqHolding {
		return Decision{Grant: true, Reason: ReasonAlreadyHeld,
			Detail: fmt.Sprintf("host %q already holds a slot; %s", req.Host, slotsHeld(p, holders, limit, registered))}
	}
	if p.Paused {
		return deny(ReasonPaused, "datacenter is paused")
	}
	if p.FailureBudget < 0 || p.FailureBudget > 0 && p.Failures >= p.FailureBudget {
		return deny(ReasonFailureBudget, fmt.Sprintf("%d failed reboots reached the failure budget of %d", p.Failures, p.FailureBudget))
	}
	inWindow := p.Window.Contains(req.Now)
	if !inWindow && !req.Expedite {
		return deny(ReasonOutsideWindow, "outside window "+p.Window.String()+"; "+nextOpens(p.Window, req.Now))
	}
	floor := p.Floor(registered)
	seen := ""
	if g := registered - req.ObservedOutOfService; req.ObservedOutOfService > 0 && g < serving {
		serving = max(g, 0)
		seen = fmt.Sprintf(" (the datacenter's gossip view shows %d hosts out of service)", req.ObservedOutOfService)
	}
	after := serving
	if reqServing {
		after--
	}
	switch capacity.MayTakeOut(capacity.Load{Out: holders, Limit: limit, ServingAfter: after, Floor: floor}) {
	case capacity.AtSlotLimit:
		return deny(ReasonSemaphoreFull, slotsHeld(p, holders, limit, registered))
	case capacity.BelowFloor:
		var detail string
		if reqServing {
			detail = fmt.Sprintf("serving %d of %d hosts; granting would leave %d < floor %d (%d%%)",
				serving, registered, after, floor, p.MinHealthyPct)
		} else {
			detail = fmt.Sprintf("serving %d of %d hosts (requester not serving) < floor %d (%d%%)",
				serving, registered, floor, p.MinHealthyPct)
		}
		return deny(ReasonCapacityFloor, detail+seen)
	}
	detail := fmt.Sprintf("%s after grant; serving %d of %d hosts after grant, floor %d (%d%%)",
		slotsHeld(p, holders+1, limit, registered), after, registered, floor, p.MinHealthyPct)
	if !inWindow {
		detail += "; expedited outside window " + p.Window.String()
	}
	return Decision{Grant: true, Reason: ReasonGranted, Detail: detail}
}

// deny returns a denial for reason with detail.
func deny(reason Reason, detail string) Decision {
	return Decision{Reason: reason, Detail: detail}
}

// slotsHeld describes slot usage, e.g. "3 of 3 slots held" or, for a
// percentage limit, "2 of 2 slots held (10% of 25 hosts)".
func slotsHeld(p Policy, holders, limit, registered int) string {
	s := fmt.Sprintf("%d of %d slots held", holders, limit)
	if p.SlotLimit == 0 {
		s += fmt.Sprintf(" (%d%% of %d hosts)", p.SlotPct, registered)
	}
	return s
}

// nextOpens describes when w opens after now, e.g.
// "next opens 2026-11-27T02:00:00+01:00".
func nextOpens(w Window, now time.Time) string {
	start, _ := w.Next(now)
	if start.IsZero() {
		return "it does not open within a year"
	}
	return "next opens " + start.Format(time.RFC3339)
}
