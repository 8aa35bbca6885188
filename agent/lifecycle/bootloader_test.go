package lifecycle

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const releaseID = "6.1.192-kroll.1"

// loadJournal reads the rig's journal as a new agent would.
func (r *rig) loadJournal(t *testing.T) *journal.Journal {
	t.Helper()
	st, err := journal.NewStore(r.state)
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// failOn makes the health check fail on the new kernel only.
func (r *rig) failOn() {
	r.checks = []health.CommandCheck{{Name: "service", Command: []string{"grep", "-q", oldKernel, filepath.Join(r.host.proc, "sys/kernel/osrelease")}}}
}

// TestBootLoaderEntries drives whole upgrades through a boot loader with
// GRUB's semantics and checks what each boot started and what the
// default entry is at every boot and at the end.
func TestBootLoaderEntries(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(r *rig)
		end       string   // journal phase at the end
		boots     []string // method:kernel of every boot
		calls     string   // boot loader calls
		defaults  []string // the default entry at each full reboot
		finalDef  string
		running   string
		doneState string
	}{
		{
			name:  "kexec: default set after health",
			setup: func(*rig) {},
			end:   wire.PhaseIdle, boots: []string{"kexec:" + newKernel},
			calls: "default:" + newKernel, finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name:  "full reboot lands on the target once, default after health",
			setup: func(r *rig) { r.booter.kexecUnavailable = true },
			end:   wire.PhaseIdle, boots: []string{"reboot:" + newKernel},
			calls: "oneshot:" + newKernel + " default:" + newKernel, defaults: []string{oldKernel},
			finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name:  "boot mode reboot",
			setup: func(r *rig) { r.booter.mode = boot.ModeReboot },
			end:   wire.PhaseIdle, boots: []string{"reboot:" + newKernel},
			calls: "oneshot:" + newKernel + " default:" + newKernel, defaults: []string{oldKernel},
			finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name: "the target was the default before the rollout: pinned to the running kernel first",
			setup: func(r *rig) {
				r.booter.kexecUnavailable = true
				r.loader.def = newKernel
			},
			end: wire.PhaseIdle, boots: []string{"reboot:" + newKernel},
			calls:    "default:" + oldKernel + " oneshot:" + newKernel + " default:" + newKernel,
			defaults: []string{oldKernel}, finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name: "the install made the target the default: set back before the slot",
			setup: func(r *rig) {
				r.booter.kexecUnavailable = true
				r.stager.onStage = func() { r.loader.def = newKernel }
			},
			end: wire.PhaseIdle, boots: []string{"reboot:" + newKernel},
			calls:    "default:" + oldKernel + " oneshot:" + newKernel + " default:" + newKernel,
			defaults: []string{oldKernel}, finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name: "unhealthy after a full reboot: rollback boots the default, which stays the previous kernel",
			setup: func(r *rig) {
				r.booter.kexecUnavailable = true
				r.failOn()
			},
			end: wire.PhaseFailed, boots: []string{"reboot:" + newKernel, "reboot:" + oldKernel},
			calls: "oneshot:" + newKernel, defaults: []string{oldKernel, oldKernel},
			finalDef: oldKernel, running: oldKernel, doneState: "failed: ",
		},
		{
			name:  "unhealthy after kexec: rollback by kexec, default untouched",
			setup: func(r *rig) { r.failOn() },
			end:   wire.PhaseFailed, boots: []string{"kexec:" + newKernel, "kexec:" + oldKernel},
			calls: "", finalDef: oldKernel, running: oldKernel, doneState: "failed: ",
		},
		{
			name: "kexec boots the wrong kernel: the full reboot uses a one-shot entry",
			setup: func(r *rig) {
				r.host.kexecBroken = true
			},
			end: wire.PhaseIdle, boots: []string{"kexec:" + newKernel, "reboot:" + newKernel},
			calls: "oneshot:" + newKernel + " default:" + newKernel, defaults: []string{oldKernel},
			finalDef: newKernel, running: newKernel, doneState: "healthy",
		},
		{
			name: "no boot loader found: a full reboot into the target is refused",
			setup: func(r *rig) {
				r.booter.kexecUnavailable = true
				r.loader.unmanaged = true
			},
			end: wire.PhaseIdle, boots: nil, calls: "oneshot:" + newKernel,
			running: oldKernel, doneState: "refused: full reboot into " + newKernel + " refused: no supported boot loader found",
		},
		{
			name: "loader none by choice: the full reboot boots what the loader defaults to",
			setup: func(r *rig) {
				r.booter.kexecUnavailable = true
				r.loader.unmanaged, r.loader.explicit = true, true
			},
			end: wire.PhaseIdle, boots: []string{"reboot:" + newKernel},
			calls: "oneshot:" + newKernel + " default:" + newKernel, running: newKernel, doneState: "healthy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.loader = &fakeLoader{def: oldKernel}
			r.booter.loader = r.loader
			tt.setup(r)
			if r.loader.unmanaged {
				r.booter.loader = nil // the image's kernel, as the firmware picks
			}
			r.drive(0, tt.end)
			if !slices.Equal(r.host.reboots, tt.boots) {
				t.Errorf("boots %v, want %v", r.host.reboots, tt.boots)
			}
			if got := r.loader.history(); got != tt.calls {
				t.Errorf("boot loader calls %q, want %q", got, tt.calls)
			}
			if !r.loader.unmanaged {
				if !slices.Equal(r.loader.defaultsWhenBoots, tt.defaults) {
					t.Errorf("default entry at the full reboots %v, want %v", r.loader.defaultsWhenBoots, tt.defaults)
				}
				if r.loader.def != tt.finalDef || r.loader.oneShot != "" {
					t.Errorf("boot loader at the end: default %q one-shot %q, want default %q and no one-shot", r.loader.def, r.loader.oneShot, tt.finalDef)
				}
			}
			if got := r.host.running(); got != tt.running {
				t.Errorf("running %s, want %s", got, tt.running)
			}
			j := r.loadJournal(t)
			if !strings.HasPrefix(j.Done[releaseID], tt.doneState) {
				t.Errorf("outcome %q, want %q…", j.Done[releaseID], tt.doneState)
			}
			if r.coord.slotsHeld() != 0 {
				t.Errorf("slot still held")
			}
			if tt.end == wire.PhaseIdle && len(r.host.routeSet()) != 2 {
				t.Errorf("routes %v, want both back", r.host.routeSet())
			}
		})
	}
}

// TestDefaultNotRunningNoSlot: when the boot loader's default cannot be
// set back to the running kernel after the install, the host never asks
// for a slot and keeps serving; once it can, the upgrade goes on.
func TestDefaultNotRunningNoSlot(t *testing.T) {
	r := newRig(t)
	r.loader = &fakeLoader{def: oldKernel, failSetDefault: 1 << 30}
	r.booter.loader = r.loader
	// The install makes the target the default, and grubenv cannot be
	// written any more.
	r.stager.onStage = func() { r.loader.def = newKernel }
	a := r.agent(0)
	ctx := context.Background()
	for range 30 {
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	j := a.Journal()
	if j.Phase != wire.PhaseWaitingSlot || !strings.Contains(j.Error, "make "+oldKernel+" the boot loader's default before asking for a slot: grub-set-default: cannot write") {
		t.Fatalf("phase %s error %q", j.Phase, j.Error)
	}
	if r.coord.grants() != 0 || len(r.host.routeSet()) != 2 || len(r.host.reboots) != 0 {
		t.Fatalf("grants %d routes %v boots %v", r.coord.grants(), r.host.routeSet(), r.host.reboots)
	}
	r.loader.failSetDefault = 0
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
	if r.loader.def != newKernel {
		t.Errorf("default %s after the upgrade", r.loader.def)
	}
}

// TestDefaultAfterHealthRetried: a failure to make the verified kernel
// the default is retried, and after a few attempts the healthy host
// returns to service anyway, the failure reported.
func TestDefaultAfterHealthRetried(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failures int
		calls    string
		finalDef string
	}{
		{"second attempt works", 1, "default:" + newKernel + " default:" + newKernel, newKernel},
		{"never works", 100, "default:" + newKernel + " default:" + newKernel + " default:" + newKernel, oldKernel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.loader = &fakeLoader{def: oldKernel, failSetDefault: tt.failures}
			r.booter.loader = r.loader
			r.drive(0, wire.PhaseIdle)
			if got := r.loader.history(); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if r.loader.def != tt.finalDef {
				t.Errorf("default %s, want %s", r.loader.def, tt.finalDef)
			}
			// Healthy either way: back in service on the new kernel.
			r.checkUpgraded(t)
		})
	}
}

// TestKexecImage checks the image the target and the rollback are
// kexec'd with: the target's own initrd, the running command line changed
// as the release says, and the previous kernel's command line for the
// rollback.
func TestKexecImage(t *testing.T) {
	m := testManifest()
	m.CmdlineAdd, m.CmdlineRemove = []string{"mitigations=auto", "slab_nomerge"}, []string{"quiet"}
	r := newRig(t)
	r.coord = newFSMCoordinator(t, signRelease(t, testReleaseKey(), m), 1)
	r.failOn()
	r.drive(0, wire.PhaseFailed)
	if len(r.booter.images) != 2 {
		t.Fatalf("images %+v", r.booter.images)
	}
	target, back := r.booter.images[0], r.booter.images[1]
	if target.Cmdline != "console=ttyS0 mitigations=auto slab_nomerge" || !strings.HasSuffix(target.Initrd, "/initrd.img-"+newKernel) {
		t.Errorf("target image %+v", target)
	}
	if back.Cmdline != "console=ttyS0 quiet" || back.Initrd != filepath.Join(r.host.boot, "initrd.img-"+oldKernel) || back.Kernel != filepath.Join(r.host.boot, "vmlinuz-"+oldKernel) {
		t.Errorf("rollback image %+v", back)
	}
}

// TestInitrdRequired: a target without an initrd is not booted (no slot
// asked) unless its release says it needs none.
func TestInitrdRequired(t *testing.T) {
	for _, noInitrd := range []bool{false, true} {
		r := newRig(t)
		r.stager.noInitrd = true
		if noInitrd {
			m := testManifest()
			m.NoInitrd = true
			r.coord = newFSMCoordinator(t, signRelease(t, testReleaseKey(), m), 1)
			r.drive(0, wire.PhaseIdle)
			if len(r.booter.images) != 1 || r.booter.images[0].Initrd != "" || r.host.running() != newKernel {
				t.Errorf("no_initrd release: images %+v running %s", r.booter.images, r.host.running())
			}
			continue
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
		if j.Phase != wire.PhaseWaitingSlot || !strings.Contains(j.Error, "no initrd for kernel "+newKernel) || r.coord.grants() != 0 || len(r.host.reboots) != 0 {
			t.Errorf("without an initrd: phase %s error %q grants %d boots %v", j.Phase, j.Error, r.coord.grants(), r.host.reboots)
		}
	}
}

// TestCmdlineRefusals: releases whose command line changes this host
// cannot take are refused when they are verified, before anything is
// staged.
func TestCmdlineRefusals(t *testing.T) {
	tests := []struct {
		name        string
		add, remove []string
		lsm         string // active LSMs ("" = file missing)
		mode        boot.Mode
		want        string // outcome prefix; "healthy" = rolled out
	}{
		{"no change", nil, nil, "", "", "healthy"},
		{"drops lsm while bpf is in force", nil, []string{"lsm"}, "lockdown,capability,yama,bpf", "", "refused: the release removes lsm=, but the bpf LSM is in force now"},
		{"lsm without bpf", []string{"lsm=lockdown,yama"}, nil, "lockdown,capability,yama,bpf", "", "refused: the release sets lsm=lockdown,yama without bpf"},
		{"lsm with bpf", []string{"lsm=lockdown,yama,bpf"}, nil, "lockdown,capability,yama,bpf", "", "healthy"},
		{"lsm change without bpf in force", []string{"lsm=lockdown"}, nil, "lockdown,capability", "", "healthy"},
		{"other parameters", []string{"mitigations=auto"}, []string{"nosmt"}, "", "", "healthy"},
		{"reboot-only host", []string{"mitigations=auto"}, nil, "", boot.ModeReboot, "refused: the release changes the kernel command line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest()
			m.CmdlineAdd, m.CmdlineRemove = tt.add, tt.remove
			r := newRig(t)
			r.coord = newFSMCoordinator(t, signRelease(t, testReleaseKey(), m), 1)
			r.booter.mode = tt.mode
			r.booter.cmdline = "console=ttyS0 lsm=lockdown,capability,yama,bpf quiet"
			r.lsmFile = filepath.Join(t.TempDir(), "lsm")
			if tt.lsm != "" {
				writeFile(t, r.lsmFile, tt.lsm)
			}
			a := r.agent(0)
			ctx := context.Background()
			for range 200 {
				if _, err := a.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				_, err := a.Step(ctx)
				if errors.Is(err, ErrRebooting) {
					a = r.agent(0)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, done := a.Journal().Done[releaseID]; done {
					break
				}
			}
			got := a.Journal().Done[releaseID]
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("outcome %q, want %q…", got, tt.want)
			}
			if strings.HasPrefix(tt.want, "refused") && (r.stager.calls != 0 || r.coord.grants() != 0) {
				t.Errorf("refused release staged %d times, %d slots", r.stager.calls, r.coord.grants())
			}
		})
	}
	// The active LSMs cannot be read: not recorded, tried again.
	m := testManifest()
	m.CmdlineRemove = []string{"lsm"}
	r := newRig(t)
	r.coord = newFSMCoordinator(t, signRelease(t, testReleaseKey(), m), 1)
	r.lsmFile = filepath.Join(t.TempDir(), "missing")
	a := r.agent(0)
	if _, err := a.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(context.Background()); err == nil || len(a.Journal().Done) != 0 {
		t.Fatalf("unreadable LSMs: err %v done %v", err, a.Journal().Done)
	}
}

// TestCrashAfterEveryJournalWriteColdReboot kills the agent after each
// journal write of an upgrade by full reboot: it still lands on the
// target with one boot, and only then the target becomes the default.
func TestCrashAfterEveryJournalWriteColdReboot(t *testing.T) {
	setup := func() *rig {
		r := newRig(t)
		r.loader = &fakeLoader{def: oldKernel}
		r.booter.loader = r.loader
		r.booter.kexecUnavailable = true
		return r
	}
	clean := setup()
	clean.drive(0, wire.PhaseIdle)
	total := clean.writes
	for n := 1; n <= total; n++ {
		r := setup()
		r.drive(n, wire.PhaseIdle)
		if !slices.Equal(r.host.reboots, []string{"reboot:" + newKernel}) || r.host.running() != newKernel ||
			r.loader.def != newKernel || r.loader.oneShot != "" || !slices.Equal(r.loader.defaultsWhenBoots, []string{oldKernel}) ||
			r.coord.grants() != 1 || len(r.host.routeSet()) != 2 {
			t.Errorf("crash after write %d of %d: boots %v running %s loader %+v grants %d routes %v", n, total,
				r.host.reboots, r.host.running(), r.loader.history(), r.coord.grants(), r.host.routeSet())
		}
	}
}

// TestLoaderNotSetUpNothingStarts: a boot loader that is not set up for
// one-shot boots (GRUB without GRUB_DEFAULT=saved) stops a rollout before
// anything is staged or installed, and it starts once that is fixed.
func TestLoaderNotSetUpNothingStarts(t *testing.T) {
	r := newRig(t)
	r.loader = &fakeLoader{def: oldKernel, checkErr: errors.New("bootloader: /boot/grub/grub.cfg does not start GRUB's saved entry; set GRUB_DEFAULT=saved")}
	r.booter.loader = r.loader
	a := r.agent(0)
	ctx := context.Background()
	for range 5 {
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := a.Step(ctx)
		if err == nil || !strings.Contains(err.Error(), "not starting release "+releaseID+": bootloader: /boot/grub/grub.cfg does not start GRUB's saved entry") {
			t.Fatalf("Step = %v", err)
		}
	}
	if j := a.Journal(); j.Phase != wire.PhaseIdle || len(j.Done) != 0 || r.stager.calls != 0 {
		t.Fatalf("phase %s done %v stagings %d", j.Phase, j.Done, r.stager.calls)
	}
	r.loader.checkErr = nil
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
}
