package main

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/kroll-dev/kroll/test/vm"
)

// vmTool is a command the VM demo runs and the Debian package that has it.
type vmTool struct {
	cmd, pkg string
	sbin     bool // looked up in the sbin directories as well (vm.LookSbin)
}

// vmTools are what `make demo` needs beyond Go; the simulated demo needs
// none of them. The Makefile's DEMO_DEBS installs the same packages.
var vmTools = []vmTool{
	{cmd: "qemu-system-x86_64", pkg: "qemu-system-x86"},
	{cmd: "busybox", pkg: "busybox-static"},
	{cmd: "mke2fs", pkg: "e2fsprogs", sbin: true},
	{cmd: "apt-get", pkg: "apt"},
	{cmd: "dpkg", pkg: "dpkg"},
}

// simTools are what `make demo-sim` needs beyond Go: its train section
// builds an apt repository (internal/aptrepo). The Makefile's
// DEMO_SIM_DEBS installs the same packages.
var simTools = []vmTool{
	{cmd: "dpkg-deb", pkg: "dpkg"},
	{cmd: "dpkg-scanpackages", pkg: "dpkg-dev"},
}

// lookers find commands: on PATH, and on PATH or in the sbin directories.
type lookers struct {
	path, sbin func(string) (string, error)
}

var systemLookers = lookers{path: exec.LookPath, sbin: vm.LookSbin}

// preflight checks, before anything starts, that the commands the demo
// runs are installed, naming the Debian packages that are missing.
func preflight(sim bool, look lookers) error {
	tools, how := vmTools, "`make demo` as root installs them, as `make deps` does; or apt-get install %s), or run `make demo-sim`, which needs none of the VM tools"
	if sim {
		tools, how = simTools, "`make demo-sim` as root installs them; or apt-get install %s)"
	}
	var cmds, pkgs []string
	for _, t := range tools {
		find := look.path
		if t.sbin {
			find = look.sbin
		}
		if _, err := find(t.cmd); err != nil {
			cmds = append(cmds, t.cmd)
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	return fmt.Errorf("missing %s: install the Debian package(s) %s ("+how, strings.Join(cmds, ", "), strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
}
