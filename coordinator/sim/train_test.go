package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// trainFleet is the built-in fleet's shape at 40 datacenters and 4,000
// hosts: the same tiers, windows and policies, fast enough for tests.
func trainFleet(t *testing.T) Fleet {
	t.Helper()
	f, err := DefaultFleet(40, 4000)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRunTrainReport runs the train over simulated weeks and checks the
// report: a failed build never reaches control or the edge, days behind
// stay within the train's bound, departures keep the cadence, a
// mitigation cuts the exposure, and the invariants hold.
func TestRunTrainReport(t *testing.T) {
	fl := trainFleet(t)
	tests := []struct {
		name string
		opt  TrainOptions
		// fixBuild is the CVE's expected fixing build (0: no CVE).
		fixBuild int
	}{
		{"weekly, build 2 fails, cve day 20", TrainOptions{Seed: 1, Weeks: 12, FailBuild: 2, CVE: true, CVEDay: 20}, 4},
		{"the fixing build fails", TrainOptions{Seed: 2, Weeks: 10, BuildEvery: 7 * 24 * time.Hour, FailBuild: 3, CVE: true, CVEDay: 8, MitigateAfter: 2 * time.Hour}, 3},
		{"builds every 3 days, first fails", TrainOptions{Seed: 3, Weeks: 8, BuildEvery: 72 * time.Hour, FailBuild: 1, CVE: true, CVEDay: 0.5}, 2},
		{"no failure, no cve, cold reboots", TrainOptions{Seed: 4, Weeks: 9, Reboot: RebootCold}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := RunTrain(context.Background(), fl, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if r.CapacityFloorViolations != 0 || r.SlotLimitViolations != 0 {
				t.Errorf("violations: floor %d, slot limit %d", r.CapacityFloorViolations, r.SlotLimitViolations)
			}
			for _, st := range r.Steps {
				if st.Refused != "" {
					t.Errorf("day %.2f: %s %s refused: %s", st.Day, st.Action, st.Release, st.Refused)
				}
			}
			// A failed build: rejected, never on control or the edge, no
			// host runs it.
			if k := tt.opt.FailBuild; k > 0 {
				b := r.Builds[k]
				if b.State != fsm.ReleaseRejected || b.ControlDay >= 0 || b.DepartedDay >= 0 || b.HostsAtEnd != 0 {
					t.Errorf("failed build %d: state %s, control day %v, departed day %v, %d hosts at end", k, b.State, b.ControlDay, b.DepartedDay, b.HostsAtEnd)
				}
				for _, st := range r.Steps {
					if st.Release == b.Release && st.Action != fsm.StepStage {
						t.Errorf("day %.2f: failed build %s: step %s", st.Day, b.Release, st.Action)
					}
				}
				if r.HostsFailed == 0 || r.OperatorActions == 0 {
					t.Errorf("failed build: %d hosts failed, %d operator actions; want both > 0", r.HostsFailed, r.OperatorActions)
				}
			} else if r.HostsFailed != 0 {
				t.Errorf("%d hosts failed without a failing build", r.HostsFailed)
			}
			// Every other build is validated within a week (staging soak +
			// a night's window), or superseded by a newer one while
			// staging was busy; control takes a validated one at once.
			departed := 0
			for _, b := range r.Builds[1:] {
				if b.Build == tt.opt.FailBuild || b.AddedDay > float64(7*tt.opt.Weeks)-8 {
					continue
				}
				if b.ValidatedDay < 0 && b.State == fsm.ReleaseSuperseded {
					continue // a newer build arrived while staging was busy
				}
				if b.ValidatedDay < 0 || b.ValidatedDay-b.AddedDay > 7 || b.ControlDay != b.ValidatedDay {
					t.Errorf("build %d: added %.2f, validated %.2f, control %.2f", b.Build, b.AddedDay, b.ValidatedDay, b.ControlDay)
				}
				if b.DepartedDay >= 0 {
					departed++
				}
			}
			if departed == 0 {
				t.Errorf("no build departed to the edge")
			}
			// Departures and skips keep the cadence: Tue 09:00 UTC every
			// four weeks from Tue 2026-11-03.
			for _, st := range r.Steps {
				if st.Action != fsm.StepDepart && st.Action != fsm.StepSkip {
					continue
				}
				if off := math.Mod(st.Day-1.375, 28); math.Abs(off) > 1e-6 {
					t.Errorf("day %.3f: %s off the cadence", st.Day, st.Action)
				}
			}
			// Days behind: bounded by the train's cadence; control hosts
			// take a validated build at once (within a night's window).
			for tier, d := range r.DaysBehind {
				if d.Max > r.BehindBoundDays || d.P50 > d.P90 || d.P90 > d.Max {
					t.Errorf("days behind %s: %+v, bound %.1f", tier, d, r.BehindBoundDays)
				}
			}
			if d := r.DaysBehind[fsm.TierControl]; d.Max > 3 {
				t.Errorf("control hosts behind up to %.2f days; want ≤ 3", d.Max)
			}
			if d := r.DaysBehind[fsm.TierEdge]; d.Max < 7 || d.Hosts == 0 {
				t.Errorf("edge days behind %+v: want some hosts behind a week or more", d)
			}
			if r.DaysBehind["all"].Hosts != r.Hosts {
				t.Errorf("days behind counts %d hosts of %d", r.DaysBehind["all"].Hosts, r.Hosts)
			}
			// Exposure.
			if tt.fixBuild == 0 {
				if r.CVE != nil {
					t.Errorf("CVE report without a CVE")
				}
				return
			}
			c := r.CVE
			if c == nil || c.FixBuild != tt.fixBuild {
				t.Fatalf("CVE %+v: want fix build %d", c, tt.fixBuild)
			}
			if !(c.ExposureHostDaysMitigated < c.ExposureHostDays) || c.ExposureHostDaysMitigated <= 0 {
				t.Errorf("exposure: %.1f host-days mitigated, %.1f without; want 0 < mitigated < without", c.ExposureHostDaysMitigated, c.ExposureHostDays)
			}
			// Before the mitigation covers them, nearly every host is
			// exposed (only staging may run the fix that soon).
			window := (tt.opt.MitigateAfter + DefaultMitigationPropagation).Hours() / 24
			if tt.opt.MitigateAfter == 0 {
				window = (DefaultMitigateAfter + DefaultMitigationPropagation).Hours() / 24
			}
			if want := float64(r.Hosts) * window; math.Abs(c.ExposureHostDaysMitigated-want) > 0.02*want {
				t.Errorf("mitigated exposure %.1f host-days, want ≈ %.1f (all hosts for %.3f days)", c.ExposureHostDaysMitigated, want, window)
			}
		})
	}
}

// TestRunTrainDeterministic: the same fleet, options and seed give the
// same report, byte for byte; another seed another one.
func TestRunTrainDeterministic(t *testing.T) {
	fl := trainFleet(t)
	run := func(seed uint64) []byte {
		r, err := RunTrain(context.Background(), fl, TrainOptions{Seed: seed, Weeks: 6, FailBuild: 2, CVE: true, CVEDay: 3})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(r); err != nil {
			t.Fatal(err)
		}
		if err := WriteTrainSVG(&b, r); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b, c := run(7), run(7), run(8)
	if !bytes.Equal(a, b) {
		t.Errorf("seed 7 gave two different reports")
	}
	if bytes.Equal(a, c) {
		t.Errorf("seeds 7 and 8 gave the same report")
	}
}

// TestTrainOptionsValidate checks that every invalid option is refused
// with its reason.
func TestTrainOptionsValidate(t *testing.T) {
	fl := trainFleet(t)
	noStaging := fl
	noStaging.Datacenters = nil
	for _, d := range fl.Datacenters {
		if d.Tier != fsm.TierStaging {
			noStaging.Datacenters = append(noStaging.Datacenters, d)
		}
	}
	tests := []struct {
		name  string
		fleet Fleet
		opt   TrainOptions
		want  string // "" = valid; else substrings, |-separated, all in the error
	}{
		{"defaults", fl, TrainOptions{Weeks: 12}, ""},
		{"no weeks", fl, TrainOptions{}, "weeks 0"},
		{"too many weeks", fl, TrainOptions{Weeks: MaxTrainWeeks + 1}, "want 1 to"},
		{"builds too often", fl, TrainOptions{Weeks: 2, BuildEvery: 30 * time.Minute}, "build interval"},
		{"fail build beyond the run", fl, TrainOptions{Weeks: 2, FailBuild: 3}, "failing build 3"},
		{"fail build negative", fl, TrainOptions{Weeks: 2, FailBuild: -1}, "failing build -1"},
		{"cve after the run", fl, TrainOptions{Weeks: 2, CVE: true, CVEDay: 14}, "CVE day 14"},
		{"cve negative", fl, TrainOptions{Weeks: 2, CVE: true, CVEDay: -1}, "CVE day -1"},
		{"negative mitigation", fl, TrainOptions{Weeks: 2, MitigateAfter: -time.Hour}, "mitigation delay"},
		{"bad reboot", fl, TrainOptions{Weeks: 2, Reboot: "pxe"}, "reboot \"pxe\""},
		{"edge cycle not whole weeks", fl, TrainOptions{Weeks: 2, EdgeCycle: 240 * time.Hour}, "whole weeks"},
		{"staging soak too short", fl, TrainOptions{Weeks: 2, StagingSoak: 30 * time.Second}, "staging soak 30s"},
		{"bad departure", fl, TrainOptions{Weeks: 2, Departure: "Tue 9am"}, "HH:MM"},
		{"no staging tier", noStaging, TrainOptions{Weeks: 2}, "no staging datacenter"},
		{"two problems at once", fl, TrainOptions{Weeks: 0, Reboot: "pxe"}, "weeks 0|reboot \"pxe\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := tt.opt
			err := opt.Validate(tt.fleet)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tt.want)
			case tt.want != "":
				for _, w := range strings.Split(tt.want, "|") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %v lacks %q", err, w)
					}
				}
			}
		})
	}
	// RunTrain refuses them too, and a bad departure.
	if _, err := RunTrain(context.Background(), fl, TrainOptions{Weeks: 1, Departure: "Funday 09:00 UTC"}); err == nil || !strings.Contains(err.Error(), "weekday") {
		t.Errorf("bad departure: %v", err)
	}
	if _, err := RunTrain(context.Background(), fl, TrainOptions{Weeks: 1, Staging: []string{"edge-001"}}); err == nil || !strings.Contains(err.Error(), "not staging") {
		t.Errorf("edge datacenter as staging: %v", err)
	}
}
