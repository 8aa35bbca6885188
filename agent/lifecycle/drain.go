package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (a *Agent) stepDraining(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if !j.Withdrawn && j.Routes == nil {
		if refused, wait, err := a.guard(ctx, j); refused {
			return wait, err
		}
	}
	if a.cfg.Routes != nil && !j.Withdrawn {
		if j.Routes == nil {
			// Journal what is about to be withdrawn first: a crash between
			// the withdrawal and the next write must not lose routes.
			rs, err := a.cfg.Routes.List(ctx)
			if err != nil {
				return a.cfg.RetryInterval, fmt.Errorf("lifecycle: list anycast routes: %w", err)
			}
			if rs == nil {
				rs = []anycast.Route{}
			}
			return 0, a.save(func(n *journal.Journal) { n.Routes = rs })
		}
		removed, err := a.cfg.Routes.Withdraw(ctx)
		if err != nil {
			return a.cfg.RetryInterval, fmt.Errorf("lifecycle: withdraw anycast routes: %w", err)
		}
		a.log.Info("anycast routes withdrawn", "routes", len(removed))
		return 0, a.save(func(n *journal.Journal) {
			n.Routes = mergeRoutes(n.Routes, removed)
			n.Withdrawn = true
		})
	}
	if a.cfg.Drainer != nil {
		left := a.cfg.Drain.Deadline - a.cfg.Now().Sub(j.PhaseSince)
		if left > 0 {
			res, err := a.cfg.Drainer.Wait(ctx, a.cfg.Drain.Threshold, left, a.cfg.Drain.Poll)
			if err != nil {
				return a.cfg.RetryInterval, fmt.Errorf("lifecycle: drain: %w", err)
			}
			a.cfg.Metrics.DrainConnections.Set(float64(res.Count))
			if !res.Drained {
				if a.cfg.Drain.AbortOnTimeout {
					a.log.Warn("drain deadline passed; giving the slot back", "connections", res.Count)
					return 0, a.save(func(n *journal.Journal) {
						n.Phase, n.Error = wire.PhaseDrainTimeout, fmt.Sprintf("%d connections left at the drain deadline", res.Count)
					})
				}
				a.log.Warn("drain deadline passed; proceeding", "connections", res.Count, "elapsed", res.Elapsed)
			} else {
				a.log.Info("drained", "connections", res.Count, "elapsed", res.Elapsed)
			}
		}
	}
	prev, err := a.currentKernel()
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	inForce, err := a.policiesInForce(ctx)
	if err != nil {
		// Without knowing what must be in force after the boot, do not
		// boot; and do not stay out of service holding the slot either.
		fails := j.Failures + 1
		if fails >= maxPolicyListFailures {
			a.log.Warn("cannot list the mitigations in force; giving the slot back", "attempts", fails, "err", err)
			return a.giveBack(ctx, j, wire.PhaseStaged, "mitigations in force unknown before the boot: "+truncate(err.Error(), 200))
		}
		if serr := a.save(func(n *journal.Journal) { n.Failures = fails }); serr != nil {
			return 0, serr
		}
		return a.cfg.RetryInterval, err
	}
	return 0, a.save(func(n *journal.Journal) {
		if n.Previous == nil {
			n.Previous = prev
			n.Policies = inForce
		}
		n.Phase = wire.PhaseRebooting
	})
}

// mergeRoutes returns the routes of a and b without duplicates.
func mergeRoutes(a, b []anycast.Route) []anycast.Route {
	out := append([]anycast.Route{}, a...)
	for _, r := range b {
		dup := false
		for _, o := range out {
			if o.String() == r.String() {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}

// currentKernel describes the running kernel as the rollback target.
func (a *Agent) currentKernel() (*journal.Kernel, error) {
	rel, err := a.kernelRelease()
	if err != nil {
		return nil, err
	}
	id, err := a.cfg.Kernel.BootID()
	if err != nil {
		return nil, fmt.Errorf("lifecycle: boot id: %w", err)
	}
	cmdline, err := a.cfg.Booter.Cmdline()
	if err != nil {
		return nil, fmt.Errorf("lifecycle: command line: %w", err)
	}
	k := &journal.Kernel{Release: rel, BootID: id, Cmdline: cmdline, Vmlinuz: filepath.Join(a.cfg.BootDir, "vmlinuz-"+rel)}
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		k.Vmlinuz = ""
	}
	k.Initrd = a.initrdFor(rel)
	return k, nil
}
