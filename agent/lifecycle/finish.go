package lifecycle

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// release gives the slot back; a slot the coordinator no longer has counts
// as released.
func (a *Agent) release(ctx context.Context, j *journal.Journal, reason string) error {
	if j.Slot == nil {
		return nil
	}
	req := a.slotRequest(j.Slot.Token, "")
	req.Reason = reason
	err := a.cfg.Coordinator.AgentRelease(ctx, req)
	if err != nil {
		switch client.ErrorKind(err) {
		case wire.KindStaleToken, wire.KindNotHolder:
		default:
			return fmt.Errorf("lifecycle: release slot: %w", err)
		}
	}
	return a.save(func(n *journal.Journal) { n.Slot = nil })
}

// restore re-adds the withdrawn routes.
func (a *Agent) restore(ctx context.Context, j *journal.Journal) error {
	if !j.Withdrawn && j.Routes == nil {
		return nil
	}
	if a.cfg.Routes != nil && len(j.Routes) > 0 {
		if err := a.cfg.Routes.Restore(ctx, j.Routes); err != nil {
			return fmt.Errorf("lifecycle: restore anycast routes: %w", err)
		}
		a.log.Info("anycast routes restored", "routes", len(j.Routes))
	}
	return a.save(func(n *journal.Journal) { n.Routes, n.Withdrawn = nil, false })
}

// stepHealthy reports healthy, restores the routes, releases the slot and
// returns to idle; each part is journaled, so a restart does not repeat
// what was done.
func (a *Agent) stepHealthy(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	kernel := ""
	if lb := j.LastBoot(); lb != nil {
		kernel = lb.Into
	}
	// The verified kernel becomes the boot loader's default (before the
	// report, which tells when that failed).
	if done, wait, err := a.defaultAfterHealthy(ctx, j, kernel); !done || err != nil {
		return wait, err
	}
	j = a.Journal()
	if j.Health != reportedMark {
		if err := a.report(ctx, j, true, kernel, j.Health); err != nil {
			return a.cfg.RetryInterval, err
		}
		if err := a.save(func(n *journal.Journal) { n.Health = reportedMark }); err != nil {
			return 0, err
		}
	}
	if err := a.restore(ctx, a.Journal()); err != nil {
		return a.cfg.RetryInterval, err
	}
	if err := a.release(ctx, a.Journal(), ""); err != nil {
		return a.cfg.RetryInterval, err
	}
	outcome := "healthy"
	if lb := j.LastBoot(); lb != nil && lb.Method == string(boot.MethodDryRun) {
		outcome = "dry-run"
	}
	a.log.Info("release rolled out", "release", targetID(j), "kernel", kernel, "outcome", outcome)
	return 0, a.save(func(n *journal.Journal) { a.finish(n, outcome) })
}

// finish records the outcome of the target and returns to idle.
func (a *Agent) finish(n *journal.Journal, outcome string) {
	if n.Done == nil {
		n.Done = map[string]string{}
	}
	if n.Target != nil {
		n.Done[n.Target.ID] = outcome
	}
	n.Target, n.Staged, n.Boots, n.Previous, n.Policies = nil, nil, nil, nil, nil
	n.Rollback, n.KexecFailed, n.Error, n.ReportedUnhealthy = false, false, "", false
	n.LoaderDefault = ""
	n.Phase = wire.PhaseIdle
}

// fail reports the failure, releases the slot and stays out of service:
// routes stay withdrawn until an operator resets the agent.
func (a *Agent) fail(ctx context.Context, j *journal.Journal, why string) error {
	if _, err := a.forgetUnbooted(ctx, j); err != nil {
		// The host stays out of service either way; the operator is told.
		why += "; the record of a boot that did not happen stays, its one-shot boot entry not cleared: " + err.Error()
	}
	a.log.Error("upgrade failed; staying out of service for an operator", "release", targetID(j), "why", why)
	if err := a.save(func(n *journal.Journal) { n.Error, n.Phase = why, wire.PhaseFailed }); err != nil {
		return err
	}
	return nil
}

// stepFailed finishes the failure (report, slot release) once and then
// waits for an operator's reset.
func (a *Agent) stepFailed(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if j.Target != nil {
		if !j.ReportedUnhealthy {
			if err := a.report(ctx, j, false, "", j.Error); err != nil {
				return a.cfg.RetryInterval, err
			}
		}
		if err := a.release(ctx, j, "upgrade failed: "+truncate(j.Error, 200)); err != nil {
			return a.cfg.RetryInterval, err
		}
		return 0, a.save(func(n *journal.Journal) {
			if n.Done == nil {
				n.Done = map[string]string{}
			}
			n.Done[n.Target.ID] = "failed: " + truncate(n.Error, 200)
			n.Target, n.Staged = nil, nil
		})
	}
	if a.cfg.ResetFile != "" {
		if _, err := os.Stat(a.cfg.ResetFile); err == nil {
			a.log.Warn("operator reset: returning to service")
			if err := a.restore(ctx, j); err != nil {
				return a.cfg.RetryInterval, err
			}
			if err := a.save(func(n *journal.Journal) {
				n.Boots, n.Previous, n.Rollback, n.KexecFailed, n.Error = nil, nil, false, false, ""
				n.ReportedUnhealthy = false
				// The operator fixed what failed: the release may be
				// tried again (a rollout wave waits for this host).
				for id, outcome := range n.Done {
					if strings.HasPrefix(outcome, "failed") {
						delete(n.Done, id)
					}
				}
				n.Phase = wire.PhaseIdle
			}); err != nil {
				return 0, err
			}
			return 0, os.Remove(a.cfg.ResetFile)
		}
	}
	return a.cfg.HeartbeatInterval, nil
}

// stepGiveBack restores the routes, releases the slot and moves to phase
// next (used when the drain deadline passed or the slot was lost before
// the boot).
func (a *Agent) stepGiveBack(ctx context.Context, j *journal.Journal, next string) (time.Duration, error) {
	return a.giveBack(ctx, j, next, j.Error)
}

// giveBack is stepGiveBack with the reason reported to the coordinator.
func (a *Agent) giveBack(ctx context.Context, j *journal.Journal, next, reason string) (time.Duration, error) {
	// A boot attempt that never happened must not leave its one-shot
	// entry behind when the host returns to service.
	j, err := a.forgetUnbooted(ctx, j)
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	if err := a.restore(ctx, j); err != nil {
		return a.cfg.RetryInterval, err
	}
	if err := a.release(ctx, a.Journal(), reason); err != nil {
		// Keep the slot in the journal: acquiring again returns it while
		// the coordinator still has it, and its lease runs out otherwise.
		a.log.Warn("could not give the slot back", "err", err)
	}
	return a.cfg.RetryInterval, a.save(func(n *journal.Journal) {
		n.Previous, n.Policies, n.Phase = nil, nil, next
		if reason != "" {
			n.Error = reason
		}
	})
}
