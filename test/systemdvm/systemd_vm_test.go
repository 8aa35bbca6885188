package systemdvm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// scenarioTimeout bounds one scenario, the wait for a VM slot included
// (two VMs run at a time on a 2-core machine).
const scenarioTimeout = 30 * time.Minute

// TestSystemdKexecInstall: Debian 12 booted from its disk through SeaBIOS
// and GRUB on the oldest 6.1 kernel, the target kernel not installed.
// systemd starts the kroll-agent (from its .deb), which registers, applies
// a pushed mitigation policy, stages the newest 6.1 kernel's linux-image
// .deb from the release's artifact server, installs it with dpkg inside the
// VM (initramfs-tools generates its initrd there, the GRUB hook adds its
// entry), takes the slot and kexecs through systemd's kexec.target. After
// the new boot the target runs with its own modules (af_alg and the dummy
// interface of the anycast route load), systemd is running, the agent
// reports the host healthy with the policy in force, the anycast route is
// back and GRUB's saved default is the target. GRUB ran once: no firmware
// reboot.
func TestSystemdKexecInstall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), scenarioTimeout)
	defer cancel()
	r := startRig(t, ctx, guestConfig{bootMode: "kexec", loader: "grub", install: "auto"})
	r.checkReport(ctx, r.old.Release)
	r.waitWatch(ctx, "the anycast route announced on the old kernel", func(w watchLine) bool {
		return w.release == r.old.Release && w.routes == "1"
	})

	r.roll(ctx)
	h := r.waitHost(ctx, "healthy on the target kernel", false, func(h *wire.Host) bool {
		return h.Kernel == r.target.Release && h.Phase == wire.PhaseIdle && h.Slot == nil && !h.Unhealthy &&
			policyState(h, policyID) == "enforcing" && hasEvent(ctx, r.coord, "host_healthy")
	})
	t.Logf("%s %s after the target was set: kernel %s, phase %s, policies %+v",
		hostID, time.Since(r.targeted).Round(time.Second), h.Kernel, h.Phase, h.Policies)
	r.checkReport(ctx, r.target.Release)
	r.waitWatch(ctx, "the anycast route back and GRUB's default the target", func(w watchLine) bool {
		return w.release == r.target.Release && w.routes == "1" && strings.Contains(w.env["saved_entry"], r.target.Release)
	})
	r.logTimeline()

	r.count("GRUB booted once (kexec: no firmware reboot)", grubMarker, 1)
	r.count("GRUB booted the old kernel", grubMarker+r.old.Release+" ", 1)
	r.count("the old kernel booted once", "Linux version "+r.old.Release, 1)
	r.count("the target kernel booted once", "Linux version "+r.target.Release, 1)
	r.count("systemd ran systemd-kexec.service (kexec.target)", "systemd[1]: Starting systemd-kexec.service", 1)
	r.count("the kernel kexeced", "kexec_core: Starting new kernel", 1)
	r.count("systemd started the agent in both boots", "Started kroll-agent.service", 2)
	r.events(ctx, "slot_granted", "host_healthy", "slot_released")
}

// TestSystemdRebootThroughGrub: as TestSystemdKexecInstall with [boot]
// mode = "reboot": the agent sets a one-shot GRUB entry for the installed
// target and reboots; the guest restarts through SeaBIOS and GRUB, which
// boots the target once. After the host is healthy GRUB's saved default is
// the target and no one-shot entry is left, on the console and on the
// disk image after a clean power-off.
func TestSystemdRebootThroughGrub(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), scenarioTimeout)
	defer cancel()
	r := startRig(t, ctx, guestConfig{bootMode: "reboot", loader: "grub", install: "auto", reboots: true})
	r.waitWatch(ctx, "GRUB's default the old kernel", func(w watchLine) bool {
		return w.release == r.old.Release && w.routes == "1" && strings.Contains(w.env["saved_entry"], r.old.Release)
	})

	r.roll(ctx)
	h := r.waitHost(ctx, "healthy on the target kernel", false, func(h *wire.Host) bool {
		return h.Kernel == r.target.Release && h.Phase == wire.PhaseIdle && h.Slot == nil && !h.Unhealthy &&
			policyState(h, policyID) == "enforcing" && hasEvent(ctx, r.coord, "host_healthy")
	})
	t.Logf("%s %s after the target was set: kernel %s, phase %s", hostID, time.Since(r.targeted).Round(time.Second), h.Kernel, h.Phase)
	r.checkReport(ctx, r.target.Release)
	r.waitWatch(ctx, "GRUB's default the target, no one-shot entry left", func(w watchLine) bool {
		return w.release == r.target.Release && w.routes == "1" &&
			strings.Contains(w.env["saved_entry"], r.target.Release) && w.env["next_entry"] == ""
	})
	r.logTimeline()

	r.count("GRUB booted the old kernel once", grubMarker+r.old.Release+" ", 1)
	r.count("GRUB booted the target kernel once", grubMarker+r.target.Release+" ", 1)
	r.count("the target kernel booted once", "Linux version "+r.target.Release, 1)
	r.count("no kexec", "kexec_core: Starting new kernel", 0)
	r.count("the firmware ran for both boots", "SeaBIOS (version", 2)
	r.events(ctx, "slot_granted", "host_healthy", "slot_released")

	r.powerOff(ctx)
	env := grubenv(diskFile(t, ctx, r.disk, "/boot/grub/grubenv"))
	t.Logf("grubenv on the disk after power-off: %v", env)
	if !strings.Contains(env["saved_entry"], r.target.Release) || env["next_entry"] != "" {
		t.Errorf("grubenv on the disk: saved_entry %q, next_entry %q; want the target %s saved, no one-shot entry",
			env["saved_entry"], env["next_entry"], r.target.Release)
	}
}

// TestSystemdFailedHealthRollback: the reboot path with a health command
// that fails on the target kernel. GRUB boots the target once (one-shot
// entry); the agent finds it unhealthy and rolls back to the previous
// kernel: the host ends on the old kernel, failed at the coordinator, its
// anycast route withdrawn, GRUB's saved default still the old kernel (on
// the console and on the disk image after a clean power-off).
func TestSystemdFailedHealthRollback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), scenarioTimeout)
	defer cancel()
	r := startRig(t, ctx, guestConfig{bootMode: "reboot", loader: "grub", install: "auto", reboots: true, failOnTarget: true})
	r.waitWatch(ctx, "the anycast route announced on the old kernel", func(w watchLine) bool {
		return w.release == r.old.Release && w.routes == "1"
	})

	r.roll(ctx)
	h := r.waitHost(ctx, "failed, back on the old kernel", true, func(h *wire.Host) bool {
		return h.Kernel == r.old.Release && h.Phase == wire.PhaseFailed
	})
	t.Logf("%s %s after the target was set: kernel %s, phase %s, unhealthy %v", hostID, time.Since(r.targeted).Round(time.Second), h.Kernel, h.Phase, h.Unhealthy)
	r.waitWatch(ctx, "the route withdrawn and GRUB's default the old kernel on the rolled-back boot", func(w watchLine) bool {
		return w.release == r.old.Release && w.routes == "0" &&
			strings.Contains(w.env["saved_entry"], r.old.Release) && !strings.Contains(w.env["next_entry"], r.target.Release)
	})
	r.logTimeline()

	r.count("the target kernel booted once", "Linux version "+r.target.Release, 1)
	r.count("GRUB booted the target once", grubMarker+r.target.Release+" ", 1)
	r.count("the old kernel booted twice (first boot, rollback)", "Linux version "+r.old.Release, 2)
	r.events(ctx, "slot_granted", "host_unhealthy")

	r.powerOff(ctx)
	env := grubenv(diskFile(t, ctx, r.disk, "/boot/grub/grubenv"))
	t.Logf("grubenv on the disk after power-off: %v", env)
	if !strings.Contains(env["saved_entry"], r.old.Release) || strings.Contains(env["next_entry"], r.target.Release) {
		t.Errorf("grubenv on the disk: saved_entry %q, next_entry %q; want the old kernel %s saved, no one-shot entry for the target",
			env["saved_entry"], env["next_entry"], r.old.Release)
	}
}
