package bootloader

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// systemd-boot's EFI variables (vendor GUID of the Boot Loader Interface).
const (
	loaderGUID      = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
	varEntryOneShot = "LoaderEntryOneShot-" + loaderGUID
	varEntryDefault = "LoaderEntryDefault-" + loaderGUID
	maxEFIVarSize   = 4096
)

// SystemdBoot is systemd-boot: entries from `bootctl list --json=short`
// (matched by kernel release), the one-shot entry set with `bootctl
// set-oneshot`, the default with `bootctl set-default`, both read back
// from the LoaderEntryOneShot and LoaderEntryDefault EFI variables.
type SystemdBoot struct {
	efivars string
	run     Runner
	log     *slog.Logger
}

func newSystemdBoot(cfg Config) *SystemdBoot {
	return &SystemdBoot{efivars: cfg.EFIVarsDir, run: cfg.Runner, log: cfg.Logger}
}

// Kind implements Loader.
func (s *SystemdBoot) Kind() Kind { return KindSystemdBoot }

// SystemdBootEntry is a boot entry as `bootctl list --json=short` prints
// it (the fields the agent uses).
type SystemdBootEntry struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Version string `json:"version"`
	Linux   string `json:"linux"`
	Options string `json:"options"`
}

// release returns the kernel release e boots, or "".
func (e SystemdBootEntry) release() string {
	if e.Version != "" {
		return e.Version
	}
	// Type #1 entries of kernel-install: /<machine-id>/<release>/linux.
	if e.Linux != "" && path.Base(e.Linux) == "linux" {
		return path.Base(path.Dir(e.Linux))
	}
	return releaseOf(e.Linux)
}

func (e SystemdBootEntry) recovery() bool {
	for _, o := range strings.Fields(e.Options) {
		if o == "single" || o == "recovery" || o == "systemd.unit=rescue.target" || o == "systemd.unit=emergency.target" {
			return true
		}
	}
	return false
}

// entries lists the boot entries.
func (s *SystemdBoot) entries(ctx context.Context) ([]SystemdBootEntry, error) {
	out, err := run(ctx, s.run, "bootctl", "list", "--json=short", "--no-pager")
	if err != nil {
		return nil, fmt.Errorf("bootloader: %w", err)
	}
	var es []SystemdBootEntry
	if err := json.Unmarshal(out, &es); err != nil {
		return nil, fmt.Errorf("bootloader: bootctl list: %w", err)
	}
	return es, nil
}

// entryFor returns the id of the entry that boots release.
func (s *SystemdBoot) entryFor(ctx context.Context, release string) (string, error) {
	es, err := s.entries(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if e.release() == release && !e.recovery() && e.ID != "" {
			return e.ID, nil
		}
	}
	return "", fmt.Errorf("bootloader: systemd-boot has no entry for kernel %s (bootctl list)", release)
}

// Check implements Loader: systemd-boot must be installed and its EFI
// variables readable.
func (s *SystemdBoot) Check(ctx context.Context) error {
	if _, err := run(ctx, s.run, "bootctl", "is-installed"); err != nil {
		return fmt.Errorf("bootloader: systemd-boot is not installed: %w", err)
	}
	if st, err := os.Stat(s.efivars); err != nil || !st.IsDir() {
		return fmt.Errorf("bootloader: EFI variables are not available at %s (not booted through UEFI, or efivarfs not mounted): %v", s.efivars, err)
	}
	return nil
}

// readVar reads an EFI variable holding a UTF-16 string; "" when unset.
func (s *SystemdBoot) readVar(name string) (string, error) {
	p := filepath.Join(s.efivars, name)
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("bootloader: %w", err)
	}
	if len(raw) > maxEFIVarSize || len(raw) < 4 || len(raw)%2 != 0 {
		return "", fmt.Errorf("bootloader: EFI variable %s: malformed (%d bytes)", p, len(raw))
	}
	raw = raw[4:] // attributes
	u := make([]uint16, 0, len(raw)/2)
	for i := 0; i+1 < len(raw); i += 2 {
		c := binary.LittleEndian.Uint16(raw[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// Default implements Loader: the entry of LoaderEntryOneShot if set, else
// of LoaderEntryDefault. Without either the boot loader's own choice
// (loader.conf, sort order) applies, which the agent does not guess: an
// error.
func (s *SystemdBoot) Default(ctx context.Context) (string, error) {
	id, err := s.readVar(varEntryOneShot)
	if err != nil {
		return "", err
	}
	if id == "" {
		if id, err = s.readVar(varEntryDefault); err != nil {
			return "", err
		}
	}
	if id == "" {
		return "", errors.New("bootloader: no systemd-boot default entry is set (LoaderEntryDefault), so loader.conf and the sort order decide; the agent does not guess them")
	}
	es, err := s.entries(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if e.ID == id {
			if r := e.release(); r != "" && !e.recovery() {
				return r, nil
			}
			return "", fmt.Errorf("bootloader: systemd-boot's next boot starts %q, which is no kernel of the agent's", id)
		}
	}
	return "", fmt.Errorf("bootloader: systemd-boot's next boot starts %q, which bootctl does not list", id)
}

// SetOneShot implements Loader with `bootctl set-oneshot`.
func (s *SystemdBoot) SetOneShot(ctx context.Context, release string) error {
	return s.set(ctx, "set-oneshot", release)
}

// SetDefault implements Loader with `bootctl set-default`; a pending
// one-shot entry is dropped (`bootctl set-oneshot ""`).
func (s *SystemdBoot) SetDefault(ctx context.Context, release string) error {
	if err := s.set(ctx, "set-default", release); err != nil {
		return err
	}
	if id, err := s.readVar(varEntryOneShot); err == nil && id != "" {
		if _, err := run(ctx, s.run, "bootctl", "set-oneshot", ""); err != nil {
			return fmt.Errorf("bootloader: %w", err)
		}
	}
	return nil
}

func (s *SystemdBoot) set(ctx context.Context, verb, release string) error {
	id, err := s.entryFor(ctx, release)
	if err != nil {
		return err
	}
	s.log.Info("setting systemd-boot entry", "verb", verb, "release", release, "entry", id)
	if _, err := run(ctx, s.run, "bootctl", verb, id); err != nil {
		return fmt.Errorf("bootloader: %w", err)
	}
	var name string
	if verb == "set-oneshot" {
		name = varEntryOneShot
	} else {
		name = varEntryDefault
	}
	got, err := s.readVar(name)
	if err != nil {
		return err
	}
	if got != id {
		return fmt.Errorf("bootloader: after bootctl %s %s the EFI variable says %q", verb, id, got)
	}
	return nil
}
