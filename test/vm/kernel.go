package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kernel is a Debian kernel package unpacked in the cache.
type Kernel struct {
	// Package is the Debian package name, e.g. "linux-image-6.1.0-56-amd64".
	Package string
	// PackageVersion is the Debian package version, e.g. "6.1.192-2".
	PackageVersion string
	// Release is the kernel release (uname -r), e.g. "6.1.0-56-amd64".
	Release string
	// Vmlinuz is the path of the bootable kernel image.
	Vmlinuz string
	// ModulesDir is lib/modules/<Release> of the unpacked package.
	ModulesDir string
	// Deb is the path of the downloaded .deb itself.
	Deb string
}

// Kernel package name patterns of the Debian lines the tests use.
var (
	// Line61 matches bookworm's 6.1 ABI packages (linux-image-6.1.0-N-amd64).
	Line61 = regexp.MustCompile(`^linux-image-6\.1\.0-([0-9]+)-amd64$`)
	// Line612 matches bookworm's 6.12 packages (linux-image-6.12.N+deb12-amd64).
	Line612 = regexp.MustCompile(`^linux-image-6\.12\.([0-9]+)\+deb12-amd64$`)
)

// CacheDir is where kernels are downloaded and unpacked:
// $KROLL_VM_CACHE, else $XDG_CACHE_HOME/kroll/vm, else ~/.cache/kroll/vm.
func CacheDir() (string, error) {
	if d := os.Getenv("KROLL_VM_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vm: cache dir: %w", err)
	}
	return filepath.Join(base, "kroll", "vm"), nil
}

// KernelPackages lists the kernel packages the apt archive offers whose
// names match pattern, ordered by the number in the pattern's first
// submatch (ABI number or patch level), oldest first.
func KernelPackages(ctx context.Context, pattern *regexp.Regexp) ([]string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "pkgnames", "linux-image-").Output()
	if err != nil {
		return nil, fmt.Errorf("vm: apt-cache pkgnames: %w (is this Debian, and has 'apt-get update' run? 'make deps' does it)", err)
	}
	type pkg struct {
		name string
		n    int
	}
	var pkgs []pkg
	for _, name := range strings.Fields(string(out)) {
		m := pattern.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		pkgs = append(pkgs, pkg{name, n})
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("vm: no package matching %s in the apt lists (run 'apt-get update' or 'make deps')", pattern)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].n < pkgs[j].n })
	names := make([]string, len(pkgs))
	for i, p := range pkgs {
		names[i] = p.name
	}
	return names, nil
}

// NewestKernel fetches the newest package matching pattern.
func NewestKernel(ctx context.Context, pattern *regexp.Regexp) (*Kernel, error) {
	names, err := KernelPackages(ctx, pattern)
	if err != nil {
		return nil, err
	}
	return FetchKernel(ctx, names[len(names)-1])
}

// OldestKernel fetches the oldest package matching pattern, e.g. the
// kernel a kexec upgrade test starts from.
func OldestKernel(ctx context.Context, pattern *regexp.Regexp) (*Kernel, error) {
	names, err := KernelPackages(ctx, pattern)
	if err != nil {
		return nil, err
	}
	return FetchKernel(ctx, names[0])
}

// FetchKernel downloads a Debian linux-image package with apt-get download
// into the cache, unpacks it with dpkg -x and returns its parts. A package
// already in the cache is reused. Concurrent callers (also in other
// processes) are serialized by a lock file.
func FetchKernel(ctx context.Context, pkg string) (*Kernel, error) {
	if !regexp.MustCompile(`^linux-image-[a-z0-9.+~-]+$`).MatchString(pkg) {
		return nil, fmt.Errorf("vm: %q is not a linux-image package name", pkg)
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "kernels", pkg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	unlock, err := LockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	root := filepath.Join(dir, "root")
	done := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(done); err != nil {
		if err := download(ctx, dir, pkg); err != nil {
			return nil, err
		}
		debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("vm: expected one .deb in %s after download, found %d", dir, len(debs))
		}
		if err := os.RemoveAll(root); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
		if out, err := exec.CommandContext(ctx, "dpkg", "-x", debs[0], root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("vm: dpkg -x %s: %w: %s", debs[0], err, bytes.TrimSpace(out))
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	return openKernel(dir, root, pkg)
}

func download(ctx context.Context, dir, pkg string) error {
	old, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("vm: apt-get not found: the VM tests need a Debian machine (%w)", err)
		}
		return fmt.Errorf("vm: apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	return nil
}

func openKernel(dir, root, pkg string) (*Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("vm: %s: expected one boot/vmlinuz-*, found %d", pkg, len(images))
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	k := &Kernel{
		Package:    pkg,
		Release:    release,
		Vmlinuz:    images[0],
		ModulesDir: filepath.Join(root, "lib", "modules", release),
	}
	if len(debs) == 1 {
		k.Deb = debs[0]
		// pkg_version_arch.deb; apt-get download escapes ':' of epochs as %3a.
		parts := strings.Split(strings.TrimSuffix(filepath.Base(debs[0]), ".deb"), "_")
		if len(parts) == 3 {
			k.PackageVersion = strings.ReplaceAll(parts[1], "%3a", ":")
		}
	}
	return k, nil
}

// LockFile takes an exclusive flock on path, polling until ctx is done.
func LockFile(ctx context.Context, path string) (unlock func(), err error) {
	for {
		unlock, ok, err := tryLock(path)
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLock takes an exclusive flock on path if it is free.
func tryLock(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("vm: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("vm: lock %s: %w", path, err)
	}
	return func() { f.Close() }, true, nil
}
