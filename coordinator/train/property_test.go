package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestTrainProperties drives random weeks of a train — builds arriving
// in any order, staging hosts passing or failing them, resets, holds,
// skips, edge hosts taking what they are sent, time jumping minutes to
// days — through Decide and the state machine (fleet.drive also checks
// that every step is idempotent), and checks after every step:
//
//   - no rejected or superseded release ever gets a control or edge
//     rollout, and one only once validated;
//   - at most one edge train of the line is in flight;
//   - every departure is newer than the one before (never a downgrade),
//     happens at or after its due time, outside every freeze and never
//     while the train is held;
//   - no train rollout starts while the train is held.
func TestTrainProperties(t *testing.T) {
	counts := map[string]int{}
	defer func() {
		// The generator must reach every case it checks.
		for _, k := range []string{"departed", fsm.ReleaseRejected, fsm.ReleaseSuperseded, "control", "skipped"} {
			if counts[k] == 0 {
				t.Errorf("no %s in any run: %v", k, counts)
			}
		}
		t.Logf("%v", counts)
	}()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			fl := newFleet(t, "2026-11-20..2026-11-24", "2026-12-10..2026-12-12")
			seen := map[string]bool{}
			var lastEdge *fsm.Release
			builds := 0
			for step := 0; step < 400; step++ {
				before := fl.train()
				switch op := rng.IntN(20); {
				case op < 3:
					builds++
					patch := 81 + rng.IntN(30)
					fl.addRelease(fmt.Sprintf("b%d-%d", builds, patch), fmt.Sprintf("6.12.%d", patch))
				case op < 8:
					// The staging hosts answer the rollout in flight.
					var kernel string
					fl.f.View(func(s *fsm.State) {
						if r := s.TrainRollout(line, fsm.ScopeStaging); r != nil {
							kernel = r.Kernel
						}
					})
					if kernel != "" {
						phase := wire.PhaseHealthy
						if rng.IntN(4) == 0 {
							phase = wire.PhaseFailed
						}
						fl.dc("stg", kernel, phase)
					} else {
						var failed bool
						fl.f.View(func(s *fsm.State) { failed = s.StagingBlocked(s.Trains[line]) != "" })
						if failed {
							fl.dc("stg", "6.12.80", wire.PhaseIdle) // reset
						}
					}
				case op < 11:
					// Edge and control hosts take what they are sent.
					for _, dc := range []string{"ctl", "fra", "ams"} {
						var kernel string
						fl.f.View(func(s *fsm.State) {
							if tg, ok := s.Datacenters[dc].Targets[line]; ok {
								kernel = s.Releases[tg.Release].KernelVersion
							}
						})
						if kernel != "" {
							fl.dc(dc, kernel, wire.PhaseHealthy)
						}
					}
				case op == 11:
					if before.Held {
						fl.must(fsm.ResumeTrain{Line: line, Reason: "resume"})
					} else {
						fl.must(fsm.HoldTrain{Line: line, Reason: "hold"})
					}
				case op == 12 && !before.SkipNext:
					fl.must(fsm.SkipTrain{Line: line, Reason: "skip"})
				}
				held := fl.train().Held
				for _, st := range fl.drive(time.Duration(rng.Int64N(int64(36*time.Hour))) + time.Minute) {
					counts[map[string]string{fsm.StepDepart: "departed", fsm.StepSkip: "skipped", fsm.StepControl: "control"}[st.Action]]++
				}
				after := fl.train()

				fl.f.View(func(s *fsm.State) {
					edges := 0
					for _, r := range s.ActiveRollouts(line) {
						if r.Scope == fsm.ScopeEdge {
							edges++
						}
					}
					if edges > 1 {
						t.Fatalf("step %d: %d edge trains in flight", step, edges)
					}
					for id, r := range s.Rollouts {
						if seen[id] {
							continue
						}
						seen[id] = true
						rel := s.Releases[r.Release]
						if held {
							t.Fatalf("step %d: rollout %s started while held", step, id)
						}
						if r.Scope == fsm.ScopeStaging {
							continue
						}
						if len(rel.Rejected) > 0 || rel.State == fsm.ReleaseSuperseded || !fsm.ValidatedForTrain(rel) {
							t.Fatalf("step %d: %s rollout %s of %s (%s: %s)", step, r.Scope, id, rel.ID, rel.State, rel.StateReason)
						}
						if r.Scope != fsm.ScopeEdge {
							continue
						}
						if lastEdge != nil {
							if c, err := fsm.CompareReleases(rel, lastEdge); err != nil || c <= 0 {
								t.Fatalf("step %d: departed %s after %s", step, rel.ID, lastEdge.ID)
							}
						}
						lastEdge = rel
						if r.Created.Before(before.NextDeparture) {
							t.Fatalf("step %d: departed at %s, due %s", step, r.Created, before.NextDeparture)
						}
						if f, ok := after.FrozenAt(r.Created); ok {
							t.Fatalf("step %d: departed in freeze %s", step, f.Spec)
						}
					}
				})
			}
			fl.f.View(func(s *fsm.State) {
				for _, r := range s.Releases {
					counts[r.State]++
				}
			})
		})
	}
}
