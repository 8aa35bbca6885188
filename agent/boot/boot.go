// Package boot performs the agent's boot step: kexec or full reboot into a
// staged kernel, and tells boots apart by boot id.
//
// The boot step is real only when configured (ModeKexec or ModeReboot); the
// zero Config is ModeDryRun, which only logs what it would do. A kexec
// loads the image with kexec_file_load(2) and then lets systemd stop the
// system through kexec.target (over D-Bus) when systemd is PID 1, or calls
// reboot(LINUX_REBOOT_CMD_KEXEC) itself otherwise. A full reboot starts
// reboot.target, or calls reboot(LINUX_REBOOT_CMD_RESTART). Boot never
// falls back from kexec to a full reboot by itself: it reports
// ErrKexecUnavailable and leaves the decision to the caller.
package boot

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/kcmdline"
)

// Mode is the configured boot mode.
type Mode string

// Boot modes.
const (
	// ModeKexec boots staged kernels with kexec (the packaged default).
	ModeKexec Mode = "kexec"
	// ModeReboot always does a full reboot through the firmware and the
	// boot loader.
	ModeReboot Mode = "reboot"
	// ModeDryRun only logs what a boot would do (the default without
	// configuration).
	ModeDryRun Mode = "dry-run"
)

// Method is how a boot was (or would be) done.
type Method string

// Boot methods.
const (
	// MethodKexec is a kexec into the image.
	MethodKexec Method = "kexec"
	// MethodReboot is a full reboot.
	MethodReboot Method = "reboot"
	// MethodDryRun is a boot that was only logged.
	MethodDryRun Method = "dry-run"
)

// ErrKexecUnavailable is wrapped by errors saying that kexec cannot work on
// this host (kernel support, sysctl, lockdown, privileges, signature); the
// caller may then fall back to MethodReboot.
var ErrKexecUnavailable = errors.New("kexec unavailable")

// DefaultStripParams are the kernel command line parameters that belong to
// one boot only and are never carried over to the next kernel
// (kcmdline.OneShotParams: boot loader and kexec additions, one-shot
// targets, runlevels and debug breaks, kroll.oneshot). Names compare with
// '-' and '_' as equal, as the kernel and systemd do. Everything after "--"
// (arguments for init) is kept as it is.
func DefaultStripParams() []string { return kcmdline.OneShotParams() }

// Image is a kernel to boot.
type Image struct {
	// Kernel is the path of the vmlinuz to boot (kexec).
	Kernel string
	// Initrd is the path of the initrd; "" only with NoInitrd.
	Initrd string
	// NoInitrd says the kernel boots without an initrd: a kexec without
	// Initrd is refused unless it is set, so that a missing initrd is an
	// error rather than a boot that cannot mount its root.
	NoInitrd bool
	// Cmdline is the full command line; "" means the current one
	// (/proc/cmdline) minus one-shot parameters (see Booter.Cmdline).
	Cmdline string
}

// Config configures a Booter.
type Config struct {
	// Mode is the boot mode; "" means ModeDryRun.
	Mode Mode
	// ProcDir is where procfs is mounted; "/proc" when empty.
	ProcDir string
	// Kernel is the running kernel (its release and command line);
	// running.ProcFS{Dir: ProcDir} when nil.
	Kernel running.Kernel
	// SysDir is where sysfs is mounted; "/sys" when empty.
	SysDir string
	// StripParams are further one-shot parameter names removed from the
	// inherited command line, in addition to DefaultStripParams.
	StripParams []string
	// Logger receives what the Booter does; nothing is logged when nil.
	Logger *slog.Logger

	// runDir is where /run is (systemd detection); "/run" when empty.
	runDir string
	// bootDir holds config-<release> (kernel configuration); "/boot"
	// when empty.
	bootDir string
	// sys performs the privileged actions; the real system when nil.
	sys system
}

// Booter performs boot steps. Its methods are safe for concurrent use.
type Booter struct {
	mode    Mode
	procDir string
	kernel  running.Kernel
	sysDir  string
	runDir  string
	bootDir string
	strip   map[string]bool
	log     *slog.Logger
	sys     system
}

// New returns a Booter for cfg.
func New(cfg Config) (*Booter, error) {
	b := &Booter{
		mode:    cfg.Mode,
		procDir: orDefault(cfg.ProcDir, "/proc"),
		kernel:  cfg.Kernel,
		sysDir:  orDefault(cfg.SysDir, "/sys"),
		runDir:  orDefault(cfg.runDir, "/run"),
		bootDir: orDefault(cfg.bootDir, "/boot"),
		strip:   make(map[string]bool),
		log:     cfg.Logger,
		sys:     cfg.sys,
	}
	switch b.mode {
	case "":
		b.mode = ModeDryRun
	case ModeKexec, ModeReboot, ModeDryRun:
	default:
		return nil, fmt.Errorf("boot: unknown mode %q (want %q, %q or %q)", cfg.Mode, ModeKexec, ModeReboot, ModeDryRun)
	}
	for _, p := range append(DefaultStripParams(), cfg.StripParams...) {
		if p == "" || strings.ContainsAny(p, "= \t\n\"") {
			return nil, fmt.Errorf("boot: invalid parameter name %q in StripParams", p)
		}
		b.strip[kcmdline.Key(p)] = true
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.kernel == nil {
		b.kernel = running.ProcFS{Dir: b.procDir}
	}
	if b.sys == nil {
		b.sys = newSystem()
	}
	return b, nil
}

// Mode returns the effective boot mode.
func (b *Booter) Mode() Mode { return b.mode }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Cmdline returns the running kernel's command line (/proc/cmdline) minus
// one-shot parameters (DefaultStripParams and Config.StripParams): the
// command line a kexec passes on when the Image has none.
func (b *Booter) Cmdline() (string, error) {
	raw, err := b.kernel.Cmdline()
	if err != nil {
		return "", fmt.Errorf("boot: command line: %w", err)
	}
	return b.filterCmdline(raw), nil
}

// filterCmdline removes the one-shot parameters from cmdline.
func (b *Booter) filterCmdline(cmdline string) string {
	var kept []string
	initArgs := false
	for _, tok := range kcmdline.Split(cmdline) {
		if initArgs {
			kept = append(kept, tok)
			continue
		}
		if tok == "--" {
			initArgs = true
			kept = append(kept, tok)
			continue
		}
		if b.strip[kcmdline.Key(kcmdline.Name(tok))] {
			continue
		}
		kept = append(kept, tok)
	}
	return strings.Join(kept, " ")
}

// KexecSupported returns nil when kexec can work here as far as the
// system tells, or an error wrapping ErrKexecUnavailable saying why not:
// a kernel without kexec support, kexec loading switched off by sysctl,
// no CAP_SYS_BOOT, or kernel lockdown on a kernel that cannot verify
// kexec image signatures. Under lockdown with signature support only
// signed kernels load; that shows only when Boot loads the image.
func (b *Booter) KexecSupported() error {
	loaded := filepath.Join(b.sysDir, "kernel", "kexec_loaded")
	if _, err := os.Stat(loaded); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: the kernel has no kexec support (CONFIG_KEXEC_CORE off: %s is missing)", ErrKexecUnavailable, loaded)
	}
	if v, err := readTrim(filepath.Join(b.procDir, "sys", "kernel", "kexec_load_disabled")); err == nil && v == "1" {
		return fmt.Errorf("%w: kexec loading is disabled by sysctl kernel.kexec_load_disabled=1 (it cannot be re-enabled before the next boot)", ErrKexecUnavailable)
	}
	// Since Linux 6.3 the number of further loads can be limited.
	if v, err := readTrim(filepath.Join(b.procDir, "sys", "kernel", "kexec_load_limit_reboot")); err == nil && v == "0" {
		return fmt.Errorf("%w: no kexec loads left (sysctl kernel.kexec_load_limit_reboot=0)", ErrKexecUnavailable)
	}
	if ok, err := b.hasCapSysBoot(); err == nil && !ok {
		return fmt.Errorf("%w: the agent lacks CAP_SYS_BOOT", ErrKexecUnavailable)
	}
	if level, err := b.lockdown(); err == nil && level != "none" {
		cfg, err := b.kernelConfig()
		switch {
		case err != nil:
			b.log.Info("kernel lockdown is on: kexec will only load kernels with a valid signature", "lockdown", level)
		case cfg["CONFIG_KEXEC_SIG"] != "y" && cfg["CONFIG_IMA_APPRAISE"] != "y":
			return fmt.Errorf("%w: kernel lockdown %q refuses unsigned kexec images and this kernel cannot verify signatures (CONFIG_KEXEC_SIG off)", ErrKexecUnavailable, level)
		}
	}
	return nil
}

func readTrim(p string) (string, error) {
	raw, err := os.ReadFile(p)
	return strings.TrimSpace(string(raw)), err
}

// hasCapSysBoot reads CapEff of this process.
func (b *Booter) hasCapSysBoot() (bool, error) {
	f, err := os.Open(filepath.Join(b.procDir, "self", "status"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("boot: CapEff %q: %w", v, err)
			}
			const capSysBoot = 22
			return caps&(1<<capSysBoot) != 0, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, errors.New("boot: no CapEff in status")
}

// lockdown returns the active kernel lockdown level: "none",
// "integrity" or "confidentiality".
func (b *Booter) lockdown() (string, error) {
	v, err := readTrim(filepath.Join(b.sysDir, "kernel", "security", "lockdown"))
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(v) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]"), nil
		}
	}
	return "", fmt.Errorf("boot: no active level in lockdown %q", v)
}

// kernelConfig reads the running kernel's configuration from
// /proc/config.gz or /boot/config-<release>.
func (b *Booter) kernelConfig() (map[string]string, error) {
	var r io.Reader
	if f, err := os.Open(filepath.Join(b.procDir, "config.gz")); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = zr
	} else {
		release, err := b.kernel.Release()
		if err != nil {
			return nil, err
		}
		f, err := os.Open(filepath.Join(b.bootDir, "config-"+release))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	cfg := make(map[string]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			cfg[k] = v
		}
	}
	return cfg, sc.Err()
}

// systemdRuns reports whether systemd is PID 1 (as sd_booted(3) checks it,
// or by the name of PID 1).
func (b *Booter) systemdRuns() bool {
	if st, err := os.Stat(filepath.Join(b.runDir, "systemd", "system")); err == nil && st.IsDir() {
		return true
	}
	comm, err := readTrim(filepath.Join(b.procDir, "1", "comm"))
	return err == nil && comm == "systemd"
}

// Boot boots img with method m (MethodKexec or MethodReboot) and returns
// the method used.
//
// In ModeDryRun, or for MethodDryRun, it only logs what it would do and
// returns MethodDryRun. In ModeReboot a MethodKexec request becomes
// MethodReboot (img is then unused: the boot loader picks the kernel).
//
// MethodKexec loads img with kexec_file_load(2) (with
// KEXEC_FILE_NO_INITRAMFS when img.NoInitrd is set and img.Initrd is "";
// without an initrd and NoInitrd it refuses), then starts kexec.target
// through systemd's D-Bus API ("replace-irreversibly") when systemd is PID
// 1, or else syncs and calls reboot(LINUX_REBOOT_CMD_KEXEC). MethodReboot
// starts reboot.target, or syncs and calls
// reboot(LINUX_REBOOT_CMD_RESTART). On success Boot returns once the
// systemd job is queued (the caller then waits for the system to go down),
// and never when the reboot syscall succeeds.
//
// When kexec cannot work here or the kernel refuses the image (see
// KexecSupported; ENOSYS, EPERM, EACCES, EINVAL, ENOEXEC, or a signature
// error from kexec_file_load) the error wraps ErrKexecUnavailable; Boot
// does not fall back to a full reboot by itself. On any error the returned
// method is "".
func (b *Booter) Boot(ctx context.Context, m Method, img Image) (Method, error) {
	switch m {
	case MethodKexec, MethodReboot, MethodDryRun:
	default:
		return "", fmt.Errorf("boot: unknown method %q", m)
	}
	if b.mode == ModeReboot && m == MethodKexec {
		b.log.Info("boot mode is reboot: doing a full reboot instead of a kexec", "kernel", img.Kernel)
		m = MethodReboot
	}
	cmdline := img.Cmdline
	if m == MethodKexec {
		if img.Kernel == "" {
			return "", errors.New("boot: kexec: Image.Kernel is empty")
		}
		if img.Initrd == "" && !img.NoInitrd {
			return "", fmt.Errorf("boot: kexec: no initrd for %s (Image.NoInitrd not set)", img.Kernel)
		}
		if cmdline == "" {
			var err error
			if cmdline, err = b.Cmdline(); err != nil {
				return "", err
			}
		}
	}
	systemd := b.systemdRuns()
	if b.mode == ModeDryRun || m == MethodDryRun {
		b.log.Info("dry-run: not booting", "would", string(m), "kernel", img.Kernel, "initrd", img.Initrd,
			"cmdline", cmdline, "via_systemd", systemd)
		return MethodDryRun, nil
	}
	var err error
	if m == MethodReboot {
		err = b.reboot(ctx, systemd)
	} else {
		err = b.kexec(ctx, img, cmdline, systemd)
	}
	if err != nil {
		return "", err
	}
	return m, nil
}

func (b *Booter) kexec(ctx context.Context, img Image, cmdline string, systemd bool) error {
	if err := b.KexecSupported(); err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	kernel, err := os.Open(img.Kernel)
	if err != nil {
		return fmt.Errorf("boot: kexec: %w", err)
	}
	defer kernel.Close()
	var initrd *os.File
	flags := 0
	if img.Initrd == "" {
		flags |= kexecFileNoInitramfs
	} else {
		if initrd, err = os.Open(img.Initrd); err != nil {
			return fmt.Errorf("boot: kexec: %w", err)
		}
		defer initrd.Close()
	}
	b.log.Info("loading kexec image", "kernel", img.Kernel, "initrd", img.Initrd, "cmdline", cmdline)
	if err := b.sys.kexecFileLoad(kernel, initrd, cmdline, flags); err != nil {
		if kexecRefused(err) {
			return fmt.Errorf("boot: kexec_file_load %s: %w: %w", img.Kernel, ErrKexecUnavailable, err)
		}
		return fmt.Errorf("boot: kexec_file_load %s: %w", img.Kernel, err)
	}
	if systemd {
		b.log.Info("starting kexec.target")
		if err := b.sys.startUnit(ctx, "kexec.target", "replace-irreversibly"); err != nil {
			return fmt.Errorf("boot: kexec image loaded, but %w", err)
		}
		return nil
	}
	b.log.Info("no systemd: rebooting into the kexec image")
	b.sys.sync()
	if err := b.sys.reboot(rebootCmdKexec); err != nil {
		return fmt.Errorf("boot: reboot(LINUX_REBOOT_CMD_KEXEC): %w", err)
	}
	return nil
}

func (b *Booter) reboot(ctx context.Context, systemd bool) error {
	if systemd {
		b.log.Info("starting reboot.target")
		if err := b.sys.startUnit(ctx, "reboot.target", "replace-irreversibly"); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
		return nil
	}
	b.log.Info("no systemd: rebooting")
	b.sys.sync()
	if err := b.sys.reboot(rebootCmdRestart); err != nil {
		return fmt.Errorf("boot: reboot(LINUX_REBOOT_CMD_RESTART): %w", err)
	}
	return nil
}
