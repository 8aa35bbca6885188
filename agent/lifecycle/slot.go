package lifecycle

import (
	"context"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (a *Agent) slotRequest(token uint64) wire.SlotRequest {
	return wire.SlotRequest{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, Token: token}
}

func (a *Agent) stepWaitingSlot(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(j, "target changed while waiting for a slot")
	}
	if err := a.bootReady(ctx, j); err != nil {
		// Not bootable as intended: no slot asked, the host serves on.
		fails := j.Failures + 1
		a.log.Warn("not asking for a slot: the target is not ready to boot", "release", j.Target.ID, "attempt", fails, "err", err)
		return a.backoff(fails), a.save(func(n *journal.Journal) { n.Error, n.Failures = err.Error(), fails })
	}
	sl, err := a.cfg.Coordinator.AcquireSlot(ctx, a.slotRequest(0))
	if err != nil {
		kind := client.ErrorKind(err)
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
// accepts its fencing token.
func (a *Agent) renew(ctx context.Context, sl *journal.Slot) (lost bool, err error) {
	got, err := a.cfg.Coordinator.RenewSlot(ctx, a.slotRequest(sl.Token))
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
