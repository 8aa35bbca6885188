package train

import (
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// desired returns the release host's heartbeat is handed ("" for none).
func (fl *fleet) desired(dc string, i int, kernel, phase string) string {
	fl.t.Helper()
	id := dc + "-" + string(rune('0'+i))
	r := fl.exec(fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: id, Datacenter: dc, KernelLine: line, Kernel: kernel, Phase: phase, BootID: "b-" + id + kernel}})
	if r.Err != nil {
		fl.t.Fatalf("heartbeat %s: %s", id, r.Err.Value)
	}
	if r.Release == nil {
		return ""
	}
	return r.Release.ID
}

// acquire asks a slot for host i of dc to boot rel and returns the
// refusal's kind ("ok" when granted).
func (fl *fleet) acquire(dc string, i int, rel string) (string, string) {
	fl.t.Helper()
	r := fl.exec(fsm.Acquire{Datacenter: dc, Host: dc + "-" + string(rune('0'+i)), Owner: fsm.OwnerAgent, Release: rel,
		Timing: fsm.Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: time.Hour}})
	if r.Err != nil {
		return r.Err.Kind, r.Err.Value
	}
	return "ok", ""
}

// TestTrainWithdrawnReleaseGetsNoSlot: a release the train no longer
// rolls is booted nowhere afterwards. A staging failure rejects the build
// while the second staging host, which staged it, waits for a slot: its
// slot is refused and its desired state is empty. An operator who rejects
// a validated release mid-train (its staging rollout done, the control
// rollout running) withdraws it from the staging datacenter (whose
// target the done rollout left), from control, and from the edge: no
// slot anywhere, no departure.
func TestTrainWithdrawnReleaseGetsNoSlot(t *testing.T) {
	t.Run("staging fails while a host waits for a slot", func(t *testing.T) {
		fl := newFleet(t)
		fl.addRelease("r81", "6.12.81")
		if got := actions(fl.drive(time.Minute)); got != "stage:r81" {
			t.Fatalf("steps %q", got)
		}
		if got := fl.desired("stg", 2, "6.12.80", wire.PhaseWaitingSlot); got != "r81" {
			t.Fatalf("staging host handed %q, want r81", got)
		}
		fl.heartbeat("stg", 1, "6.12.81", wire.PhaseUnhealthy)
		fl.must(fsm.Health{HealthReport: wire.HealthReport{HostID: "stg-1", Datacenter: "stg", Kernel: "6.12.81", Detail: "nginx down"}})
		fl.drive(time.Minute)
		fl.wantState("r81", fsm.ReleaseRejected)
		if got := fl.desired("stg", 2, "6.12.80", wire.PhaseWaitingSlot); got != "" {
			t.Errorf("the waiting host is still handed %s", got)
		}
		if k, why := fl.acquire("stg", 2, "r81"); k != wire.KindReleaseWithdrawn || !strings.Contains(why, "rejected for line 6.12") {
			t.Fatalf("slot for the rejected build: %s %q", k, why)
		}
	})
	t.Run("operator rejects a validated release mid-train", func(t *testing.T) {
		fl := newFleet(t)
		fl.addRelease("r82", "6.12.82")
		if got := actions(fl.drive(time.Minute)); got != "stage:r82" {
			t.Fatalf("steps %q", got)
		}
		fl.dc("stg", "6.12.82", wire.PhaseHealthy)
		fl.drive(time.Minute)
		if got := actions(fl.drive(time.Hour)); got != "control:r82" {
			t.Fatalf("steps %q", got)
		}
		// A staging host cold-booted back into its old kernel is handed
		// the release again (the done staging rollout's target).
		if got := fl.desired("stg", 2, "6.12.80", wire.PhaseIdle); got != "r82" {
			t.Fatalf("staging host handed %q after the staging rollout completed, want r82", got)
		}
		if k, why := fl.acquire("ctl", 1, "r82"); k != "ok" {
			t.Fatalf("control slot for the validated release: %s %q", k, why)
		}
		fl.must(fsm.RejectRelease{ID: "r82", Reason: "a customer reports crashes"})
		fl.wantState("r82", fsm.ReleaseRejected)
		for _, dc := range []string{"stg", "ctl", "fra", "ams"} {
			if got := fl.desired(dc, 2, "6.12.80", wire.PhaseIdle); got != "" {
				t.Errorf("%s: rejected release %s still handed out", dc, got)
			}
			if k, why := fl.acquire(dc, 2, "r82"); k != wire.KindReleaseWithdrawn || !strings.Contains(why, "a customer reports crashes") {
				t.Errorf("%s: slot for the rejected release: %s %q", dc, k, why)
			}
		}
		fl.now = time.Date(2026, 11, 3, 8, 59, 0, 0, time.UTC)
		if got := actions(fl.drive(2 * time.Minute)); strings.Contains(got, "depart") {
			t.Fatalf("the rejected release departs: %q", got)
		}
	})
}
