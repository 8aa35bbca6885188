// Package bootloader makes a cold reboot land on a chosen kernel: it reads
// and sets the boot loader's default entry and its one-shot entry (the
// entry started by the next boot only), by kernel release.
//
// Implementations: GRUB as Debian configures it (grub-reboot,
// grub-set-default, grub-editenv, entries read from grub.cfg), systemd-boot
// (bootctl), and None for hosts where the agent does not manage the boot
// loader. New picks one for a Kind; KindAuto detects it.
//
// The agent never makes a new kernel the default before it is verified
// healthy: before a full reboot into a target it sets a one-shot entry, so
// a target that does not come up leaves the next boot to the previous
// kernel, and only after the health check passes it sets the default.
package bootloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kind names a boot loader, as the agent's [boot] loader setting does.
type Kind string

// Boot loader kinds.
const (
	// KindAuto detects the boot loader: GRUB when /boot/grub/grub.cfg and
	// grub-reboot exist, systemd-boot when `bootctl is-installed`
	// succeeds, else none (and then a full reboot into a new kernel is
	// refused).
	KindAuto Kind = "auto"
	// KindGRUB is GRUB 2 as Debian installs it.
	KindGRUB Kind = "grub"
	// KindSystemdBoot is systemd-boot, managed with bootctl.
	KindSystemdBoot Kind = "systemd-boot"
	// KindNone is the operator's explicit choice not to manage the boot
	// loader: a full reboot boots whatever the firmware and boot loader
	// default to.
	KindNone Kind = "none"
)

// ParseKind returns the Kind named s ("" is KindAuto).
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case "":
		return KindAuto, nil
	case KindAuto, KindGRUB, KindSystemdBoot, KindNone:
		return k, nil
	}
	return "", fmt.Errorf("bootloader: unknown boot loader %q (want %q, %q, %q or %q)", s, KindAuto, KindGRUB, KindSystemdBoot, KindNone)
}

// ErrUnmanaged is wrapped by the errors of a Loader that does not manage
// the boot loader (None): the caller cannot choose what a cold boot
// starts.
var ErrUnmanaged = errors.New("the boot loader is not managed by the agent")

// Loader reads and sets the boot entries of one boot loader by kernel
// release (uname -r). Its methods are safe for concurrent use but the
// boot loader's state is the host's: callers serialize their changes.
type Loader interface {
	// Kind is the boot loader managed.
	Kind() Kind
	// Check returns nil when the boot loader is set up so that one-shot
	// and default entries work, or an error saying what to change.
	Check(ctx context.Context) error
	// Default returns the kernel release the next cold boot starts: the
	// pending one-shot entry if there is one, else the default entry.
	Default(ctx context.Context) (string, error)
	// SetOneShot makes the next cold boot, and only that one, start the
	// kernel release.
	SetOneShot(ctx context.Context, release string) error
	// SetDefault makes release the default entry (and drops a pending
	// one-shot entry).
	SetDefault(ctx context.Context, release string) error
}

// Runner runs a command and returns its combined output.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec, in the C locale, bounded by
// CommandTimeout.
type ExecRunner struct{}

// CommandTimeout bounds one boot loader command.
const CommandTimeout = 2 * time.Minute

// maxOutput bounds the command output kept in errors.
const maxOutput = 2000

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// run runs a command and wraps a failure with the command and its output.
func run(ctx context.Context, r Runner, name string, args ...string) ([]byte, error) {
	out, err := r.Run(ctx, name, args...)
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > maxOutput {
			msg = msg[:maxOutput] + "…"
		}
		if msg != "" {
			return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// Config configures New.
type Config struct {
	// Kind is the boot loader; "" is KindAuto.
	Kind Kind
	// BootDir is the directory holding grub/grub.cfg and grub/grubenv;
	// "/boot" when empty. GRUB's tools get it as --boot-directory.
	BootDir string
	// EFIVarsDir is where efivarfs is mounted (systemd-boot's one-shot
	// entry); "/sys/firmware/efi/efivars" when empty.
	EFIVarsDir string
	// Runner runs the boot loader's tools; ExecRunner when nil.
	Runner Runner
	// LookPath finds a command (auto detection); exec.LookPath when nil.
	LookPath func(name string) (string, error)
	// Logger receives what the loader does; nothing is logged when nil.
	Logger *slog.Logger
}

// New returns the Loader of cfg.Kind. For KindAuto it detects the boot
// loader: GRUB when BootDir/grub/grub.cfg and grub-reboot exist,
// systemd-boot when `bootctl is-installed` succeeds, else a None whose
// Check fails (the agent cannot make a cold reboot land on a chosen
// kernel; kexec still works).
func New(ctx context.Context, cfg Config) (Loader, error) {
	kind, err := ParseKind(string(cfg.Kind))
	if err != nil {
		return nil, err
	}
	if cfg.BootDir == "" {
		cfg.BootDir = "/boot"
	}
	if !filepath.IsAbs(cfg.BootDir) {
		return nil, fmt.Errorf("bootloader: boot directory %q is not an absolute path", cfg.BootDir)
	}
	if cfg.EFIVarsDir == "" {
		cfg.EFIVarsDir = "/sys/firmware/efi/efivars"
	}
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.LookPath == nil {
		cfg.LookPath = exec.LookPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch kind {
	case KindGRUB:
		return newGRUB(cfg), nil
	case KindSystemdBoot:
		return newSystemdBoot(cfg), nil
	case KindNone:
		cfg.Logger.Warn("boot loader not managed ([boot] loader = \"none\"): a full reboot starts whatever the firmware and boot loader default to, which may not be the kernel kroll means to boot")
		return None{Explicit: true}, nil
	}
	var why []string
	grubCfg := filepath.Join(cfg.BootDir, "grub", "grub.cfg")
	_, cfgErr := os.Stat(grubCfg)
	_, toolErr := cfg.LookPath("grub-reboot")
	switch {
	case cfgErr == nil && toolErr == nil:
		cfg.Logger.Info("boot loader detected", "loader", KindGRUB, "config", grubCfg)
		return newGRUB(cfg), nil
	case cfgErr == nil:
		why = append(why, fmt.Sprintf("%s exists but grub-reboot is not installed (%v)", grubCfg, toolErr))
	default:
		why = append(why, fmt.Sprintf("no GRUB configuration (%v)", cfgErr))
	}
	if _, err := cfg.LookPath("bootctl"); err != nil {
		why = append(why, "no bootctl")
	} else if _, err := run(ctx, cfg.Runner, "bootctl", "is-installed"); err != nil {
		why = append(why, fmt.Sprintf("systemd-boot is not installed (%v)", err))
	} else {
		cfg.Logger.Info("boot loader detected", "loader", KindSystemdBoot)
		return newSystemdBoot(cfg), nil
	}
	reason := "no supported boot loader found: " + strings.Join(why, "; ")
	cfg.Logger.Warn("boot loader not managed: a full reboot into a new kernel will be refused (kexec still works); set [boot] loader to say which", "why", reason)
	return None{Reason: reason}, nil
}

// None is a boot loader the agent does not manage. Default, SetOneShot
// and SetDefault return errors wrapping ErrUnmanaged. Check succeeds when
// the operator chose it (Explicit): a full reboot then boots whatever the
// boot loader defaults to; otherwise (none detected) Check fails with
// Reason, and the agent refuses a full reboot into a new kernel.
type None struct {
	// Explicit is set when the operator configured [boot] loader = "none".
	Explicit bool
	// Reason says why no boot loader was detected.
	Reason string
}

// Kind implements Loader.
func (None) Kind() Kind { return KindNone }

// Check implements Loader.
func (n None) Check(context.Context) error {
	if n.Explicit {
		return nil
	}
	return fmt.Errorf("bootloader: %w: %s; the agent cannot make a full reboot land on the new kernel (set [boot] loader = \"grub\" or \"systemd-boot\", or \"none\" to accept whatever the boot loader starts)", ErrUnmanaged, n.Reason)
}

// Default implements Loader.
func (None) Default(context.Context) (string, error) {
	return "", fmt.Errorf("bootloader: default entry unknown: %w", ErrUnmanaged)
}

// SetOneShot implements Loader.
func (None) SetOneShot(_ context.Context, release string) error {
	return fmt.Errorf("bootloader: cannot set a one-shot entry for %s: %w", release, ErrUnmanaged)
}

// SetDefault implements Loader.
func (None) SetDefault(_ context.Context, release string) error {
	return fmt.Errorf("bootloader: cannot make %s the default: %w", release, ErrUnmanaged)
}
