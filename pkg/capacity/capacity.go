// Package capacity holds the capacity rules of a datacenter (DESIGN §5) in
// one place, for the coordinator's grant decision (coordinator/schedule,
// coordinator/fsm), the fleet simulator (coordinator/sim) and the agent's
// own datacenter-local guard (agent/dcguard): which phases take a host out
// of service, the effective slot limit, the capacity floor, and whether one
// more host may go out of service.
//
// Out-of-range settings fail closed: an invalid slot setting gives a limit
// of 0 and an invalid floor percentage a floor above the number of hosts,
// so nothing goes out of service.
package capacity

import "github.com/kroll-dev/kroll/pkg/wire"

// OutOfService reports whether a host in phase does not serve traffic:
// it is draining, rebooting, being verified, or failed somewhere on the
// way. The other phases (idle, staging, staged, waiting-slot, healthy, ...)
// serve.
func OutOfService(phase string) bool {
	switch phase {
	case wire.PhaseDraining, wire.PhaseRebooting, wire.PhaseVerifying,
		wire.PhaseDrainTimeout, wire.PhaseWrongKernel, wire.PhaseUnhealthy, wire.PhaseRollback, wire.PhaseFailed:
		return true
	}
	return false
}

// SlotLimit returns the effective slot limit of a datacenter with
// registered hosts: slotLimit if positive, else slotPct percent of
// registered rounded down but at least 1 when registered ≥ 1 (1 host at
// 10% → 1; 25 hosts at 10% → 2). Out-of-range values (negative slotLimit,
// slotPct outside 1..100 when slotLimit is 0) give 0.
func SlotLimit(registered, slotLimit, slotPct int) int {
	switch {
	case slotLimit > 0:
		return slotLimit
	case slotLimit < 0, slotPct <= 0, slotPct > 100, registered <= 0:
		return 0
	}
	return max(slotPct*registered/100, 1)
}

// Floor returns the capacity floor of a datacenter with registered hosts:
// the number of hosts that must keep serving, minHealthyPct percent of
// registered rounded up (10 hosts at 90% → 9; 20 hosts at 90% → 18). An
// out-of-range minHealthyPct (outside 0..100) gives registered+1.
func Floor(registered, minHealthyPct int) int {
	switch {
	case registered <= 0:
		return 0
	case minHealthyPct < 0, minHealthyPct > 100:
		return registered + 1
	}
	return (minHealthyPct*registered + 99) / 100
}

// AdmissiblePct returns the largest floor percentage that still lets out
// of the registered hosts be out of service at once
// (Floor(registered, AdmissiblePct(registered, out)) ≤ registered-out):
// 9 hosts with 1 out → 88%. It is 0 when out ≥ registered.
func AdmissiblePct(registered, out int) int {
	if registered <= 0 || out >= registered {
		return 0
	}
	return 100 * (registered - max(out, 0)) / registered
}

// Reason says whether one more host may go out of service, and if not,
// which rule stops it.
type Reason string

const (
	// Allowed: the host may go out of service.
	Allowed Reason = ""
	// AtSlotLimit: as many hosts as the slot limit are already out.
	AtSlotLimit Reason = "slot_limit"
	// BelowFloor: fewer hosts than the capacity floor would keep serving.
	BelowFloor Reason = "capacity_floor"
)

// Load is a datacenter at the moment one more host asks to go out of
// service.
type Load struct {
	// Out counts the hosts already out against the slot limit: the slot
	// holders for the coordinator; for an agent, the other members its
	// gossip view shows out of service or unreachable.
	Out int
	// Limit is the effective slot limit (SlotLimit).
	Limit int
	// ServingAfter counts the hosts that would still serve once the
	// asking host is out.
	ServingAfter int
	// Floor is the capacity floor (Floor).
	Floor int
}

// MayTakeOut decides whether one more host may go out of service: not when
// Out has reached Limit (AtSlotLimit, checked first), not when ServingAfter
// is below Floor (BelowFloor); otherwise Allowed.
func MayTakeOut(l Load) Reason {
	switch {
	case l.Out >= l.Limit:
		return AtSlotLimit
	case l.ServingAfter < l.Floor:
		return BelowFloor
	}
	return Allowed
}
