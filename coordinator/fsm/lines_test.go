package fsm

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// linesFleet makes datacenter dc with hosts h0…h(n-1) on agent line 6.12
// running 6.12.85, releases of lines 6.12, 6.18 and 6.6, and targets dc
// at the given releases.
func linesFleet(t *testing.T, f *FSM, dc string, n int, targets ...string) {
	t.Helper()
	if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(2)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, rel := range []Release{
		{ID: "r612", Line: "6.12", KernelVersion: "6.12.90", Manifest: []byte(`{"id":"r612"}`)},
		{ID: "r618", Line: "6.18", KernelVersion: "6.18.4", Manifest: []byte(`{"id":"r618"}`)},
		{ID: "r66", Line: "6.6", KernelVersion: "6.6.100", Manifest: []byte(`{"id":"r66"}`)},
	} {
		if r := apply(t, f, TypeAddRelease, t0, AddRelease{Release: rel}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for _, id := range targets {
		if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{TargetRelease: ptr(id)}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i := range n {
		beat(t, f, t0, fmt.Sprintf("%s-h%d", dc, i), dc, "6.12", "6.12.85", wire.PhaseIdle)
	}
}

// hostLine returns what the state holds of host id's line.
func hostLine(f *FSM, id string) (h Host) {
	f.View(func(s *State) { h = *s.Hosts[id] })
	return h
}

func setLine(t *testing.T, f *FSM, host, line string, force bool) Result {
	t.Helper()
	return apply(t, f, TypeSetHostLine, t0, SetHostLine{Host: host, Line: line, Force: force, Reason: "test"})
}

func lineRule(t *testing.T, f *FSM, dc string, line *string, pct int) Result {
	t.Helper()
	return apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{Line: line, LinePct: ptr(pct)}})
}

func eventsOf(f *FSM, typ, host string) []string {
	var out []string
	f.View(func(s *State) {
		for _, e := range s.Events {
			if e.Type == typ && (host == "" || e.Host == host) {
				out = append(out, e.Message)
			}
		}
	})
	return out
}

// TestLinePrecedence: an operator's assignment wins over the datacenter's
// line rule, which wins over the agent's configured line; the answer to a
// heartbeat carries the assigned line and that line's target release, and
// an agent restarted with its old configuration does not revert it.
func TestLinePrecedence(t *testing.T) {
	// Hosts the 100 % rule selects, one the 0 % … a rule of 100 % selects
	// every host, so the operator and agent cases use no rule or clear it.
	tests := []struct {
		name       string
		rule       int // pct of a 6.18 rule (0: none)
		operator   string
		wantLine   string
		wantSource string
		wantTarget string
	}{
		{"agent default", 0, "", "6.12", LineSourceAgent, "r612"},
		{"dc rule", 100, "", "6.18", LineSourceDCRule, "r618"},
		{"operator over agent", 0, "6.18", "6.18", LineSourceOperator, "r618"},
		{"operator over dc rule", 100, "6.12", "6.12", LineSourceOperator, "r612"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			linesFleet(t, f, "fra", 1, "r612", "r618")
			if tc.rule > 0 {
				if r := lineRule(t, f, "fra", ptr("6.18"), tc.rule); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			if tc.operator != "" {
				if r := setLine(t, f, "fra-h0", tc.operator, false); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			// The agent restarts with its configured line 6.12.
			res := beat(t, f, t0, "fra-h0", "fra", "6.12", "6.12.85", wire.PhaseIdle)
			h := hostLine(f, "fra-h0")
			if h.KernelLine != tc.wantLine || h.LineSource != tc.wantSource || h.AgentLine != "6.12" {
				t.Fatalf("host follows %q (%s), agent line %q; want %q (%s)", h.KernelLine, h.LineSource, h.AgentLine, tc.wantLine, tc.wantSource)
			}
			if res.KernelLine != tc.wantLine || res.Release == nil || res.Release.ID != tc.wantTarget {
				t.Fatalf("heartbeat answer: line %q, release %+v; want %q and %s", res.KernelLine, res.Release, tc.wantLine, tc.wantTarget)
			}
			f.View(func(s *State) {
				ans, _ := s.HeartbeatAnswer("fra-h0", timing)
				if ans.KernelLine != tc.wantLine {
					t.Fatalf("local answer line %q, want %q", ans.KernelLine, tc.wantLine)
				}
			})
		})
	}
}

// TestLineRuleSubset: the hosts a rule of P % selects depend on their ids
// alone (stable as other hosts come and go), grow monotonically with P,
// and are about P % of many hosts; in the state machine the rule moves
// exactly the selected hosts and lowering it moves hosts back.
func TestLineRuleSubset(t *testing.T) {
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = fmt.Sprintf("edge-%04d.example", i)
	}
	selected := func(ids []string, pct int) []string {
		var out []string
		for _, id := range ids {
			if InLineRule(id, pct) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, pct := range []int{0, 1, 10, 25, 50, 99, 100} {
		n := len(selected(ids, pct))
		lo, hi := len(ids)*pct/100-len(ids)/25, len(ids)*pct/100+len(ids)/25
		if pct == 0 || pct == 100 {
			lo, hi = len(ids)*pct/100, len(ids)*pct/100
		}
		if n < lo || n > hi {
			t.Errorf("%d%% selects %d of %d hosts, want %d to %d", pct, n, len(ids), lo, hi)
		}
		for _, more := range []int{pct + 1, pct + 15, 100} {
			if more > 100 {
				continue
			}
			if sup := selected(ids, more); !subset(selected(ids, pct), sup) {
				t.Errorf("raising %d%% to %d%% drops hosts", pct, more)
			}
		}
	}
	// Stable as hosts come and go: the selection of a subset of the hosts
	// is the subset of the selection.
	half := ids[:1000]
	if !slices.Equal(selected(half, 10), selected(ids, 10)[:len(selected(half, 10))]) {
		t.Error("the selection of the first 1000 hosts changed when 1000 more registered")
	}

	f := New()
	linesFleet(t, f, "fra", 60, "r612", "r618")
	var hosts []string
	for i := range 60 {
		hosts = append(hosts, fmt.Sprintf("fra-h%d", i))
	}
	following := func() []string {
		var out []string
		for _, id := range hosts {
			if h := hostLine(f, id); h.KernelLine == "6.18" {
				if h.LineSource != LineSourceDCRule {
					t.Fatalf("%s follows 6.18 from %s", id, h.LineSource)
				}
				out = append(out, id)
			}
		}
		return out
	}
	for _, pct := range []int{10, 30} {
		if r := lineRule(t, f, "fra", ptr("6.18"), pct); r.Err != nil {
			t.Fatal(r.Err)
		}
		if got, want := following(), selected(hosts, pct); !slices.Equal(got, want) || len(want) == 0 {
			t.Fatalf("%d%%: hosts on 6.18 %v, want %v", pct, got, want)
		}
		f.View(func(s *State) {
			v, _ := s.DatacenterView("fra", t0, timing.AliveWithin)
			if v.LineRule == nil || v.LineRule.Pct != pct || v.LineRule.Hosts != len(selected(hosts, pct)) || v.LineRule.Following != v.LineRule.Hosts {
				t.Fatalf("view %+v", v.LineRule)
			}
		})
	}
	// LinePct alone changes the share of the rule in force.
	if r := lineRule(t, f, "fra", nil, 10); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got, want := following(), selected(hosts, 10); !slices.Equal(got, want) {
		t.Fatalf("lowered to 10%%: hosts on 6.18 %v, want %v", got, want)
	}
	if r := lineRule(t, f, "fra", nil, 0); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := following(); len(got) != 0 {
		t.Fatalf("rule removed: %v still on 6.18", got)
	}
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestLineMigrationNeverDowngrades: a move whose target kernel is older
// than the kernel the host runs (or, without a target, to an older line,
// or one that cannot be ordered) is refused for that host with an event
// and its reason; the host keeps its line and its target. A newer target
// later lets it move.
func TestLineMigrationNeverDowngrades(t *testing.T) {
	tests := []struct {
		name    string
		agent   string // the agent's line
		running string // the kernel the host runs
		line    string
		targets []string
		refused string // "" moves; else part of the reason
	}{
		{"up to 6.18 with a target", "6.12", "6.12.85", "6.18", []string{"r612", "r618"}, ""},
		{"up to 6.18 before its target", "6.12", "6.12.85", "6.18", []string{"r612"}, ""},
		{"back to 6.12 from 6.18.5", "6.18", "6.18.5", "6.12", []string{"r612"}, "is older than its running kernel 6.18.5"},
		{"back to 6.6 without a target", "6.12", "6.12.85", "6.6", []string{"r612"}, "line 6.6 is older than the line 6.12"},
		{"6.18 target older than the 6.18 build running", "6.12", "6.18.7", "6.18", []string{"r618"}, "r618 (kernel 6.18.4) of line 6.18 is older"},
		{"running kernel that cannot be parsed", "6.12", "garbage", "6.18", []string{"r618"}, "cannot be ordered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			linesFleet(t, f, "fra", 0, tc.targets...)
			beat(t, f, t0, "fra-h0", "fra", tc.agent, tc.running, wire.PhaseIdle)
			if r := setLine(t, f, "fra-h0", tc.line, false); r.Err != nil {
				t.Fatal(r.Err)
			}
			res := beat(t, f, t0, "fra-h0", "fra", tc.agent, tc.running, wire.PhaseIdle)
			h := hostLine(f, "fra-h0")
			refusals := eventsOf(f, "line_refused", "fra-h0")
			if tc.refused == "" {
				if h.KernelLine != tc.line || h.PendingLine != "" || len(refusals) != 0 || res.KernelLine != tc.line {
					t.Fatalf("host on %q (pending %q: %s), refusals %q; want moved to %s", h.KernelLine, h.PendingLine, h.LineWait, refusals, tc.line)
				}
				if len(eventsOf(f, "line_changed", "fra-h0")) != 1 {
					t.Fatalf("no line_changed event: %v", eventsOf(f, "", "fra-h0"))
				}
				return
			}
			if h.KernelLine != tc.agent || h.PendingLine != tc.line || !strings.Contains(h.LineWait, tc.refused) || !strings.HasPrefix(h.LineWait, "migration refused") {
				t.Fatalf("host on %q pending %q (%s); want kept on %s, refused: %s", h.KernelLine, h.PendingLine, h.LineWait, tc.agent, tc.refused)
			}
			if len(refusals) != 1 || !strings.Contains(refusals[0], tc.refused) {
				t.Fatalf("refusal events %q, want one with %q", refusals, tc.refused)
			}
			if res.KernelLine != tc.agent {
				t.Fatalf("answer line %q, want %s", res.KernelLine, tc.agent)
			}
			// Ticks look again but do not repeat the event.
			apply(t, f, TypeTick, t0.Add(timing.AliveWithin/2), Tick{Timing: timing})
			if n := len(eventsOf(f, "line_refused", "fra-h0")); n != 1 {
				t.Fatalf("%d refusal events after a tick, want 1", n)
			}
		})
	}

	// A newer target of the line lets the refused host move.
	f := New()
	linesFleet(t, f, "fra", 1, "r618")
	beat(t, f, t0, "fra-h0", "fra", "6.12", "6.18.7", wire.PhaseIdle)
	if r := setLine(t, f, "fra-h0", "6.18", false); r.Err != nil {
		t.Fatal(r.Err)
	}
	apply(t, f, TypeAddRelease, t0, AddRelease{Release: Release{ID: "r618b", Line: "6.18", KernelVersion: "6.18.9", Manifest: []byte(`{}`)}})
	apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{TargetRelease: ptr("r618b")}})
	apply(t, f, TypeTick, t0.Add(timing.AliveWithin/2), Tick{Timing: timing})
	if h := hostLine(f, "fra-h0"); h.KernelLine != "6.18" || h.PendingLine != "" {
		t.Fatalf("after a newer target: host on %q pending %q (%s)", h.KernelLine, h.PendingLine, h.LineWait)
	}
}

// TestLineMigrationWaitsForRest: a host holding a slot or in a phase past
// staged is not moved; its assignment is recorded and takes effect once
// it is back at rest (by its heartbeat or at a tick), and a snapshot
// taken meanwhile keeps it.
func TestLineMigrationWaitsForRest(t *testing.T) {
	tests := []struct {
		name    string
		phase   string
		slot    bool
		wait    string
		restart func(t *testing.T, f *FSM) // brings the host back to rest
	}{
		{"holding a slot", wire.PhaseWaitingSlot, true, "holds a reboot slot", func(t *testing.T, f *FSM) {
			apply(t, f, TypeForceRelease, t0, ForceRelease{Datacenter: "fra", Host: "fra-h0", Reason: "test"})
			beat(t, f, t0, "fra-h0", "fra", "6.12", "6.12.90", wire.PhaseHealthy)
		}},
		{"rebooting", wire.PhaseRebooting, false, "phase rebooting", func(t *testing.T, f *FSM) {
			beat(t, f, t0, "fra-h0", "fra", "6.12", "6.12.90", wire.PhaseIdle)
		}},
		{"draining, back by a tick", wire.PhaseDraining, false, "phase draining", func(t *testing.T, f *FSM) {
			// The heartbeat comes from a format 4 node (no settling), the
			// tick after it moves the host.
			applyV(t, f, FormatV4, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "fra-h0", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.90", Phase: wire.PhaseIdle}})
			if h := hostLine(f, "fra-h0"); h.KernelLine != "6.12" {
				t.Fatalf("moved by a format 4 heartbeat")
			}
			apply(t, f, TypeTick, t0.Add(timing.AliveWithin/2), Tick{Timing: timing})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			linesFleet(t, f, "fra", 3, "r612", "r618")
			if tc.slot {
				if r := acquire(t, f, t0, "fra", "fra-h0"); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			beat(t, f, t0, "fra-h0", "fra", "6.12", "6.12.85", tc.phase)
			if r := setLine(t, f, "fra-h0", "6.18", false); r.Err != nil {
				t.Fatal(r.Err)
			}
			h := hostLine(f, "fra-h0")
			if h.KernelLine != "6.12" || h.OperatorLine != "6.18" || h.PendingLine != "6.18" || !strings.Contains(h.LineWait, tc.wait) {
				t.Fatalf("host on %q, operator %q, pending %q (%s); want deferred: %s", h.KernelLine, h.OperatorLine, h.PendingLine, h.LineWait, tc.wait)
			}
			if ev := eventsOf(f, "line_deferred", "fra-h0"); len(ev) != 1 {
				t.Fatalf("deferral events %q", ev)
			}
			// A tick while it is still busy changes nothing.
			apply(t, f, TypeTick, t0.Add(timing.AliveWithin/4), Tick{Timing: timing})
			if h := hostLine(f, "fra-h0"); h.KernelLine != "6.12" {
				t.Fatalf("moved mid-reboot at a tick")
			}
			g := assertSnapshotRoundTrip(t, f)
			for _, x := range []*FSM{f, g} {
				tc.restart(t, x)
				if h := hostLine(x, "fra-h0"); h.KernelLine != "6.18" || h.PendingLine != "" || h.LineWait != "" {
					t.Fatalf("back at rest: host on %q pending %q (%s), want 6.18", h.KernelLine, h.PendingLine, h.LineWait)
				}
			}
		})
	}
}

// TestLineStrictWaveMember: a host in a staging or canary wave of its
// line that has not passed waits for it rather than fail it by leaving.
func TestLineStrictWaveMember(t *testing.T) {
	f := New()
	if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: "stg", Update: wire.DatacenterUpdate{SlotLimit: ptr(1), Tier: ptr(TierStaging)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	linesFleet(t, f, "fra", 2)
	beat(t, f, t0, "stg-h0", "stg", "6.12", "6.12.85", wire.PhaseIdle)
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro1", Release: "r612", Force: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	apply(t, f, TypeTick, t0, Tick{Timing: timing})
	if r := setLine(t, f, "stg-h0", "6.18", false); r.Err != nil {
		t.Fatal(r.Err)
	}
	if h := hostLine(f, "stg-h0"); h.KernelLine != "6.12" || !strings.Contains(h.LineWait, "wave staging of rollout ro1") {
		t.Fatalf("host on %q (%s); want deferred by the staging wave", h.KernelLine, h.LineWait)
	}
	f.View(func(s *State) {
		if st := s.Rollouts["ro1"].State; st != RolloutRunning {
			t.Fatalf("rollout %s", st)
		}
	})
}

// TestLineValidation: lines must look like MAJOR.MINOR and be the line of
// a registered release unless forced; FleetLock-only hosts follow none.
func TestLineValidation(t *testing.T) {
	tests := []struct {
		name  string
		do    func(t *testing.T, f *FSM) Result
		want  string
		check func(f *FSM) bool
	}{
		{"known line", func(t *testing.T, f *FSM) Result { return setLine(t, f, "fra-h0", "6.18", false) }, "ok", nil},
		{"unknown line", func(t *testing.T, f *FSM) Result { return setLine(t, f, "fra-h0", "6.19", false) }, wire.KindInvalidRequest, nil},
		{"unknown line forced", func(t *testing.T, f *FSM) Result { return setLine(t, f, "fra-h0", "6.19", true) }, "ok",
			func(f *FSM) bool { return hostLine(f, "fra-h0").KernelLine == "6.19" }},
		{"malformed line forced", func(t *testing.T, f *FSM) Result { return setLine(t, f, "fra-h0", "6.012", true) }, wire.KindInvalidRequest, nil},
		{"lts", func(t *testing.T, f *FSM) Result { return setLine(t, f, "fra-h0", "lts", true) }, wire.KindInvalidRequest, nil},
		{"unknown host", func(t *testing.T, f *FSM) Result { return setLine(t, f, "nope", "6.18", false) }, wire.KindNotFound, nil},
		{"fleetlock host", func(t *testing.T, f *FSM) Result {
			apply(t, f, TypeAcquire, t0, Acquire{Datacenter: "fra", Host: "zincati", Owner: OwnerFleetLock, Timing: timing})
			return setLine(t, f, "zincati", "6.18", false)
		}, wire.KindInvalidRequest, nil},
		{"clear", func(t *testing.T, f *FSM) Result {
			setLine(t, f, "fra-h0", "6.18", false)
			return setLine(t, f, "fra-h0", "", false)
		}, "ok", func(f *FSM) bool {
			h := hostLine(f, "fra-h0")
			return h.KernelLine == "6.12" && h.LineSource == LineSourceAgent
		}},
		{"rule without pct", func(t *testing.T, f *FSM) Result {
			return apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{Line: ptr("6.18")}})
		}, wire.KindInvalidRequest, nil},
		{"rule pct 101", func(t *testing.T, f *FSM) Result { return lineRule(t, f, "fra", ptr("6.18"), 101) }, wire.KindInvalidRequest, nil},
		{"rule unknown line", func(t *testing.T, f *FSM) Result { return lineRule(t, f, "fra", ptr("7.1"), 10) }, wire.KindInvalidRequest, nil},
		{"rule pct without a rule", func(t *testing.T, f *FSM) Result { return lineRule(t, f, "fra", nil, 10) }, wire.KindInvalidRequest, nil},
		{"rule forced", func(t *testing.T, f *FSM) Result {
			return apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{Line: ptr("7.1"), LinePct: ptr(100), LineForce: true}})
		}, "ok", func(f *FSM) bool { return hostLine(f, "fra-h0").KernelLine == "7.1" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			linesFleet(t, f, "fra", 1, "r612")
			before := len(eventsOf(f, "", ""))
			r := tc.do(t, f)
			if kind(r) != tc.want {
				t.Fatalf("got %s (%+v), want %s", kind(r), r.Err, tc.want)
			}
			if tc.check != nil && !tc.check(f) {
				t.Fatalf("state after: %+v", hostLine(f, "fra-h0"))
			}
			if tc.want != "ok" && tc.name != "fleetlock host" && len(eventsOf(f, "", "")) != before {
				t.Fatal("a refused command left events")
			}
		})
	}
}

// TestLineRegistration: a host registering in a datacenter whose rule
// selects it follows the rule's line at once, unless that would be a
// downgrade: then it follows its agent's line and the refusal is recorded.
func TestLineRegistration(t *testing.T) {
	f := New()
	linesFleet(t, f, "fra", 0, "r612", "r66")
	if r := lineRule(t, f, "fra", ptr("6.6"), 100); r.Err != nil {
		t.Fatal(r.Err)
	}
	beat(t, f, t0, "old", "fra", "6.12", "6.6.90", wire.PhaseIdle)
	beat(t, f, t0, "new", "fra", "6.12", "6.12.85", wire.PhaseIdle)
	if h := hostLine(f, "old"); h.KernelLine != "6.6" || h.LineSource != LineSourceDCRule {
		t.Fatalf("old: on %q (%s)", h.KernelLine, h.LineSource)
	}
	if h := hostLine(f, "new"); h.KernelLine != "6.12" || h.LineSource != LineSourceAgent || h.PendingLine != "6.6" || !strings.Contains(h.LineWait, "never a downgrade") {
		t.Fatalf("new: on %q (%s), pending %q (%s)", h.KernelLine, h.LineSource, h.PendingLine, h.LineWait)
	}
}

// TestLineFormat4Replay: heartbeats of format 4 keep the line the agent
// reports, whatever is assigned, and answer no line.
func TestLineFormat4Replay(t *testing.T) {
	f := New()
	linesFleet(t, f, "fra", 1, "r612")
	res := applyV(t, f, FormatV4, TypeHeartbeat, t0, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "fra-h0", Datacenter: "fra", KernelLine: "6.1", Kernel: "6.12.85", Phase: wire.PhaseIdle}})
	if h := hostLine(f, "fra-h0"); h.KernelLine != "6.1" || res.KernelLine != "" {
		t.Fatalf("format 4: host on %q, answer line %q", h.KernelLine, res.KernelLine)
	}
	if r := applyV(t, f, FormatV4, TypeSetDatacenter, t0, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{Line: ptr("6.18"), LinePct: ptr(10)}}); kind(r) != wire.KindInvalidRequest {
		t.Fatalf("format 4 line rule: %s", kind(r))
	}
}
