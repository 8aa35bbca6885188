package lifecycle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (a *Agent) stepStaging(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(j, "target changed before staging")
	}
	start := a.cfg.Now()
	st, err := a.cfg.Stager.Stage(ctx, j.Target.Manifest, j.Target.Signature)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fails := j.Failures + 1
		a.log.Warn("staging failed", "release", j.Target.ID, "attempt", fails, "err", err)
		a.cfg.Metrics.StageFailures.Inc()
		return a.backoff(fails), a.save(func(n *journal.Journal) {
			n.Phase, n.Error = wire.PhaseStagingFailed, err.Error()
			n.Failures = fails
		})
	}
	a.cfg.Metrics.StageSeconds.Observe(a.cfg.Now().Sub(start).Seconds())
	initrd := st.Initrd
	if initrd == "" {
		initrd = a.initrdFor(st.KernelRelease)
	}
	return 0, a.save(func(n *journal.Journal) {
		n.Staged = &journal.Staged{Vmlinuz: st.Vmlinuz, Initrd: initrd, KernelRelease: st.KernelRelease}
		n.Error = ""
		n.Phase = wire.PhaseStaged
	})
}

// initrdFor finds the initrd for a kernel release: the configured one, or
// BootDir/initrd.img-<release> when it exists.
func (a *Agent) initrdFor(rel string) string {
	if a.cfg.Initrd != "" {
		return strings.ReplaceAll(a.cfg.Initrd, "{release}", rel)
	}
	p := filepath.Join(a.cfg.BootDir, "initrd.img-"+rel)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}
