package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/kroll-dev/kroll/agent/install"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Installer installs a staged kernel on the host and removes old ones
// (*install.Installer).
type Installer interface {
	Install(ctx context.Context, req install.Request) (*install.Result, error)
	Cleanup(ctx context.Context, keep install.Keep) ([]string, error)
}

// stepStaged moves a staged release on to its install, or straight to
// the slot request when the agent does not install kernels.
func (a *Agent) stepStaged(j *journal.Journal) error {
	if a.cfg.Installer == nil {
		return a.save(func(n *journal.Journal) { n.Phase = wire.PhaseWaitingSlot })
	}
	return a.save(func(n *journal.Journal) { n.Phase = wire.PhaseInstalling; n.Failures = j.Failures })
}

// stepInstalling installs the staged kernel (idempotent: a re-run after a
// crash completes or confirms the install) and records the installed
// kernel and initrd as the boot image. A failure keeps the host in
// service (no slot, routes untouched) and is retried with backoff.
func (a *Agent) stepInstalling(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(j, "target changed before the install")
	}
	start := a.cfg.Now()
	running, err := a.kernelRelease()
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	// Staging is done; this only finds the staged files again.
	st, err := a.cfg.Stager.Stage(ctx, j.Target.Manifest, j.Target.Signature)
	var res *install.Result
	if err == nil {
		res, err = a.cfg.Installer.Install(ctx, install.Request{Manifest: st.Release, Dir: st.Dir, Vmlinuz: st.Vmlinuz,
			Initrd: st.Initrd, Running: running})
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fails := j.Failures + 1
		a.cfg.Metrics.InstallFailures.Inc()
		if errors.Is(err, install.ErrStagedChanged) {
			a.log.Warn("a staged file changed before the install; staging again", "release", j.Target.ID, "err", err)
			return a.backoff(fails), a.save(func(n *journal.Journal) {
				n.Phase, n.Staged, n.Error = wire.PhaseStaging, nil, err.Error()
			})
		}
		a.log.Warn("install failed; the host stays in service", "release", j.Target.ID, "attempt", fails, "err", err)
		return a.backoff(fails), a.save(func(n *journal.Journal) {
			n.Phase, n.Error = wire.PhaseInstallFailed, err.Error()
			n.Failures = fails
		})
	}
	a.cfg.Metrics.InstallSeconds.Observe(a.cfg.Now().Sub(start).Seconds())
	a.log.Info("kernel installed", "release", j.Target.ID, "kernel", res.KernelRelease, "method", res.Method,
		"vmlinuz", res.Vmlinuz, "initrd", res.Initrd)
	if err := a.save(func(n *journal.Journal) {
		n.Staged = &journal.Staged{Vmlinuz: res.Vmlinuz, Initrd: res.Initrd, KernelRelease: res.KernelRelease}
		n.Error = ""
		n.Phase = wire.PhaseWaitingSlot
	}); err != nil {
		return 0, err
	}
	keep := install.Keep{Running: running, Target: res.KernelRelease}
	if j.Previous != nil && j.Previous.Release != running {
		keep.Previous = j.Previous.Release
	}
	removed, err := a.cfg.Installer.Cleanup(ctx, keep)
	if err != nil {
		a.log.Warn("old kernels not removed", "err", err)
	}
	if len(removed) > 0 {
		a.log.Info("old kernels removed", "removed", removed)
	}
	return 0, nil
}
