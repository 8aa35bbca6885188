// Package install installs a staged kernel release on the host, the way
// the distribution does, before the agent asks for a reboot slot: a Debian
// linux-image .deb through real dpkg (its maintainer scripts and hooks
// build the initramfs), a kroll bundle by unpacking its modules into
// /lib/modules/<release> atomically, running depmod, and installing its
// kernel and initrd (or generating one with update-initramfs or dracut).
//
// Free space on /boot and /lib/modules is checked first. Every step is
// idempotent, so the agent killed at any point re-runs the install of the
// same verified files and ends in the same state. The install never
// changes the boot loader's default entry. After an install, kernels
// other than the running, the previous and the target one are removed,
// but only packages named linux-image-<release> and files the agent
// itself created (listed in StateFile under the state directory).
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
)

// The values of Config.Initramfs.
const (
	InitramfsAuto            = "auto"
	InitramfsUpdateInitramfs = "update-initramfs"
	InitramfsDracut          = "dracut"
)

// Default free-space margins, in bytes, kept on /boot and /lib/modules in
// addition to what the install writes.
const (
	DefaultMinFreeBoot    = 64 << 20
	DefaultMinFreeModules = 256 << 20
)

// defaultInitrdEstimate is the space reserved on /boot for an initramfs
// to be generated when the host has no initrd to compare with.
const defaultInitrdEstimate = 96 << 20

// ErrStagedChanged marks an install refused because a staged file no
// longer matches the signed manifest: the release must be staged again.
// The damaged file has been removed.
var ErrStagedChanged = errors.New("staged file changed since it was verified")

// Config configures an Installer.
type Config struct {
	// Root is the root of the file system installed into; "" or "/" is the
	// host. Tests use a temporary directory; dpkg then runs with --root
	// (its maintainer scripts chrooted into Root).
	Root string
	// StateDir is the agent's state directory; StateFile is kept there.
	StateDir string
	// Initramfs is the tool that generates a bundle's missing initrd:
	// InitramfsAuto (update-initramfs when installed, else dracut),
	// InitramfsUpdateInitramfs or InitramfsDracut.
	Initramfs string
	// MinFreeBoot and MinFreeModules are the bytes that must stay free on
	// /boot and /lib/modules after the install; 0 means the defaults.
	MinFreeBoot, MinFreeModules uint64
	// Runner runs dpkg, depmod and the initramfs tools; nil runs them.
	Runner Runner
	// LookPath finds a program (exec.LookPath when nil); used to pick the
	// initramfs tool.
	LookPath func(string) (string, error)
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Installer installs staged kernels. It is not safe for concurrent use.
type Installer struct {
	cfg Config
	log *slog.Logger
}

// Request is a staged release to install.
type Request struct {
	// Manifest is the verified release manifest.
	Manifest release.Manifest
	// Dir is the release's staging directory: the downloaded artifacts
	// are Dir/<artifact name>.
	Dir string
	// Vmlinuz and Initrd are the staged kernel and (for a bundle that has
	// one) initrd, unpacked by the stager.
	Vmlinuz, Initrd string
	// Running is the running kernel's release.
	Running string
}

// Result is an installed kernel.
type Result struct {
	// KernelRelease is the kernel release (uname -r).
	KernelRelease string
	// Vmlinuz and Initrd are the installed kernel and initrd,
	// <boot>/vmlinuz-<release> and <boot>/initrd.img-<release>.
	Vmlinuz, Initrd string
	// Method is "dpkg" or "bundle".
	Method string
}

// New returns an Installer for cfg.
func New(cfg Config) (*Installer, error) {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("install: root %q is not an absolute path", cfg.Root)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("install: Config.StateDir is required")
	}
	switch cfg.Initramfs {
	case "":
		cfg.Initramfs = InitramfsAuto
	case InitramfsAuto, InitramfsUpdateInitramfs, InitramfsDracut:
	default:
		return nil, fmt.Errorf("install: initramfs tool %q: want %q, %q or %q", cfg.Initramfs, InitramfsAuto, InitramfsUpdateInitramfs, InitramfsDracut)
	}
	if cfg.MinFreeBoot == 0 {
		cfg.MinFreeBoot = DefaultMinFreeBoot
	}
	if cfg.MinFreeModules == 0 {
		cfg.MinFreeModules = DefaultMinFreeModules
	}
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.LookPath == nil {
		cfg.LookPath = lookPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Installer{cfg: cfg, log: cfg.Logger}, nil
}

// BootDir is the directory kernels are installed to (<root>/boot).
func (in *Installer) BootDir() string { return filepath.Join(in.cfg.Root, "boot") }

// ModulesDir is the directory of the module trees (<root>/lib/modules).
func (in *Installer) ModulesDir() string { return filepath.Join(in.cfg.Root, "lib", "modules") }

func (in *Installer) vmlinuz(rel string) string {
	return filepath.Join(in.BootDir(), "vmlinuz-"+rel)
}

func (in *Installer) initrd(rel string) string {
	return filepath.Join(in.BootDir(), "initrd.img-"+rel)
}

// hostRoot reports whether the installer works on the host's own root.
func (in *Installer) hostRoot() bool { return filepath.Clean(in.cfg.Root) == "/" }

// Install installs the staged release. Re-running it for the same release
// after an interruption completes the install; for an installed release
// it only checks the result.
func (in *Installer) Install(ctx context.Context, req Request) (*Result, error) {
	m := req.Manifest
	rel := m.KernelVersion
	if err := checkRelease(rel); err != nil {
		return nil, fmt.Errorf("install %s: %w", m.ID, err)
	}
	if req.Running != "" && req.Running == rel {
		return nil, fmt.Errorf("install %s: kernel %s is the running kernel", m.ID, rel)
	}
	var (
		res *Result
		err error
	)
	switch m.Kind {
	case release.KindDeb:
		res, err = in.installDeb(ctx, req)
	case release.KindBundle:
		res, err = in.installBundle(ctx, req)
	default:
		err = fmt.Errorf("release kind %q cannot be installed", m.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("install %s (kernel %s): %w", m.ID, rel, err)
	}
	for _, p := range []string{res.Vmlinuz, res.Initrd} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("install %s: after the install: %w", m.ID, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() == 0 {
			return nil, fmt.Errorf("install %s: after the install: %s is not a non-empty regular file", m.ID, p)
		}
	}
	return res, nil
}

// checkRelease refuses a kernel release that cannot be used in a file name.
func checkRelease(rel string) error {
	if rel == "" || len(rel) > 128 || rel[0] < '0' || rel[0] > '9' {
		return fmt.Errorf("kernel release %q: must start with a digit (at most 128 characters)", rel)
	}
	for _, c := range rel {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune(".+-_~", c):
		default:
			return fmt.Errorf("kernel release %q: character %q not allowed", rel, c)
		}
	}
	return nil
}

// verifiedArtifact returns the path of artifact a in dir after checking
// its size and sha256 again: the staging directory may have changed since
// staging. A file that does not match is removed and the error wraps
// ErrStagedChanged.
func verifiedArtifact(dir string, a release.Artifact) (string, error) {
	p := filepath.Join(dir, a.Name)
	if !filepath.IsLocal(a.Name) || strings.ContainsRune(a.Name, '/') {
		return "", fmt.Errorf("artifact name %q is not a plain file name", a.Name)
	}
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("artifact %s: %w: %w", a.Name, ErrStagedChanged, err)
		}
		return "", fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != a.Size || got != a.SHA256 {
		_ = os.Remove(p)
		return "", fmt.Errorf("artifact %s: %w: %d bytes sha256 %s, the manifest says %d bytes sha256 %s (removed)",
			a.Name, ErrStagedChanged, n, got, a.Size, a.SHA256)
	}
	return p, nil
}
