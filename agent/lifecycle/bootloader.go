package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/pkg/kcmdline"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// BootLoader chooses what a cold boot starts, by kernel release
// (bootloader.Loader). Errors wrapping bootloader.ErrUnmanaged say the
// boot loader is not managed; Check then tells whether the operator chose
// that ([boot] loader = "none": nil) or no boot loader was found (an
// error: a full reboot into a new kernel is refused).
type BootLoader interface {
	Check(ctx context.Context) error
	Default(ctx context.Context) (string, error)
	SetOneShot(ctx context.Context, release string) error
	SetDefault(ctx context.Context, release string) error
}

// maxLoaderFailures bounds the attempts to make the verified kernel the
// default entry before the host returns to service without it.
const maxLoaderFailures = 3

// targetManifest decodes the journaled manifest of the target (verified
// when it was accepted).
func targetManifest(j *journal.Journal) (release.Manifest, error) {
	if j.Target == nil {
		return release.Manifest{}, errors.New("lifecycle: no target release")
	}
	m, err := release.Decode(j.Target.Manifest)
	if err != nil {
		return release.Manifest{}, fmt.Errorf("lifecycle: journaled manifest of %s: %w", j.Target.ID, err)
	}
	return m, nil
}

// bpfLSMActive reports whether the bpf LSM is in force in the running
// kernel (Config.LSMFile, /sys/kernel/security/lsm).
func (a *Agent) bpfLSMActive() (bool, error) {
	raw, err := os.ReadFile(a.cfg.LSMFile)
	if err != nil {
		return false, fmt.Errorf("lifecycle: active LSMs: %w", err)
	}
	return slices.Contains(strings.Split(strings.TrimSpace(string(raw)), ","), "bpf"), nil
}

// cmdlineRefusal returns why this host cannot take release m's kernel
// command line changes ("" when it can), or an error when the host could
// not be read: a release that drops the bpf LSM while it is in force (the
// mitigations depend on it), or command line changes on a host that boots
// only by full reboot (the boot loader's command line applies there).
func (a *Agent) cmdlineRefusal(m release.Manifest) (string, error) {
	if len(m.CmdlineAdd) == 0 && len(m.CmdlineRemove) == 0 {
		return "", nil
	}
	if a.cfg.Booter.Mode() == boot.ModeReboot {
		return fmt.Sprintf("the release changes the kernel command line (add %q, remove %q), which only a kexec applies; this host boots by full reboot ([boot] mode = \"reboot\"), where the boot loader's command line is used", m.CmdlineAdd, m.CmdlineRemove), nil
	}
	if !kcmdline.TouchesLSM(m.CmdlineAdd, m.CmdlineRemove) {
		return "", nil
	}
	active, err := a.bpfLSMActive()
	if err != nil {
		return "", err
	}
	cmdline, err := a.cfg.Booter.Cmdline()
	if err != nil {
		return "", fmt.Errorf("lifecycle: command line: %w", err)
	}
	if err := kcmdline.KeepsBPF(cmdline, m.CmdlineAdd, m.CmdlineRemove, active); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

// bootReady checks, before the host asks for a slot, that the target can
// be booted as intended: its initrd is there (unless the release boots
// without one), and the boot loader's next cold boot is the running
// kernel (a kernel package's hooks may have made the new kernel the
// default: it is set back). An error says why not; nothing is booted.
func (a *Agent) bootReady(ctx context.Context, j *journal.Journal) error {
	m, err := targetManifest(j)
	if err != nil {
		return err
	}
	if j.Staged == nil {
		return errors.New("lifecycle: nothing staged")
	}
	if !m.NoInitrd {
		if j.Staged.Initrd == "" {
			return fmt.Errorf("lifecycle: no initrd for kernel %s (none staged or installed, no %s/initrd.img-%s) and the release does not say it boots without one (no_initrd)", j.Staged.KernelRelease, a.cfg.BootDir, j.Staged.KernelRelease)
		}
		if _, err := os.Stat(j.Staged.Initrd); err != nil {
			return fmt.Errorf("lifecycle: initrd of kernel %s: %w", j.Staged.KernelRelease, err)
		}
	}
	running, err := a.kernelRelease()
	if err != nil {
		return err
	}
	return a.pinDefault(ctx, running, "before asking for a slot")
}

// pinDefault makes the boot loader's next cold boot start release, and
// checks it. A boot loader that is not managed changes nothing.
func (a *Agent) pinDefault(ctx context.Context, rel, when string) error {
	l := a.cfg.BootLoader
	cur, err := l.Default(ctx)
	if errors.Is(err, bootloader.ErrUnmanaged) {
		return nil
	}
	if err == nil && cur == rel {
		return nil
	}
	if cerr := l.Check(ctx); cerr != nil {
		return fmt.Errorf("lifecycle: the boot loader cannot be set to start %s %s: %w", rel, when, cerr)
	}
	a.log.Warn("the boot loader's next boot is not "+rel+"; setting it back", "when", when, "next_boot", cur, "err", err)
	if err := l.SetDefault(ctx, rel); err != nil {
		return fmt.Errorf("lifecycle: make %s the boot loader's default %s: %w", rel, when, err)
	}
	if cur, err = l.Default(ctx); err != nil || cur != rel {
		return fmt.Errorf("lifecycle: the boot loader's next boot is %q, not %s, after setting it %s (%v)", cur, rel, when, err)
	}
	return nil
}

// effectiveMethod is the method Booter.Boot will use for m.
func (a *Agent) effectiveMethod(m boot.Method) boot.Method {
	switch a.cfg.Booter.Mode() {
	case boot.ModeDryRun:
		return boot.MethodDryRun
	case boot.ModeReboot:
		return boot.MethodReboot
	}
	return m
}

// prepareColdBoot readies the boot loader before a full reboot: a
// one-shot entry for the target, or the previous kernel as the default
// for a rollback. refuse is set (with the error) when the reboot must not
// happen; other errors may pass on a retry.
func (a *Agent) prepareColdBoot(ctx context.Context, j *journal.Journal, into string) (refuse bool, err error) {
	l := a.cfg.BootLoader
	if j.Rollback {
		if j.Previous == nil {
			return true, errors.New("rollback impossible: the previous kernel is unknown")
		}
		err := a.pinDefault(ctx, j.Previous.Release, "before the rollback reboot")
		if err == nil {
			if _, derr := l.Default(ctx); errors.Is(derr, bootloader.ErrUnmanaged) {
				if cerr := l.Check(ctx); cerr != nil {
					return true, fmt.Errorf("full reboot back to %s refused: %w", into, cerr)
				}
				a.log.Warn("boot loader not managed ([boot] loader = \"none\"): the rollback reboot starts whatever the boot loader defaults to", "into", into)
			}
		}
		return err != nil, err
	}
	m, err := targetManifest(j)
	if err != nil {
		return true, err
	}
	if len(m.CmdlineAdd) > 0 || len(m.CmdlineRemove) > 0 {
		return true, fmt.Errorf("full reboot into %s refused: the release changes the kernel command line (add %q, remove %q), which only a kexec applies", into, m.CmdlineAdd, m.CmdlineRemove)
	}
	err = l.SetOneShot(ctx, into)
	if errors.Is(err, bootloader.ErrUnmanaged) {
		if cerr := l.Check(ctx); cerr != nil {
			return true, fmt.Errorf("full reboot into %s refused: %w", into, cerr)
		}
		a.log.Warn("boot loader not managed ([boot] loader = \"none\"): the full reboot starts whatever the boot loader defaults to, which may not be "+into, "into", into)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lifecycle: one-shot boot entry for %s: %w", into, err)
	}
	a.log.Info("boot loader: the next boot, and only that one, starts the target", "into", into)
	return false, nil
}

// refuseBoot stops a boot that must not happen. Before any boot of the
// target the host returns to service on its kernel and the release is
// recorded as refused; after one (the host may not run its previous
// kernel) it fails for an operator.
func (a *Agent) refuseBoot(ctx context.Context, j *journal.Journal, why string) (time.Duration, error) {
	if len(j.Boots) > 0 || j.Rollback {
		return 0, a.fail(ctx, j, why)
	}
	a.log.Error("boot refused; returning to service on the running kernel", "release", targetID(j), "why", why)
	wait, err := a.giveBack(ctx, j, wire.PhaseIdle, "boot refused: "+truncate(why, 200))
	if err != nil {
		return wait, err
	}
	return 0, a.save(func(n *journal.Journal) { a.finish(n, "refused: "+why) })
}

// defaultAfterHealthy makes the verified kernel the boot loader's default
// (journaled in LoaderDefault). A failure is retried a few times, then the
// host returns to service without it (its next cold boot starts the
// previous kernel) and the failure is reported. done is false while a
// retry is due after wait.
func (a *Agent) defaultAfterHealthy(ctx context.Context, j *journal.Journal, kernel string) (done bool, wait time.Duration, err error) {
	if j.LoaderDefault == kernel || kernel == "" {
		return true, 0, nil
	}
	if lb := j.LastBoot(); lb != nil && lb.Method == string(boot.MethodDryRun) {
		return true, 0, nil
	}
	serr := a.cfg.BootLoader.SetDefault(ctx, kernel)
	if errors.Is(serr, bootloader.ErrUnmanaged) {
		a.log.Warn("boot loader not managed: the next cold boot starts whatever the boot loader defaults to, which may not be "+kernel, "err", serr)
		return true, 0, a.save(func(n *journal.Journal) { n.LoaderDefault = kernel })
	}
	if serr == nil {
		a.log.Info("boot loader: the verified kernel is the default", "kernel", kernel)
		return true, 0, a.save(func(n *journal.Journal) { n.LoaderDefault = kernel })
	}
	fails := j.Failures + 1
	why := "boot loader default not set to " + kernel + ": " + serr.Error()
	a.log.Error("cannot make the verified kernel the boot loader's default", "kernel", kernel, "attempt", fails, "err", serr)
	if fails >= maxLoaderFailures {
		// The host is healthy: back to service; its next cold boot
		// starts the previous kernel, and the next rollout refuses to
		// start before the boot loader's default is the running kernel.
		if err := a.save(func(n *journal.Journal) { n.Error = why; n.Health = n.Health + "; " + why }); err != nil {
			return false, 0, err
		}
		return true, 0, nil
	}
	if err := a.save(func(n *journal.Journal) { n.Failures, n.Error = fails, why }); err != nil {
		return false, 0, err
	}
	return false, a.backoff(fails), nil
}
