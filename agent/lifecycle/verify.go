package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// maxPolicyListFailures bounds the attempts to list the mitigations in
// force before the boot; then the slot is given back.
const maxPolicyListFailures = 3

// policiesInForce lists the ids of the policies enforcing or auditing:
// what is pinned (Config.PinnedPolicies), without changing it.
func (a *Agent) policiesInForce(ctx context.Context) ([]string, error) {
	list := a.cfg.PinnedPolicies
	if list == nil {
		list = a.cfg.Policies
	}
	if list == nil {
		return nil, nil
	}
	ps, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: list mitigations: %w", err)
	}
	var ids []string
	for _, p := range ps {
		if p.State.InForce() {
			ids = append(ids, p.ID)
		}
	}
	return ids, nil
}

// expectedPolicies are the policies in force before the boot that the
// running kernel has not retired (a kernel containing the fix retires its
// stopgap).
func (a *Agent) expectedPolicies(ctx context.Context, before []string) []string {
	if a.cfg.Policies == nil || len(before) == 0 {
		return before
	}
	ps, err := a.cfg.Policies(ctx)
	if err != nil && len(ps) == 0 {
		return before // the check itself reports the failure
	}
	retired := map[string]bool{}
	for _, p := range ps {
		if p.State == wire.PolicyRetired {
			retired[p.ID] = true
		}
	}
	var out []string
	for _, id := range before {
		if !retired[id] {
			out = append(out, id)
		}
	}
	return out
}

func (a *Agent) stepVerifying(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	lb := j.LastBoot()
	if lb == nil || !lb.Completed {
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseRebooting })
	}
	if j.Slot != nil {
		if _, err := a.renew(ctx, j.Slot, ""); err != nil {
			a.log.Warn("slot renewal after boot failed", "err", err)
		}
	}
	want := health.Expect{KernelRelease: lb.Into, PreviousBootID: lb.BootIDBefore}
	if !lb.Rollback && j.Target != nil {
		want.UpstreamVersion = j.Target.UpstreamVersion
	}
	if lb.Method == string(boot.MethodDryRun) {
		rel, err := a.kernelRelease()
		if err != nil {
			return a.cfg.RetryInterval, err
		}
		want = health.Expect{KernelRelease: rel}
	}
	// Policies that were in force before must be again.
	want.Policies = a.expectedPolicies(ctx, j.Policies)
	res, err := a.cfg.Verifier.Check(ctx, want)
	if err != nil {
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: health check: %w", err)
	}
	summary := res.Summary()
	a.log.Info("health", "healthy", res.Healthy, "summary", summary, "rollback", j.Rollback)
	wrongKernel := false
	for _, c := range res.Checks {
		if c.Name == "kernel" && !c.OK {
			wrongKernel = true
		}
	}
	switch {
	case res.Healthy && !j.Rollback:
		return 0, a.save(func(n *journal.Journal) { n.Health, n.Phase = summary, wire.PhaseHealthy })
	case res.Healthy && j.Rollback:
		return 0, a.fail(ctx, j, "rolled back to "+lb.Into+" after: "+j.Health)
	case wrongKernel && !j.Rollback && lb.Method == string(boot.MethodKexec) && !j.KexecFailed:
		a.log.Warn("kexec did not bring up the staged kernel; next attempt uses a full reboot", "summary", summary)
		return 0, a.save(func(n *journal.Journal) {
			n.KexecFailed, n.Health, n.Phase = true, summary, wire.PhaseRebooting
		})
	case !j.Rollback:
		if err := a.save(func(n *journal.Journal) {
			n.Health = summary
			if wrongKernel {
				n.Phase = wire.PhaseWrongKernel
			} else {
				n.Phase = wire.PhaseUnhealthy
			}
		}); err != nil {
			return 0, err
		}
		if err := a.report(ctx, j, false, lb.Into, summary); err != nil {
			return a.cfg.RetryInterval, err
		}
		return 0, a.save(func(n *journal.Journal) { n.ReportedUnhealthy, n.Phase = true, wire.PhaseRollback })
	default:
		return 0, a.fail(ctx, j, "rollback to "+lb.Into+" is unhealthy too: "+summary)
	}
}

// report sends a health report; a slot the coordinator no longer knows
// does not stop the report.
func (a *Agent) report(ctx context.Context, j *journal.Journal, healthy bool, kernel, detail string) error {
	rep := wire.HealthReport{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, Healthy: healthy, Kernel: kernel, Detail: truncate(detail, 1000)}
	if j.Slot != nil {
		rep.Token = j.Slot.Token
	}
	err := a.cfg.Coordinator.ReportHealth(ctx, rep)
	if err != nil && rep.Token != 0 && client.ErrorKind(err) == wire.KindStaleToken {
		rep.Token = 0
		err = a.cfg.Coordinator.ReportHealth(ctx, rep)
	}
	if err != nil {
		return fmt.Errorf("lifecycle: health report: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
