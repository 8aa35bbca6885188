package lifecycle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// checkUpgraded asserts the end state of a successful upgrade.
func (r *rig) checkUpgraded(t *testing.T) {
	t.Helper()
	if got := r.host.running(); got != newKernel {
		t.Errorf("host runs %s, want %s", got, newKernel)
	}
	if len(r.host.reboots) != 1 || r.host.reboots[0] != "kexec:"+newKernel {
		t.Errorf("boots %v, want exactly one kexec into %s", r.host.reboots, newKernel)
	}
	if g := r.coord.grants(); g != 1 {
		t.Errorf("%d slots granted, want 1", g)
	}
	if n := r.coord.slotsHeld(); n != 0 {
		t.Errorf("%d slots still held", n)
	}
	if rs := r.host.routeSet(); len(rs) != 2 {
		t.Errorf("routes after the upgrade: %v, want both anycast routes back", rs)
	}
	st, err := journal.NewStore(r.state)
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if j.Phase != wire.PhaseIdle || j.Done["6.1.192-kroll.1"] != "healthy" || j.Slot != nil || j.Withdrawn || j.Target != nil {
		t.Errorf("journal at the end: %+v", j)
	}
	var h *fsm.Host
	r.coord.view(func(s *fsm.State) { c := *s.Hosts["h1"]; h = &c })
	if h.Unhealthy {
		t.Errorf("coordinator thinks h1 is unhealthy")
	}
}

func TestUpgradeHappyPath(t *testing.T) {
	r := newRig(t)
	procs := r.drive(0, wire.PhaseIdle)
	if procs != 2 {
		t.Errorf("%d agent processes, want 2 (one per boot)", procs)
	}
	r.checkUpgraded(t)
	// Nothing more happens for a release already done.
	a := r.agent(0)
	for range 5 {
		if _, err := a.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.host.reboots) != 1 || r.stager.calls != 1 {
		t.Errorf("after completion: boots %v, stagings %d", r.host.reboots, r.stager.calls)
	}
}

// TestCrashAfterEveryJournalWrite kills the agent right after each journal
// write of a full upgrade in turn, restarts it, and checks it still ends
// healthy on the new kernel with one boot, one slot and its routes back.
func TestCrashAfterEveryJournalWrite(t *testing.T) {
	clean := newRig(t)
	clean.drive(0, wire.PhaseIdle)
	total := clean.writes
	if total < 10 {
		t.Fatalf("a clean upgrade made only %d journal writes", total)
	}
	for n := 1; n <= total; n++ {
		r := newRig(t)
		r.drive(n, wire.PhaseIdle)
		t.Run("", func(t *testing.T) {
			r.checkUpgraded(t)
			if t.Failed() {
				t.Logf("crash after journal write %d of %d", n, total)
			}
		})
	}
}

// TestCrashAfterEveryJournalWriteRollback does the same for an upgrade
// whose new kernel is unhealthy: it must end failed on the old kernel after
// exactly two boots (upgrade, rollback) under one slot, routes withdrawn.
func TestCrashAfterEveryJournalWriteRollback(t *testing.T) {
	unhealthy := func(r *rig) {
		r.checks = []health.CommandCheck{{Name: "service", Command: []string{"grep", "-q", oldKernel, filepath.Join(r.host.proc, "sys/kernel/osrelease")}}}
	}
	clean := newRig(t)
	unhealthy(clean)
	clean.drive(0, wire.PhaseFailed)
	total := clean.writes
	for n := 1; n <= total; n++ {
		r := newRig(t)
		unhealthy(r)
		r.drive(n, wire.PhaseFailed)
		want := []string{"kexec:" + newKernel, "kexec:" + oldKernel}
		if !slices.Equal(r.host.reboots, want) || r.host.running() != oldKernel || r.coord.grants() != 1 ||
			r.coord.slotsHeld() != 0 || len(r.host.routeSet()) != 0 {
			t.Errorf("crash after write %d of %d: boots %v running %s grants %d held %d routes %v", n, total,
				r.host.reboots, r.host.running(), r.coord.grants(), r.coord.slotsHeld(), r.host.routeSet())
		}
	}
}

func TestStagingRetriesWithBackoff(t *testing.T) {
	r := newRig(t)
	r.stager.fail = 3
	r.drive(0, wire.PhaseIdle)
	if r.stager.calls != 4 {
		t.Errorf("%d staging calls, want 4 (3 failures, then success)", r.stager.calls)
	}
	r.checkUpgraded(t)
	a := r.agent(0)
	if got := a.backoff(1); got != time.Millisecond {
		t.Errorf("backoff(1) = %s", got)
	}
	if got := a.backoff(10); got != 5*time.Millisecond {
		t.Errorf("backoff(10) = %s, want the 5ms cap", got)
	}
}

func TestNoSlotNoReboot(t *testing.T) {
	r := newRig(t)
	// Another host holds the only slot of fra1.
	if _, err := r.coord.Heartbeat(context.Background(), wire.Heartbeat{HostID: "h2", Datacenter: "fra1", KernelLine: "6.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.coord.AcquireSlot(context.Background(), wire.SlotRequest{HostID: "h2", Datacenter: "fra1"}); err != nil {
		t.Fatal(err)
	}
	a := r.agent(0)
	ctx := context.Background()
	for range 20 {
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	j := a.Journal()
	if j.Phase != wire.PhaseWaitingSlot || len(r.host.reboots) != 0 || len(r.host.routeSet()) != 2 {
		t.Fatalf("without a slot: phase %s, boots %v, routes %v", j.Phase, r.host.reboots, r.host.routeSet())
	}
}

func TestSlotLostBeforeBoot(t *testing.T) {
	r := newRig(t)
	a := r.agent(0)
	ctx := context.Background()
	for a.Journal().Phase != wire.PhaseRebooting {
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.host.routeSet()) != 0 {
		t.Fatal("routes not withdrawn before the boot")
	}
	// An operator frees the slot (break-glass) while the host drains.
	if res := r.coord.apply(fsm.TypeForceRelease, fsm.ForceRelease{Datacenter: "fra1", Host: "h1"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	j := a.Journal()
	if len(r.host.reboots) != 0 {
		t.Fatalf("booted without a valid slot: %v", r.host.reboots)
	}
	if j.Phase != wire.PhaseStaged || j.Slot != nil || len(r.host.routeSet()) != 2 {
		t.Fatalf("after losing the slot: phase %s slot %+v routes %v", j.Phase, j.Slot, r.host.routeSet())
	}
}

func TestUnhealthyRollsBackAndFails(t *testing.T) {
	r := newRig(t)
	// The service check fails on the new kernel only.
	r.checks = []health.CommandCheck{{Name: "service", Command: []string{"grep", "-q", oldKernel, filepath.Join(r.host.proc, "sys/kernel/osrelease")}}}
	r.drive(0, wire.PhaseFailed)
	if got := r.host.running(); got != oldKernel {
		t.Errorf("host runs %s after rollback, want %s", got, oldKernel)
	}
	want := []string{"kexec:" + newKernel, "kexec:" + oldKernel}
	if !slices.Equal(r.host.reboots, want) {
		t.Errorf("boots %v, want %v", r.host.reboots, want)
	}
	if n := r.coord.slotsHeld(); n != 0 {
		t.Errorf("%d slots held after the failure", n)
	}
	if rs := r.host.routeSet(); len(rs) != 0 {
		t.Errorf("a failed host announces %v; it must stay out of service", rs)
	}
	var h fsm.Host
	var failures int
	r.coord.view(func(s *fsm.State) { h = *s.Hosts["h1"]; failures = s.Datacenters["fra1"].Policy.Failures })
	if !h.Unhealthy || failures != 1 {
		t.Errorf("coordinator: unhealthy=%v failures=%d, want one failure counted", h.Unhealthy, failures)
	}
	a := r.agent(0)
	j := a.Journal()
	if j.Phase != wire.PhaseFailed || j.Done["6.1.192-kroll.1"] == "" {
		t.Fatalf("journal: %+v", j)
	}
	// The failed agent never retries by itself ...
	for range 5 {
		if _, err := a.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.host.reboots) != 2 {
		t.Fatalf("failed agent booted again: %v", r.host.reboots)
	}
}

func TestOperatorReset(t *testing.T) {
	r := newRig(t)
	r.checks = []health.CommandCheck{{Name: "service", Command: []string{"grep", "-q", oldKernel, filepath.Join(r.host.proc, "sys/kernel/osrelease")}}}
	r.drive(0, wire.PhaseFailed)
	st, _ := journal.NewStore(r.state)
	checker, _ := health.New(health.Config{ProcDir: r.host.proc})
	reset := filepath.Join(r.state, "reset")
	a, err := New(Config{HostID: "h1", Datacenter: "fra1", KernelLine: "6.1", Coordinator: r.coord, Stager: r.stager,
		Routes: fakeRoutes{r.host}, Booter: r.booter, Verifier: checker, Journal: st, Kernel: running.ProcFS{Dir: r.host.proc}, BootDir: r.host.boot, ResetFile: reset})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, reset, "")
	if _, err := a.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j := a.Journal(); j.Phase != wire.PhaseIdle || len(r.host.routeSet()) != 2 || j.Done["6.1.192-kroll.1"] != "" {
		t.Fatalf("after reset: phase %s routes %v done %v", j.Phase, r.host.routeSet(), j.Done)
	}
}

func TestKexecUnavailableFallsBackToReboot(t *testing.T) {
	r := newRig(t)
	r.booter.kexecUnavailable = true
	r.drive(0, wire.PhaseIdle)
	if !slices.Equal(r.host.reboots, []string{"reboot:" + newKernel}) {
		t.Fatalf("boots %v, want one full reboot", r.host.reboots)
	}
}

func TestKexecBootsWrongKernelThenReboot(t *testing.T) {
	r := newRig(t)
	r.host.kexecBroken = true
	r.drive(0, wire.PhaseIdle)
	want := []string{"kexec:" + newKernel, "reboot:" + newKernel}
	if !slices.Equal(r.host.reboots, want) || r.host.running() != newKernel {
		t.Fatalf("boots %v running %s, want %v", r.host.reboots, r.host.running(), want)
	}
}

func TestDryRunNeverBoots(t *testing.T) {
	r := newRig(t)
	r.booter.dryRun = true
	r.drive(0, wire.PhaseIdle)
	if len(r.host.reboots) != 0 || r.host.running() != oldKernel {
		t.Fatalf("dry-run booted: %v", r.host.reboots)
	}
	st, _ := journal.NewStore(r.state)
	j, _ := st.Load(time.Now())
	if j.Done["6.1.192-kroll.1"] != "dry-run" || len(r.host.routeSet()) != 2 || r.coord.slotsHeld() != 0 {
		t.Fatalf("dry-run end: done %v routes %v slots %d", j.Done, r.host.routeSet(), r.coord.slotsHeld())
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, running, upstream, line, want string
	}{
		{"already current", newKernel, newUpstream, "6.1", "current"},
		{"downgrade", "6.1.0-60-amd64", "6.1.200", "6.1",
			"refused: 6.1.0-56-amd64 (upstream 6.1.192) is not newer than the running kernel 6.1.0-60-amd64 (upstream 6.1.200, Debian 6.1.200-1)"},
		// Same upstream version, older build: 56 < 57.
		{"older ABI, same upstream", "6.1.0-57-amd64", newUpstream, "6.1",
			"refused: 6.1.0-56-amd64 (upstream 6.1.192) is not newer than the running kernel 6.1.0-57-amd64 (upstream 6.1.192, Debian 6.1.192-1)"},
		// Same upstream version, another kind of build: not an upgrade
		// (the old check compared only the upstream versions: equal, so
		// accepted).
		{"other build, same upstream", newUpstream, newUpstream, "6.1",
			"refused: 6.1.0-56-amd64 (upstream 6.1.192) is not known to be newer than the running kernel 6.1.192 (Debian 6.1.192-1): " +
				`kversion: different builds of the same upstream version: "6.1.0-56-amd64" (debian-abi) and "6.1.192" (upstream)`},
		// Same upstream version, newer build: an upgrade (the old check
		// reduced the target to plain 6.1.192 and called it a downgrade).
		{"newer ABI, same upstream", "6.1.0-55-amd64", newUpstream, "6.1", ""},
		// Not of the host's line: not taken, and not recorded either (the
		// host may be moved to the line later).
		{"other line", oldKernel, oldUpstream, "6.12", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.host.run(tc.running, tc.upstream)
			st, _ := journal.NewStore(r.state)
			checker, _ := health.New(health.Config{ProcDir: r.host.proc})
			a, err := New(Config{HostID: "h1", Datacenter: "fra1", KernelLine: tc.line, Coordinator: r.coord, Stager: r.stager,
				Booter: r.booter, Verifier: checker, Journal: st, Kernel: running.ProcFS{Dir: r.host.proc}, BootDir: r.host.boot})
			if err != nil {
				t.Fatal(err)
			}
			// The host reports its own line; give it the release anyway.
			a.SetDesired(&wire.DesiredState{Release: signedTestRelease(t)})
			if _, err := a.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			j := a.Journal()
			if tc.want == "" {
				if _, done := j.Done["6.1.192-kroll.1"]; j.Phase != wire.PhaseStaging || done {
					t.Fatalf("phase %s done %q; want staging, not done", j.Phase, j.Done["6.1.192-kroll.1"])
				}
				return
			}
			if tc.want == "-" {
				if _, done := j.Done["6.1.192-kroll.1"]; j.Phase != wire.PhaseIdle || done || r.stager.calls != 0 {
					t.Fatalf("phase %s done %q stagings %d; want idle, nothing recorded", j.Phase, j.Done["6.1.192-kroll.1"], r.stager.calls)
				}
				return
			}
			if j.Phase != wire.PhaseIdle || j.Done["6.1.192-kroll.1"] != tc.want || r.stager.calls != 0 {
				t.Fatalf("phase %s done %q stagings %d; want idle, %q, 0", j.Phase, j.Done["6.1.192-kroll.1"], r.stager.calls, tc.want)
			}
		})
	}
}

func TestTargetWithdrawnWhileWaiting(t *testing.T) {
	r := newRig(t)
	a := r.agent(0)
	ctx := context.Background()
	// Keep the slot busy so the agent waits.
	r.coord.Heartbeat(ctx, wire.Heartbeat{HostID: "h2", Datacenter: "fra1", KernelLine: "6.1"})
	r.coord.AcquireSlot(ctx, wire.SlotRequest{HostID: "h2", Datacenter: "fra1"})
	for a.Journal().Phase != wire.PhaseWaitingSlot {
		a.Heartbeat(ctx)
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	line := "6.1"
	r.coord.apply(fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra1", Update: wire.DatacenterUpdate{UntargetLine: &line}})
	a.Heartbeat(ctx)
	if _, err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if j := a.Journal(); j.Phase != wire.PhaseIdle || j.Target != nil {
		t.Fatalf("after the target was cleared: %+v", j)
	}
}

func TestJournalRejectsUnknownSchema(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, journal.FileName), `{"schema":99,"phase":"idle"}`)
	st, _ := journal.NewStore(dir)
	if _, err := st.Load(time.Now()); err == nil {
		t.Fatal("schema 99 accepted")
	}
	writeFile(t, filepath.Join(dir, journal.FileName), `{"schema":1,"phase":"idle","surprise":1}`)
	if _, err := st.Load(time.Now()); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestPoliciesAfterBoot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		afterBoot map[string]string
		end       string
	}{
		{"restored", map[string]string{"copy-fail": "enforcing"}, wire.PhaseIdle},
		{"retired by the new kernel", map[string]string{"copy-fail": "retired"}, wire.PhaseIdle},
		{"lost", map[string]string{"copy-fail": "unavailable"}, wire.PhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.host.policies = map[string]string{"copy-fail": "enforcing"}
			r.host.afterBoot = tc.afterBoot
			r.drive(0, tc.end)
			if tc.end == wire.PhaseFailed && r.host.running() != oldKernel {
				t.Errorf("a kernel without its mitigation was kept: running %s", r.host.running())
			}
			if tc.end == wire.PhaseIdle && r.host.running() != newKernel {
				t.Errorf("running %s", r.host.running())
			}
		})
	}
}

// TestCoordinatorUnreachableBeforeBoot: the coordinator goes away after the
// grant; the agent does not boot, and once its lease ran out it announces
// its routes again instead of staying out of service.
func TestCoordinatorUnreachableBeforeBoot(t *testing.T) {
	r := newRig(t)
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := r.agent(0)
	a.cfg.Now = clock
	ctx := context.Background()
	for a.Journal().Phase != wire.PhaseRebooting {
		a.Heartbeat(ctx)
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.coord.mu.Lock()
	r.coord.down = true
	r.coord.mu.Unlock()
	if _, err := a.Step(ctx); err == nil {
		t.Fatal("booted without renewing the slot")
	}
	if len(r.host.reboots) != 0 || len(r.host.routeSet()) != 0 {
		t.Fatalf("within the lease: boots %v routes %v", r.host.reboots, r.host.routeSet())
	}
	now = now.Add(2 * time.Hour) // past the lease (the fsm's clock is its own)
	if _, err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	j := a.Journal()
	if len(r.host.reboots) != 0 || len(r.host.routeSet()) != 2 || j.Phase != wire.PhaseStaged || j.Slot == nil {
		t.Fatalf("after the lease: boots %v routes %v phase %s slot %+v", r.host.reboots, r.host.routeSet(), j.Phase, j.Slot)
	}
	// Back online: the agent gets its slot again and completes.
	r.coord.mu.Lock()
	r.coord.down = false
	r.coord.mu.Unlock()
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
}

func TestBootErrorsAreBounded(t *testing.T) {
	r := newRig(t)
	a := r.agent(0)
	ctx := context.Background()
	for a.Journal().Phase != wire.PhaseRebooting {
		a.Heartbeat(ctx)
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The staged image vanished.
	r.host.kernels = map[string][2]string{}
	for i := 0; i < 10 && a.Journal().Phase == wire.PhaseRebooting; i++ {
		a.Step(ctx)
	}
	if p := a.Journal().Phase; p != wire.PhaseFailed {
		t.Fatalf("phase %s after repeated boot errors, want failed", p)
	}
}

// TestLocalGuardRefusesReboot: the coordinator grants a slot, but the
// host's own view shows its datacenter at the limit: it does not withdraw
// or boot, gives the slot back and says why; once the view clears it
// proceeds.
func TestLocalGuardRefusesReboot(t *testing.T) {
	r := newRig(t)
	atLimit := true
	var gotLimits *wire.DatacenterLimits
	a := r.agent(0)
	a.cfg.Local = fakeDC{check: func(l *wire.DatacenterLimits) error {
		gotLimits = l
		if atLimit {
			return fmt.Errorf("1 host out of service in my view, slot limit %d", l.EffectiveLimit)
		}
		return nil
	}}
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		a.Heartbeat(ctx)
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.host.reboots) != 0 || len(r.host.routeSet()) != 2 || r.coord.slotsHeld() != 0 {
		t.Fatalf("guarded: boots %v routes %v slots %d", r.host.reboots, r.host.routeSet(), r.coord.slotsHeld())
	}
	if gotLimits == nil || gotLimits.EffectiveLimit != 1 || gotLimits.Hosts != 1 {
		t.Fatalf("guard got limits %+v", gotLimits)
	}
	var found bool
	r.coord.view(func(s *fsm.State) {
		for _, e := range s.Events {
			if e.Type == "slot_released" && strings.Contains(e.Message, "local guard: 1 host out of service") {
				found = true
			}
		}
	})
	if !found {
		t.Error("the coordinator's events do not say why the slot came back")
	}
	atLimit = false
	for i := 0; i < 30 && a.Journal().Phase != wire.PhaseRebooting; i++ {
		a.Heartbeat(ctx)
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Step(ctx); !errors.Is(err, ErrRebooting) {
		t.Fatalf("after the view cleared: %v (phase %s)", err, a.Journal().Phase)
	}
}

// TestForgedReleaseDoesNotBlock: a desired release whose manifest does not
// verify (forged, damaged, or a signed manifest of another release) is
// refused without recording an outcome under its id, so the genuine
// release of that id still rolls out afterwards.
func TestForgedReleaseDoesNotBlock(t *testing.T) {
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	current := testManifest()
	current.KernelVersion, current.UpstreamVersion = oldKernel, oldUpstream
	otherLine := testManifest()
	otherLine.Line, otherLine.KernelVersion, otherLine.UpstreamVersion = "6.12", "6.12.117+deb12-amd64", ""
	renamed := testManifest()
	renamed.ID = "6.1.192-kroll.0"
	for _, tc := range []struct {
		name   string
		forged func(t *testing.T) *wire.SignedRelease
	}{
		{"untrusted key says current", func(t *testing.T) *wire.SignedRelease { return signRelease(t, other, current) }},
		{"untrusted key says other line", func(t *testing.T) *wire.SignedRelease { return signRelease(t, other, otherLine) }},
		{"garbage manifest", func(t *testing.T) *wire.SignedRelease {
			return &wire.SignedRelease{ID: "6.1.192-kroll.1", Manifest: []byte("{}"), Signature: []byte("x")}
		}},
		{"signed manifest of another release", func(t *testing.T) *wire.SignedRelease {
			sr := signRelease(t, testReleaseKey(), renamed)
			sr.ID = "6.1.192-kroll.1"
			return sr
		}},
		{"genuine manifest, signature of another", func(t *testing.T) *wire.SignedRelease {
			sr := signedTestRelease(t)
			sr.Signature = signRelease(t, testReleaseKey(), current).Signature
			return sr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			a := r.agent(0)
			ctx := context.Background()
			a.SetDesired(&wire.DesiredState{Release: tc.forged(t)})
			for range 3 {
				if _, err := a.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if j := a.Journal(); j.Phase != wire.PhaseIdle || len(j.Done) != 0 || r.stager.calls != 0 {
				t.Fatalf("forged release: phase %s done %v stagings %d; want idle, nothing done, no staging", j.Phase, j.Done, r.stager.calls)
			}
			a.SetDesired(&wire.DesiredState{Release: signedTestRelease(t)})
			if _, err := a.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if j := a.Journal(); j.Phase != wire.PhaseStaging || j.Target == nil || j.Target.ID != "6.1.192-kroll.1" {
				t.Fatalf("genuine release after the forged one: phase %s done %v; want staging", j.Phase, j.Done)
			}
		})
	}
}

// fakeDC is a datacenter view with a scripted check.
type fakeDC struct {
	check func(l *wire.DatacenterLimits) error
	view  *wire.DCView
}

func (f fakeDC) Check(_ context.Context, l *wire.DatacenterLimits) error { return f.check(l) }
func (f fakeDC) View() *wire.DCView                                      { return f.view }

// TestHeartbeatCarriesLocalView: the datacenter view reaches the
// coordinator with the heartbeat.
func TestHeartbeatCarriesLocalView(t *testing.T) {
	r := newRig(t)
	a := r.agent(0)
	want := wire.DCView{Alive: 7, Draining: 1, Rebooting: 1, Dead: 2}
	a.cfg.Local = fakeDC{check: func(*wire.DatacenterLimits) error { return nil }, view: &want}
	if _, err := a.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got *wire.DCView
	r.coord.view(func(s *fsm.State) { got = s.Hosts["h1"].View })
	if got == nil || *got != want {
		t.Fatalf("coordinator has view %+v, want %+v", got, want)
	}
}

// TestDoneButRunningAnotherKernel: a release rolled out here earlier
// (healthy, or current) does not hide that the host later came up on
// another kernel (a cold boot into the previous kernel): the release is
// rolled out again, through the slot and every check, and the host ends
// on the release's kernel; a release that was refused is not retried.
func TestDoneButRunningAnotherKernel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		outcome string
		redo    bool
	}{
		{"healthy", "healthy", true},
		{"current", "current", true},
		{"refused", "refused: release line 6.2, host line 6.1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			st, err := journal.NewStore(r.state)
			if err != nil {
				t.Fatal(err)
			}
			j, err := st.Load(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			j.Done = map[string]string{releaseID: tt.outcome}
			if err := st.Save(j, time.Now()); err != nil {
				t.Fatal(err)
			}
			// The host runs the previous kernel (its default entry after
			// a cold boot), not the release's.
			r.drive(0, wire.PhaseIdle)
			if !tt.redo {
				if len(r.host.reboots) != 0 || r.coord.grants() != 0 || r.loadJournal(t).Done[releaseID] != tt.outcome {
					t.Fatalf("refused release retried: boots %v grants %d done %v", r.host.reboots, r.coord.grants(), r.loadJournal(t).Done)
				}
				return
			}
			r.checkUpgraded(t)
		})
	}
}

// TestReleaseWithdrawnBeforeBoot: the coordinator withdraws the release
// (here: its target cleared) after the agent staged it, before its next
// heartbeat tells it so. Waiting for a slot, the agent's acquire names
// the release and is refused: it abandons the release. Holding a slot,
// its fencing renewal before the boot is refused: it gives the slot back
// and restores its routes. It boots nothing either way.
func TestReleaseWithdrawnBeforeBoot(t *testing.T) {
	tests := []struct {
		name string
		// until is the phase the agent reaches before the withdrawal.
		until string
		// phase is the agent's phase right after the refusal.
		phase string
	}{
		{"waiting for a slot", wire.PhaseWaitingSlot, wire.PhaseIdle},
		{"holding a slot before the boot", wire.PhaseRebooting, wire.PhaseStaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.agent(0)
			ctx := context.Background()
			if tt.until == wire.PhaseWaitingSlot {
				// Another host holds the only slot: the agent waits.
				r.coord.Heartbeat(ctx, wire.Heartbeat{HostID: "h2", Datacenter: "fra1", KernelLine: "6.1"})
				if _, err := r.coord.AcquireSlot(ctx, wire.SlotRequest{HostID: "h2", Datacenter: "fra1"}); err != nil {
					t.Fatal(err)
				}
			}
			for steps := 0; a.Journal().Phase != tt.until; steps++ {
				if steps > 100 {
					t.Fatalf("never reached %s: %+v", tt.until, a.Journal())
				}
				if _, err := a.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			line := "6.1"
			if res := r.coord.apply(fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra1", Update: wire.DatacenterUpdate{UntargetLine: &line}}); res.Err != nil {
				t.Fatal(res.Err)
			}
			if tt.until == wire.PhaseWaitingSlot {
				if res := r.coord.apply(fsm.TypeForceRelease, fsm.ForceRelease{Datacenter: "fra1", Host: "h2"}); res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			// No heartbeat: the agent still believes in the release.
			if _, err := a.Step(ctx); err != nil {
				t.Fatal(err)
			}
			j := a.Journal()
			if len(r.host.reboots) != 0 {
				t.Fatalf("booted the withdrawn release: %v", r.host.reboots)
			}
			if j.Phase != tt.phase || j.Slot != nil || r.coord.slotsHeld() != 0 || len(r.host.routeSet()) != 2 {
				t.Fatalf("after the refusal: phase %s (want %s), slot %+v, slots held %d, routes %v", j.Phase, tt.phase, j.Slot, r.coord.slotsHeld(), r.host.routeSet())
			}
			// The next heartbeat brings the desired state: the release
			// is dropped, nothing booted.
			for range 10 {
				if _, err := a.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if j := a.Journal(); j.Phase != wire.PhaseIdle || j.Target != nil || len(r.host.reboots) != 0 || r.coord.slotsHeld() != 0 {
				t.Fatalf("in the end: phase %s target %v boots %v slots held %d", j.Phase, j.Target, r.host.reboots, r.coord.slotsHeld())
			}
		})
	}
}
