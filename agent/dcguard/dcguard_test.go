package dcguard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func view(members ...gossip.Member) gossip.View {
	return gossip.View{Members: members}
}

func member(name, state, phase string) gossip.Member {
	return gossip.Member{Name: name, State: state, Meta: gossip.Meta{HostID: name, Phase: phase}}
}

func alive(n int) []gossip.Member {
	var out []gossip.Member
	for i := range n {
		out = append(out, member(fmt.Sprintf("h%02d", i), gossip.StateAlive, wire.PhaseIdle))
	}
	return out
}

var self = member("me", gossip.StateAlive, wire.PhaseDraining)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []gossip.Member
		limits  *wire.DatacenterLimits
		want    string // "" = allowed
	}{
		// Without limits nothing can be checked: refused, never skipped.
		{"no limits", alive(3), nil, "no datacenter limits"},
		{"no limits, alone", []gossip.Member{self}, nil, "no datacenter limits"},
		{"room", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 80, Hosts: 10}, ""},
		{"another rebooting at limit 1", append(append(alive(8), member("r", gossip.StateAlive, wire.PhaseRebooting)), self),
			&wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 10}, "1 other hosts out of service in this host's gossip view (r) ≥ slot limit 1"},
		{"dead and suspect count", append(append(alive(7), member("d", gossip.StateDead, wire.PhaseIdle), member("s", gossip.StateSuspect, wire.PhaseIdle)), self),
			&wire.DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 50, Hosts: 10}, "2 other hosts out of service"},
		{"failed host counts", append(append(alive(8), member("f", gossip.StateAlive, wire.PhaseFailed)), self),
			&wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 10}, "out of service"},
		{"waiting for a slot serves", append(append(alive(8), member("w", gossip.StateAlive, wire.PhaseWaitingSlot)), self),
			&wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 90, Hosts: 10}, ""},
		{"floor ok", append(alive(7), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 80, Hosts: 8}, ""},
		{"floor", append(alive(7), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 90, Hosts: 8},
			"only 7 of 8 hosts would serve in this host's gossip view, below the floor of 8 (90%)"},
		{"more hosts registered than seen", append(alive(7), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 80, Hosts: 10},
			"only 7 of 10 hosts would serve"},
		{"more hosts seen than registered", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 90, Hosts: 2}, ""},
		{"zero limit", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 0, MinHealthyPct: 0, Hosts: 10}, "≥ slot limit 0"},
		// Out-of-range floors fail closed, as on the coordinator (the old
		// formula here gave a floor of 0 for a negative percentage).
		{"negative floor", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: -10, Hosts: 10}, "below the floor of 11"},
		{"floor over 100", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 101, Hosts: 10}, "below the floor of 11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(view(tc.members...), "me", tc.limits)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	v := view(member("a", gossip.StateAlive, wire.PhaseIdle), member("b", gossip.StateAlive, wire.PhaseDraining),
		member("c", gossip.StateAlive, wire.PhaseRebooting), member("d", gossip.StateDead, wire.PhaseIdle),
		member("e", gossip.StateLeft, ""), member("f", gossip.StateAlive, wire.PhaseWaitingSlot),
		member("g", gossip.StateAlive, wire.PhaseFailed))
	v.Suspect, v.Dead, v.Left = 0, 1, 1
	got := Summarize(v)
	if *got != (wire.DCView{Alive: 2, Draining: 1, Rebooting: 2, Dead: 2}) {
		t.Fatalf("Summarize = %+v", *got)
	}
}

// fakeSource is a settable pool view.
type fakeSource struct{ v gossip.View }

func (f *fakeSource) View() gossip.View { return f.v }

func TestGuardReadsSource(t *testing.T) {
	src := &fakeSource{v: view(append(alive(3), self)...)}
	g := New(src, "me")
	l := &wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 4}
	if err := g.Check(context.Background(), l); err != nil {
		t.Fatalf("refused with room: %v", err)
	}
	if got := g.View(); *got != (wire.DCView{Alive: 3, Draining: 1}) {
		t.Fatalf("View = %+v", *got)
	}
	src.v.Members[0].Meta.Phase = wire.PhaseRebooting
	if err := g.Check(context.Background(), l); err == nil || !strings.Contains(err.Error(), "(h00)") {
		t.Fatalf("a member went rebooting: %v", err)
	}
}

// TestAgreesWithCoordinator: in every datacenter the agent sees whole,
// the guard takes the host out of service exactly when the coordinator's
// grant decision would (same slot limit, same floor); with members it
// cannot see, it is never less strict.
func TestAgreesWithCoordinator(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	for n := 1; n <= 24; n++ {
		for _, pct := range []int{-1, 0, 34, 50, 80, 90, 95, 100, 101} {
			for _, slotPct := range []int{5, 25, 100} {
				p := schedule.Policy{SlotPct: slotPct, MinHealthyPct: pct}
				l := &wire.DatacenterLimits{EffectiveLimit: p.Limit(n), MinHealthyPct: pct, Hosts: n}
				for holding := 0; holding < n; holding++ {
					for dead := 0; holding+dead < n; dead++ {
						var hosts []schedule.HostState
						members := []gossip.Member{self}
						hosts = append(hosts, schedule.HostState{ID: "me", Serving: true})
						for i := 1; i < n; i++ {
							id := fmt.Sprintf("h%02d", i)
							switch {
							case i <= holding:
								hosts = append(hosts, schedule.HostState{ID: id, Holding: true})
								members = append(members, member(id, gossip.StateAlive, wire.PhaseRebooting))
							case i <= holding+dead:
								hosts = append(hosts, schedule.HostState{ID: id})
								members = append(members, member(id, gossip.StateDead, wire.PhaseIdle))
							default:
								hosts = append(hosts, schedule.HostState{ID: id, Serving: true})
								members = append(members, member(id, gossip.StateAlive, wire.PhaseIdle))
							}
						}
						d := schedule.Decide(p, true, hosts, schedule.Request{Host: "me", Now: now})
						err := Check(view(members...), "me", l)
						name := fmt.Sprintf("%d hosts, floor %d%%, slots %d%%, %d holding, %d dead", n, pct, slotPct, holding, dead)
						if !d.Grant && err == nil {
							t.Fatalf("%s: coordinator denies (%s: %s), guard allows", name, d.Reason, d.Detail)
						}
						if dead == 0 && d.Grant && err != nil {
							t.Fatalf("%s: coordinator grants, guard refuses: %v", name, err)
						}
					}
				}
			}
		}
	}
}
