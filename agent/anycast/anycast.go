// Package anycast withdraws and restores the anycast routes a host announces
// through its BGP daemon, and waits for established connections to those
// anycast addresses to drain before the host reboots.
//
// The anycast prefixes live as routes in a dedicated kernel routing table that
// the BGP daemon exports (for BIRD 2: protocol kernel { kernel table N; learn; }).
// Deleting them from that table makes the daemon withdraw the announcements;
// re-adding them announces the prefixes again. See DESIGN.md §4 "Drain".
package anycast

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Announcer withdraws and restores a host's anycast announcements. The agent
// journals the routes Withdraw returns and hands them back to Restore after
// the host is healthy again.
type Announcer interface {
	// Withdraw removes the anycast routes and returns exactly what it removed.
	Withdraw(ctx context.Context) ([]Route, error)
	// Restore re-adds routes previously returned by Withdraw.
	Restore(ctx context.Context, routes []Route) error
}

// Drainer waits for traffic to the anycast addresses to drain.
type Drainer interface {
	// Wait returns once the number of established connections is at most
	// threshold, or once deadline has passed.
	Wait(ctx context.Context, threshold int, deadline, poll time.Duration) (DrainResult, error)
}

// DrainResult says how a drain wait ended.
type DrainResult struct {
	// Drained is true when the count fell to the threshold or below, false
	// when the deadline passed first.
	Drained bool `json:"drained"`
	// Reason is "threshold" or "deadline".
	Reason string `json:"reason"`
	// Count is the last observed number of established connections.
	Count int `json:"count"`
	// Elapsed is how long the wait took.
	Elapsed time.Duration `json:"elapsed"`
}

// Reasons reported in DrainResult.Reason.
const (
	ReasonThreshold = "threshold"
	ReasonDeadline  = "deadline"
)

// Route is one kernel route, in a form that can be journaled as JSON and
// re-added later.
type Route struct {
	// Dst is the destination prefix.
	Dst netip.Prefix `json:"dst"`
	// Gateway is the next hop, if any.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// Dev is the name of the outgoing interface, if any.
	Dev string `json:"dev,omitempty"`
	// Table is the kernel routing table.
	Table int `json:"table"`
	// Protocol is the route's originating protocol (RTPROT_*).
	Protocol int `json:"protocol,omitempty"`
	// Type is the route type: "unicast", "blackhole", "local", "unreachable",
	// "prohibit", "throw", ...
	Type string `json:"type"`
	// Scope is the route scope (RT_SCOPE_*).
	Scope int `json:"scope,omitempty"`
	// Priority is the route metric.
	Priority int `json:"priority,omitempty"`
}

// String returns a short ip-route-like description of r.
func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Type, r.Dst)
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	fmt.Fprintf(&b, " table %d proto %d", r.Table, r.Protocol)
	if r.Priority != 0 {
		fmt.Fprintf(&b, " metric %d", r.Priority)
	}
	return b.String()
}
