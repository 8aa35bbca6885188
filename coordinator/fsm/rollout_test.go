package fsm

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// rolloutFleet registers datacenters with hosts of line 6.12 (and one
// 6.1 host per edge datacenter) and a release of each line.
func rolloutFleet(t *testing.T, f *FSM, edge map[string]int, staging, control []string) {
	t.Helper()
	add := func(name, tier string, n int) {
		tr := tier
		if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: name, Update: wire.DatacenterUpdate{SlotLimit: ptr(2), Tier: &tr}}); r.Err != nil {
			t.Fatal(r.Err)
		}
		for i := range n {
			beat(t, f, t0, fmt.Sprintf("%s-%d", name, i), name, "6.12", "6.12.80", wire.PhaseIdle)
		}
		if tier == TierEdge {
			beat(t, f, t0, name+"-old", name, "6.1", "6.1.0-47-amd64", wire.PhaseIdle)
		}
	}
	for name, n := range edge {
		add(name, TierEdge, n)
	}
	for _, name := range staging {
		add(name, TierStaging, 2)
	}
	for _, name := range control {
		add(name, TierControl, 2)
	}
	for _, rel := range []Release{
		{ID: "r612", Line: "6.12", KernelVersion: "6.12.90"},
		{ID: "r612b", Line: "6.12", KernelVersion: "6.12.95"},
		{ID: "r61", Line: "6.1", KernelVersion: "6.1.0-56-amd64"},
	} {
		if r := apply(t, f, TypeAddRelease, t0, AddRelease{Release: rel}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func beat(t *testing.T, f *FSM, now time.Time, host, dc, line, kernel, phase string) Result {
	t.Helper()
	r := apply(t, f, TypeHeartbeat, now, Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: dc, KernelLine: line, Kernel: kernel, Phase: phase}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r
}

// upgrade makes every 6.12 host of dc report the release kernel.
func upgrade(t *testing.T, f *FSM, now time.Time, dc, kernel string) {
	t.Helper()
	f.View(func(s *State) {}) // (the FSM is single-threaded here)
	var ids []string
	f.View(func(s *State) {
		for _, h := range s.lineHosts(dc, "6.12") {
			ids = append(ids, h.ID)
		}
	})
	for _, id := range ids {
		beat(t, f, now, id, dc, "6.12", kernel, wire.PhaseIdle)
	}
}

func rollout(f *FSM, id string) Rollout {
	var r Rollout
	f.View(func(s *State) { r = *s.Rollouts[id] })
	return r
}

func targeted(f *FSM, dc, line string) string {
	var rel string
	f.View(func(s *State) {
		if r := s.targetRelease(s.Datacenters[dc], line); r != nil {
			rel = r.ID
		}
	})
	return rel
}

func waveNames(r Rollout, started bool) []string {
	var out []string
	for _, w := range r.Waves {
		if !w.Started.IsZero() == started {
			out = append(out, w.Name)
		}
	}
	return out
}

var tick = Tick{Timing: Timing{AliveWithin: 365 * 24 * time.Hour}}

func TestRolloutWavesGatingAndPacing(t *testing.T) {
	f := New()
	edge := map[string]int{}
	for i := range 20 {
		edge[fmt.Sprintf("e%02d", i)] = 3 + i // e00 smallest
	}
	rolloutFleet(t, f, edge, []string{"stg1"}, []string{"ctl1"})
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro1", Release: "r612", Soak: 6 * time.Hour, Cycle: 28 * 24 * time.Hour}); r.Err != nil {
		t.Fatal(r.Err)
	}
	r := rollout(f, "ro1")
	var plan []string
	for _, w := range r.Waves {
		plan = append(plan, fmt.Sprintf("%s:%d", w.Name, len(w.Datacenters)))
	}
	if want := []string{"staging:1", "control:1", "canary:1", "edge-10%:2", "edge-50%:8", "edge-100%:9"}; !slices.Equal(plan, want) {
		t.Fatalf("plan %v, want %v", plan, want)
	}
	if r.Waves[2].Datacenters[0] != "e00" {
		t.Errorf("canary %v, want the smallest edge datacenter e00", r.Waves[2].Datacenters)
	}
	// Only staging is targeted; 6.1 hosts never are.
	if targeted(f, "stg1", "6.12") != "r612" || targeted(f, "ctl1", "6.12") != "" || targeted(f, "e00", "6.12") != "" || targeted(f, "e00", "6.1") != "" {
		t.Fatal("staging wave did not start alone")
	}
	if ds := beat(t, f, t0, "e00-old", "e00", "6.1", "6.1.0-47-amd64", wire.PhaseIdle); ds.Release != nil {
		t.Fatal("a 6.1 host got a 6.12 release")
	}
	now := t0.Add(time.Hour)
	upgrade(t, f, now, "stg1", "6.12.90")
	apply(t, f, TypeTick, now, tick)
	if r := rollout(f, "ro1"); r.Waves[0].Completed.IsZero() || len(waveNames(r, true)) != 1 {
		t.Fatalf("after staging upgraded: started %v", waveNames(r, true))
	}
	// Soak: nothing else before 6 h.
	apply(t, f, TypeTick, now.Add(5*time.Hour), tick)
	if targeted(f, "ctl1", "6.12") != "" {
		t.Fatal("control started during the soak")
	}
	now = now.Add(6 * time.Hour)
	apply(t, f, TypeTick, now, tick)
	if got := waveNames(rollout(f, "ro1"), true); !slices.Equal(got, []string{"staging", "control", "canary"}) {
		t.Fatalf("after the soak: started %v", got)
	}
	// The canary done: edge-10% waits for its pacing slot (28d / 4 waves).
	upgrade(t, f, now.Add(time.Hour), "e00", "6.12.90")
	apply(t, f, TypeTick, now.Add(time.Hour), tick)
	if got := waveNames(rollout(f, "ro1"), true); len(got) != 3 {
		t.Fatalf("edge-10%% started before its pacing time: %v", got)
	}
	apply(t, f, TypeTick, now.Add(7*24*time.Hour), tick)
	if got := waveNames(rollout(f, "ro1"), true); !slices.Contains(got, "edge-10%") || slices.Contains(got, "edge-50%") {
		t.Fatalf("at day 7: started %v", got)
	}
	// Control (not gating) still running does not hold the edge back;
	// finish everything.
	at := now.Add(7 * 24 * time.Hour)
	for _, w := range rollout(f, "ro1").Waves {
		for _, dc := range w.Datacenters {
			upgrade(t, f, at, dc, "6.12.90")
		}
	}
	for day := 8; day <= 30; day++ {
		for _, w := range rollout(f, "ro1").Waves {
			if !w.Started.IsZero() {
				for _, dc := range w.Datacenters {
					upgrade(t, f, now.Add(time.Duration(day)*24*time.Hour), dc, "6.12.90")
				}
			}
		}
		apply(t, f, TypeTick, now.Add(time.Duration(day)*24*time.Hour), tick)
	}
	if r := rollout(f, "ro1"); r.State != RolloutDone {
		t.Fatalf("after 30 days: %s, started %v", r.State, waveNames(r, true))
	}
	if w := rollout(f, "ro1").Waves[5]; w.Started.Sub(t0) < 21*24*time.Hour {
		t.Errorf("last edge wave started at day %.1f, want ≥ 21 (pacing)", w.Started.Sub(t0).Hours()/24)
	}
}

func TestRolloutExpediteSkipsPacingAndWindows(t *testing.T) {
	f := New()
	// No staging datacenter: the rollouts below are forced (with a
	// reason) to skip the staging gate; TestRolloutNeedsStagingAndCanary
	// checks that refusal.
	rolloutFleet(t, f, map[string]int{"e1": 4, "e2": 5, "e3": 6}, nil, nil)
	// A window that is closed at t0 (03:00 UTC is outside 12:00-13:00).
	w := "Mon-Sun 12:00-13:00 UTC"
	for _, dc := range []string{"e1", "e2", "e3"} {
		apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{Window: &w}})
	}
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "cve", Release: "r612", Expedite: true, Force: true}); r.Err == nil || !strings.Contains(r.Err.Value, "expedited rollout needs a reason") {
		t.Fatalf("expedite without a reason: %+v", r.Err)
	}
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "cve", Release: "r612", Expedite: true, Reason: "CVE-2026-31431", Force: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	// Outside the window, an expedited target's host still gets a slot.
	r := acquire(t, f, t0, "e1", "e1-0")
	if kind(r) != "ok" {
		t.Fatalf("expedited acquire outside the window: %s %+v", kind(r), r.Err)
	}
	// A host whose line is not expedited (6.1) is held to the window.
	if r := acquire(t, f, t0, "e1", "e1-old"); kind(r) != wire.KindOutsideWindow {
		t.Fatalf("6.1 host outside the window: %s", kind(r))
	}
	// (A holder silent past its reboot deadline would fail the canary.)
	if rel := apply(t, f, TypeRelease, t0, SlotRelease{Datacenter: "e1", Host: "e1-0", Token: r.Slot.Token, Owner: OwnerAgent}); rel.Err != nil {
		t.Fatal(rel.Err)
	}
	now := t0
	for _, dc := range []string{"e1", "e2", "e3"} {
		now = now.Add(time.Minute)
		upgrade(t, f, now, dc, "6.12.90")
		apply(t, f, TypeTick, now, tick)
	}
	// The canary soaks (30 minutes when expedited); then the edge waves
	// follow each other without pacing.
	for _, d := range []time.Duration{DefaultExpediteSoak, DefaultExpediteSoak + time.Minute, DefaultExpediteSoak + 2*time.Minute} {
		apply(t, f, TypeTick, now.Add(d), tick)
	}
	if r := rollout(f, "cve"); r.State != RolloutDone {
		t.Fatalf("expedited rollout after all upgraded: %s %v", r.State, waveNames(r, true))
	}
	var found bool
	f.View(func(s *State) {
		for _, e := range s.Events {
			found = found || (e.Type == "rollout_started" && strings.Contains(e.Message, "EXPEDITED") && strings.Contains(e.Message, "CVE-2026-31431"))
		}
	})
	if !found {
		t.Error("the expedite reason is not in the event log")
	}
}

func TestRolloutFailureBudgetPausesAndActions(t *testing.T) {
	f := New()
	rolloutFleet(t, f, map[string]int{"e1": 5, "e2": 5}, nil, nil) // (forced: no staging)
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro", Release: "r612", Budget: ptr(1), Canary: []string{"e2"},
		Soak: time.Hour, Expedite: true, Reason: "test", Force: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if targeted(f, "e2", "6.12") != "r612" || targeted(f, "e1", "6.12") != "" {
		t.Fatal("explicit canary not honoured")
	}
	// The canary passes; the budget applies to the edge wave (e1).
	upgrade(t, f, t0, "e2", "6.12.90")
	apply(t, f, TypeTick, t0, tick)
	apply(t, f, TypeTick, t0.Add(time.Hour), tick)
	if targeted(f, "e1", "6.12") != "r612" {
		t.Fatal("the edge wave did not start after the canary passed")
	}
	// Two hosts of e1 rebooted with a slot each and report unhealthy with
	// its token: both count against the wave's budget.
	for i := range 2 {
		host := fmt.Sprintf("e1-%d", i)
		sl := acquire(t, f, t0.Add(time.Hour), "e1", host)
		if sl.Err != nil {
			t.Fatal(sl.Err)
		}
		apply(t, f, TypeHealth, t0.Add(time.Hour), Health{HealthReport: wire.HealthReport{HostID: host, Datacenter: "e1", Kernel: "6.12.90", Token: sl.Slot.Token, Detail: "nginx down"}})
	}
	apply(t, f, TypeTick, t0.Add(time.Hour+time.Minute), tick)
	r := rollout(f, "ro")
	if r.State != RolloutPaused || !strings.Contains(r.PauseReason, "2 unhealthy reports") {
		t.Fatalf("over budget: %s %q", r.State, r.PauseReason)
	}
	// Paused: the target is withheld from heartbeats.
	if ds := beat(t, f, t0.Add(time.Minute), "e1-3", "e1", "6.12", "6.12.80", wire.PhaseIdle); ds.Release != nil {
		t.Fatal("a paused rollout's release is still handed out")
	}
	if r := apply(t, f, TypeResumeRollout, t0, ResumeRollout{ID: "ro"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if ds := beat(t, f, t0.Add(time.Minute), "e1-3", "e1", "6.12", "6.12.80", wire.PhaseIdle); ds.Release == nil {
		t.Fatal("resumed rollout's release not handed out")
	}
	// A newer rollout of the line supersedes this one.
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro2", Release: "r612b", Force: true, Reason: "no staging here"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := rollout(f, "ro"); r.State != RolloutAborted {
		t.Fatalf("superseded rollout is %s", r.State)
	}
	if r := apply(t, f, TypeAbortRollout, t0, AbortRollout{ID: "ro2", Reason: "bad build"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if targeted(f, "e1", "6.12") != "" || targeted(f, "e2", "6.12") != "" {
		t.Fatal("abort left targets")
	}
	if r := apply(t, f, TypeResumeRollout, t0, ResumeRollout{ID: "ro2"}); kind(r) != wire.KindConflict {
		t.Fatalf("resuming an aborted rollout: %s", kind(r))
	}
}

func TestRolloutSnapshotRoundTrip(t *testing.T) {
	f := New()
	rolloutFleet(t, f, map[string]int{"e1": 2}, []string{"s1"}, nil)
	apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro", Release: "r612"})
	assertSnapshotRoundTrip(t, f)
	// A staging wave that passed, a failed rollout and a rejected release
	// survive a snapshot.
	upgrade(t, f, t0, "s1", "6.12.90")
	apply(t, f, TypeTick, t0, tick)
	apply(t, f, TypeTick, t0.Add(DefaultSoak), tick)
	apply(t, f, TypeHealth, t0.Add(DefaultSoak), Health{HealthReport: wire.HealthReport{HostID: "e1-0", Datacenter: "e1", Kernel: "6.12.90", Detail: "panic"}})
	var passed bool
	f.View(func(s *State) {
		r := s.Rollouts["ro"]
		passed = !r.Waves[0].Passed.IsZero() && r.State == RolloutFailed && s.Releases["r612"].Rejected["6.12"].Rollout == "ro"
	})
	if !passed {
		t.Fatalf("want a passed staging wave, a failed rollout and a rejected release: %+v", rollout(f, "ro"))
	}
	assertSnapshotRoundTrip(t, f)
}

// TestPlanWavesMatchesStartRollout checks that PlanWaves, which the
// simulator uses to size its automatic budget without registering the
// fleet a second time, plans the waves StartRollout plans (and refuses
// what it refuses) from the datacenters' line host counts alone.
func TestPlanWavesMatchesStartRollout(t *testing.T) {
	edge := map[string]int{"e00": 5, "e01": 3, "e02": 3, "e03": 9, "e04": 1, "e05": 4, "e06": 7}
	tests := []struct {
		name             string
		staging, control []string
		start            StartRollout
		wantErr          bool
	}{
		{"default", []string{"stg1"}, []string{"ctl1"}, StartRollout{Release: "r612"}, false},
		{"waves", []string{"stg1"}, nil, StartRollout{Release: "r612", Waves: []float64{0.2, 0.7}}, false},
		{"canary", []string{"stg1"}, []string{"ctl1", "ctl2"}, StartRollout{Release: "r612", Canary: []string{"e03", "e05"}}, false},
		{"other line", []string{"stg1"}, nil, StartRollout{Release: "r61", Force: true, Reason: "no staging"}, false},
		{"forced without staging", nil, []string{"ctl1"}, StartRollout{Release: "r612", Force: true, Reason: "lab"}, false},
		{"without staging", nil, []string{"ctl1"}, StartRollout{Release: "r612"}, true},
		{"canary not edge", []string{"stg1"}, []string{"ctl1"}, StartRollout{Release: "r612", Canary: []string{"ctl1"}}, true},
		{"canary unknown", []string{"stg1"}, nil, StartRollout{Release: "r612", Canary: []string{"nope"}}, true},
		{"bad waves", []string{"stg1"}, nil, StartRollout{Release: "r612", Waves: []float64{0.5, 0.4}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			rolloutFleet(t, f, edge, tt.staging, tt.control)
			var (
				dcs []PlanDC
				rel Release
			)
			f.View(func(s *State) {
				rel = *s.Releases[tt.start.Release]
				for _, name := range sortedKeys(s.Datacenters) {
					dcs = append(dcs, PlanDC{Name: name, Tier: s.Datacenters[name].Tier, Hosts: len(s.lineHosts(name, rel.Line))})
				}
			})
			waves, err := PlanWaves(dcs, rel, tt.start)
			tt.start.ID = "ro1"
			r := apply(t, f, TypeStartRollout, t0, tt.start)
			if (err != nil) != tt.wantErr || (r.Err != nil) != tt.wantErr {
				t.Fatalf("PlanWaves error %v, StartRollout refusal %v; want refused %v", err, r.Err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			got := rollout(f, "ro1").Waves
			if len(waves) != len(got) {
				t.Fatalf("PlanWaves %v, StartRollout %v", waves, got)
			}
			for i := range got {
				if waves[i].Name != got[i].Name || waves[i].Gates != got[i].Gates || !slices.Equal(waves[i].Datacenters, got[i].Datacenters) {
					t.Errorf("wave %d: PlanWaves %+v, StartRollout %+v", i, waves[i], got[i])
				}
			}
		})
	}
}
