package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// abandoned reports whether the coordinator no longer wants j's target.
// Without an answer yet (just started) the target stands.
func (a *Agent) abandoned(j *journal.Journal) bool {
	ds := a.desiredState()
	return ds != nil && j.Target != nil && (ds.Release == nil || ds.Release.ID != j.Target.ID)
}

// abandon drops a target that was not acted on yet (no slot, no
// routes): a boot attempt that never happened is forgotten (its one-shot
// entry cleared) and the boot loader's next boot is the running kernel
// again (an install may have changed it).
func (a *Agent) abandon(ctx context.Context, j *journal.Journal, why string) error {
	a.log.Info("abandoning release", "release", targetID(j), "why", why)
	j, err := a.forgetUnbooted(ctx, j)
	if err != nil {
		return err
	}
	running, err := a.kernelRelease()
	if err != nil {
		return err
	}
	if err := a.pinDefault(ctx, running, "after abandoning "+targetID(j)); err != nil {
		return err
	}
	return a.save(func(n *journal.Journal) {
		n.Target, n.Staged, n.Error = nil, nil, ""
		n.Boots, n.Previous, n.Rollback, n.KexecFailed = nil, nil, false, false
		n.Phase = wire.PhaseIdle
	})
}

func (a *Agent) stepIdle(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	ds := a.desiredState()
	if ds == nil || ds.Release == nil {
		return a.cfg.HeartbeatInterval, nil
	}
	id := ds.Release.ID
	// A release done here stays done, unless it was rolled out (healthy,
	// or current) and the host runs another kernel now: checked below.
	outcome, done := j.Done[id]
	if done && outcome != "healthy" && outcome != "current" {
		return a.cfg.HeartbeatInterval, nil
	}
	// Verify before recording anything under id: an outcome is kept for
	// good, so a forged or damaged desired state (bad signature, or a
	// signed manifest of another release) must not block the release id
	// on this host. It is refused now and looked at again next time.
	m, err := a.cfg.Stager.Verify(ds.Release.Manifest, ds.Release.Signature)
	if err == nil && m.ID != id {
		err = fmt.Errorf("signed manifest is release %q, not %q", m.ID, id)
	}
	if err != nil {
		a.refuseUnverified(id, err)
		return a.cfg.HeartbeatInterval, nil
	}
	finish := func(outcome string) error {
		a.log.Info("release not rolled out", "release", id, "outcome", outcome)
		return a.save(func(n *journal.Journal) {
			if n.Done == nil {
				n.Done = map[string]string{}
			}
			n.Done[id] = outcome
		})
	}
	running, err := a.kernelRelease()
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	if done {
		if running == m.KernelVersion {
			return a.cfg.HeartbeatInterval, nil
		}
		// E.g. a cold boot into the previous kernel (its boot entry the
		// default again): the coordinator still wants the release here,
		// and the host is not on it. It is rolled out again, through
		// every check and a slot, or refused (recorded) below.
		a.log.Warn("release rolled out here earlier, but the host runs another kernel: rolling it out again",
			"release", id, "outcome", outcome, "running", running, "release_kernel", m.KernelVersion)
		if err := a.save(func(n *journal.Journal) { delete(n.Done, id) }); err != nil {
			return 0, err
		}
	}
	if running == m.KernelVersion {
		return a.cfg.HeartbeatInterval, finish("current")
	}
	if line := a.Line(); m.Line != line {
		// Not recorded as the release's outcome: the host may be moved
		// to the release's line later and then take it.
		a.refuseOnce(id, "desired release not taken: not of the host's line", fmt.Errorf("release line %s, host line %s", m.Line, line))
		return a.cfg.HeartbeatInterval, nil
	}
	reason, err := a.downgrade(m)
	if err != nil {
		// The host could not be read: not the release's fault, nothing
		// is recorded; tried again.
		return a.cfg.RetryInterval, err
	}
	if reason != "" {
		return a.cfg.HeartbeatInterval, finish("refused: " + reason)
	}
	if reason, err = a.cmdlineRefusal(m); err != nil {
		return a.cfg.RetryInterval, err
	} else if reason != "" {
		return a.cfg.HeartbeatInterval, finish("refused: " + reason)
	}
	if err := a.cfg.BootLoader.Check(ctx); err != nil {
		switch {
		case !errors.Is(err, bootloader.ErrUnmanaged):
			// Installing a kernel with a boot loader not set up for it
			// (GRUB without GRUB_DEFAULT=saved) could make it the
			// default before it is verified: nothing starts until the
			// operator fixes it.
			return a.cfg.RetryInterval, fmt.Errorf("lifecycle: not starting release %s: %w", id, err)
		case a.cfg.Installer != nil:
			// No boot loader was detected and the operator did not say
			// loader = "none" (Check passes then): on a flash-kernel,
			// u-boot or extlinux host the package's hooks make the new
			// kernel the next boot before it is verified.
			return a.cfg.RetryInterval, fmt.Errorf("lifecycle: not installing release %s: %w; a kexec-only host sets [boot] loader = \"none\" explicitly", id, err)
		}
		// Staging only: nothing changes the boot loader; a kexec works
		// and a full reboot into the target is refused.
	}
	// The next cold boot is the running kernel before a kernel package
	// is installed (its hooks regenerate the boot menu).
	if err := a.pinDefault(ctx, running, "before installing "+m.KernelVersion); err != nil {
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: not starting release %s: %w", id, err)
	}
	return 0, a.save(func(n *journal.Journal) {
		n.Target = &journal.Target{ID: id, KernelRelease: m.KernelVersion, UpstreamVersion: m.UpstreamVersion,
			Manifest: ds.Release.Manifest, Signature: ds.Release.Signature}
		n.Staged, n.Boots, n.Previous, n.Rollback, n.KexecFailed, n.Error, n.Health = nil, nil, nil, false, false, "", ""
		n.ReportedUnhealthy = false
		n.Phase = wire.PhaseStaging
	})
}

// refuseUnverified logs a desired release that failed verification, once
// per release id and error.
func (a *Agent) refuseUnverified(id string, err error) {
	a.refuseOnce(id, "desired release refused: its manifest does not verify", err)
}

// refuseOnce logs msg about desired release id, once per release id,
// message and error.
func (a *Agent) refuseOnce(id, msg string, err error) {
	a.mu.Lock()
	key := id + "\x00" + msg + "\x00" + err.Error()
	repeated := a.unverified == key
	a.unverified = key
	a.mu.Unlock()
	if !repeated {
		a.log.Warn(msg, "release", id, "err", err)
	}
}

// downgrade explains why m would not be an upgrade of the running kernel,
// or returns "". An error means the running kernel's version could not be
// read or parsed: a problem of the host, never recorded as the release's
// outcome. The order is the full build version
// (kversion.CompareBuild): a target must be strictly newer than the running
// kernel, also within one upstream version (6.1.0-47-amd64 is older than
// 6.1.0-56-amd64 even when both say 6.1.192), so an older signed build
// cannot be pushed as a target.
func (a *Agent) downgrade(m release.Manifest) (string, error) {
	cur, err := a.cfg.Kernel.Version()
	if errors.Is(err, running.ErrMalformed) {
		return "", fmt.Errorf("lifecycle: cannot parse the running kernel's version: %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("lifecycle: cannot read the running kernel's version: %w", err)
	}
	target, err := kversion.ParseBuild(m.KernelVersion, m.UpstreamVersion)
	if err != nil {
		return fmt.Sprintf("release kernel %q (upstream %q): %v", m.KernelVersion, m.UpstreamVersion, err), nil
	}
	c, err := kversion.CompareBuild(target, cur)
	if err != nil {
		return fmt.Sprintf("%s is not known to be newer than the running kernel %s: %v", target.Describe(), cur.Describe(), err), nil
	}
	if c <= 0 {
		return fmt.Sprintf("%s is not newer than the running kernel %s", target.Describe(), cur.Describe()), nil
	}
	return "", nil
}

func (a *Agent) kernelRelease() (string, error) {
	rel, err := a.cfg.Kernel.Release()
	if err != nil {
		return "", fmt.Errorf("lifecycle: running kernel: %w", err)
	}
	return rel, nil
}

func (a *Agent) backoff(failures int) time.Duration {
	d := a.cfg.RetryInterval
	for i := 1; i < failures && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, a.cfg.MaxBackoff)
}
