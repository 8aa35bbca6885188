package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/kcmdline"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (a *Agent) stepRebooting(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	cur, err := a.cfg.Kernel.BootID()
	if err != nil {
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: boot id: %w", err)
	}
	if lb := j.LastBoot(); lb != nil && !lb.Completed {
		if cur != lb.BootIDBefore {
			a.log.Info("new boot", "boot_id", cur, "method", lb.Method, "into", lb.Into)
			return 0, a.save(func(n *journal.Journal) {
				n.Boots[len(n.Boots)-1].Completed = true
				n.Phase = wire.PhaseVerifying
			})
		}
		// Same boot id: the agent died before the boot happened. The
		// attempt is forgotten (its one-shot entry cleared) and, if
		// the slot still stands, made again from the start.
		a.log.Warn("the last boot attempt did not happen (same boot id); forgetting it", "into", lb.Into, "method", lb.Method)
		if j, err = a.forgetUnbooted(ctx, j); err != nil {
			fails := j.Failures + 1
			if fails >= maxLoaderFailures {
				return 0, a.fail(ctx, j, fmt.Sprintf("a boot into %s did not happen and its one-shot boot entry cannot be cleared: %v", lb.Into, err))
			}
			if serr := a.save(func(n *journal.Journal) { n.Failures, n.Error = fails, err.Error() }); serr != nil {
				return 0, serr
			}
			return a.backoff(fails), err
		}
	}
	if len(j.Boots) >= a.cfg.MaxBoots {
		return 0, a.fail(ctx, j, fmt.Sprintf("%d boots attempted for %s without success", len(j.Boots), j.Target.ID))
	}
	// Fencing: never boot unless the coordinator still accepts our token.
	if j.Slot == nil {
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseWaitingSlot })
	}
	if a.cfg.Routes != nil && !j.Withdrawn {
		// Never boot while announcing: withdraw (and drain) first.
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseDraining })
	}
	// The renewal names the release about to be booted (none for a
	// rollback: going back is always allowed): a release the coordinator
	// withdrew since the grant (rejected, its rollout failed, aborted or
	// paused) is not booted; the slot goes back.
	booting := ""
	if !j.Rollback && j.Target != nil {
		booting = j.Target.ID
	}
	if lost, err := a.renew(ctx, j.Slot, booting); err != nil {
		if client.ErrorKind(err) == wire.KindReleaseWithdrawn {
			a.log.Warn("the release was withdrawn before the boot; giving the slot back", "release", booting, "err", err)
			return a.giveBack(ctx, j, wire.PhaseStaged, "release withdrawn before the boot: "+truncate(err.Error(), 300))
		}
		if lost {
			a.log.Warn("slot lost before the boot; giving up this attempt", "err", err)
			return a.stepGiveBack(ctx, j, wire.PhaseStaged)
		}
		if a.cfg.Now().After(j.Slot.LeaseExpires) {
			// The coordinator has been unreachable for a whole lease: do
			// not stay out of service waiting for it.
			a.log.Warn("cannot renew the slot and its lease ran out; returning to service", "err", err)
			return a.stepGiveBack(ctx, j, wire.PhaseStaged)
		}
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: renew slot before boot: %w", err)
	}
	if len(j.Boots) == 0 {
		if refused, wait, err := a.guard(ctx, j); refused {
			return wait, err
		}
	}
	img, into, err := a.bootImage(j)
	if err != nil {
		return 0, a.fail(ctx, j, err.Error())
	}
	method := boot.MethodKexec
	if j.KexecFailed {
		method = boot.MethodReboot
	} else if err := a.cfg.Booter.KexecSupported(); err != nil {
		a.log.Warn("kexec unavailable; using a full reboot", "err", err)
		method = boot.MethodReboot
	}
	cold := a.effectiveMethod(method) == boot.MethodReboot
	oneShot := cold && !j.Rollback
	if err := a.save(func(n *journal.Journal) {
		n.Boots = append(n.Boots, journal.Boot{Method: string(method), Into: into, BootIDBefore: cur, Started: a.cfg.Now(), Rollback: n.Rollback, OneShot: oneShot})
	}); err != nil {
		return 0, err
	}
	if cold {
		// The boot loader decides what a full reboot starts.
		refuse, err := a.prepareColdBoot(ctx, j, into)
		if refuse {
			if serr := a.save(func(n *journal.Journal) { n.Boots = n.Boots[:len(n.Boots)-1] }); serr != nil {
				return 0, serr
			}
			return a.refuseBoot(ctx, a.Journal(), err.Error())
		}
		if err != nil {
			return a.bootFailed(ctx, j, err, false)
		}
	}
	a.log.Info("booting", "method", method, "into", into, "kernel", img.Kernel, "initrd", img.Initrd, "cmdline", img.Cmdline, "rollback", j.Rollback)
	used, err := a.cfg.Booter.Boot(ctx, method, img)
	if err != nil {
		return a.bootFailed(ctx, j, err, errors.Is(err, boot.ErrKexecUnavailable))
	}
	a.cfg.Metrics.Reboots.WithLabelValues(string(used)).Inc()
	if used == boot.MethodDryRun {
		a.log.Warn("dry-run: no boot performed (configure [boot] mode to boot for real)")
		return 0, a.save(func(n *journal.Journal) {
			n.Boots[len(n.Boots)-1].Method = string(boot.MethodDryRun)
			n.Boots[len(n.Boots)-1].Completed = true
			n.Phase = wire.PhaseVerifying
		})
	}
	if used != method {
		if err := a.save(func(n *journal.Journal) { n.Boots[len(n.Boots)-1].Method = string(used) }); err != nil {
			return 0, err
		}
	}
	return 0, ErrRebooting
}

// bootFailed forgets a boot attempt that did not happen; kexecOut says
// kexec cannot work here (the next attempt is a full reboot). Repeated
// failures fail the upgrade.
func (a *Agent) bootFailed(ctx context.Context, j *journal.Journal, err error, kexecOut bool) (time.Duration, error) {
	// The boot did not happen: forget the attempt (a one-shot entry
	// must not start the target at some later, unplanned reboot). When
	// the one-shot entry cannot be cleared the record stays, and the
	// next step tries again.
	if _, ferr := a.forgetUnbooted(ctx, a.Journal()); ferr != nil {
		a.log.Error("cannot drop the one-shot boot entry after the failed boot", "err", ferr)
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: boot: %w (and %w)", err, ferr)
	}
	if serr := a.save(func(n *journal.Journal) {
		n.Error = err.Error()
		if kexecOut {
			n.KexecFailed = true
		}
	}); serr != nil {
		return 0, serr
	}
	if kexecOut {
		a.log.Warn("kexec refused; falling back to a full reboot", "err", err)
		return 0, nil
	}
	fails := j.Failures + 1
	if fails >= 3 {
		return 0, a.fail(ctx, a.Journal(), fmt.Sprintf("boot failed %d times: %v", fails, err))
	}
	if serr := a.save(func(n *journal.Journal) { n.Failures = fails }); serr != nil {
		return 0, serr
	}
	return a.cfg.RetryInterval, fmt.Errorf("lifecycle: boot: %w", err)
}

// bootImage returns what to boot: the staged kernel, or the previous one
// for a rollback.
func (a *Agent) bootImage(j *journal.Journal) (boot.Image, string, error) {
	if j.Rollback {
		if j.Previous == nil || j.Previous.Vmlinuz == "" {
			return boot.Image{}, "", errors.New("rollback impossible: the previous kernel's image is unknown")
		}
		// The previous kernel boots as it did: with the initrd found for
		// it when it was recorded, or without one.
		return boot.Image{Kernel: j.Previous.Vmlinuz, Initrd: j.Previous.Initrd, NoInitrd: j.Previous.Initrd == "", Cmdline: j.Previous.Cmdline}, j.Previous.Release, nil
	}
	if j.Staged == nil {
		return boot.Image{}, "", errors.New("nothing staged")
	}
	m, err := targetManifest(j)
	if err != nil {
		return boot.Image{}, "", err
	}
	img := boot.Image{Kernel: j.Staged.Vmlinuz, Initrd: j.Staged.Initrd, NoInitrd: m.NoInitrd}
	if img.Initrd == "" && !m.NoInitrd {
		return boot.Image{}, "", fmt.Errorf("no initrd for kernel %s and the release does not say it boots without one (no_initrd)", j.Staged.KernelRelease)
	}
	// The target boots with the running kernel's command line (as
	// recorded before the boot) changed as the release says; a rollback
	// uses the previous kernel's recorded one as it is.
	base := ""
	if j.Previous != nil {
		base = j.Previous.Cmdline
	} else if base, err = a.cfg.Booter.Cmdline(); err != nil {
		return boot.Image{}, "", fmt.Errorf("command line: %w", err)
	}
	if img.Cmdline, err = kcmdline.Apply(base, m.CmdlineAdd, m.CmdlineRemove); err != nil {
		return boot.Image{}, "", fmt.Errorf("kernel command line of %s: %w", j.Staged.KernelRelease, err)
	}
	return img, j.Staged.KernelRelease, nil
}

// forgetUnbooted drops the last boot record when that boot never
// happened (not completed, and the boot id is the one before it): it is
// not counted among the boots, and its one-shot boot entry, if it set
// one, is cleared first by pinning the running kernel, so no later
// unplanned reboot starts the untested kernel. It returns the journal as
// it is then; on an error the record stays (to be tried again).
func (a *Agent) forgetUnbooted(ctx context.Context, j *journal.Journal) (*journal.Journal, error) {
	lb := j.LastBoot()
	if lb == nil || lb.Completed {
		return j, nil
	}
	cur, err := a.cfg.Kernel.BootID()
	if err != nil {
		return j, fmt.Errorf("lifecycle: boot id: %w", err)
	}
	if cur != lb.BootIDBefore {
		return j, nil // it happened: stepRebooting records it
	}
	if lb.OneShot {
		running, err := a.kernelRelease()
		if err != nil {
			return j, err
		}
		if err := a.pinDefault(ctx, running, "after a boot into "+lb.Into+" that did not happen"); err != nil {
			return j, err
		}
	}
	if err := a.save(func(n *journal.Journal) { n.Boots = n.Boots[:len(n.Boots)-1] }); err != nil {
		return j, err
	}
	return a.Journal(), nil
}
