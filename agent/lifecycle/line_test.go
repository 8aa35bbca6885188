package lifecycle

import (
	"context"
	"testing"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestAssignedLineDrivesTarget: an agent configured for line 5.10 takes
// no 6.1 release until the coordinator assigns it line 6.1; then the
// desired line drives its target, it reports the line it follows, and a
// restart with the old configuration keeps the assigned line (from its
// journal before the first answer, then from the coordinator, whose
// assignment wins) through a complete upgrade.
func TestAssignedLineDrivesTarget(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.line = "5.10"
	a := r.agent(0)
	step := func(a *Agent) {
		t.Helper()
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	step(a)
	if j := a.Journal(); j.Phase != wire.PhaseIdle || a.Line() != "5.10" || j.AssignedLine != "5.10" {
		t.Fatalf("on its configured line: phase %s, line %s, journal line %q", j.Phase, a.Line(), j.AssignedLine)
	}
	if ds := a.desiredState(); ds.Release != nil {
		t.Fatalf("line 5.10 got release %s", ds.Release.ID)
	}
	if res := r.coord.apply(fsm.TypeSetHostLine, fsm.SetHostLine{Host: "h1", Line: "6.1", Reason: "test"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	step(a)
	if j := a.Journal(); j.Phase != wire.PhaseStaging || a.Line() != "6.1" || j.AssignedLine != "6.1" {
		t.Fatalf("assigned 6.1: phase %s, line %s, journal line %q; want staging the 6.1 release", j.Phase, a.Line(), j.AssignedLine)
	}
	if _, err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	r.coord.view(func(s *fsm.State) {
		h := s.Hosts["h1"]
		if h.KernelLine != "6.1" || h.LineSource != fsm.LineSourceOperator || h.AgentLine != "5.10" || h.FollowedLine != "6.1" {
			t.Fatalf("coordinator: line %s (%s), agent line %s, followed %s", h.KernelLine, h.LineSource, h.AgentLine, h.FollowedLine)
		}
	})
	// A restart with the old configuration: the journal's line until the
	// coordinator answers.
	b := r.agent(0)
	if b.Line() != "6.1" {
		t.Fatalf("restarted agent follows %s before any answer, want 6.1", b.Line())
	}
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
	if c := r.agent(0); c.Line() != "6.1" {
		t.Fatalf("after the upgrade the agent follows %s", c.Line())
	}
}

// TestDesiredLineValidated: a desired state naming something that is not
// a kernel line is not followed; the line held stands.
func TestDesiredLineValidated(t *testing.T) {
	r := newRig(t)
	a := r.agent(0)
	a.SetDesired(&wire.DesiredState{KernelLine: "6.1"})
	for _, bad := range []string{"lts", "6.1.192", "../6.1", "6"} {
		a.SetDesired(&wire.DesiredState{KernelLine: bad})
		if a.Line() != "6.1" || a.Journal().AssignedLine != "6.1" {
			t.Fatalf("after %q: line %s, journal %q", bad, a.Line(), a.Journal().AssignedLine)
		}
	}
}
