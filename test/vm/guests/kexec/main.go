//go:build linux

// Command kexec runs inside a VM with a data disk and proves that the disk
// persists across a kexec and that /init loads the module set of each
// kernel: on the first boot it reports its kernel and loaded modules, notes
// them on the disk and kexecs into -target (from the disk's boot
// directory); on the next boot it reports the same plus what it noted.
package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/test/vm"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

func main() {
	target := flag.String("target", "", "kernel release to kexec into on the first boot")
	flag.Parse()

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		guest.Fail("uname: %v", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	pm, err := os.ReadFile("/proc/modules")
	if err != nil {
		guest.Fail("read /proc/modules: %v", err)
	}
	var mods []string
	for _, l := range strings.Split(strings.TrimSpace(string(pm)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			mods = append(mods, f[0])
		}
	}
	guest.Report("boot", map[string]any{"release": release, "modules": mods})

	note := filepath.Join(vm.DataDir, "first-boot")
	if prev, err := os.ReadFile(note); err == nil {
		guest.Report("noted", string(prev))
		hello, err := os.ReadFile(filepath.Join(vm.DataDir, "hello.txt"))
		if err != nil {
			guest.Fail("read hello.txt: %v", err)
		}
		guest.Report("hello", string(hello))
		return
	}
	if err := os.WriteFile(note, []byte(release), 0o644); err != nil {
		guest.Fail("write note: %v", err)
	}
	kernel, err := os.Open(filepath.Join(vm.DataDir, "boot", "vmlinuz-"+*target))
	if err != nil {
		guest.Fail("%v", err)
	}
	initrd, err := os.Open(filepath.Join(vm.DataDir, "boot", "initrd.img-"+*target))
	if err != nil {
		guest.Fail("%v", err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		guest.Fail("read /proc/cmdline: %v", err)
	}
	if err := unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), strings.TrimSpace(string(cmdline)), 0); err != nil {
		guest.Fail("kexec_file_load: %v", err)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		guest.Fail("reboot(KEXEC): %v", err)
	}
	guest.Fail("reboot(KEXEC) returned")
}
