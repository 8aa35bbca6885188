package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// moduleSet is what /init loads on one kernel release.
type moduleSet struct {
	release string
	mods    []loadedModule
	paths   []string // guest paths of mods, without the leading "/"
}

// kernels returns cfg.Kernel and cfg.Extra without repeated releases.
func (cfg Config) kernels() []*Kernel {
	ks := []*Kernel{cfg.Kernel}
	seen := map[string]bool{cfg.Kernel.Release: true}
	for _, k := range cfg.Extra {
		if !seen[k.Release] {
			seen[k.Release] = true
			ks = append(ks, k)
		}
	}
	return ks
}

// moduleNames returns the modules a run asks for: Modules plus those the
// network and disk need, each name once, in first-mention order.
func (cfg Config) moduleNames() []string {
	names := slices.Clone(cfg.Modules)
	if cfg.Network {
		// The virtio PCI transport and the NIC driver.
		names = append(names, "virtio_pci", "virtio_net")
	}
	if cfg.DiskMB > 0 {
		// The virtio PCI transport, the block driver, and ext4 with the
		// crc32c implementation that ext4 and jbd2 look up through the
		// crypto API for metadata checksums (modinfo does not list it as
		// a dependency). Built-in ones (virtio_pci on 6.12) are skipped.
		names = append(names, "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if c := moduleName(n); !seen[c] {
			seen[c] = true
			out = append(out, n)
		}
	}
	return out
}

// moduleSets resolves the modules of every kernel of cfg.
func moduleSets(cfg Config) ([]moduleSet, error) {
	names := cfg.moduleNames()
	var sets []moduleSet
	for _, k := range cfg.kernels() {
		mods, err := resolveModules(k.ModulesDir, names)
		if err != nil {
			return nil, err
		}
		set := moduleSet{release: k.Release, mods: mods}
		for _, m := range mods {
			set.paths = append(set.paths, "lib/modules/"+k.Release+"/"+m.name+".ko")
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// loadScript is the part of /init that loads the module set of the running
// kernel; empty when no kernel needs modules.
func loadScript(sets []moduleSet) string {
	need := false
	for _, s := range sets {
		need = need || len(s.paths) > 0
	}
	if !need {
		return ""
	}
	var b strings.Builder
	b.WriteString("case \"$(uname -r)\" in\n")
	for _, s := range sets {
		fmt.Fprintf(&b, "%s)\n", shellQuote(s.release))
		for _, p := range s.paths {
			fmt.Fprintf(&b, "\tinsmod /%s || fail insmod /%s\n", p, p)
		}
		b.WriteString("\t;;\n")
	}
	b.WriteString("*)\n\tfail \"no module set for kernel $(uname -r)\"\n\t;;\nesac\n")
	return b.String()
}

// buildDisk creates the ext4 image out of cfg.DiskMB MiB holding the boot
// files of every kernel (with initrd as their initrd) and cfg.DiskFiles,
// staging them in the directory stage first.
func buildDisk(ctx context.Context, cfg Config, initrd, stage, out string) error {
	files := map[string]string{}
	for _, k := range cfg.kernels() {
		files["boot/vmlinuz-"+k.Release] = k.Vmlinuz
		files["boot/initrd.img-"+k.Release] = initrd
	}
	for rel, host := range cfg.DiskFiles {
		p, err := cleanGuestPath(rel)
		if err != nil {
			return err
		}
		files[p] = host
	}
	return makeExt4(ctx, out, cfg.DiskMB, stage, files)
}

// makeExt4 writes an ext4 file system image of sizeMB MiB to out whose
// contents are files (image path → host path), staged in the directory
// stage and put into the image with mke2fs -d.
func makeExt4(ctx context.Context, out string, sizeMB int, stage string, files map[string]string) error {
	for p, host := range files {
		dst := filepath.Join(stage, filepath.FromSlash(path.Clean(p)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("vm: disk: %w", err)
		}
		if err := copyFile(dst, host); err != nil {
			return fmt.Errorf("vm: disk file %s: %w", p, err)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: disk: %w", err)
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		f.Close()
		return fmt.Errorf("vm: disk: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vm: disk: %w", err)
	}
	mkfs, err := LookSbin("mke2fs")
	if err != nil {
		return fmt.Errorf("vm: disk: mke2fs not found (Debian package e2fsprogs): %w", err)
	}
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-t", "ext4", "-L", "kroll-data", "-E", "root_owner=0:0", "-d", stage, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: mke2fs -d for a %d MiB disk: %w: %s", sizeMB, err, bytes.TrimSpace(b))
	}
	return nil
}

// LookSbin finds a program in $PATH or in the sbin directories, which the
// PATH of unprivileged users often lacks.
func LookSbin(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if q, err2 := exec.LookPath(filepath.Join(d, name)); err2 == nil {
			return q, nil
		}
	}
	return "", err
}

// copyFile copies host file src to dst, keeping its permission bits; a hard
// link is tried first to save the copy.
func copyFile(dst, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if errors.Is(err, os.ErrExist) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
