// Command gen writes a state-machine format fixture: a Raft log covering
// every command type, encoded exactly as the store proposes it
// (fsm.NewCommand), the result of each entry, snapshots of the state after
// entry Mid and after the last one, as the FSM persists them, and the
// state at both points rendered canonically.
//
//	go run ./coordinator/fsm/testdata/gen -out coordinator/fsm/testdata/format-vN
//
// where N is fsm.FormatVersion (format-v1 was written by this program as
// of the commit that added it, before the registry; format-v2 as of the
// registry's, before mark_silent; format-v3 as of mark_silent's, before
// FleetLock kept off the agents' hosts; format-v4 as of that, before the
// release train: older scenarios lack the commands of later formats).
//
// A fixture is written once, by the code of its format, and committed:
// the replay test (coordinator/fsm/format_test.go) checks that later code
// replays it into the same state. Never regenerate an older format's
// fixture with newer code.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Mid is the entry after which the mid-log snapshot is taken.
const Mid = 30

func ptr[T any](v T) *T { return &v }

type step struct {
	typ     fsm.Type
	dt      time.Duration // after the previous step
	payload any
}

func scenario() []step {
	timing := fsm.Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: 30 * time.Second, FleetLockFresh: 10 * time.Minute, ExpireAfter: 2 * time.Hour, MaxHostsPerDC: 50}
	sig := json.RawMessage(`{"key_id":"k1","sig":"AAAA"}`)
	hb := func(host, dc string, extra func(*wire.Heartbeat)) fsm.Heartbeat {
		h := wire.Heartbeat{HostID: host, Datacenter: dc, KernelLine: "lts", Kernel: "6.12.85", Phase: wire.PhaseIdle, BootID: "boot-" + host}
		if extra != nil {
			extra(&h)
		}
		return fsm.Heartbeat{Heartbeat: h, Timing: timing}
	}
	s := []step{
		{fsm.TypeSetMember, 0, fsm.SetMember{ID: "c1", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001"}},
		{fsm.TypeSetMember, time.Second, fsm.SetMember{ID: "c2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8002"}},
		{fsm.TypeTick, time.Second, fsm.Tick{Timing: timing, Term: 2}},
		{fsm.TypeSetDatacenter, time.Second, fsm.SetDatacenter{Name: "stg", Update: wire.DatacenterUpdate{Tier: ptr(fsm.TierStaging), SlotLimit: ptr(1)}}},
		{fsm.TypeSetDatacenter, time.Second, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1), MinHealthyPct: ptr(50), FailureBudget: ptr(3)}}},
		{fsm.TypeSetDatacenter, time.Second, fsm.SetDatacenter{Name: "ams", Update: wire.DatacenterUpdate{SlotPct: ptr(50)}}},
		{fsm.TypeSetDatacenter, time.Second, fsm.SetDatacenter{Name: "ctl", Update: wire.DatacenterUpdate{Tier: ptr(fsm.TierControl), SlotLimit: ptr(1)}}},
		// Refused: bad tier.
		{fsm.TypeSetDatacenter, time.Second, fsm.SetDatacenter{Name: "bad", Update: wire.DatacenterUpdate{Tier: ptr("moon")}}},
		{fsm.TypeHeartbeat, time.Second, hb("stg-1", "stg", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", func(h *wire.Heartbeat) { h.GossipAddr = "10.0.0.1:7946" })},
		{fsm.TypeHeartbeat, time.Second, hb("fra-2", "fra", func(h *wire.Heartbeat) {
			h.GossipAddr = "10.0.0.2:7946"
			h.View = &wire.DCView{}
			h.Policies = []wire.PolicyStatus{{ID: "pol-1", Version: 1, State: wire.PolicyEnforcing}}
		})},
		{fsm.TypeHeartbeat, time.Second, hb("fra-3", "fra", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ams-1", "ams", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ams-2", "ams", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ctl-1", "ctl", nil)},
		// Refused: unknown datacenter.
		{fsm.TypeHeartbeat, time.Second, hb("nyc-1", "nyc", nil)},
		{fsm.TypeAddRelease, time.Second, fsm.AddRelease{Release: fsm.Release{ID: "lts-6.12.90", Line: "lts", KernelVersion: "6.12.90", Kind: "kernel",
			Created: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), KeyID: "k1", Manifest: json.RawMessage(`{"kernel":"6.12.90"}`), Signature: sig}}},
		{fsm.TypePushPolicy, time.Second, fsm.PushPolicy{Policy: fsm.Policy{ID: "pol-1", Version: 1, CVE: "CVE-2026-0001", Kind: "sysctl", Mode: "enforce",
			Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), KeyID: "k1", Document: `{"sysctl":{"a":"1"}}`, Signature: sig}}},
		{fsm.TypePushPolicy, time.Second, fsm.PushPolicy{Policy: fsm.Policy{ID: "pol-2", Version: 3, Kind: "module", Mode: "audit", Datacenters: []string{"ams"},
			Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), KeyID: "k1", Document: `{"module":"x"}`, Signature: sig}}},
		// A heartbeat answered with the desired state (policies, limits,
		// seeds).
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", func(h *wire.Heartbeat) { h.GossipAddr = "10.0.0.1:7946" })},
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "fra", Host: "fra-1", Owner: fsm.OwnerAgent, Timing: timing}},
		// Refused: the slot limit is reached.
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "fra", Host: "fra-2", Owner: fsm.OwnerAgent, Timing: timing}},
		{fsm.TypeRenew, 10 * time.Second, fsm.Renew{Datacenter: "fra", Host: "fra-1", Token: 1, Owner: fsm.OwnerAgent, Timing: timing}},
		// Refused: stale token.
		{fsm.TypeRenew, time.Second, fsm.Renew{Datacenter: "fra", Host: "fra-1", Token: 7, Owner: fsm.OwnerAgent, Timing: timing}},
		{fsm.TypeHealth, 20 * time.Second, fsm.Health{HealthReport: wire.HealthReport{HostID: "fra-1", Datacenter: "fra", Token: 1, Healthy: false, Kernel: "6.12.90", Detail: "oops"}}},
		{fsm.TypeRelease, time.Second, fsm.SlotRelease{Datacenter: "fra", Host: "fra-1", Token: 1, Owner: fsm.OwnerAgent, Reason: "upgrade failed: rolled back"}},
		{fsm.TypeHealth, time.Second, fsm.Health{HealthReport: wire.HealthReport{HostID: "fra-1", Datacenter: "fra", Token: 1, Healthy: true, Kernel: "6.12.85"}}},
		{fsm.TypePause, time.Second, fsm.Pause{Name: "ams", Reason: "network work"}},
		{fsm.TypeResume, time.Second, fsm.Resume{Name: "ams"}},
		// Refused: unknown datacenter.
		{fsm.TypePause, time.Second, fsm.Pause{Name: "nyc"}},
		// FleetLock: pre-reboot registers the host, steady-state later
		// confirms it.
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "ams", Host: "zinc-1", Owner: fsm.OwnerFleetLock, Timing: timing}},
		{fsm.TypeRelease, time.Minute, fsm.SlotRelease{Datacenter: "ams", Host: "zinc-1", Owner: fsm.OwnerFleetLock}},
		{fsm.TypeRelease, time.Second, fsm.SlotRelease{Datacenter: "ams", Host: "zinc-1", Owner: fsm.OwnerFleetLock}},
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "ams", Host: "ams-1", Owner: fsm.OwnerAgent, Timing: timing}},
		{fsm.TypeForceRelease, time.Second, fsm.ForceRelease{Datacenter: "ams", Host: "ams-1", Reason: "stuck"}},
		// Refused: holds nothing.
		{fsm.TypeForceRelease, time.Second, fsm.ForceRelease{Datacenter: "ams", Host: "ams-1"}},
		{fsm.TypeStartRollout, time.Second, fsm.StartRollout{ID: "ro-1", Release: "lts-6.12.90", Soak: time.Hour, Cycle: 4 * time.Hour}},
		{fsm.TypeTick, time.Second, fsm.Tick{Timing: timing, Term: 2}},
		{fsm.TypePauseRollout, time.Second, fsm.PauseRollout{ID: "ro-1", Reason: "looking"}},
		{fsm.TypeResumeRollout, time.Second, fsm.ResumeRollout{ID: "ro-1"}},
		{fsm.TypeHeartbeat, time.Second, hb("stg-1", "stg", func(h *wire.Heartbeat) { h.Phase = wire.PhaseHealthy; h.Kernel = "6.12.90" })},
		{fsm.TypeAbortRollout, time.Second, fsm.AbortRollout{ID: "ro-1", Reason: "bad build"}},
		// Refused: aborted.
		{fsm.TypeResumeRollout, time.Second, fsm.ResumeRollout{ID: "ro-1"}},
		{fsm.TypeStartRollout, time.Second, fsm.StartRollout{ID: "ro-2", Release: "lts-6.12.90", Expedite: true, Reason: "CVE-2026-0001", Waves: []float64{0.5, 1}, Budget: ptr(1)}},
		{fsm.TypeRetirePolicy, time.Second, fsm.RetirePolicy{ID: "pol-2", Reason: "obsolete"}},
		// Refused: unknown policy.
		{fsm.TypeRetirePolicy, time.Second, fsm.RetirePolicy{ID: "pol-9"}},
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("fra-2", "fra", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("fra-3", "fra", nil)},
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "fra", Host: "fra-3", Owner: fsm.OwnerAgent, Expedite: true, Timing: timing}},
		// Refused without force; then forced.
		{fsm.TypeRemoveHost, time.Second, fsm.RemoveHost{Host: "fra-3"}},
		{fsm.TypeRemoveHost, time.Second, fsm.RemoveHost{Host: "fra-3", Force: true, Reason: "decommissioned"}},
		{fsm.TypeRemoveHost, time.Second, fsm.RemoveHost{Host: "ams-2", Reason: "gone"}},
		{fsm.TypeRemoveMember, time.Second, fsm.RemoveMember{ID: "c2"}},
		// A holder past its reboot deadline is marked lost.
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "ctl", Host: "ctl-1", Owner: fsm.OwnerAgent, Timing: timing}},
		{fsm.TypeTick, 16 * time.Minute, fsm.Tick{Timing: timing, Term: 3}},
		// A tick without timing.
		{fsm.TypeTick, time.Second, fsm.Tick{}},
		// The leader marks hosts silent (format 3): not fra-2, heard
		// 10s ago, nor the FleetLock-only zinc-1, nor an unknown host.
		{fsm.TypeHeartbeat, time.Second, hb("fra-2", "fra", nil)},
		{fsm.TypeMarkSilent, 10 * time.Second, fsm.MarkSilent{Hosts: []string{"stg-1", "fra-1", "fra-2", "ams-1", "ctl-1", "zinc-1", "nyc-9", "stg-1"}, Timing: timing}},
		// A silent host heard again.
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", nil)},
		// FleetLock keeps off the agents' hosts (format 4): no slot taken
		// or released for fra-2 through it; a request without credentials
		// (stay) does not move zinc-1 from ams, but registers a new id.
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "fra", Host: "fra-2", Owner: fsm.OwnerFleetLock, Timing: timing}},
		{fsm.TypeRelease, time.Second, fsm.SlotRelease{Datacenter: "fra", Host: "fra-2", Owner: fsm.OwnerFleetLock}},
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "fra", Host: "zinc-1", Owner: fsm.OwnerFleetLock, Stay: true, Timing: timing}},
		{fsm.TypeAcquire, time.Second, fsm.Acquire{Datacenter: "ams", Host: "zinc-2", Owner: fsm.OwnerFleetLock, Stay: true, Timing: timing}},
		{fsm.TypeRelease, time.Second, fsm.SlotRelease{Datacenter: "ams", Host: "zinc-2", Owner: fsm.OwnerFleetLock}},
		// Silent hosts expire.
		{fsm.TypeTick, 3 * time.Hour, fsm.Tick{Timing: timing, Term: 3}},
	}
	return append(s, trainScenario(timing, hb, sig)...)
}

// trainScenario is format 5's addition: the release train of line lts.
func trainScenario(timing fsm.Timing, hb func(host, dc string, extra func(*wire.Heartbeat)) fsm.Heartbeat, sig json.RawMessage) []step {
	due := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	next := due.Add(7 * 24 * time.Hour)
	freeze := fsm.Freeze{Spec: "2026-12-20..2027-01-04", From: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)}
	set := fsm.SetTrain{Line: "lts", Staging: []string{"stg"}, StagingSoak: time.Hour, ControlSoak: time.Hour, EdgeCycle: 7 * 24 * time.Hour,
		Departure: "Thu 09:00 UTC", NextDeparture: due, Freezes: []fsm.Freeze{freeze}}
	bad := set
	bad.Staging = []string{"fra"}
	rel := func(id, kernel string, created time.Time) fsm.AddRelease {
		return fsm.AddRelease{Release: fsm.Release{ID: id, Line: "lts", KernelVersion: kernel, Kind: "kernel", Created: created, KeyID: "k1",
			Manifest: json.RawMessage(`{"kernel":"` + kernel + `"}`), Signature: sig}}
	}
	healthy := func(kernel string) func(*wire.Heartbeat) {
		return func(h *wire.Heartbeat) { h.Phase, h.Kernel = wire.PhaseHealthy, kernel }
	}
	return []step{
		// Refused: fra is not a staging datacenter.
		{fsm.TypeSetTrain, time.Second, bad},
		{fsm.TypeSetTrain, time.Second, set},
		{fsm.TypeHeartbeat, time.Second, hb("stg-1", "stg", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ctl-1", "ctl", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ams-1", "ams", nil)},
		{fsm.TypeAddRelease, time.Second, rel("lts-6.12.91", "6.12.91", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))},
		{fsm.TypeAddRelease, time.Second, rel("lts-6.12.92", "6.12.92", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))},
		{fsm.TypeTrainStep, time.Second, fsm.TrainStep{Line: "lts", Action: fsm.StepSupersede, Release: "lts-6.12.91", By: "lts-6.12.92"}},
		{fsm.TypeTrainStep, time.Second, fsm.TrainStep{Line: "lts", Action: fsm.StepStage, Release: "lts-6.12.92"}},
		// Refused: a staging rollout is in flight.
		{fsm.TypeTrainStep, time.Second, fsm.TrainStep{Line: "lts", Action: fsm.StepStage, Release: "lts-6.12.92"}},
		{fsm.TypeHeartbeat, time.Second, hb("stg-1", "stg", healthy("6.12.92"))},
		{fsm.TypeTick, time.Second, fsm.Tick{Timing: timing, Term: 3}},
		{fsm.TypeHeartbeat, 30 * time.Minute, hb("stg-1", "stg", healthy("6.12.92"))},
		{fsm.TypeHeartbeat, 20 * time.Minute, hb("stg-1", "stg", healthy("6.12.92"))},
		{fsm.TypeHeartbeat, 9 * time.Minute, hb("ctl-1", "ctl", nil)},
		{fsm.TypeTick, time.Minute, fsm.Tick{Timing: timing, Term: 3}},
		{fsm.TypeTrainStep, time.Second, fsm.TrainStep{Line: "lts", Action: fsm.StepControl, Release: "lts-6.12.92"}},
		// Refused: not due yet.
		{fsm.TypeTrainStep, time.Second, fsm.TrainStep{Line: "lts", Action: fsm.StepDepart, Release: "lts-6.12.92", Due: due, Next: next}},
		{fsm.TypeSkipTrain, time.Second, fsm.SkipTrain{Line: "lts", Reason: "change freeze of the network team"}},
		{fsm.TypeTrainStep, 3 * time.Hour, fsm.TrainStep{Line: "lts", Action: fsm.StepSkip, Due: due, Next: next, Reason: "skipped"}},
		{fsm.TypeHoldTrain, time.Second, fsm.HoldTrain{Line: "lts", Reason: "incident 42"}},
		// Refused: held.
		{fsm.TypeExpediteTrain, time.Second, fsm.ExpediteTrain{Line: "lts", Release: "lts-6.12.92", Reason: "CVE-2026-0002"}},
		{fsm.TypeResumeTrain, time.Second, fsm.ResumeTrain{Line: "lts", Reason: "incident over"}},
		{fsm.TypeHeartbeat, time.Second, hb("fra-1", "fra", nil)},
		{fsm.TypeHeartbeat, time.Second, hb("ams-1", "ams", nil)},
		{fsm.TypeExpediteTrain, time.Second, fsm.ExpediteTrain{Line: "lts", Release: "lts-6.12.92", Reason: "CVE-2026-0002"}},
		{fsm.TypeRejectRelease, time.Second, fsm.RejectRelease{ID: "lts-6.12.91", Reason: "bad build"}},
		{fsm.TypeTick, time.Second, fsm.Tick{Timing: timing, Term: 3}},
	}
}

type sink struct{ bytes.Buffer }

func (s *sink) ID() string    { return "fixture" }
func (s *sink) Cancel() error { return nil }
func (s *sink) Close() error  { return nil }

func snapshot(f *fsm.FSM) ([]byte, error) {
	snap, err := f.Snapshot()
	if err != nil {
		return nil, err
	}
	var s sink
	if err := snap.Persist(&s); err != nil {
		return nil, err
	}
	return s.Bytes(), nil
}

// canonical renders the state as indented JSON (encoding/json sorts map
// keys).
func canonical(f *fsm.FSM) ([]byte, error) {
	var (
		state []byte
		err   error
	)
	f.View(func(s *fsm.State) { state, err = json.MarshalIndent(s, "", "  ") })
	return append(state, '\n'), err
}

func run(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f := fsm.New()
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	var logBuf, resBuf bytes.Buffer
	for i, st := range scenario() {
		now = now.Add(st.dt)
		data, err := fsm.NewCommand(st.typ, now, st.payload)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data, '\n') >= 0 {
			return fmt.Errorf("entry %d has a newline", i+1)
		}
		res := f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data})
		r, err := json.Marshal(res)
		if err != nil {
			return err
		}
		logBuf.Write(data)
		logBuf.WriteByte('\n')
		resBuf.Write(r)
		resBuf.WriteByte('\n')
		if i+1 == Mid {
			snap, err := snapshot(f)
			if err != nil {
				return err
			}
			state, err := canonical(f)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "snapshot-mid.json"), snap, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "state-mid.json"), state, 0o644); err != nil {
				return err
			}
		}
	}
	snap, err := snapshot(f)
	if err != nil {
		return err
	}
	state, err := canonical(f)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"log.jsonl":     logBuf.Bytes(),
		"results.jsonl": resBuf.Bytes(),
		"snapshot.json": snap,
		"state.json":    state,
	} {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	out := flag.String("out", "", "fixture directory to write")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gen: -out is required")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
