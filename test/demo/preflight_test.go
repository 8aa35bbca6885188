package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPreflight: the VM demo stops before it starts anything when a
// command is missing, naming every missing Debian package; the simulated
// demo needs none of the VM tools, only dpkg-dev for its apt repository.
func TestPreflight(t *testing.T) {
	finder := func(missing ...string) func(string) (string, error) {
		return func(cmd string) (string, error) {
			if slices.Contains(missing, cmd) {
				return "", &exec.Error{Name: cmd, Err: exec.ErrNotFound}
			}
			return "/usr/bin/" + cmd, nil
		}
	}
	for _, c := range []struct {
		name     string
		sim      bool
		path     []string // missing on PATH
		sbin     []string // missing from PATH and sbin
		want     []string // in the error
		wantNone bool
	}{
		{name: "all there", wantNone: true},
		{name: "sim needs no VM tools", sim: true, path: []string{"qemu-system-x86_64", "busybox", "apt-get", "dpkg"}, sbin: []string{"mke2fs"}, wantNone: true},
		{name: "sim without dpkg-dev", sim: true, path: []string{"dpkg-scanpackages"},
			want: []string{"missing dpkg-scanpackages", "package(s) dpkg-dev ", "make demo-sim` as root", "apt-get install dpkg-dev)"}},
		{name: "no qemu", path: []string{"qemu-system-x86_64"}, want: []string{"missing qemu-system-x86_64", "package(s) qemu-system-x86 ", "apt-get install qemu-system-x86)", "make demo-sim"}},
		{name: "fresh Debian", path: []string{"qemu-system-x86_64", "busybox"}, sbin: []string{"mke2fs"},
			want: []string{"missing qemu-system-x86_64, busybox, mke2fs", "apt-get install qemu-system-x86 busybox-static e2fsprogs"}},
		{name: "mke2fs only in sbin", path: []string{"mke2fs"}, wantNone: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := preflight(c.sim, lookers{path: finder(c.path...), sbin: finder(c.sbin...)})
			if c.wantNone {
				if err != nil {
					t.Fatalf("preflight: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("preflight passed with commands missing")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Every package named is one `make demo` installs (DEMO_DEBS), apart
	// from apt and dpkg, without which there is no Debian to install on.
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEMO_DEBS\s*:=(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no DEMO_DEBS")
	}
	debs := strings.Fields(string(m[1]))
	for _, tool := range vmTools {
		if tool.pkg != "apt" && tool.pkg != "dpkg" && !slices.Contains(debs, tool.pkg) {
			t.Errorf("%s (%s) is not in the Makefile's DEMO_DEBS %v", tool.pkg, tool.cmd, debs)
		}
	}
	m = regexp.MustCompile(`(?m)^DEMO_SIM_DEBS\s*:=(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no DEMO_SIM_DEBS")
	}
	debs = strings.Fields(string(m[1]))
	for _, tool := range simTools {
		if tool.pkg != "dpkg" && !slices.Contains(debs, tool.pkg) {
			t.Errorf("%s (%s) is not in the Makefile's DEMO_SIM_DEBS %v", tool.pkg, tool.cmd, debs)
		}
	}
}
