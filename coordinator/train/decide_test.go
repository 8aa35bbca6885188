package train

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const line = "6.12"

var tick = fsm.Tick{Timing: fsm.Timing{AliveWithin: 365 * 24 * time.Hour}}

// t0 is a Monday.
var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// fleet is a state machine with a staging, a control and two edge
// datacenters of line 6.12 on kernel 6.12.80, and the line's train
// (weekly, Tue 09:00 UTC, 1h soaks) set at t0.
type fleet struct {
	t   *testing.T
	f   *fsm.FSM
	now time.Time
}

func newFleet(t *testing.T, freezes ...string) *fleet {
	t.Helper()
	fl := &fleet{t: t, f: fsm.New(), now: t0}
	for _, dc := range []struct{ name, tier string }{{"stg", fsm.TierStaging}, {"ctl", fsm.TierControl}, {"fra", fsm.TierEdge}, {"ams", fsm.TierEdge}} {
		tier, limit := dc.tier, 5
		fl.must(fsm.SetDatacenter{Name: dc.name, Update: wire.DatacenterUpdate{Tier: &tier, SlotLimit: &limit}})
		for i := 1; i <= 2; i++ {
			fl.heartbeat(dc.name, i, "6.12.80", wire.PhaseIdle)
		}
	}
	p, err := SetTrain(Settings{Line: line, Staging: []string{"stg"}, StagingSoak: time.Hour, ControlSoak: time.Hour,
		EdgeCycle: 7 * 24 * time.Hour, Departure: "Tue 09:00 UTC", Freezes: freezes}, fl.now)
	if err != nil {
		t.Fatal(err)
	}
	fl.must(p)
	return fl
}

func (fl *fleet) exec(p any) fsm.Result { return fl.f.Exec(fl.now, p) }

func (fl *fleet) must(p any) {
	fl.t.Helper()
	if r := fl.exec(p); r.Err != nil {
		fl.t.Fatalf("%T: %s: %s", p, r.Err.Kind, r.Err.Value)
	}
}

func (fl *fleet) heartbeat(dc string, i int, kernel, phase string) {
	fl.t.Helper()
	id := dc + "-" + string(rune('0'+i))
	fl.must(fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: id, Datacenter: dc, KernelLine: line, Kernel: kernel, Phase: phase, BootID: "b-" + id + kernel}})
}

// dc moves every host of dc to kernel in phase.
func (fl *fleet) dc(dc, kernel, phase string) {
	fl.t.Helper()
	for i := 1; i <= 2; i++ {
		fl.heartbeat(dc, i, kernel, phase)
	}
}

func (fl *fleet) addRelease(id, kernel string) {
	fl.t.Helper()
	fl.must(fsm.AddRelease{Release: fsm.Release{ID: id, Line: line, KernelVersion: kernel, Kind: "kernel", Created: fl.now,
		KeyID: "k", Manifest: json.RawMessage(`{"kernel":"` + kernel + `"}`), Signature: json.RawMessage(`{}`)}})
}

// state renders the state canonically.
func (fl *fleet) state() string {
	var out []byte
	fl.f.View(func(s *fsm.State) { out, _ = json.Marshal(s) })
	return string(out)
}

// drive ticks at now+dt, then applies Decide's steps, and checks that
// the driver is idempotent: the same steps applied again change nothing,
// and Decide on the new state proposes none of them again.
func (fl *fleet) drive(dt time.Duration) []fsm.TrainStep {
	fl.t.Helper()
	fl.now = fl.now.Add(dt)
	fl.must(tick)
	var steps []fsm.TrainStep
	fl.f.View(func(s *fsm.State) { steps = Decide(s, fl.now) })
	for _, st := range steps {
		if r := fl.exec(st); r.Err != nil {
			fl.t.Fatalf("step %+v refused: %s", st, r.Err.Value)
		}
	}
	before := fl.state()
	for _, st := range steps {
		if r := fl.exec(st); r.Err == nil {
			fl.t.Fatalf("step %+v applied twice", st)
		}
	}
	if after := fl.state(); after != before {
		t := fl.t
		t.Fatalf("applying the steps again changed the state")
	}
	var again []fsm.TrainStep
	fl.f.View(func(s *fsm.State) { again = Decide(s, fl.now) })
	for _, a := range again {
		for _, st := range steps {
			if a.Action == st.Action && a.Release == st.Release && a.Due.Equal(st.Due) {
				fl.t.Fatalf("Decide proposes %+v again", a)
			}
		}
	}
	return steps
}

func (fl *fleet) release(id string) fsm.Release {
	var r fsm.Release
	fl.f.View(func(s *fsm.State) { r = *s.Releases[id] })
	return r
}

func (fl *fleet) train() fsm.Train {
	var tr fsm.Train
	fl.f.View(func(s *fsm.State) { tr = *s.Trains[line] })
	return tr
}

func actions(steps []fsm.TrainStep) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Action+":"+s.Release+s.By)
	}
	return strings.Join(out, " ")
}

func (fl *fleet) wantState(id, want string) {
	fl.t.Helper()
	if r := fl.release(id); r.State != want {
		fl.t.Fatalf("release %s is %s (%s), want %s", id, r.State, r.StateReason, want)
	}
}

// TestTrainTwoBuilds is the scenario on the state machine: the
// first weekly build fails staging and never reaches control or the
// edge; the second is validated, the control tier takes it at once, and
// the edge departs with it on schedule (Tue 09:00), not before.
func TestTrainTwoBuilds(t *testing.T) {
	fl := newFleet(t)
	fl.addRelease("r81", "6.12.81")
	if got := actions(fl.drive(time.Minute)); got != "stage:r81" {
		t.Fatalf("steps %q", got)
	}
	fl.wantState("r81", fsm.ReleaseStaging)
	fl.dc("stg", "6.12.81", wire.PhaseUnhealthy)
	if got := actions(fl.drive(time.Minute)); got != "" {
		t.Fatalf("steps %q", got)
	}
	fl.wantState("r81", fsm.ReleaseRejected)
	if r := fl.release("r81"); !strings.Contains(r.StateReason, "unhealthy") {
		t.Fatalf("reason %q", r.StateReason)
	}
	// The second build arrives while the staging hosts are still failed:
	// the train waits for an operator's reset instead of staging it
	// on hosts that would fail it for the last build's fault.
	fl.dc("stg", "6.12.80", wire.PhaseFailed)
	fl.addRelease("r82", "6.12.82")
	if got := actions(fl.drive(time.Minute)); got != "" {
		t.Fatalf("staging not ready: steps %q", got)
	}
	var v wire.Train
	fl.f.View(func(s *fsm.State) { v, _ = View(s, line, fl.now) })
	if !strings.Contains(v.StagingBlocked, "is failed on 6.12.80") || v.Releases[0].ID != "r82" || v.Releases[0].State != fsm.ReleaseCandidate {
		t.Fatalf("view %+v", v)
	}
	if r := fl.exec(fsm.TrainStep{Line: line, Action: fsm.StepStage, Release: "r82"}); r.Err == nil || !strings.Contains(r.Err.Value, "staging is not ready") {
		t.Fatalf("stage on failed hosts: %+v", r.Err)
	}
	fl.dc("stg", "6.12.80", wire.PhaseIdle) // reset
	if got := actions(fl.drive(time.Minute)); got != "stage:r82" {
		t.Fatalf("steps %q", got)
	}
	fl.dc("stg", "6.12.82", wire.PhaseHealthy)
	fl.drive(time.Minute)
	fl.wantState("r82", fsm.ReleaseStaging)
	if got := actions(fl.drive(time.Hour)); got != "control:r82" {
		t.Fatalf("steps %q", got)
	}
	fl.wantState("r82", fsm.ReleaseValidated)
	// Validated on Monday: it waits for Tuesday 09:00.
	if got := actions(fl.drive(time.Hour)); got != "" {
		t.Fatalf("steps before the departure %q", got)
	}
	fl.now = time.Date(2026, 11, 3, 8, 59, 0, 0, time.UTC)
	if got := actions(fl.drive(0)); got != "" {
		t.Fatalf("steps before the departure %q", got)
	}
	steps := fl.drive(time.Minute)
	if got := actions(steps); got != "depart:r82" || !steps[0].Due.Equal(time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("steps %q (%+v)", got, steps)
	}
	fl.wantState("r82", fsm.ReleaseRolling)
	tr := fl.train()
	if tr.EdgeRelease != "r82" || !tr.NextDeparture.Equal(time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("train %+v", tr)
	}
	fl.wantState("r81", fsm.ReleaseRejected)
	var edgeTargets []string
	fl.f.View(func(s *fsm.State) {
		for _, dc := range []string{"fra", "ams"} {
			edgeTargets = append(edgeTargets, s.Datacenters[dc].Targets[line].Release)
		}
	})
	if !strings.Contains(strings.Join(edgeTargets, ","), "r82") || strings.Contains(strings.Join(edgeTargets, ","), "r81") {
		t.Fatalf("edge targets %v", edgeTargets)
	}
	// The next departure finds the edge train still rolling: skipped.
	fl.now = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)
	if got := actions(fl.drive(0)); got != "skip:" {
		t.Fatalf("steps %q", got)
	}
	if tr := fl.train(); !tr.NextDeparture.Equal(time.Date(2026, 11, 17, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("next departure %s", tr.NextDeparture)
	}
}

// TestTrainSupersede: of three unstaged candidates the newest stages and
// the others are superseded; a candidate older than a validated release
// is superseded too; superseded ones never roll.
func TestTrainSupersede(t *testing.T) {
	fl := newFleet(t)
	fl.addRelease("r83", "6.12.83")
	fl.addRelease("r81", "6.12.81")
	fl.addRelease("r82", "6.12.82")
	if got := actions(fl.drive(time.Minute)); got != "supersede:r82r83 supersede:r81r83 stage:r83" {
		t.Fatalf("steps %q", got)
	}
	for _, id := range []string{"r81", "r82"} {
		fl.wantState(id, fsm.ReleaseSuperseded)
	}
	fl.dc("stg", "6.12.83", wire.PhaseHealthy)
	fl.drive(time.Minute)
	fl.drive(time.Hour)
	fl.wantState("r83", fsm.ReleaseValidated)
	fl.addRelease("r80b", "6.12.80-kroll-2")
	if got := actions(fl.drive(time.Minute)); got != "supersede:r80br83" {
		t.Fatalf("steps %q", got)
	}
}

// TestTrainDepartureSkips: a due departure does not happen, with its
// reason recorded, when the train is held, frozen, skipped by the
// operator, or has no validated release newer than the edge's.
func TestTrainDepartureSkips(t *testing.T) {
	due := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		freezes []string
		prep    func(fl *fleet)
		want    string
	}{
		{"held", nil, func(fl *fleet) { fl.must(fsm.HoldTrain{Line: line, Reason: "incident 7"}) }, "train held: incident 7"},
		{"freeze", []string{"2026-11-03..2026-11-04"}, nil, "freeze 2026-11-03..2026-11-04"},
		{"operator skip", nil, func(fl *fleet) { fl.must(fsm.SkipTrain{Line: line, Reason: "network change"}) }, "skipped by an operator: network change"},
		{"nothing newer than the edge", nil, func(fl *fleet) {
			fl.must(fsm.SetDatacenter{Name: "ams", Update: wire.DatacenterUpdate{TargetRelease: ptr("r82")}})
		}, "no validated release newer than r82, which the edge runs"},
		{"operator rollout", nil, func(fl *fleet) {
			fl.addRelease("r90", "6.12.90")
			fl.must(fsm.StartRollout{ID: "manual", Release: "r90"})
		}, "operator rollout manual of r90 is running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFleet(t, tc.freezes...)
			fl.addRelease("r82", "6.12.82")
			fl.drive(time.Minute)
			fl.dc("stg", "6.12.82", wire.PhaseHealthy)
			fl.drive(time.Minute)
			fl.drive(time.Hour)
			fl.wantState("r82", fsm.ReleaseValidated)
			if tc.prep != nil {
				tc.prep(fl)
			}
			fl.now = due
			steps := fl.drive(0)
			var skip *fsm.TrainStep
			for i := range steps {
				if steps[i].Action == fsm.StepDepart {
					t.Fatalf("departed: %+v", steps[i])
				}
				if steps[i].Action == fsm.StepSkip {
					skip = &steps[i]
				}
			}
			if skip == nil || !strings.Contains(skip.Reason, tc.want) {
				t.Fatalf("steps %+v, want a skip: %s", steps, tc.want)
			}
			if tr := fl.train(); !tr.NextDeparture.Equal(due.Add(7*24*time.Hour)) || tr.SkipNext {
				t.Fatalf("train %+v", tr)
			}
		})
	}
}

// TestTrainHoldStopsEverything: a held train stages nothing and starts no
// control rollout; resumed, it does.
func TestTrainHoldStopsEverything(t *testing.T) {
	fl := newFleet(t)
	fl.must(fsm.HoldTrain{Line: line, Reason: "incident"})
	fl.addRelease("r82", "6.12.82")
	if got := actions(fl.drive(time.Minute)); got != "" {
		t.Fatalf("held: steps %q", got)
	}
	if r := fl.exec(fsm.TrainStep{Line: line, Action: fsm.StepStage, Release: "r82"}); r.Err == nil {
		t.Fatal("a held train staged")
	}
	fl.must(fsm.ResumeTrain{Line: line, Reason: "over"})
	if got := actions(fl.drive(time.Minute)); got != "stage:r82" {
		t.Fatalf("resumed: steps %q", got)
	}
}

// TestTrainNeverDowngrades: a validated release older than what the edge
// runs is not departed, even when expedited.
func TestTrainNeverDowngrades(t *testing.T) {
	fl := newFleet(t)
	fl.addRelease("r85", "6.12.85")
	fl.addRelease("r82", "6.12.82")
	fl.must(fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{TargetRelease: ptr("r85")}})
	fl.drive(time.Minute) // r85 stages; r82 superseded
	fl.wantState("r82", fsm.ReleaseSuperseded)
	r := fl.exec(fsm.ExpediteTrain{Line: line, Release: "r82", Reason: "CVE"})
	if r.Err == nil {
		t.Fatal("a superseded release departed")
	}
	fl.dc("stg", "6.12.85", wire.PhaseHealthy)
	fl.drive(time.Minute)
	fl.drive(time.Hour)
	fl.wantState("r85", fsm.ReleaseValidated)
	if r := fl.exec(fsm.ExpediteTrain{Line: line, Release: "r85", Reason: "CVE"}); r.Err == nil || !strings.Contains(r.Err.Value, "never a downgrade") {
		t.Fatalf("expedite of what the edge runs: %+v", r.Err)
	}
}

// TestTrainFreezeHoldsControl: inside a freeze no control rollout
// starts (staging goes on); after it, the control tier catches up.
func TestTrainFreezeHoldsControl(t *testing.T) {
	fl := newFleet(t, "2026-11-02..2026-11-02")
	fl.addRelease("r82", "6.12.82")
	if got := actions(fl.drive(time.Minute)); got != "stage:r82" {
		t.Fatalf("staging goes on in a freeze: %q", got)
	}
	fl.dc("stg", "6.12.82", wire.PhaseHealthy)
	fl.drive(time.Minute)
	if got := actions(fl.drive(time.Hour)); got != "" {
		t.Fatalf("frozen: steps %q", got)
	}
	fl.wantState("r82", fsm.ReleaseValidated)
	fl.now = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	if got := actions(fl.drive(0)); got != "control:r82" {
		t.Fatalf("after the freeze: steps %q", got)
	}
}

// TestTrainRestoreMidTrain: a snapshot taken while a release soaks in
// staging restores into a state machine that carries the train on
// exactly as the original does.
func TestTrainRestoreMidTrain(t *testing.T) {
	fl := newFleet(t)
	fl.addRelease("r82", "6.12.82")
	fl.drive(time.Minute)
	fl.dc("stg", "6.12.82", wire.PhaseHealthy)
	fl.drive(time.Minute)
	snap, err := fl.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := fsm.New()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	other := &fleet{t: t, f: g, now: fl.now}
	if other.state() != fl.state() {
		t.Fatal("restored state differs")
	}
	for _, f := range []*fleet{fl, other} {
		if got := actions(f.drive(time.Hour)); got != "control:r82" {
			t.Fatalf("steps %q", got)
		}
		f.now = time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
		if got := actions(f.drive(0)); got != "depart:r82" {
			t.Fatalf("steps %q", got)
		}
	}
	if other.state() != fl.state() {
		t.Fatal("the restored state machine diverged")
	}
}

func ptr[T any](v T) *T { return &v }

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// TestTrainControlFloor: the control step compares the newest validated
// release with everything the control tier runs or was sent (its
// datacenters' targets too, not only the train's last control release):
// never backwards, and an order it cannot decide holds it with a word in
// the train's view.
func TestTrainControlFloor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		target    string // the control datacenter's target: release id
		kernel    string // … and its kernel
		control   bool   // control:r82 proposed
		attention string // in View's Attention
	}{
		{"older target", "r81", "6.12.81", true, ""},
		{"newer target", "r85", "6.12.85", false, ""},
		{"unordered target", "rzz", "6.12.82-zz", false, "control does not take r82: cannot order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFleet(t)
			fl.addRelease("r82", "6.12.82-kroll-3")
			fl.drive(time.Minute) // r82 stages
			fl.addRelease(tc.target, tc.kernel)
			fl.must(fsm.SetDatacenter{Name: "ctl", Update: wire.DatacenterUpdate{TargetRelease: ptr(tc.target)}})
			fl.dc("stg", "6.12.82-kroll-3", wire.PhaseHealthy)
			fl.drive(time.Minute)
			steps := fl.drive(time.Hour)
			fl.wantState("r82", fsm.ReleaseValidated)
			if got := strings.Contains(actions(steps), "control:r82"); got != tc.control {
				t.Fatalf("steps %q, want control:r82 %v", actions(steps), tc.control)
			}
			if !tc.control {
				r := fl.exec(fsm.TrainStep{Line: line, Action: fsm.StepControl, Release: "r82"})
				if r.Err == nil || r.Err.Kind != wire.KindConflict {
					t.Fatalf("control step applied over the control tier's %s: %+v", tc.target, r.Err)
				}
			}
			var v wire.Train
			fl.f.View(func(s *fsm.State) { v, _ = View(s, line, fl.now) })
			got := strings.Join(v.Attention, "; ")
			if (tc.attention == "") != (got == "") || !strings.Contains(got, tc.attention) {
				t.Errorf("attention %q, want %q", got, tc.attention)
			}
		})
	}
}

// TestTrainUnorderedCandidate: a candidate whose order against the newest
// validated release (or the candidate that stages next) is undecidable is
// neither staged nor superseded, and the train's view says so.
func TestTrainUnorderedCandidate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		validate  bool // r82 (6.12.82-kroll-3) is validated first
		attention string
	}{
		{"against validated", true, "candidate rzz is neither staged nor superseded: cannot order it against validated r82"},
		{"against the next to stage", false, "cannot order it against candidate r82, which stages next"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFleet(t)
			if tc.validate {
				fl.addRelease("r82", "6.12.82-kroll-3")
				fl.drive(time.Minute)
				fl.dc("stg", "6.12.82-kroll-3", wire.PhaseHealthy)
				fl.drive(time.Minute)
				fl.drive(time.Hour)
				fl.wantState("r82", fsm.ReleaseValidated)
				fl.addRelease("rzz", "6.12.82-zz")
			} else {
				fl.addRelease("r82", "6.12.82-kroll-3")
				fl.addRelease("rzz", "6.12.82-zz")
			}
			var steps []fsm.TrainStep
			fl.f.View(func(s *fsm.State) { steps = Decide(s, fl.now) })
			if strings.Contains(actions(steps), "supersede:rzz") || strings.Contains(actions(steps), "stage:rzz") {
				t.Fatalf("steps %q act on the unordered candidate", actions(steps))
			}
			var v wire.Train
			fl.f.View(func(s *fsm.State) { v, _ = View(s, line, fl.now) })
			if got := strings.Join(v.Attention, "; "); !strings.Contains(got, tc.attention) {
				t.Errorf("attention %q, want %q", got, tc.attention)
			}
		})
	}
}
