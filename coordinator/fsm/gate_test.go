package fsm

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// gateTick ticks with real liveness: hosts silent for 30 s are dead (once
// marked silent, see leaderMarksSilent), holders silent past 15 min are
// lost.
var gateTick = Tick{Timing: timing}

// gateFleet is a staging datacenter stg1 (hosts stg1-0, stg1-1), the
// canary e1 (3 hosts) and the edge datacenter e2 (4 hosts), all on line
// 6.12 kernel 6.12.80, and an expedited rollout "ro" of r612 (6.12.90)
// with a one-hour soak and the given wave budget, started at t0.
func gateFleet(t *testing.T, budget *int) *FSM {
	t.Helper()
	f := New()
	rolloutFleet(t, f, map[string]int{"e1": 3, "e2": 4}, []string{"stg1"}, nil)
	if r := apply(t, f, TypeStartRollout, t0, StartRollout{ID: "ro", Release: "r612", Expedite: true, Reason: "test",
		Canary: []string{"e1"}, Soak: gateSoak, Budget: budget}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if targeted(f, "stg1", "6.12") != "r612" || targeted(f, "e1", "6.12") != "" {
		t.Fatal("the staging wave did not start alone")
	}
	return f
}

const gateSoak = time.Hour

// gateTickAt refreshes the heartbeat of every 6.12 host except the silent
// ones (same kernel and phase as last reported) and ticks at now.
func gateTickAt(t *testing.T, f *FSM, now time.Time, silent ...string) {
	t.Helper()
	gateTermTickAt(t, f, now, 0, silent...)
}

// gateTermTickAt is gateTickAt with a tick of leader term term.
func gateTermTickAt(t *testing.T, f *FSM, now time.Time, term uint64, silent ...string) {
	t.Helper()
	type hb struct{ id, dc, kernel, phase string }
	var hbs []hb
	f.View(func(s *State) {
		for _, id := range sortedKeys(s.Hosts) {
			h := s.Hosts[id]
			if h.KernelLine == "6.12" && !strings.HasSuffix(id, "-old") && !contains(silent, id) {
				hbs = append(hbs, hb{id, h.Datacenter, h.Kernel, h.Phase})
			}
		}
	})
	for _, h := range hbs {
		beat(t, f, now, h.id, h.dc, "6.12", h.kernel, h.phase)
	}
	leaderMarksSilent(t, f, now, term)
	if r := apply(t, f, TypeTick, now, Tick{Timing: timing, Term: term}); r.Err != nil {
		t.Fatal(r.Err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// gateUnhealthy makes host report unhealthy on kernel, as an agent does
// (phase unhealthy, then the health report).
func gateUnhealthy(t *testing.T, f *FSM, now time.Time, host, dc, kernel string) {
	t.Helper()
	beat(t, f, now, host, dc, "6.12", kernel, wire.PhaseUnhealthy)
	if r := apply(t, f, TypeHealth, now, Health{HealthReport: wire.HealthReport{HostID: host, Datacenter: dc, Kernel: kernel, Detail: "nginx down"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// gateStagingHealthy upgrades stg1 at t0+10m; the soak ends at
// t0+10m+gateSoak.
func gateStagingHealthy(t *testing.T, f *FSM) time.Time {
	t.Helper()
	at := t0.Add(10 * time.Minute)
	upgrade(t, f, at, "stg1", "6.12.90")
	gateTickAt(t, f, at)
	if r := rollout(f, "ro"); r.Waves[0].Completed.IsZero() {
		t.Fatalf("staging healthy on the new kernel is not complete: %+v", r.Waves[0])
	}
	return at.Add(gateSoak)
}

func TestRolloutStrictGates(t *testing.T) {
	tests := []struct {
		name   string
		budget *int
		run    func(t *testing.T, f *FSM)
		// want: the rollout's state, a substring of its reason, and
		// which datacenters end up targeted.
		state, reason string
		canary, edge  bool
	}{
		{
			name: "staging 2 of 2 unhealthy within the default budget",
			run: func(t *testing.T, f *FSM) {
				at := t0.Add(10 * time.Minute)
				gateUnhealthy(t, f, at, "stg1-0", "stg1", "6.12.90")
				gateUnhealthy(t, f, at, "stg1-1", "stg1", "6.12.90")
				for _, d := range []time.Duration{11 * time.Minute, 2 * time.Hour, 3 * time.Hour} {
					gateTickAt(t, f, t0.Add(d))
				}
			},
			state: "failed", reason: "staging",
		},
		{
			name:   "unhealthy during the soak with budget 0",
			budget: ptr(0),
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateUnhealthy(t, f, end.Add(-30*time.Minute), "stg1-1", "stg1", "6.12.90")
				gateTickAt(t, f, end.Add(-30*time.Minute))
				gateTickAt(t, f, end)
				gateTickAt(t, f, end.Add(time.Hour))
			},
			state: "failed", reason: "stg1-1",
		},
		{
			name: "both staging hosts silent mid-reboot (lost): 0 of 0 hosts never passes",
			run: func(t *testing.T, f *FSM) {
				at := t0.Add(5 * time.Minute)
				for _, h := range []string{"stg1-0", "stg1-1"} {
					beat(t, f, at, h, "stg1", "6.12", "6.12.80", wire.PhaseStaged)
					if r := acquire(t, f, at, "stg1", h); r.Err != nil {
						t.Fatal(r.Err)
					}
					beat(t, f, at.Add(time.Minute), h, "stg1", "6.12", "6.12.80", wire.PhaseRebooting)
				}
				for _, d := range []time.Duration{10 * time.Minute, 25 * time.Minute, 2 * time.Hour, 3 * time.Hour} {
					gateTickAt(t, f, t0.Add(d), "stg1-0", "stg1-1")
				}
			},
			state: "failed", reason: "lost",
		},
		{
			name: "staging hosts silent on the old kernel: the wave never passes",
			run: func(t *testing.T, f *FSM) {
				for _, d := range []time.Duration{10 * time.Minute, 2 * time.Hour, 3 * time.Hour, 30 * time.Hour} {
					gateTickAt(t, f, t0.Add(d), "stg1-0", "stg1-1")
				}
			},
			state: "running",
		},
		{
			name: "health report in the last second of the soak",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end.Add(-2*time.Second))
				if r := apply(t, f, TypeHealth, end.Add(-time.Second), Health{HealthReport: wire.HealthReport{HostID: "stg1-0", Datacenter: "stg1", Kernel: "6.12.90", Detail: "oops"}}); r.Err != nil {
					t.Fatal(r.Err)
				}
				apply(t, f, TypeTick, end, gateTick)
				gateTickAt(t, f, end.Add(time.Minute))
			},
			state: "failed", reason: "stg1-0",
		},
		{
			name: "failed phase in the last second of the soak",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end.Add(-2*time.Second))
				beat(t, f, end.Add(-time.Second), "stg1-1", "stg1", "6.12", "6.12.80", wire.PhaseFailed)
				apply(t, f, TypeTick, end, gateTick)
				gateTickAt(t, f, end.Add(time.Minute))
			},
			state: "failed", reason: "stg1-1",
		},
		{
			name: "host back on the old kernel during the soak",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				beat(t, f, end.Add(-10*time.Minute), "stg1-0", "stg1", "6.12", "6.12.80", wire.PhaseIdle)
				gateTickAt(t, f, end.Add(-10*time.Minute))
				gateTickAt(t, f, end)
			},
			state: "failed", reason: "stg1-0",
		},
		{
			name: "host silent on the new kernel during the soak",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end.Add(-10*time.Minute), "stg1-1")
				gateTickAt(t, f, end, "stg1-1")
			},
			state: "failed", reason: "stg1-1",
		},
		{
			name: "canary 1 of 3 unhealthy within the default budget",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end)
				if targeted(f, "e1", "6.12") != "r612" {
					t.Fatal("the canary did not start after the staging soak")
				}
				at := end.Add(10 * time.Minute)
				upgrade(t, f, at, "e1", "6.12.90")
				gateUnhealthy(t, f, at, "e1-2", "e1", "6.12.90")
				gateTickAt(t, f, at)
				gateTickAt(t, f, at.Add(2*gateSoak))
			},
			state: "failed", reason: "canary",
		},
		{
			name: "healthy staging and canary pass after their soaks; an edge failure within budget does not stop the rollout",
			run: func(t *testing.T, f *FSM) {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end.Add(-time.Second))
				if targeted(f, "e1", "6.12") != "" {
					t.Fatal("the canary started before the staging soak ended")
				}
				gateTickAt(t, f, end)
				at := end.Add(10 * time.Minute)
				upgrade(t, f, at, "e1", "6.12.90")
				gateTickAt(t, f, at)
				gateTickAt(t, f, at.Add(gateSoak-time.Second))
				if targeted(f, "e2", "6.12") != "" {
					t.Fatal("the edge started before the canary soak ended")
				}
				gateTickAt(t, f, at.Add(gateSoak))
				if targeted(f, "e2", "6.12") != "r612" {
					t.Fatal("the edge did not start after the canary soak")
				}
				at = at.Add(gateSoak + time.Minute)
				upgrade(t, f, at, "e2", "6.12.90")
				gateUnhealthy(t, f, at, "e2-0", "e2", "6.12.90")
				gateTickAt(t, f, at)
				gateTickAt(t, f, at.Add(time.Minute))
			},
			state: "done", canary: true, edge: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gateFleet(t, tt.budget)
			tt.run(t, f)
			r := rollout(f, "ro")
			if r.State != tt.state || !strings.Contains(r.PauseReason, tt.reason) {
				t.Errorf("rollout %s (%q), want %s (%q)", r.State, r.PauseReason, tt.state, tt.reason)
			}
			if got := targeted(f, "e1", "6.12") == "r612"; got != tt.canary {
				t.Errorf("canary targeted: %v, want %v", got, tt.canary)
			}
			if got := targeted(f, "e2", "6.12") == "r612"; got != tt.edge {
				t.Errorf("edge targeted: %v, want %v", got, tt.edge)
			}
			var started bool
			f.View(func(s *State) {
				for _, w := range s.Rollouts["ro"].Waves {
					started = started || (w.Name != WaveStaging && !w.Started.IsZero() && tt.state == "failed" && w.Name != WaveCanary)
				}
			})
			if started {
				t.Error("an edge wave started after a failed gate")
			}
		})
	}
}

func TestRolloutFailureRejectsRelease(t *testing.T) {
	f := gateFleet(t, nil)
	gateUnhealthy(t, f, t0.Add(10*time.Minute), "stg1-0", "stg1", "6.12.90")
	if r := rollout(f, "ro"); r.State != RolloutFailed {
		t.Fatalf("rollout %s after an unhealthy staging host", r.State)
	}
	rejected := func() map[string]string {
		out := map[string]string{}
		f.View(func(s *State) {
			for _, v := range s.ReleaseViews() {
				if v.ID == "r612" {
					out = v.Rejected
				}
			}
		})
		return out
	}
	if rej := rejected(); !strings.Contains(rej["6.12"], "stg1-0") {
		t.Fatalf("release view rejected = %v, want line 6.12 with the reason", rej)
	}
	if targeted(f, "stg1", "6.12") != "" {
		t.Error("a failed rollout's target is still handed out")
	}
	// A failed rollout is terminal.
	if r := apply(t, f, TypeResumeRollout, t0.Add(11*time.Minute), ResumeRollout{ID: "ro"}); kind(r) != wire.KindConflict {
		t.Errorf("resuming a failed rollout: %s", kind(r))
	}
	tests := []struct {
		name  string
		start StartRollout
		want  string
	}{
		{"not forced", StartRollout{ID: "again", Release: "r612"}, wire.KindConflict},
		{"forced without a reason", StartRollout{ID: "again", Release: "r612", Force: true}, wire.KindInvalidRequest},
		{"another release of the line", StartRollout{ID: "other", Release: "r612b", Soak: gateSoak}, "ok"},
		{"forced with a reason", StartRollout{ID: "again", Release: "r612", Force: true, Reason: "stg1-0 had a bad disk", Soak: gateSoak, Expedite: true}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := apply(t, f, TypeStartRollout, t0.Add(20*time.Minute), tt.start); kind(r) != tt.want {
				t.Fatalf("start: %s %+v, want %s", kind(r), r.Err, tt.want)
			}
		})
	}
	var forced bool
	f.View(func(s *State) {
		for _, e := range s.Events {
			forced = forced || (e.Type == "rollout_started" && strings.Contains(e.Message, "FORCED") && strings.Contains(e.Message, "bad disk"))
		}
	})
	if !forced {
		t.Error("the forced start and its reason are not in the event log")
	}
	assertSnapshotRoundTrip(t, f)
	// The forced rollout passes every gate: the rejection is lifted.
	at := t0.Add(30 * time.Minute)
	beat(t, f, at, "stg1-0", "stg1", "6.12", "6.12.90", wire.PhaseIdle)
	for _, dc := range []string{"stg1", "e1", "e2"} {
		upgrade(t, f, at, dc, "6.12.90")
	}
	for d := time.Duration(0); d <= 3*gateSoak; d += 10 * time.Minute {
		gateTickAt(t, f, at.Add(d))
	}
	if r := rollout(f, "again"); r.State != RolloutDone {
		t.Fatalf("forced rollout %s (%q)", r.State, r.PauseReason)
	}
	if rej := rejected(); len(rej) != 0 {
		t.Errorf("rejected = %v after a forced rollout passed every gate", rej)
	}
}

// TestRolloutNeedsStagingAndCanary: a rollout whose line has no hosts in a
// staging datacenter, or in an edge datacenter (no canary), is refused
// unless forced with a reason; the forced skip is in the event log.
func TestRolloutNeedsStagingAndCanary(t *testing.T) {
	tests := []struct {
		name             string
		edge             map[string]int
		staging, control []string
		start            StartRollout
		want             string
		// event is a substring of the rollout_started event (when started).
		event string
		waves []string
	}{
		{name: "staging and canary", edge: map[string]int{"e1": 2, "e2": 3}, staging: []string{"s1"},
			start: StartRollout{ID: "ro", Release: "r612"}, want: "ok", waves: []string{"staging", "canary", "edge-10%"}},
		{name: "no staging datacenter", edge: map[string]int{"e1": 2, "e2": 3},
			start: StartRollout{ID: "ro", Release: "r612"}, want: wire.KindConflict},
		{name: "no staging datacenter, expedited with a reason but not forced", edge: map[string]int{"e1": 2, "e2": 3},
			start: StartRollout{ID: "ro", Release: "r612", Expedite: true, Reason: "CVE-2026-1"}, want: wire.KindConflict},
		{name: "no staging datacenter, forced without a reason", edge: map[string]int{"e1": 2},
			start: StartRollout{ID: "ro", Release: "r612", Force: true}, want: wire.KindInvalidRequest},
		{name: "no staging datacenter, forced with a reason", edge: map[string]int{"e1": 2, "e2": 3},
			start: StartRollout{ID: "ro", Release: "r612", Force: true, Reason: "lab line, no staging"}, want: "ok",
			event: "FORCED with no staging wave", waves: []string{"canary", "edge-10%"}},
		{name: "no edge datacenter (no canary)", staging: []string{"s1"}, control: []string{"c1"},
			start: StartRollout{ID: "ro", Release: "r612"}, want: wire.KindConflict},
		{name: "no edge datacenter, forced with a reason", staging: []string{"s1"}, control: []string{"c1"},
			start: StartRollout{ID: "ro", Release: "r612", Force: true, Reason: "control-only line"}, want: "ok",
			event: "FORCED with no canary wave", waves: []string{"staging", "control"}},
		{name: "control only, forced", control: []string{"c1"},
			start: StartRollout{ID: "ro", Release: "r612", Force: true, Reason: "control-only line"}, want: "ok",
			event: "no staging wave (no staging datacenter has hosts of line 6.12) and no canary wave", waves: []string{"control"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			rolloutFleet(t, f, tt.edge, tt.staging, tt.control)
			res := apply(t, f, TypeStartRollout, t0, tt.start)
			if kind(res) != tt.want {
				t.Fatalf("start: %s %+v, want %s", kind(res), res.Err, tt.want)
			}
			var started string
			var plan []string
			f.View(func(s *State) {
				for _, e := range s.Events {
					if e.Type == "rollout_started" {
						started = e.Message
					}
				}
				if r := s.Rollouts["ro"]; r != nil {
					for _, w := range r.Waves {
						plan = append(plan, w.Name)
					}
				}
			})
			if tt.want != "ok" {
				var targets int
				f.View(func(s *State) {
					for _, dc := range s.Datacenters {
						targets += len(dc.Targets)
					}
				})
				if started != "" || plan != nil || targets != 0 {
					t.Fatalf("a refused rollout started: %q %v (%d targets)", started, plan, targets)
				}
				return
			}
			if !strings.Contains(started, tt.event) || (tt.start.Reason != "" && !strings.Contains(started, tt.start.Reason)) {
				t.Errorf("rollout_started event %q, want %q and the reason", started, tt.event)
			}
			if tt.event == "" && strings.Contains(started, "FORCED") {
				t.Errorf("rollout_started event %q says FORCED", started)
			}
			if !slices.Equal(plan, tt.waves) {
				t.Errorf("waves %v, want %v", plan, tt.waves)
			}
		})
	}
}

// gateToEdge passes staging and the canary e1 (all hosts healthy on
// 6.12.90) and returns when the edge wave (e2) started.
func gateToEdge(t *testing.T, f *FSM) time.Time {
	t.Helper()
	end := gateStagingHealthy(t, f)
	gateTickAt(t, f, end)
	at := end.Add(10 * time.Minute)
	upgrade(t, f, at, "e1", "6.12.90")
	gateTickAt(t, f, at)
	at = at.Add(gateSoak)
	gateTickAt(t, f, at)
	if targeted(f, "e2", "6.12") != "r612" {
		t.Fatal("the edge did not start after the canary soak")
	}
	return at
}

// gateRestored returns a new FSM restored from a snapshot of f: the tests
// go on with it, so what the gates remember must survive a snapshot.
func gateRestored(t *testing.T, f *FSM) *FSM {
	t.Helper()
	return assertSnapshotRoundTrip(t, f)
}

// gateReport sends host's health report (unhealthy unless healthy) with
// token (0: none).
func gateReport(t *testing.T, f *FSM, now time.Time, host, dc string, token uint64) {
	t.Helper()
	if r := apply(t, f, TypeHealth, now, Health{HealthReport: wire.HealthReport{HostID: host, Datacenter: dc, Kernel: "6.12.90", Token: token, Detail: "nginx down"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// gateSlot gives host a slot in dc and returns its token.
func gateSlot(t *testing.T, f *FSM, now time.Time, dc, host string) uint64 {
	t.Helper()
	r := acquire(t, f, now, dc, host)
	if r.Err != nil || r.Slot == nil {
		t.Fatalf("acquire %s: %+v", host, r.Err)
	}
	return r.Slot.Token
}

// TestRolloutWaveBudgetCountsReports: the edge wave's failure budget
// (1 here) counts unhealthy reports carrying a slot token, once per
// grant; a later healthy heartbeat takes none back, a tokenless report
// counts none, and resuming the rollout resets the count.
func TestRolloutWaveBudgetCountsReports(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *FSM, at time.Time) *FSM
		// state and failures: the rollout's state and the edge wave's
		// counted failures.
		state    string
		failures int
	}{
		{
			name: "two counted reports, then healthy heartbeats clear the marks",
			run: func(t *testing.T, f *FSM, at time.Time) *FSM {
				for _, h := range []string{"e2-0", "e2-1"} {
					gateReport(t, f, at, h, "e2", gateSlot(t, f, at, "e2", h))
					apply(t, f, TypeRelease, at, SlotRelease{Datacenter: "e2", Host: h, Token: gateSlot(t, f, at, "e2", h), Owner: OwnerAgent})
					beat(t, f, at, h, "e2", "6.12", "6.12.80", wire.PhaseIdle)
				}
				f = gateRestored(t, f)
				gateTickAt(t, f, at.Add(time.Second))
				return f
			},
			state: RolloutPaused, failures: 2,
		},
		{
			name: "two tokenless reports count nothing",
			run: func(t *testing.T, f *FSM, at time.Time) *FSM {
				gateUnhealthy(t, f, at, "e2-0", "e2", "6.12.90")
				gateUnhealthy(t, f, at, "e2-1", "e2", "6.12.90")
				gateTickAt(t, f, at.Add(time.Second))
				return f
			},
			state: RolloutRunning, failures: 0,
		},
		{
			name: "one grant reported twice counts once",
			run: func(t *testing.T, f *FSM, at time.Time) *FSM {
				tok := gateSlot(t, f, at, "e2", "e2-0")
				gateReport(t, f, at, "e2-0", "e2", tok)
				gateReport(t, f, at.Add(time.Second), "e2-0", "e2", tok)
				gateTickAt(t, f, at.Add(2*time.Second))
				return f
			},
			state: RolloutRunning, failures: 1,
		},
		{
			name: "resume resets the count",
			run: func(t *testing.T, f *FSM, at time.Time) *FSM {
				for _, h := range []string{"e2-0", "e2-1"} {
					gateReport(t, f, at, h, "e2", gateSlot(t, f, at, "e2", h))
				}
				gateTickAt(t, f, at.Add(time.Second))
				if r := rollout(f, "ro"); r.State != RolloutPaused {
					t.Fatalf("over budget: %s", r.State)
				}
				apply(t, f, TypeResumeRollout, at.Add(time.Minute), ResumeRollout{ID: "ro"})
				gateTickAt(t, f, at.Add(time.Minute))
				return f
			},
			state: RolloutRunning, failures: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := gateFleet(t, ptr(1))
			f = tt.run(t, f, gateToEdge(t, f))
			r := rollout(f, "ro")
			if r.State != tt.state || r.Waves[len(r.Waves)-1].Failures != tt.failures {
				t.Errorf("rollout %s (%q), edge wave failures %d; want %s, %d", r.State, r.PauseReason, r.Waves[len(r.Waves)-1].Failures, tt.state, tt.failures)
			}
		})
	}
}

// TestRolloutGateMembersLeaving: a staging host that leaves the wave
// before it passed — removed, expired, moved — fails the rollout instead
// of letting the wave pass with the hosts that remain.
func TestRolloutGateMembersLeaving(t *testing.T) {
	expiring := Tick{Timing: Timing{Lease: timing.Lease, RebootDeadline: timing.RebootDeadline, AliveWithin: timing.AliveWithin, ExpireAfter: 2 * time.Hour}}
	tests := []struct {
		name string
		run  func(t *testing.T, f *FSM) *FSM
		// state and reason: the rollout's; canary: whether e1 is
		// targeted at the end.
		state, reason string
		canary        bool
	}{
		{
			name: "host stuck on its old kernel removed",
			run: func(t *testing.T, f *FSM) *FSM {
				at := t0.Add(10 * time.Minute)
				beat(t, f, at, "stg1-0", "stg1", "6.12", "6.12.90", wire.PhaseIdle)
				gateTickAt(t, f, at, "stg1-1")
				f = gateRestored(t, f)
				if r := apply(t, f, TypeRemoveHost, at.Add(time.Hour), RemoveHost{Host: "stg1-1", Reason: "stuck"}); r.Err != nil {
					t.Fatal(r.Err)
				}
				for d := time.Hour; d <= 4*time.Hour; d += 30 * time.Minute {
					gateTickAt(t, f, at.Add(d), "stg1-1")
				}
				return f
			},
			state: RolloutFailed, reason: "host stg1-1 left the wave before it passed: removed",
		},
		{
			name: "host stuck on its old kernel expired",
			run: func(t *testing.T, f *FSM) *FSM {
				at := t0.Add(10 * time.Minute)
				beat(t, f, at, "stg1-0", "stg1", "6.12", "6.12.90", wire.PhaseIdle)
				for d := time.Duration(0); d <= 4*time.Hour; d += 30 * time.Minute {
					beat(t, f, at.Add(d), "stg1-0", "stg1", "6.12", "6.12.90", wire.PhaseIdle)
					markStale(t, f, at.Add(d))
					apply(t, f, TypeTick, at.Add(d), expiring)
				}
				return f
			},
			state: RolloutFailed, reason: "host stg1-1 left the wave before it passed: removed or expired",
		},
		{
			name: "host registered after the wave started, then removed",
			run: func(t *testing.T, f *FSM) *FSM {
				at := t0.Add(5 * time.Minute)
				beat(t, f, at, "stg1-2", "stg1", "6.12", "6.12.80", wire.PhaseIdle)
				gateTickAt(t, f, at, "stg1-2")
				apply(t, f, TypeRemoveHost, at.Add(time.Minute), RemoveHost{Host: "stg1-2"})
				upgrade(t, f, at.Add(2*time.Minute), "stg1", "6.12.90")
				for d := 2 * time.Minute; d <= 3*time.Hour; d += 30 * time.Minute {
					gateTickAt(t, f, at.Add(d))
				}
				return f
			},
			state: RolloutFailed, reason: "host stg1-2 left the wave",
		},
		{
			name: "host removed and registered again",
			run: func(t *testing.T, f *FSM) *FSM {
				at := t0.Add(5 * time.Minute)
				apply(t, f, TypeRemoveHost, at, RemoveHost{Host: "stg1-1"})
				upgrade(t, f, at.Add(time.Minute), "stg1", "6.12.90")
				beat(t, f, at.Add(time.Minute), "stg1-1", "stg1", "6.12", "6.12.90", wire.PhaseIdle)
				for d := time.Minute; d <= 3*time.Hour; d += 30 * time.Minute {
					gateTickAt(t, f, at.Add(d))
				}
				return f
			},
			state: RolloutFailed, reason: "host stg1-1 left the wave before it passed: removed and registered again",
		},
		{
			name: "host moved to another datacenter during the soak",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				beat(t, f, end.Add(-30*time.Minute), "stg1-1", "e2", "6.12", "6.12.90", wire.PhaseIdle)
				gateTickAt(t, f, end.Add(-30*time.Minute))
				gateTickAt(t, f, end)
				return f
			},
			state: RolloutFailed, reason: "host stg1-1 left the wave before it passed: moved to datacenter e2",
		},
		{
			name: "host removed after the wave passed",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				gateTickAt(t, f, end)
				apply(t, f, TypeRemoveHost, end.Add(time.Minute), RemoveHost{Host: "stg1-1", Reason: "decommissioned"})
				gateTickAt(t, f, end.Add(2*time.Minute))
				return f
			},
			state: RolloutRunning, canary: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.run(t, gateFleet(t, nil))
			r := rollout(f, "ro")
			if r.State != tt.state || !strings.Contains(r.PauseReason, tt.reason) {
				t.Errorf("rollout %s (%q), want %s (%q)", r.State, r.PauseReason, tt.state, tt.reason)
			}
			if got := targeted(f, "e1", "6.12") == "r612"; got != tt.canary {
				t.Errorf("canary targeted: %v, want %v", got, tt.canary)
			}
		})
	}
}

// TestRolloutLeaderGrace: after a coordinator outage (no leader, so no
// heartbeat could land) the first tick of the new leader's term starts a
// grace of AliveWithin in which silence fails no gate — but holds every
// wave: silence never lets one pass or complete.
func TestRolloutLeaderGrace(t *testing.T) {
	grace := timing.AliveWithin
	tests := []struct {
		name string
		run  func(t *testing.T, f *FSM) *FSM
		// state and reason: the rollout's; canary and edge: whether e1
		// and e2 are targeted at the end.
		state, reason string
		canary, edge  bool
	}{
		{
			name: "outage during the soak: the hosts come back within the grace",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				gateTermTickAt(t, f, end.Add(-50*time.Minute), 1)
				// No leader from end-50m to end-20m; the new leader's
				// first tick comes before any host got through.
				apply(t, f, TypeTick, end.Add(-20*time.Minute), Tick{Timing: timing, Term: 2})
				f = gateRestored(t, f)
				gateTermTickAt(t, f, end.Add(-20*time.Minute+grace), 2)
				gateTermTickAt(t, f, end, 2)
				return f
			},
			state: RolloutRunning, canary: true,
		},
		{
			name: "outage during the soak: a host still silent after the grace fails it",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				gateTermTickAt(t, f, end.Add(-50*time.Minute), 1)
				apply(t, f, TypeTick, end.Add(-20*time.Minute), Tick{Timing: timing, Term: 2})
				gateTermTickAt(t, f, end.Add(-20*time.Minute+grace), 2, "stg1-1")
				if r := rollout(f, "ro"); r.State != RolloutRunning {
					t.Fatalf("within the grace: %s (%q)", r.State, r.PauseReason)
				}
				gateTermTickAt(t, f, end.Add(-20*time.Minute+grace+time.Second), 2, "stg1-1")
				return f
			},
			state: RolloutFailed, reason: "stg1-1 in stg1 went silent",
		},
		{
			name: "the soak ends during the grace: silent hosts hold the wave",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				gateTermTickAt(t, f, end.Add(-50*time.Minute), 1)
				apply(t, f, TypeTick, end.Add(10*time.Minute), Tick{Timing: timing, Term: 2})
				if targeted(f, "e1", "6.12") != "" {
					t.Fatal("staging passed while its hosts were silent")
				}
				gateTermTickAt(t, f, end.Add(10*time.Minute+time.Second), 2)
				return f
			},
			state: RolloutRunning, canary: true,
		},
		{
			name: "outage during an edge wave: silent hosts hold it",
			run: func(t *testing.T, f *FSM) *FSM {
				at := gateToEdge(t, f)
				gateTermTickAt(t, f, at, 1)
				apply(t, f, TypeTick, at.Add(time.Hour), Tick{Timing: timing, Term: 2})
				if r := rollout(f, "ro"); !r.Waves[len(r.Waves)-1].Completed.IsZero() {
					t.Fatal("an edge wave of silent hosts completed in the grace")
				}
				return f
			},
			state: RolloutRunning, canary: true, edge: true,
		},
		{
			name: "same term: a host silent during the soak fails it",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				gateTermTickAt(t, f, end.Add(-50*time.Minute), 1)
				gateTermTickAt(t, f, end.Add(-20*time.Minute), 1, "stg1-1")
				return f
			},
			state: RolloutFailed, reason: "stg1-1 in stg1 went silent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.run(t, gateFleet(t, nil))
			r := rollout(f, "ro")
			if r.State != tt.state || !strings.Contains(r.PauseReason, tt.reason) {
				t.Errorf("rollout %s (%q), want %s (%q)", r.State, r.PauseReason, tt.state, tt.reason)
			}
			if got := targeted(f, "e1", "6.12") == "r612"; got != tt.canary {
				t.Errorf("canary targeted: %v, want %v", got, tt.canary)
			}
			if got := targeted(f, "e2", "6.12") == "r612"; got != tt.edge {
				t.Errorf("edge targeted: %v, want %v", got, tt.edge)
			}
		})
	}
}

// TestRolloutPausedIsWatched: a paused rollout's gates are still
// checked, and resuming restarts the soak of a wave that was soaking (a
// soak counts running time only).
func TestRolloutPausedIsWatched(t *testing.T) {
	tests := []struct {
		name          string
		run           func(t *testing.T, f *FSM) *FSM
		state, reason string
		canary        bool
	}{
		{
			name: "resumed after the soak's end: the soak restarts",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				apply(t, f, TypePauseRollout, end.Add(-50*time.Minute), PauseRollout{ID: "ro", Reason: "looking"})
				gateTickAt(t, f, end.Add(time.Hour))
				f = gateRestored(t, f)
				apply(t, f, TypeResumeRollout, end.Add(time.Hour), ResumeRollout{ID: "ro"})
				gateTickAt(t, f, end.Add(time.Hour+time.Second))
				if targeted(f, "e1", "6.12") != "" {
					t.Fatal("staging passed at the first tick after the resume")
				}
				gateTickAt(t, f, end.Add(time.Hour+gateSoak-time.Second))
				if targeted(f, "e1", "6.12") != "" {
					t.Fatal("staging passed before a full soak after the resume")
				}
				gateTickAt(t, f, end.Add(time.Hour+gateSoak))
				return f
			},
			state: RolloutRunning, canary: true,
		},
		{
			name: "a host silent on the new kernel while paused fails it",
			run: func(t *testing.T, f *FSM) *FSM {
				end := gateStagingHealthy(t, f)
				apply(t, f, TypePauseRollout, end.Add(-50*time.Minute), PauseRollout{ID: "ro", Reason: "looking"})
				gateTickAt(t, f, end.Add(-40*time.Minute), "stg1-1")
				return f
			},
			state: RolloutFailed, reason: "stg1-1",
		},
		{
			name: "a member removed while paused fails it",
			run: func(t *testing.T, f *FSM) *FSM {
				apply(t, f, TypePauseRollout, t0.Add(time.Minute), PauseRollout{ID: "ro", Reason: "looking"})
				apply(t, f, TypeRemoveHost, t0.Add(2*time.Minute), RemoveHost{Host: "stg1-1"})
				gateTickAt(t, f, t0.Add(3*time.Minute))
				return f
			},
			state: RolloutFailed, reason: "stg1-1 left the wave",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.run(t, gateFleet(t, nil))
			r := rollout(f, "ro")
			if r.State != tt.state || !strings.Contains(r.PauseReason, tt.reason) {
				t.Errorf("rollout %s (%q), want %s (%q)", r.State, r.PauseReason, tt.state, tt.reason)
			}
			if got := targeted(f, "e1", "6.12") == "r612"; got != tt.canary {
				t.Errorf("canary targeted: %v, want %v", got, tt.canary)
			}
		})
	}
}
