package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Run drives the lifecycle until ctx ends: heartbeats and slot renewals in
// the background, Step in the foreground. It returns nil when ctx ends
// (the journal is always current) and once a boot was started it only
// waits for ctx.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{}, 2)
	go func() { a.heartbeatLoop(ctx); done <- struct{}{} }()
	go func() { a.renewLoop(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	stepBackoff := newErrorBackoff(a.cfg.RetryInterval, a.cfg.MaxBackoff, a.cfg.Rand)

	for {
		phase, done := a.progress()
		wait, err := a.Step(ctx)
		if p, d := a.progress(); p != phase || d != done {
			// Tell the coordinator at once, not at the next interval.
			if _, herr := a.Heartbeat(ctx); herr != nil && ctx.Err() == nil {
				a.log.Warn("heartbeat after phase change failed", "err", herr)
			}
		}
		if errors.Is(err, ErrRebooting) {
			a.log.Info("boot started; waiting to be stopped")
			<-ctx.Done()
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The step's own wait is a floor; repeated failures back off
			// exponentially with full jitter up to MaxBackoff.
			if wait == 0 {
				wait = a.cfg.RetryInterval
			}
			wait = max(wait, stepBackoff.next())
			a.log.Warn("step failed", "phase", a.Phase(), "err", err, "retry_in", wait)
		} else {
			stepBackoff.reset()
		}
		if wait == 0 {
			continue
		}
		wait = a.beforeLease(a.jitter(wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Heartbeat sends one heartbeat and records the desired state. It sends
// the version of the documents it holds; when the coordinator omits them
// as unchanged, the agent keeps its own.
func (a *Agent) Heartbeat(ctx context.Context) (*wire.DesiredState, error) {
	hb := wire.Heartbeat{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, KernelLine: a.cfg.KernelLine, Phase: a.Phase(), GossipAddr: a.cfg.GossipAddr}
	a.mu.Lock()
	hb.AssignedLine = a.assignedLine()
	a.mu.Unlock()
	hb.Kernel, _ = a.kernelRelease()
	hb.BootID, _ = a.cfg.Kernel.BootID()
	if a.cfg.Policies != nil {
		// Whatever statuses there are go out even when part of the
		// reconcile failed: each says what is pinned and why not.
		ps, err := a.cfg.Policies(ctx)
		hb.Policies = ps
		if err != nil {
			a.log.Warn("mitigations for the heartbeat", "err", err)
		}
	}
	if a.cfg.Local != nil {
		hb.View = a.cfg.Local.View()
	}
	prev := a.desiredState()
	if prev != nil {
		hb.DesiredVersion = prev.DesiredVersion
	}
	ds, err := a.cfg.Coordinator.Heartbeat(ctx, hb)
	if err == nil && ds.Unchanged && (prev == nil || prev.DesiredVersion != ds.DesiredVersion) {
		// Documents omitted that this agent does not hold (its desired
		// state changed meanwhile): ask again for all of them.
		hb.DesiredVersion = ""
		ds, err = a.cfg.Coordinator.Heartbeat(ctx, hb)
		if err == nil && ds.Unchanged {
			err = fmt.Errorf("lifecycle: the coordinator omitted the desired documents (version %q) although none were held", ds.DesiredVersion)
		}
	}
	if err != nil {
		a.cfg.Metrics.Heartbeats.WithLabelValues("error").Inc()
		return nil, err
	}
	a.cfg.Metrics.Heartbeats.WithLabelValues("ok").Inc()
	if ds.Unchanged {
		merged := *ds
		merged.Release, merged.Policies = prev.Release, prev.Policies
		ds = &merged
	}
	a.SetDesired(ds)
	if a.cfg.OnDesired != nil {
		a.cfg.OnDesired(ctx, ds)
	}
	return ds, nil
}

// heartbeatLoop sends heartbeats every interval (the coordinator's, else
// the configured one), jittered ±10 %. A failure backs off exponentially
// with full jitter, never sooner than the coordinator's Retry-After.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval
	bo := newErrorBackoff(a.cfg.ErrorBackoff, a.cfg.ErrorBackoffMax, a.cfg.Rand)
	for {
		ds, err := a.Heartbeat(ctx)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = max(bo.next(), client.RetryAfter(err))
			a.log.Warn("heartbeat failed", "err", err, "retry_in", wait)
		} else {
			bo.reset()
			if ds.HeartbeatIntervalSeconds > 0 {
				interval = time.Duration(ds.HeartbeatIntervalSeconds) * time.Second
			}
			wait = a.jitter(interval)
		}
		if a.cfg.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// renewLoop keeps a held slot's lease alive (the drain wait may outlast
// it): every RenewInterval jittered ±10 %, failures backing off
// exponentially with full jitter, and always before the lease runs out
// (half the time left at most). Losing the slot is noticed by the fencing
// renewal before the boot, which also refuses to boot on a renewal that
// failed.
func (a *Agent) renewLoop(ctx context.Context) {
	bo := newErrorBackoff(a.cfg.ErrorBackoff, a.cfg.ErrorBackoffMax, a.cfg.Rand)
	wait := a.beforeLease(a.jitter(a.cfg.RenewInterval))
	for {
		if a.cfg.Sleep(ctx, wait) != nil {
			return
		}
		wait = a.jitter(a.cfg.RenewInterval)
		sl := a.slot()
		if sl == nil {
			bo.reset()
			continue
		}
		lost, err := a.renew(ctx, sl, "")
		switch {
		case err == nil:
			bo.reset()
		case ctx.Err() != nil:
			return
		default:
			if !lost {
				wait = max(bo.next(), client.RetryAfter(err))
			}
			a.log.Warn("slot renewal failed", "lost", lost, "err", err)
		}
		wait = a.beforeLease(wait)
	}
}

// progress returns the phase and the number of releases done, without
// copying the journal.
func (a *Agent) progress() (string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.j.Phase, len(a.j.Done)
}

// slot returns a copy of the held slot, or nil.
func (a *Agent) slot() *journal.Slot {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.j.Slot == nil {
		return nil
	}
	sl := *a.j.Slot
	return &sl
}
