package systemdvm

import (
	"context"
	"crypto/rand"
	_ "embed"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/test/vm"
)

// bootdiskScript writes the guest's BIOS-bootable disk (see bootdisk.sh).
//
//go:embed bootdisk.sh
var bootdiskScript string

// partitionOffset is where bootdisk.sh starts the root partition (sector
// 2048).
const partitionOffset = 1 << 20

// newUUID returns a random (version 4) UUID for the guest's root file
// system.
func newUUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// makeBootDisk writes root into disk, a sizeMB MiB image with an MBR
// partition table, one ext4 partition (file system UUID uuid) and GRUB for
// BIOS in the MBR, its saved default entry the kernel release defaultRelease
// (bootdisk.sh). The loop devices of disk are detached when the test ends,
// also when the script was killed.
func makeBootDisk(t *testing.T, ctx context.Context, root, disk string, sizeMB int, uuid, defaultRelease string) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "bootdisk.sh")
	writeFile(t, script, []byte(bootdiskScript), 0o755)
	t.Cleanup(func() { detachLoops(t, disk) })
	start := time.Now()
	// A private mount namespace: the mounts of the image and its chroot
	// end with the script, whatever happens to it.
	out := run(t, ctx, "", []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "unshare", "--mount", "--propagation", "private",
		"/bin/bash", script, root, disk, fmt.Sprint(sizeMB), uuid, defaultRelease)
	t.Logf("boot disk %s (GRUB i386-pc, root UUID %s) written in %s:\n%s", filepath.Base(disk), uuid,
		time.Since(start).Round(100*time.Millisecond), tailLines(out, 40))
}

// detachLoops detaches every loop device backed by file.
func detachLoops(t *testing.T, file string) {
	t.Helper()
	losetup, err := vm.LookSbin("losetup")
	if err != nil {
		t.Error(err)
		return
	}
	out, err := exec.Command(losetup, "-n", "-O", "NAME", "-j", file).Output()
	if err != nil {
		t.Errorf("losetup -j %s: %v", file, err)
		return
	}
	for _, dev := range strings.Fields(string(out)) {
		if err := exec.Command(losetup, "-d", dev).Run(); err != nil {
			t.Errorf("losetup -d %s (backing %s): %v", dev, file, err)
		} else {
			t.Logf("detached the leftover loop device %s of %s", dev, file)
		}
	}
}

// diskFile reads the file at path (absolute in the guest) from the root
// partition of the stopped guest's disk image: a read-only loop device of
// the partition and debugfs, no mount.
func diskFile(t *testing.T, ctx context.Context, disk, path string) string {
	t.Helper()
	losetup, err := vm.LookSbin("losetup")
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(run(t, ctx, "", nil, losetup, "--read-only", "--offset", fmt.Sprint(partitionOffset), "--show", "-f", disk))
	defer func() {
		if err := exec.Command(losetup, "-d", dev).Run(); err != nil {
			t.Errorf("losetup -d %s: %v", dev, err)
		}
	}()
	debugfs, err := vm.LookSbin("debugfs")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, debugfs, "-R", "cat "+path, dev)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs cat %s on %s: %v", path, disk, err)
	}
	return string(out)
}

// grubenv parses GRUB's environment block (/boot/grub/grubenv): name=value
// lines, '#' padding.
func grubenv(block string) map[string]string {
	env := map[string]string{}
	for _, l := range strings.Split(block, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestGrubenv(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        map[string]string
	}{
		{"empty", "# GRUB Environment Block\n" + strings.Repeat("#", 100), map[string]string{}},
		{"saved and next", "# GRUB Environment Block\nsaved_entry=gnulinux-advanced-x>gnulinux-6.1.0-47-amd64-advanced-x\nnext_entry=b\n####",
			map[string]string{"saved_entry": "gnulinux-advanced-x>gnulinux-6.1.0-47-amd64-advanced-x", "next_entry": "b"}},
		{"value with =", "k=a=b\n", map[string]string{"k": "a=b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := grubenv(tc.block)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("grubenv(%q) = %v, want %v", tc.block, got, tc.want)
			}
		})
	}
}

func TestParseWatch(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ok         bool
		want       watchLine
	}{
		{"saved entry", "KROLL-WATCH 6.1.0-47-amd64 routes=1 env=saved_entry=a>gnulinux-6.1.0-47-amd64-advanced-u",
			true, watchLine{release: "6.1.0-47-amd64", routes: "1", env: map[string]string{"saved_entry": "a>gnulinux-6.1.0-47-amd64-advanced-u"}}},
		{"one-shot entry, journald prefix", "[  12.3] sh[99]: KROLL-WATCH 6.1.0-57-amd64 routes=0 env=saved_entry=x|next_entry=Debian GNU/Linux, with Linux 6.1.0-57-amd64",
			true, watchLine{release: "6.1.0-57-amd64", routes: "0", env: map[string]string{"saved_entry": "x", "next_entry": "Debian GNU/Linux, with Linux 6.1.0-57-amd64"}}},
		{"empty environment", "KROLL-WATCH 6.1.0-47-amd64 routes=0 env=", true, watchLine{release: "6.1.0-47-amd64", routes: "0", env: map[string]string{}}},
		{"no marker", "Linux version 6.1.0-47-amd64", false, watchLine{}},
		{"no env", "KROLL-WATCH 6.1.0-47-amd64 routes=1", false, watchLine{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseWatch(tc.line)
			if ok != tc.ok || got.release != tc.want.release || got.routes != tc.want.routes || fmt.Sprint(got.env) != fmt.Sprint(tc.want.env) {
				t.Errorf("parseWatch(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
			}
		})
	}
}
