//go:build linux

// Command booter runs inside a VM of the vm harness (with a data disk)
// and exercises package boot on a real kernel.
//
// With -scenario kexec (the default) the first boot notes its kernel
// release, boot id and command line on the disk and boots -target with
// boot.Booter.Boot(MethodKexec) in ModeKexec; there is no systemd in the
// guest, so the reboot(2) path is taken. The next boot reports what the
// first one noted ("before") and its own view ("after") and exits 0.
//
// With -scenario refuse it expects kexec to be refused: it optionally sets
// kernel.kexec_load_disabled=1 (-disable) and reports what KexecSupported,
// Boot (of -target, or of the file -kernel) and a raw kexec_file_load(2)
// of that file say.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/test/vm"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

// State is what a boot observes about itself.
type State struct {
	Release string `json:"release"`
	BootID  string `json:"boot_id"`
	Cmdline string `json:"cmdline"`
}

func main() {
	target := flag.String("target", "", "kernel release to kexec into")
	scenario := flag.String("scenario", "kexec", "kexec or refuse")
	disable := flag.Bool("disable", false, "refuse: set kernel.kexec_load_disabled=1 first")
	kernel := flag.String("kernel", "", "refuse: boot this file instead of the -target kernel")
	flag.Parse()
	ctx := context.Background()

	b, err := boot.New(boot.Config{
		Mode:   boot.ModeKexec,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		guest.Fail("boot.New: %v", err)
	}
	now := observe()
	img := boot.Image{
		Kernel: filepath.Join(vm.DataDir, "boot", "vmlinuz-"+*target),
		Initrd: filepath.Join(vm.DataDir, "boot", "initrd.img-"+*target),
	}
	switch *scenario {
	case "kexec":
		kexec(ctx, b, now, img)
	case "refuse":
		if *kernel != "" {
			img = boot.Image{Kernel: *kernel, NoInitrd: true}
		}
		refuse(ctx, b, img, *disable)
	default:
		guest.Fail("unknown scenario %q", *scenario)
	}
}

func observe() State {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		guest.Fail("uname: %v", err)
	}
	id, err := running.ProcFS{}.BootID()
	if err != nil {
		guest.Fail("%v", err)
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		guest.Fail("read /proc/cmdline: %v", err)
	}
	return State{Release: unix.ByteSliceToString(uts.Release[:]), BootID: id, Cmdline: strings.TrimSpace(string(raw))}
}

func kexec(ctx context.Context, b *boot.Booter, now State, img boot.Image) {
	note := filepath.Join(vm.DataDir, "booter.json")
	if raw, err := os.ReadFile(note); err == nil {
		var before State
		if err := json.Unmarshal(raw, &before); err != nil {
			guest.Fail("%s: %v", note, err)
		}
		guest.Report("before", before)
		guest.Report("after", now)
		return
	}
	data, err := json.Marshal(now)
	if err != nil {
		guest.Fail("%v", err)
	}
	if err := writeSync(note, data); err != nil {
		guest.Fail("note the first boot: %v", err)
	}
	if err := b.KexecSupported(); err != nil {
		guest.Fail("KexecSupported: %v", err)
	}
	m, err := b.Boot(ctx, boot.MethodKexec, img)
	guest.Fail("Boot returned (%q, %v) instead of kexecing", m, err)
}

func writeSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func refuse(ctx context.Context, b *boot.Booter, img boot.Image, disable bool) {
	if disable {
		if err := os.WriteFile("/proc/sys/kernel/kexec_load_disabled", []byte("1"), 0o644); err != nil {
			guest.Fail("set kexec_load_disabled: %v", err)
		}
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	guest.Report("supported", errText(b.KexecSupported()))
	m, err := b.Boot(ctx, boot.MethodKexec, img)
	guest.Report("boot", map[string]any{"method": m, "error": errText(err), "unavailable": errors.Is(err, boot.ErrKexecUnavailable)})

	// What the kernel itself says, bypassing Booter's checks (if Boot got
	// this far the guest has already been kexeced).
	k, err := os.Open(img.Kernel)
	if err != nil {
		guest.Fail("%v", err)
	}
	defer k.Close()
	err = unix.KexecFileLoad(int(k.Fd()), -1, "", unix.KEXEC_FILE_NO_INITRAMFS)
	guest.Report("syscall", errText(err))
}
