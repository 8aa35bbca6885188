package fsm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// stateJSON renders f's state canonically.
func stateJSON(t *testing.T, f *FSM) string {
	t.Helper()
	var out []byte
	var err error
	f.View(func(s *State) { out, err = json.Marshal(s) })
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestWithdrawnReleaseNeverBoots: once the staging rollout of r612 fails
// (a staging host reports unhealthy), an operator rejects the release or
// aborts or pauses its rollout, the other staging host, which staged r612
// and waits for a slot or already holds one, gets no slot for it and its
// fencing renewal before the boot is refused (release_withdrawn): it
// gives the slot back instead of booting. Its heartbeat no longer names
// the release, a refusal changes nothing, and renewals after a boot
// (without a release) go on.
func TestWithdrawnReleaseNeverBoots(t *testing.T) {
	at := t0.Add(5 * time.Minute)
	triggers := []struct {
		name   string
		run    func(t *testing.T, f *FSM)
		resume bool // the release is wanted again after a resume
		reason string
	}{
		{"staging gate fails", func(t *testing.T, f *FSM) {
			gateUnhealthy(t, f, at, "stg1-0", "stg1", "6.12.90")
		}, false, "rejected for line 6.12: rollout ro failed"},
		{"operator rejects the release", func(t *testing.T, f *FSM) {
			if r := apply(t, f, TypeRejectRelease, at, RejectRelease{ID: "r612", Reason: "bad build"}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}, false, "rejected by an operator: bad build"},
		{"operator aborts the rollout", func(t *testing.T, f *FSM) {
			if r := apply(t, f, TypeAbortRollout, at, AbortRollout{ID: "ro", Reason: "wrong build"}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}, false, "no target for line 6.12"},
		{"rollout paused", func(t *testing.T, f *FSM) {
			if r := apply(t, f, TypePauseRollout, at, PauseRollout{ID: "ro", Reason: "looking at stg1-0"}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}, true, "rollout ro is paused: looking at stg1-0"},
	}
	for _, tr := range triggers {
		for _, holding := range []bool{false, true} {
			name := tr.name + "/waiting for a slot"
			if holding {
				name = tr.name + "/holding a slot"
			}
			t.Run(name, func(t *testing.T) {
				f := gateFleet(t, nil)
				req := Acquire{Datacenter: "stg1", Host: "stg1-1", Owner: OwnerAgent, Release: "r612", Timing: timing}
				// Before: only the targeted release gets a slot.
				other := req
				other.Release = "r612b"
				if r := apply(t, f, TypeAcquire, t0.Add(time.Minute), other); kind(r) != wire.KindReleaseWithdrawn {
					t.Fatalf("acquire for a release not targeted: %s, want %s", kind(r), wire.KindReleaseWithdrawn)
				}
				var token uint64
				if holding {
					r := apply(t, f, TypeAcquire, t0.Add(time.Minute), req)
					if r.Err != nil {
						t.Fatalf("acquire for the target: %+v", r.Err)
					}
					token = r.Slot.Token
				}
				tr.run(t, f)
				if res := beat(t, f, at, "stg1-1", "stg1", "6.12", "6.12.80", wire.PhaseWaitingSlot); res.Release != nil {
					t.Errorf("desired release %s still handed out", res.Release.ID)
				}
				before := stateJSON(t, f)
				var refusal Result
				if holding {
					refusal = apply(t, f, TypeRenew, at, Renew{Datacenter: "stg1", Host: "stg1-1", Token: token, Owner: OwnerAgent, Release: "r612", Timing: timing})
				} else {
					refusal = apply(t, f, TypeAcquire, at, req)
				}
				if kind(refusal) != wire.KindReleaseWithdrawn {
					t.Fatalf("slot for the withdrawn release: %s (%+v), want %s", kind(refusal), refusal.Slot, wire.KindReleaseWithdrawn)
				}
				if !strings.Contains(refusal.Err.Value, tr.reason) {
					t.Errorf("refusal %q does not say %q", refusal.Err.Value, tr.reason)
				}
				if after := stateJSON(t, f); after != before {
					t.Error("the refusal changed the state")
				}
				if holding {
					// A renewal after the boot names no release: the
					// holder keeps its slot until it is healthy.
					if r := apply(t, f, TypeRenew, at, Renew{Datacenter: "stg1", Host: "stg1-1", Token: token, Owner: OwnerAgent, Timing: timing}); r.Err != nil {
						t.Fatalf("renewal without a release: %+v", r.Err)
					}
					if r := apply(t, f, TypeRelease, at, SlotRelease{Datacenter: "stg1", Host: "stg1-1", Token: token, Owner: OwnerAgent, Reason: "release withdrawn"}); r.Err != nil {
						t.Fatalf("giving the slot back: %+v", r.Err)
					}
				}
				f = gateRestored(t, f)
				if r := apply(t, f, TypeAcquire, at.Add(time.Minute), req); kind(r) != wire.KindReleaseWithdrawn {
					t.Fatalf("acquire after a snapshot: %s", kind(r))
				}
				if !tr.resume {
					return
				}
				if r := apply(t, f, TypeResumeRollout, at.Add(2*time.Minute), ResumeRollout{ID: "ro"}); r.Err != nil {
					t.Fatal(r.Err)
				}
				if r := apply(t, f, TypeAcquire, at.Add(2*time.Minute), req); r.Err != nil {
					t.Fatalf("acquire after the resume: %+v", r.Err)
				}
			})
		}
	}
}
