package vm

import (
	"bytes"
	"debug/elf"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestInitramfsIsReadableByCpio checks the archive against GNU cpio.
func TestInitramfsIsReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		if CI() {
			t.Fatalf("cpio missing (make deps installs it): %v", err)
		}
		t.Skip("cpio missing; run make deps")
	}
	r := NewInitramfs()
	for _, f := range []struct {
		path string
		data string
	}{
		{"init", "#!/bin/sh\n"},
		{"/kroll/deep/dir/odd", "x"},     // length not a multiple of 4
		{"etc/empty", ""},                // empty file
		{"lib/modules/a.ko", "abcdefgh"}, // length a multiple of 4
	} {
		if err := r.AddFile(f.path, []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddSymlink("bin/sh", "busybox"); err != nil {
		t.Fatal(err)
	}
	if err := r.AddFile("../../escape", nil, 0o644); err != nil {
		t.Fatal(err) // cleaned to "escape", inside the archive
	}
	var gz bytes.Buffer
	if _, err := r.WriteTo(&gz); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -itv --quiet")
	cmd.Stdin = bytes.NewReader(gz.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v: %s", err, out)
	}
	listing := string(out)
	for _, want := range []string{"kroll/deep/dir/odd", "etc/empty", "lib/modules/a.ko", "bin/sh -> busybox", "escape", "drwxr-xr-x"} {
		if !strings.Contains(listing, want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, listing)
		}
	}
	if strings.Contains(listing, "..") {
		t.Errorf("path with .. in archive:\n%s", listing)
	}
	cmd = exec.Command("sh", "-c", "gzip -dc | cpio -i --to-stdout --quiet kroll/deep/dir/odd lib/modules/a.ko")
	cmd.Stdin = bytes.NewReader(gz.Bytes())
	out, err = cmd.Output()
	if err != nil || string(out) != "xabcdefgh" {
		t.Errorf("extracted %q, %v; want %q", out, err, "xabcdefgh")
	}
}

// TestResolveModules resolves modules of real Debian kernels: dependencies
// come first, built-ins are skipped, .ko.xz is decompressed to ELF.
func TestResolveModules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kernel   func(t *testing.T) *Kernel
		request  []string
		want     []string // in this relative order
		excluded []string
	}{
		{"6.1", func(t *testing.T) *Kernel { return TestKernel(t, Line61) },
			[]string{"virtio_net", "virtio-pci", "af_alg"},
			[]string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net", "virtio_pci", "af_alg"}, nil},
		{"6.12-xz-and-builtin", func(t *testing.T) *Kernel { return TestKernel(t, Line612) },
			[]string{"virtio_net", "virtio_pci", "algif_aead"},
			[]string{"failover", "net_failover", "virtio_net", "af_alg", "algif_aead"}, []string{"virtio_pci"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.kernel(t)
			mods, err := resolveModules(k.ModulesDir, tc.request)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range mods {
				names = append(names, m.name)
				if _, err := elf.NewFile(bytes.NewReader(m.obj)); err != nil {
					t.Errorf("module %s is not ELF: %v", m.name, err)
				}
			}
			last := -1
			for _, w := range tc.want {
				i := slices.Index(names, w)
				if i < 0 || i < last {
					t.Fatalf("load order %v: want %v in this order", names, tc.want)
				}
				last = i
			}
			for _, x := range tc.excluded {
				if slices.Contains(names, x) {
					t.Errorf("built-in %s in load order %v", x, names)
				}
			}
		})
	}
}
