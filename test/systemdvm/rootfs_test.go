package systemdvm

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/test/vm"
)

// rootfsScript builds the cached root file system (see rootfs.sh).
//
//go:embed rootfs.sh
var rootfsScript string

// basePackages are installed into the root file system besides the old
// kernel: systemd, what dpkg and initramfs-tools need to install a kernel
// package inside the VM, and grub-pc (bootdisk.sh puts it on the disk).
var basePackages = []string{"systemd", "systemd-sysv", "dbus", "udev", "kmod", "iproute2", "initramfs-tools", "zstd", "grub-pc"}

// cacheDir is where the root file systems are kept between runs:
// $KROLL_SYSTEMDVM_CACHE, else $XDG_CACHE_HOME/kroll/systemdvm, else
// ~/.cache/kroll/systemdvm.
func cacheDir() (string, error) {
	if d := os.Getenv("KROLL_SYSTEMDVM_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "kroll", "systemdvm"), nil
}

// requireTools checks what building and booting the image needs.
func requireTools(t *testing.T) {
	t.Helper()
	vm.RequireTools(t)
	if os.Geteuid() != 0 {
		vm.Unavailable(t, errors.New("systemdvm: needs root (debootstrap, chroot, dpkg into the image)"))
	}
	for _, tool := range []struct{ name, pkg string }{
		{"debootstrap", "debootstrap"}, {"unshare", "util-linux"}, {"chroot", "coreutils"}, {"mke2fs", "e2fsprogs"},
		{"debugfs", "e2fsprogs"}, {"make", "make"}, {"sfdisk", "fdisk"}, {"losetup", "mount"}, {"partx", "util-linux"},
		{"mount", "mount"}, {"truncate", "coreutils"},
	} {
		if _, err := vm.LookSbin(tool.name); err != nil {
			vm.Unavailable(t, fmt.Errorf("systemdvm: %s not found (Debian package %s): %w", tool.name, tool.pkg, err))
		}
	}
	// SeaBIOS: qemu boots the disk through the BIOS and GRUB.
	if _, err := os.Stat("/usr/share/seabios/bios-256k.bin"); err != nil {
		vm.Unavailable(t, fmt.Errorf("systemdvm: SeaBIOS not found (Debian package seabios): %w", err))
	}
}

// baseRoot returns the cached root file system with pkgs installed,
// building it first when the cache lacks it. The cache key covers the
// build script and the package list; concurrent builders (also in other
// processes) are serialized by a lock file.
func baseRoot(t *testing.T, pkgs []string) string {
	t.Helper()
	cache, err := cacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s", rootfsScript, strings.Join(pkgs, " "))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(cache, "root-"+key)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	unlock, err := vm.LockFile(ctx, filepath.Join(cache, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		t.Logf("root file system from the cache: %s", dir)
		return dir
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(cache, "rootfs-"+key+".sh")
	if err := os.WriteFile(script, []byte(rootfsScript), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	t.Logf("building the root file system %s (debootstrap bookworm + %s)", dir, strings.Join(pkgs, " "))
	// A private mount namespace: the chroot's /proc, /sys and /dev mounts
	// go away with the script, whatever happens to it.
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "/bin/bash", script, tmp}, pkgs...)...)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building the root file system: %v\n%s", err, tailLines(string(out), 60))
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("root file system built in %s", time.Since(start).Round(time.Second))
	// Root file systems of earlier keys (other kernels, another script)
	// are not needed any more.
	stale, _ := filepath.Glob(filepath.Join(cache, "root-*"))
	for _, d := range stale {
		if d != dir {
			t.Logf("removing the stale root file system %s", d)
			if err := os.RemoveAll(d); err != nil {
				t.Error(err)
			}
			_ = os.Remove(filepath.Join(cache, "rootfs-"+strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "root-"), ".tmp")+".sh"))
		}
	}
	return dir
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tailLines(string(out), 40))
	}
	return string(out)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
