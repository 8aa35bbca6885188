package bootloader

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// bootctlList is `bootctl list --json=short` of a Debian 12 host with
// systemd-boot and two kernels installed by kernel-install (type #1
// entries), written after systemd 252's format (fields the agent does
// not read left out).
const bootctlList = `[{"type":"type1","source":"esp","id":"4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-26-amd64.conf","path":"/boot/efi/loader/entries/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-26-amd64.conf","root":"/boot/efi","title":"Debian GNU/Linux 12 (bookworm)","showTitle":"Debian GNU/Linux 12 (bookworm) (6.1.0-26-amd64)","sortKey":"debian","version":"6.1.0-26-amd64","machineId":"4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b","linux":"/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b/6.1.0-26-amd64/linux","initrd":["/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b/6.1.0-26-amd64/initrd.img-6.1.0-26-amd64"],"options":"root=UUID=0b3c8e43-6b6d-4f86-9a1e-2f0a3f1d9c41 ro quiet"},` +
	`{"type":"type1","source":"esp","id":"4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-25-amd64.conf","path":"/boot/efi/loader/entries/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-25-amd64.conf","root":"/boot/efi","title":"Debian GNU/Linux 12 (bookworm)","showTitle":"Debian GNU/Linux 12 (bookworm) (6.1.0-25-amd64)","sortKey":"debian","version":"6.1.0-25-amd64","machineId":"4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b","linux":"/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b/6.1.0-25-amd64/linux","initrd":["/4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b/6.1.0-25-amd64/initrd.img-6.1.0-25-amd64"],"options":"root=UUID=0b3c8e43-6b6d-4f86-9a1e-2f0a3f1d9c41 ro quiet"},` +
	`{"type":"loader","id":"auto-reboot-to-firmware-setup","title":"Reboot Into Firmware Interface","showTitle":"Reboot Into Firmware Interface"}]`

const (
	sdNew = "4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-26-amd64.conf"
	sdOld = "4d1e2a7c9e0b4f6f8a3c2b1d0e9f8a7b-6.1.0-25-amd64.conf"
)

// efiVar encodes an EFI string variable as efivarfs shows it.
func efiVar(s string) []byte {
	b := []byte{7, 0, 0, 0} // NV+BS+RT
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

// fakeBootctl answers bootctl like systemd-boot: set-oneshot and
// set-default write the EFI variables.
func fakeBootctl(t *testing.T, efivars string) *fakeRunner {
	return &fakeRunner{reply: func(cmd string) ([]byte, error) {
		write := func(name, v string) ([]byte, error) {
			p := filepath.Join(efivars, name)
			if v == "" {
				return nil, os.Remove(p)
			}
			return nil, os.WriteFile(p, efiVar(v), 0o644)
		}
		switch {
		case cmd == "bootctl list --json=short --no-pager":
			return []byte(bootctlList), nil
		case cmd == "bootctl is-installed":
			return []byte("yes\n"), nil
		case cmd == "bootctl set-oneshot":
			return write(varEntryOneShot, "")
		case strings.HasPrefix(cmd, "bootctl set-oneshot "):
			return write(varEntryOneShot, strings.TrimPrefix(cmd, "bootctl set-oneshot "))
		case strings.HasPrefix(cmd, "bootctl set-default "):
			return write(varEntryDefault, strings.TrimPrefix(cmd, "bootctl set-default "))
		}
		t.Errorf("unexpected command %q", cmd)
		return nil, errors.New("unexpected")
	}}
}

func TestSystemdBoot(t *testing.T) {
	ctx := context.Background()
	efivars := t.TempDir()
	f := fakeBootctl(t, efivars)
	l, err := New(ctx, Config{Kind: KindSystemdBoot, EFIVarsDir: efivars, Runner: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got, err := l.Default(ctx); err == nil || !strings.Contains(err.Error(), "no systemd-boot default entry is set") {
		t.Fatalf("Default without variables = %q, %v", got, err)
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"pin running", func() error { return l.SetDefault(ctx, oldRel) }, oldRel},
		{"one-shot target", func() error { return l.SetOneShot(ctx, newRel) }, newRel},
		{"booted once (systemd-boot removes the variable)", func() error { return os.Remove(filepath.Join(efivars, varEntryOneShot)) }, oldRel},
		{"one-shot again", func() error { return l.SetOneShot(ctx, newRel) }, newRel},
		{"healthy: default, one-shot dropped", func() error { return l.SetDefault(ctx, newRel) }, newRel},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got, err := l.Default(ctx); err != nil || got != s.want {
			t.Fatalf("%s: Default = %q, %v; want %s", s.name, got, err, s.want)
		}
	}
	if _, err := os.Stat(filepath.Join(efivars, varEntryOneShot)); !os.IsNotExist(err) {
		t.Errorf("one-shot variable left after SetDefault: %v", err)
	}
	if err := l.SetOneShot(ctx, "6.1.0-27-amd64"); err == nil || !strings.Contains(err.Error(), "no entry for kernel 6.1.0-27-amd64") {
		t.Errorf("SetOneShot of an unknown kernel: %v", err)
	}
	// A default naming an entry that is not a kernel: an error.
	if err := os.WriteFile(filepath.Join(efivars, varEntryDefault), efiVar("auto-reboot-to-firmware-setup"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Default(ctx); err == nil {
		t.Errorf("Default of the firmware entry = %q", got)
	}
	if err := os.WriteFile(filepath.Join(efivars, varEntryDefault), []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Default(ctx); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Default of a malformed variable: %v", err)
	}
}

func TestNewAuto(t *testing.T) {
	ctx := context.Background()
	found := func(have ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, h := range have {
				if h == name {
					return "/usr/sbin/" + name, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	bootctl := func(installed bool) *fakeRunner {
		return &fakeRunner{reply: func(cmd string) ([]byte, error) {
			if cmd == "bootctl is-installed" && installed {
				return []byte("yes"), nil
			}
			return []byte("no"), errors.New("exit status 1")
		}}
	}
	grubDir := grubBootDir(t, "debian12-grub.cfg")
	tests := []struct {
		name      string
		kind      Kind
		bootDir   string
		look      func(string) (string, error)
		runner    *fakeRunner
		want      Kind
		checkFail string // "" = Check of None passes
	}{
		{"grub", KindAuto, grubDir, found("grub-reboot", "bootctl"), bootctl(true), KindGRUB, ""},
		{"grub.cfg without tools", KindAuto, grubDir, found("bootctl"), bootctl(true), KindSystemdBoot, ""},
		{"systemd-boot", KindAuto, t.TempDir(), found("grub-reboot", "bootctl"), bootctl(true), KindSystemdBoot, ""},
		{"nothing", KindAuto, t.TempDir(), found("grub-reboot", "bootctl"), bootctl(false), KindNone, "systemd-boot is not installed"},
		{"no tools", "", grubDir, found(), bootctl(false), KindNone, "grub-reboot is not installed"},
		{"explicit none", KindNone, grubDir, found("grub-reboot"), bootctl(true), KindNone, ""},
		{"explicit grub", KindGRUB, t.TempDir(), found(), bootctl(false), KindGRUB, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(ctx, Config{Kind: tt.kind, BootDir: tt.bootDir, LookPath: tt.look, Runner: tt.runner})
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind() != tt.want {
				t.Fatalf("Kind = %s, want %s", l.Kind(), tt.want)
			}
			if tt.want != KindNone {
				return
			}
			err = l.Check(ctx)
			if tt.checkFail == "" && err != nil || tt.checkFail != "" && (err == nil || !strings.Contains(err.Error(), tt.checkFail) || !errors.Is(err, ErrUnmanaged)) {
				t.Fatalf("Check = %v, want %q", err, tt.checkFail)
			}
			if _, err := l.Default(ctx); !errors.Is(err, ErrUnmanaged) {
				t.Errorf("Default = %v, want ErrUnmanaged", err)
			}
			if err := l.SetOneShot(ctx, newRel); !errors.Is(err, ErrUnmanaged) {
				t.Errorf("SetOneShot = %v, want ErrUnmanaged", err)
			}
		})
	}
	for _, bad := range []Config{{Kind: "lilo"}, {BootDir: "boot"}} {
		if _, err := New(ctx, bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
}
