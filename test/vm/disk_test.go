package vm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestModuleNames checks the module request of a run: automatic modules
// are added and every module is asked for once.
func TestModuleNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"none", Config{}, nil},
		{"explicit", Config{Modules: []string{"af_alg"}}, []string{"af_alg"}},
		{"network", Config{Network: true}, []string{"virtio_pci", "virtio_net"}},
		{"disk", Config{DiskMB: 8}, []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}},
		{"dedup", Config{Modules: []string{"virtio-pci", "ext4"}, Network: true, DiskMB: 8},
			[]string{"virtio-pci", "ext4", "virtio_net", "virtio_blk", "crc32c_generic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.moduleNames(); !slices.Equal(got, tc.want) {
				t.Errorf("moduleNames() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestKernelsDedup checks that a kernel given twice gets one module set.
func TestKernelsDedup(t *testing.T) {
	a := &Kernel{Release: "6.1.0-47-amd64"}
	b := &Kernel{Release: "6.1.0-56-amd64"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"one", Config{Kernel: a}, []string{a.Release}},
		{"extra", Config{Kernel: a, Extra: []*Kernel{b}}, []string{a.Release, b.Release}},
		{"repeated", Config{Kernel: a, Extra: []*Kernel{b, a, b}}, []string{a.Release, b.Release}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, k := range tc.cfg.kernels() {
				got = append(got, k.Release)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("kernels() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestInitScript checks the parts of /init that depend on the kernels and
// the disk.
func TestInitScript(t *testing.T) {
	two := []moduleSet{
		{release: "6.1.0-47-amd64", paths: []string{"lib/modules/6.1.0-47-amd64/virtio.ko", "lib/modules/6.1.0-47-amd64/ext4.ko"}},
		{release: "6.12.1+deb12-amd64", paths: []string{"lib/modules/6.12.1+deb12-amd64/ext4.ko"}},
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		sets   []moduleSet
		want   []string // in this order
		absent []string
	}{
		{
			name:   "no-modules-no-disk",
			cfg:    Config{Script: "true"},
			sets:   []moduleSet{{release: "6.1.0-47-amd64"}},
			want:   []string{bootedMarker, "(\ntrue\n)", exitMarker, "poweroff -f"},
			absent: []string{"case", "insmod", DataDir},
		},
		{
			name: "per-kernel-sets-and-disk",
			cfg:  Config{Program: "/x", Args: []string{"-a", "it's"}, DiskMB: 16},
			sets: two,
			want: []string{
				`case "$(uname -r)" in`,
				"'6.1.0-47-amd64')\n\tinsmod /lib/modules/6.1.0-47-amd64/virtio.ko || fail",
				"\tinsmod /lib/modules/6.1.0-47-amd64/ext4.ko || fail",
				"'6.12.1+deb12-amd64')\n\tinsmod /lib/modules/6.12.1+deb12-amd64/ext4.ko || fail",
				`fail "no module set for kernel $(uname -r)"`,
				"esac",
				"mount -t ext4 /dev/vda " + DataDir + " || fail",
				bootedMarker,
				GuestProgram + ` '-a' 'it'\''s'`,
				exitMarker,
				"umount " + DataDir,
				"poweroff -f",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := initScript(tc.cfg, tc.sets)
			last := 0
			for _, w := range tc.want {
				i := strings.Index(s[last:], w)
				if i < 0 {
					t.Fatalf("/init lacks %q after offset %d:\n%s", w, last, s)
				}
				last += i + len(w)
			}
			for _, a := range tc.absent {
				if strings.Contains(s, a) {
					t.Errorf("/init contains %q:\n%s", a, s)
				}
			}
		})
	}
}

// TestMakeExt4 creates a disk image with mke2fs -d and reads the files
// back with debugfs.
func TestMakeExt4(t *testing.T) {
	debugfs, err := LookSbin("debugfs")
	if err == nil {
		_, err = LookSbin("mke2fs")
	}
	if err != nil {
		if CI() {
			t.Fatalf("e2fsprogs missing: %v", err)
		}
		t.Skipf("e2fsprogs missing: %v", err)
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("kernel bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b")
	if err := os.WriteFile(b, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	files := map[string]string{"boot/vmlinuz-x": a, "boot/initrd.img-x": a, "deep/dir/run.sh": b}
	if err := makeExt4(t.Context(), img, 8, filepath.Join(dir, "stage"), files); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 8<<20 {
		t.Fatalf("image: %v, %v", st, err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/boot/vmlinuz-x", "kernel bytes"},
		{"/boot/initrd.img-x", "kernel bytes"},
		{"/deep/dir/run.sh", "#!/bin/sh\n"},
	} {
		out, err := exec.Command(debugfs, "-R", "cat "+tc.path, img).Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("debugfs cat %s = %q, %v; want %q", tc.path, out, err, tc.want)
		}
	}
	out, err := exec.Command(debugfs, "-R", "stat /deep/dir/run.sh", img).Output()
	if err != nil || !strings.Contains(string(out), "Mode:  0755") {
		t.Errorf("run.sh mode: %v\n%s", err, out)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makeExt4(t.Context(), filepath.Join(dir, "small.img"), 2, filepath.Join(dir, "stage2"),
		map[string]string{"big": big}); err == nil {
		t.Error("a 4 MiB file fitted on a 2 MiB disk")
	}
}
