package vm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kroll-dev/kroll/test/vm"
)

// TestDiskPersistsAcrossKexec boots the oldest 6.1 kernel with a data disk
// and the newest 6.12 as an Extra kernel; the guest kexecs from one into
// the other. It proves that the disk (with the host's DiskFiles and the
// boot files of both kernels) is mounted in both boots and keeps what the
// first boot wrote, and that /init loads each kernel's own module set.
func TestDiskPersistsAcrossKexec(t *testing.T) {
	oldK := vm.TestOldestKernel(t, vm.Line61)
	newK := vm.TestKernel(t, vm.Line612)
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/kexec")
	hello := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(hello, []byte("hello from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := vm.Run(t.Context(), vm.Config{
		Kernel: oldK, Extra: []*vm.Kernel{newK}, Program: prog,
		Args:   []string{"-target", newK.Release},
		DiskMB: 64, DiskFiles: map[string]string{"hello.txt": hello},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Boots != 2 {
		t.Fatalf("exit %d, boots %d; console:\n%s", res.ExitCode, res.Boots, res.Tail(40))
	}
	type boot struct {
		Release string
		Modules []string
	}
	var boots []boot
	for _, r := range res.Reports {
		if r.Key == "boot" {
			var b boot
			if err := json.Unmarshal(r.Value, &b); err != nil {
				t.Fatal(err)
			}
			boots = append(boots, b)
		}
	}
	if len(boots) != 2 || boots[0].Release != oldK.Release || boots[1].Release != newK.Release {
		t.Fatalf("boots %+v, want %s then %s", boots, oldK.Release, newK.Release)
	}
	for _, tc := range []struct {
		boot    boot
		want    []string
		builtin []string // built into this kernel: never loaded as a module
	}{
		{boots[0], []string{"virtio_pci", "virtio_blk", "ext4", "jbd2", "crc32c_generic"}, nil},
		{boots[1], []string{"virtio_blk", "ext4", "jbd2", "crc32c_generic"}, []string{"virtio_pci"}},
	} {
		for _, m := range tc.want {
			if !slices.Contains(tc.boot.Modules, m) {
				t.Errorf("%s: module %s not loaded (loaded: %v)", tc.boot.Release, m, tc.boot.Modules)
			}
		}
		for _, m := range tc.builtin {
			if slices.Contains(tc.boot.Modules, m) {
				t.Errorf("%s: built-in %s loaded as a module", tc.boot.Release, m)
			}
		}
	}
	var noted, got string
	if err := res.Decode("noted", &noted); err != nil {
		t.Fatal(err)
	}
	if err := res.Decode("hello", &got); err != nil {
		t.Fatal(err)
	}
	if noted != oldK.Release || got != "hello from the host" {
		t.Errorf("second boot read noted=%q hello=%q", noted, got)
	}
	t.Logf("kexec %s → %s with the disk kept, %s", oldK.Release, newK.Release, res.Duration.Round(100e6))
}
