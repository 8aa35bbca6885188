package lifecycle

import (
	"context"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// slotRequest names the host's slot (token 0 to acquire one) and, when
// set, the release it is for: the coordinator refuses a slot for a
// release it no longer wants booted here (wire.KindReleaseWithdrawn).
func (a *Agent) slotRequest(token uint64, release string) wire.SlotRequest {
	return wire.SlotRequest{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, Token: token, Release: release}
}

func (a *Agent) stepWaitingSlot(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(ctx, j, "target changed while waiting for a slot")
	}
	if err := a.bootReady(ctx, j); err != nil {
		// Not bootable as intended: no slot asked, the host serves on.
		fails := j.Failures + 1
		a.log.Warn("not asking for a slot: the target is not ready to boot", "release", j.Target.ID, "attempt", fails, "err", err)
		return a.backoff(fails), a.save(func(n *journal.Journal) { n.Error, n.Failures = err.Error(), fails })
	}
	sl, err := a.cfg.Coordinator.AcquireSlot(ctx, a.slotRequest(0, j.Target.ID))
	if err != nil {
		kind := client.ErrorKind(err)
		if kind == wire.KindReleaseWithdrawn {
			// The coordinator no longer wants the release booted here
			// (rejected, its rollout failed, aborted or paused): the
			// desired state of the next heartbeat says so too.
			a.log.Warn("slot refused: the release is withdrawn", "release", j.Target.ID, "err", err)
			if j.Slot != nil {
				// A slot an earlier give-back could not return: back first.
				return a.giveBack(ctx, j, wire.PhaseWaitingSlot, "release withdrawn: "+truncate(err.Error(), 300))
			}
			return 0, a.abandon(ctx, j, "the coordinator withdrew it: "+truncate(err.Error(), 300))
		}
		if strings.HasPrefix(kind, "failed_lock_") {
			a.log.Info("slot denied", "kind", kind, "err", err)
			a.cfg.Metrics.SlotDenials.WithLabelValues(kind).Inc()
		} else {
			a.log.Warn("slot request failed", "err", err)
		}
		return a.cfg.RetryInterval, nil
	}
	a.log.Info("slot granted", "datacenter", sl.Datacenter, "token", sl.Token, "lease_expires", sl.LeaseExpires)
	return 0, a.save(func(n *journal.Journal) {
		n.Slot = &journal.Slot{Datacenter: sl.Datacenter, Token: sl.Token, LeaseExpires: sl.LeaseExpires}
		n.Phase = wire.PhaseDraining
	})
}

// guard runs Config.Local's check; a refusal gives the slot back with its
// reason. Until the coordinator answered a heartbeat (an agent restarted
// while holding a slot) there are no limits to check against: it waits
// (stop is true) for the first desired state, holding the slot and
// changing nothing.
func (a *Agent) guard(ctx context.Context, j *journal.Journal) (stop bool, wait time.Duration, err error) {
	if a.cfg.Local == nil {
		return false, 0, nil
	}
	ds := a.desiredState()
	if ds == nil {
		a.log.Info("waiting for the coordinator's first desired state (its datacenter limits) before the datacenter-local check")
		return true, a.cfg.RetryInterval, nil
	}
	gerr := a.cfg.Local.Check(ctx, ds.Datacenter)
	if gerr == nil {
		return false, 0, nil
	}
	a.log.Warn("datacenter-local guard refuses the reboot; giving the slot back", "why", gerr)
	a.cfg.Metrics.GuardRefusals.Inc()
	wait, err = a.giveBack(ctx, j, wire.PhaseStaged, "local guard: "+gerr.Error())
	return true, wait, err
}

// renew renews the held slot; lost is true when the coordinator no longer
// accepts its fencing token. release names the release about to be booted
// (the fencing renewal right before the boot), or is empty: the
// coordinator refuses the renewal for a withdrawn release
// (wire.KindReleaseWithdrawn; lost is false, the slot is still held).
func (a *Agent) renew(ctx context.Context, sl *journal.Slot, release string) (lost bool, err error) {
	got, err := a.cfg.Coordinator.RenewSlot(ctx, a.slotRequest(sl.Token, release))
	if err != nil {
		switch client.ErrorKind(err) {
		case wire.KindStaleToken, wire.KindNotHolder:
			return true, err
		}
		return false, err
	}
	a.mu.Lock()
	if a.j.Slot != nil && a.j.Slot.Token == got.Token {
		a.j.Slot.LeaseExpires = got.LeaseExpires
	}
	a.mu.Unlock()
	return false, nil
}
