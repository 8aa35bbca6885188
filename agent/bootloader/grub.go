package bootloader

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// GRUB is GRUB 2 as Debian installs it: entries are read from
// BootDir/grub/grub.cfg, the one-shot entry is set with grub-reboot, the
// default with grub-set-default, and both are read back with
// `grub-editenv BootDir/grub/grubenv list`. Both only work when grub.cfg
// starts the saved entry (GRUB_DEFAULT=saved), which Check verifies.
type GRUB struct {
	bootDir string
	run     Runner
	log     *slog.Logger
}

func newGRUB(cfg Config) *GRUB {
	return &GRUB{bootDir: cfg.BootDir, run: cfg.Runner, log: cfg.Logger}
}

// Kind implements Loader.
func (g *GRUB) Kind() Kind { return KindGRUB }

func (g *GRUB) grubDir() string    { return filepath.Join(g.bootDir, "grub") }
func (g *GRUB) cfgPath() string    { return filepath.Join(g.grubDir(), "grub.cfg") }
func (g *GRUB) envPath() string    { return filepath.Join(g.grubDir(), "grubenv") }
func (g *GRUB) bootDirArg() string { return "--boot-directory=" + g.bootDir }

// config reads and parses grub.cfg.
func (g *GRUB) config() (*GRUBConfig, error) {
	f, err := os.Open(g.cfgPath())
	if err != nil {
		return nil, fmt.Errorf("bootloader: %w", err)
	}
	defer f.Close()
	c, err := ParseGRUBConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, g.cfgPath())
	}
	return c, nil
}

// Check implements Loader: grub.cfg must start the saved entry and honour
// next_entry (GRUB_DEFAULT=saved), and grubenv must not be on LVM or RAID,
// where GRUB cannot write it (a one-shot entry would then stay the
// default).
func (g *GRUB) Check(ctx context.Context) error {
	c, err := g.config()
	if err != nil {
		return err
	}
	if !c.SavedDefault || !c.OneShot {
		def := c.Default
		if def == "" {
			def = "unknown"
		}
		return fmt.Errorf("bootloader: %s does not start GRUB's saved entry (its default is %q): one-shot and default entries would be ignored, and a newly installed kernel could become the default; set GRUB_DEFAULT=saved in /etc/default/grub.d/kroll.cfg (or /etc/default/grub) and run update-grub", g.cfgPath(), def)
	}
	if len(c.Entries) == 0 {
		return fmt.Errorf("bootloader: %s has no menu entries", g.cfgPath())
	}
	out, err := run(ctx, g.run, "grub-probe", "--target=abstraction", g.envPath())
	if err != nil {
		return fmt.Errorf("bootloader: cannot tell whether GRUB can write its environment block: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "lvm" || a == "diskfilter" {
			return fmt.Errorf("bootloader: %s is on %s, where GRUB cannot write: a one-shot entry would stay the default; move /boot to a plain partition or use [boot] loader = \"none\" with kexec", g.envPath(), a)
		}
	}
	return nil
}

// env reads grubenv with grub-editenv.
func (g *GRUB) env(ctx context.Context) (map[string]string, error) {
	if _, err := os.Stat(g.envPath()); os.IsNotExist(err) {
		return map[string]string{}, nil // GRUB treats a missing block as empty
	}
	out, err := run(ctx, g.run, "grub-editenv", g.envPath(), "list")
	if err != nil {
		return nil, fmt.Errorf("bootloader: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// Default implements Loader: the entry of next_entry if set, else of
// saved_entry (entry 0 when neither is set), as grub.cfg's header picks
// it.
func (g *GRUB) Default(ctx context.Context) (string, error) {
	c, err := g.config()
	if err != nil {
		return "", err
	}
	env, err := g.env(ctx)
	if err != nil {
		return "", err
	}
	def, what := env["next_entry"], "next_entry"
	if def == "" {
		def, what = env["saved_entry"], "saved_entry"
	}
	if !c.SavedDefault {
		def, what = c.Default, "grub.cfg's default"
	}
	e, err := c.Resolve(def)
	if err != nil {
		return "", fmt.Errorf("%w (%s in %s)", err, what, g.envPath())
	}
	if e.Release == "" {
		return "", fmt.Errorf("bootloader: GRUB's next boot (%s %q) starts %q, which loads no kernel image", what, def, e.Title)
	}
	if e.Recovery {
		return "", fmt.Errorf("bootloader: GRUB's next boot (%s %q) starts a recovery entry (%q)", what, def, e.Title)
	}
	return e.Release, nil
}

// SetOneShot implements Loader with grub-reboot, and reads the result
// back.
func (g *GRUB) SetOneShot(ctx context.Context, release string) error {
	return g.set(ctx, "grub-reboot", release)
}

// SetDefault implements Loader with grub-set-default (which also drops a
// pending one-shot entry), and reads the result back.
func (g *GRUB) SetDefault(ctx context.Context, release string) error {
	return g.set(ctx, "grub-set-default", release)
}

func (g *GRUB) set(ctx context.Context, tool, release string) error {
	c, err := g.config()
	if err != nil {
		return err
	}
	e, err := c.EntryFor(release)
	if err != nil {
		return err
	}
	g.log.Info("setting GRUB entry", "tool", tool, "release", release, "entry", e.Path)
	if _, err := run(ctx, g.run, tool, g.bootDirArg(), e.Path); err != nil {
		return fmt.Errorf("bootloader: %w", err)
	}
	got, err := g.Default(ctx)
	if err != nil {
		return fmt.Errorf("bootloader: after %s %s: %w", tool, e.Path, err)
	}
	if got != release {
		return fmt.Errorf("bootloader: after %s %s the next boot starts %s, not %s", tool, e.Path, got, release)
	}
	return nil
}
