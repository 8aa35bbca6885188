package schedule

import (
	"fmt"
	"strings"

	"github.com/kroll-dev/kroll/pkg/capacity"
)

// Policy holds the reboot settings of one datacenter (DESIGN §5).
type Policy struct {
	// SlotLimit is the absolute maximum of concurrent slot holders; 0 means
	// the limit is SlotPct percent of the registered hosts.
	SlotLimit int
	// SlotPct is the slot limit as a percentage (1..100) of the registered
	// hosts, rounded down but at least 1 when the datacenter has a host.
	// Used only when SlotLimit is 0.
	SlotPct int
	// MinHealthyPct is the capacity floor (0..100): no grant may leave
	// fewer serving hosts than MinHealthyPct percent of the registered
	// hosts, rounded up.
	MinHealthyPct int
	// Window is the local maintenance window outside which no new slot is
	// granted unless the request is expedited. The zero Window is "always".
	Window Window
	// Paused stops all new grants (current holders keep their slots).
	Paused bool
	// FailureBudget is the number of failed reboots after which no new slot
	// is granted; 0 means unlimited.
	FailureBudget int
	// Failures counts the failed reboots charged against FailureBudget.
	Failures int
}

// PolicyError lists every problem Validate found in a Policy.
type PolicyError struct {
	// Problems are messages of the form "FIELD: PROBLEM", in field order;
	// never empty.
	Problems []string
}

// Error returns "invalid policy: " followed by the problems joined with "; ".
func (e *PolicyError) Error() string {
	return "invalid policy: " + strings.Join(e.Problems, "; ")
}

// Validate reports every out-of-range field of p as a *PolicyError: SlotLimit
// must be ≥ 0, SlotPct within 0..100, and exactly one of them positive;
// MinHealthyPct within 0..100; FailureBudget and Failures ≥ 0.
func (p Policy) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if p.SlotLimit < 0 {
		add("SlotLimit: must be ≥ 0, got %d", p.SlotLimit)
	}
	if p.SlotPct < 0 || p.SlotPct > 100 {
		add("SlotPct: must be within 0..100, got %d", p.SlotPct)
	}
	switch {
	case p.SlotLimit > 0 && p.SlotPct > 0:
		add("SlotLimit and SlotPct: exactly one must be set, got SlotLimit %d and SlotPct %d", p.SlotLimit, p.SlotPct)
	case p.SlotLimit == 0 && p.SlotPct == 0:
		add("SlotLimit and SlotPct: exactly one must be set (> 0), got neither")
	}
	if p.MinHealthyPct < 0 || p.MinHealthyPct > 100 {
		add("MinHealthyPct: must be within 0..100, got %d", p.MinHealthyPct)
	}
	if p.FailureBudget < 0 {
		add("FailureBudget: must be ≥ 0 (0 = unlimited), got %d", p.FailureBudget)
	}
	if p.Failures < 0 {
		add("Failures: must be ≥ 0, got %d", p.Failures)
	}
	if len(probs) > 0 {
		return &PolicyError{Problems: probs}
	}
	return nil
}

// Limit returns the effective slot limit of a datacenter with registered
// hosts: SlotLimit if positive, else SlotPct percent of registered rounded
// down but at least 1 when registered ≥ 1 (1 host at 10% → 1; 25 hosts at
// 10% → 2). Out-of-range values (negative SlotLimit, SlotPct outside 1..100)
// give 0, so an invalid policy grants nothing.
func (p Policy) Limit(registered int) int {
	return capacity.SlotLimit(registered, p.SlotLimit, p.SlotPct)
}

// Floor returns the capacity floor of a datacenter with registered hosts:
// the number of serving hosts a grant must leave, MinHealthyPct percent of
// registered rounded up (10 hosts at 90% → 9; 20 hosts at 90% → 18). An
// out-of-range MinHealthyPct gives registered+1, so an invalid policy
// grants nothing.
func (p Policy) Floor(registered int) int {
	return capacity.Floor(registered, p.MinHealthyPct)
}
