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

// abandon drops a target that was not acted on yet (no slot, no routes).
func (a *Agent) abandon(j *journal.Journal, why string) error {
	a.log.Info("abandoning release", "release", targetID(j), "why", why)
	return a.save(func(n *journal.Journal) {
		n.Target, n.Staged, n.Error = nil, nil, ""
		n.Phase = wire.PhaseIdle
	})
}

func (a *Agent) stepIdle(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	ds := a.desiredState()
	if ds == nil || ds.Release == nil {
		return a.cfg.HeartbeatInterval, nil
	}
	id := ds.Release.ID
	if _, done := j.Done[id]; done {
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
	if running == m.KernelVersion {
		return a.cfg.HeartbeatInterval, finish("current")
	}
	if m.Line != a.cfg.KernelLine {
		return a.cfg.HeartbeatInterval, finish(fmt.Sprintf("refused: release line %s, host line %s", m.Line, a.cfg.KernelLine))
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
	if err := a.cfg.BootLoader.Check(ctx); err != nil && !errors.Is(err, bootloader.ErrUnmanaged) {
		// Installing a kernel with a boot loader not set up for it (GRUB
		// without GRUB_DEFAULT=saved) could make it the default before it
		// is verified: nothing starts until the operator fixes it.
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: not starting release %s: %w", id, err)
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
	a.mu.Lock()
	key := id + "\x00" + err.Error()
	repeated := a.unverified == key
	a.unverified = key
	a.mu.Unlock()
	if !repeated {
		a.log.Warn("desired release refused: its manifest does not verify", "release", id, "err", err)
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
