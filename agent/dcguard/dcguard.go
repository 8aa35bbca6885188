// Package dcguard is the agent's own view of its datacenter (DESIGN §7):
// from the gossip pool it summarizes who is serving, for the heartbeats
// that feed the coordinator's capacity floor (View), and it refuses to
// take the host out of service when that view shows the datacenter cannot
// lose it now, even if the coordinator granted a slot (Check). The rules
// are those of pkg/capacity, the same the coordinator grants by.
package dcguard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kroll-dev/kroll/pkg/capacity"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// ErrNoLimits is returned by Check when the coordinator sent no datacenter
// limits: the capacity of the datacenter cannot be checked, so the host
// does not go out of service.
var ErrNoLimits = errors.New("no datacenter limits from the coordinator: cannot check the datacenter's capacity")

// maxNamed bounds how many out-of-service members a refusal names.
const maxNamed = 5

// Source returns the current view of the datacenter's gossip pool
// (*gossip.Pool).
type Source interface {
	View() gossip.View
}

// Guard checks a host's datacenter in its gossip view. It implements the
// lifecycle's datacenter view (lifecycle.Config.Local).
type Guard struct {
	src  Source
	self string
}

// New returns a Guard reading src for the host whose member name is self.
func New(src Source, self string) *Guard {
	return &Guard{src: src, self: self}
}

// Check returns an error saying why the host may not go out of service
// now, with the limits the coordinator sent, or nil. Without limits (nil:
// the coordinator has not answered, or sent none) it refuses: the check
// must never be skipped.
func (g *Guard) Check(_ context.Context, limits *wire.DatacenterLimits) error {
	return Check(g.src.View(), g.self, limits)
}

// View summarizes the pool view for the coordinator.
func (g *Guard) View() *wire.DCView {
	return Summarize(g.src.View())
}

// Summarize counts the members of v for the coordinator: alive and
// serving, draining, otherwise out of service (Rebooting), and not alive
// (Dead: suspect, dead or left).
func Summarize(v gossip.View) *wire.DCView {
	out := &wire.DCView{Dead: v.Suspect + v.Dead + v.Left}
	for _, m := range v.Members {
		if m.State != gossip.StateAlive {
			continue
		}
		switch {
		case m.Meta.Phase == wire.PhaseDraining:
			out.Draining++
		case capacity.OutOfService(m.Meta.Phase):
			out.Rebooting++
		default:
			out.Alive++
		}
	}
	return out
}

// Check is the datacenter-local decision on the view v for the member
// self: the other members out of service or not alive count against the
// slot limit (a rebooting host drops out of the pool), the alive and
// serving ones must meet the capacity floor of the larger of the
// coordinator's host count and the pool's. Without limits (l nil) it
// refuses with ErrNoLimits.
func Check(v gossip.View, self string, l *wire.DatacenterLimits) error {
	if l == nil {
		return ErrNoLimits
	}
	out, serving := 0, 0
	var down []string
	for _, m := range v.Members {
		if m.Name == self {
			continue
		}
		if m.State != gossip.StateAlive || capacity.OutOfService(m.Meta.Phase) {
			out++
			if len(down) < maxNamed {
				down = append(down, m.Name)
			}
			continue
		}
		serving++
	}
	hosts := max(l.Hosts, len(v.Members))
	floor := capacity.Floor(hosts, l.MinHealthyPct)
	switch capacity.MayTakeOut(capacity.Load{Out: out, Limit: l.EffectiveLimit, ServingAfter: serving, Floor: floor}) {
	case capacity.AtSlotLimit:
		return fmt.Errorf("%d other hosts out of service in this host's gossip view (%s) ≥ slot limit %d",
			out, strings.Join(down, ","), l.EffectiveLimit)
	case capacity.BelowFloor:
		return fmt.Errorf("only %d of %d hosts would serve in this host's gossip view, below the floor of %d (%d%%)",
			serving, hosts, floor, l.MinHealthyPct)
	}
	return nil
}
