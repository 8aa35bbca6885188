package lifecycle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/agent/dcguard"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// stepUntil heartbeats and steps a until its phase is phase (at most 50
// steps); step errors are retried.
func stepUntil(t *testing.T, a *Agent, phase string) {
	t.Helper()
	ctx := context.Background()
	for i := 0; a.Journal().Phase != phase; i++ {
		if i > 50 {
			t.Fatalf("phase %s, want %s", a.Journal().Phase, phase)
		}
		a.Heartbeat(ctx)
		a.Step(ctx)
	}
}

// slotReleasedWith reports whether the coordinator recorded a slot given
// back with a reason containing why.
func slotReleasedWith(r *rig, why string) bool {
	var found bool
	r.coord.view(func(s *fsm.State) {
		for _, e := range s.Events {
			if e.Type == "slot_released" && strings.Contains(e.Message, why) {
				found = true
			}
		}
	})
	return found
}

// TestPartialReconcileFailure: a reconcile that fails in part (bpf-lsm
// unavailable for a stored policy, an unpin failure) returns the statuses
// with an error. The heartbeat still reports every status, and the boot
// is not held up: what must be in force after it is what is pinned.
func TestPartialReconcileFailure(t *testing.T) {
	r := newRig(t)
	r.host.policies = map[string]string{"copy-fail": "enforcing", "userns": "unavailable"}
	r.policies = func(ctx context.Context) ([]wire.PolicyStatus, error) {
		ps, _ := r.host.policyStatus(ctx)
		return ps, errors.New("policy userns: bpf-lsm unavailable")
	}
	r.pinned = r.host.policyStatus
	a := r.agent(0)
	if _, err := a.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []wire.PolicyStatus
	r.coord.view(func(s *fsm.State) { got = s.Hosts["h1"].Policies })
	ids := make([]string, 0, len(got))
	for _, p := range got {
		ids = append(ids, p.ID+"="+string(p.State))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"copy-fail=enforcing", "userns=unavailable"}) {
		t.Fatalf("coordinator has policies %v, want both statuses despite the reconcile error", ids)
	}
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
}

// TestPolicyListFailureGivesSlotBack: when the policies in force cannot be
// listed right before the boot, the agent does not boot and does not stay
// drained holding the slot: after a few attempts it restores its routes
// and gives the slot back with the reason.
func TestPolicyListFailureGivesSlotBack(t *testing.T) {
	r := newRig(t)
	r.policies = func(context.Context) ([]wire.PolicyStatus, error) {
		return nil, errors.New("mitigate: list pins: input/output error")
	}
	a := r.agent(0)
	stepUntil(t, a, wire.PhaseDraining)
	ctx := context.Background()
	for i := 0; i < 20 && a.Journal().Phase == wire.PhaseDraining; i++ {
		a.Step(ctx)
	}
	j := a.Journal()
	if j.Phase != wire.PhaseStaged || len(r.host.reboots) != 0 {
		t.Fatalf("phase %s, boots %v; want staged, no boot", j.Phase, r.host.reboots)
	}
	if len(r.host.routeSet()) != 2 || j.Withdrawn || r.coord.slotsHeld() != 0 {
		t.Fatalf("routes %v withdrawn %v slots held %d; want routes restored, slot given back", r.host.routeSet(), j.Withdrawn, r.coord.slotsHeld())
	}
	if !slotReleasedWith(r, "mitigations in force unknown before the boot: ") || !strings.Contains(j.Error, "input/output error") {
		t.Fatalf("the reason is not reported (journal error %q)", j.Error)
	}
}

// guardSource is a fixed gossip view.
type guardSource struct{ v gossip.View }

func (g guardSource) View() gossip.View { return g.v }

// TestGuardWaitsForLimits: an agent restarted in draining, before its
// routes were withdrawn, has no datacenter limits until the coordinator
// answers: it neither withdraws nor gives the slot back, it waits; with
// the limits it proceeds. A desired state without limits is refused.
func TestGuardWaitsForLimits(t *testing.T) {
	src := guardSource{gossip.View{Members: []gossip.Member{{Name: "h1", State: gossip.StateAlive, Meta: gossip.Meta{HostID: "h1", Phase: wire.PhaseDraining}}}}}
	for _, tc := range []struct {
		name     string
		noLimits bool
	}{{"first desired state", false}, {"desired state without limits", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			a := r.agent(0)
			stepUntil(t, a, wire.PhaseDraining)
			// The agent restarts: no desired state yet.
			a = r.agent(0)
			a.cfg.Local = dcguard.New(src, "h1")
			ctx := context.Background()
			for range 3 {
				if wait, err := a.Step(ctx); err != nil || wait == 0 {
					t.Fatalf("Step = %v, %v; want a wait", wait, err)
				}
			}
			if j := a.Journal(); j.Phase != wire.PhaseDraining || j.Routes != nil || j.Withdrawn || len(r.host.routeSet()) != 2 || r.coord.slotsHeld() != 1 {
				t.Fatalf("without a desired state: phase %s routes %v withdrawn %v host routes %v slots %d; want draining, untouched, slot held",
					j.Phase, j.Routes, j.Withdrawn, r.host.routeSet(), r.coord.slotsHeld())
			}
			if tc.noLimits {
				a.SetDesired(&wire.DesiredState{Release: signedTestRelease(t)})
				a.Step(ctx)
				if j := a.Journal(); j.Phase != wire.PhaseStaged || r.coord.slotsHeld() != 0 || !slotReleasedWith(r, "no datacenter limits") {
					t.Fatalf("without limits: phase %s slots %d; want the slot given back with the reason", j.Phase, r.coord.slotsHeld())
				}
				return
			}
			a.Heartbeat(ctx)
			if _, err := a.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if j := a.Journal(); j.Phase != wire.PhaseDraining || j.Routes == nil {
				t.Fatalf("with the limits: phase %s routes %v; want the routes journaled for withdrawal", j.Phase, j.Routes)
			}
		})
	}
}

// TestHostReadErrorsNotRecorded: a running kernel version that cannot be
// read is a problem of the host, not an outcome of the release: nothing
// is recorded and the release goes ahead once the host reads again.
func TestHostReadErrorsNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, proc string)
	}{
		{"unreadable", func(t *testing.T, proc string) {
			if err := os.Remove(filepath.Join(proc, "version")); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbled", func(t *testing.T, proc string) { writeFile(t, filepath.Join(proc, "version"), "Linux versi") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			tc.damage(t, r.host.proc)
			a := r.agent(0)
			ctx := context.Background()
			a.SetDesired(&wire.DesiredState{Release: signedTestRelease(t)})
			if _, err := a.Step(ctx); err == nil {
				t.Fatal("Step succeeded without the running kernel's version")
			}
			if j := a.Journal(); j.Phase != wire.PhaseIdle || len(j.Done) != 0 {
				t.Fatalf("phase %s done %v; want idle with nothing recorded", j.Phase, j.Done)
			}
			r.host.run(oldKernel, oldUpstream)
			if _, err := a.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if j := a.Journal(); j.Phase != wire.PhaseStaging {
				t.Fatalf("phase %s done %v after the host reads again; want staging", j.Phase, j.Done)
			}
		})
	}
}
