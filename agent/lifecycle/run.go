package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
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
			a.log.Warn("step failed", "phase", a.Phase(), "err", err)
			if wait == 0 {
				wait = a.cfg.RetryInterval
			}
		}
		if wait == 0 {
			continue
		}
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

// Heartbeat sends one heartbeat and records the desired state.
func (a *Agent) Heartbeat(ctx context.Context) (*wire.DesiredState, error) {
	hb := wire.Heartbeat{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, KernelLine: a.cfg.KernelLine, Phase: a.Phase(), GossipAddr: a.cfg.GossipAddr}
	hb.Kernel, _ = a.kernelRelease()
	hb.BootID, _ = a.cfg.Booter.BootID()
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
	ds, err := a.cfg.Coordinator.Heartbeat(ctx, hb)
	if err != nil {
		a.cfg.Metrics.Heartbeats.WithLabelValues("error").Inc()
		return nil, err
	}
	a.cfg.Metrics.Heartbeats.WithLabelValues("ok").Inc()
	a.SetDesired(ds)
	if a.cfg.OnDesired != nil {
		a.cfg.OnDesired(ctx, ds)
	}
	return ds, nil
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	for {
		interval := a.cfg.HeartbeatInterval
		ds, err := a.Heartbeat(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("heartbeat failed", "err", err)
		} else if ds.HeartbeatIntervalSeconds > 0 {
			interval = time.Duration(ds.HeartbeatIntervalSeconds) * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// renewLoop keeps a held slot's lease alive (the drain wait may outlast
// it). Losing the slot is noticed by the fencing renewal before the boot.
func (a *Agent) renewLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.cfg.RenewInterval):
		}
		sl := a.slot()
		if sl == nil {
			continue
		}
		if lost, err := a.renew(ctx, sl); err != nil && ctx.Err() == nil {
			a.log.Warn("slot renewal failed", "lost", lost, "err", err)
		}
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
