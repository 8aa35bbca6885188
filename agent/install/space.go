package install

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// blockRound is added per file to the space estimates: files occupy
// whole blocks.
const blockRound = 4 << 10

// lookPath is exec.LookPath.
func lookPath(name string) (string, error) { return exec.LookPath(name) }

// fsInfo is the free space and device of the file system holding a path.
type fsInfo struct {
	dir   string
	dev   uint64
	avail uint64
}

// statFS describes the file system of dir, or of its nearest existing
// parent when dir does not exist yet.
func statFS(dir string) (fsInfo, error) {
	d := dir
	for {
		var st unix.Stat_t
		err := unix.Stat(d, &st)
		if err == nil {
			var fs unix.Statfs_t
			if err := unix.Statfs(d, &fs); err != nil {
				return fsInfo{}, fmt.Errorf("free space of %s: %w", d, err)
			}
			return fsInfo{dir: dir, dev: uint64(st.Dev), avail: fs.Bavail * uint64(fs.Bsize)}, nil
		}
		if !errors.Is(err, unix.ENOENT) || d == filepath.Dir(d) {
			return fsInfo{}, fmt.Errorf("free space of %s: %w", d, &os.PathError{Op: "stat", Path: d, Err: err})
		}
		d = filepath.Dir(d)
	}
}

// spaceNeed is what an install writes to /boot and /lib/modules.
type spaceNeed struct {
	boot, modules uint64
	// bootWhat and modulesWhat say what the bytes are, for the error.
	bootWhat, modulesWhat string
}

// checkSpace fails unless /boot and /lib/modules have room for need plus
// the configured margins; when both are on one file system it must hold
// the sum.
func (in *Installer) checkSpace(need spaceNeed) error {
	boot, err := statFS(in.BootDir())
	if err != nil {
		return err
	}
	mods, err := statFS(in.ModulesDir())
	if err != nil {
		return err
	}
	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	if boot.dev == mods.dev {
		total := need.boot + need.modules + max(in.cfg.MinFreeBoot, in.cfg.MinFreeModules)
		if boot.avail < total {
			return fmt.Errorf("not enough free space on the file system of %s and %s: %s available, need %s (%s of %s + %s of %s + margin %s)",
				boot.dir, mods.dir, mib(boot.avail), mib(total), mib(need.boot), need.bootWhat, mib(need.modules), need.modulesWhat,
				mib(max(in.cfg.MinFreeBoot, in.cfg.MinFreeModules)))
		}
		return nil
	}
	if want := need.boot + in.cfg.MinFreeBoot; boot.avail < want {
		return fmt.Errorf("not enough free space on the file system of %s: %s available, need %s (%s of %s + min_free_boot_mb %s)",
			boot.dir, mib(boot.avail), mib(want), mib(need.boot), need.bootWhat, mib(in.cfg.MinFreeBoot))
	}
	if want := need.modules + in.cfg.MinFreeModules; mods.avail < want {
		return fmt.Errorf("not enough free space on the file system of %s: %s available, need %s (%s of %s + min_free_modules_mb %s)",
			mods.dir, mib(mods.avail), mib(want), mib(need.modules), need.modulesWhat, mib(in.cfg.MinFreeModules))
	}
	return nil
}

// initrdEstimate is the space to reserve for an initramfs generated on
// the host: the largest existing initrd.img-* in /boot, or a default.
func (in *Installer) initrdEstimate() uint64 {
	matches, _ := filepath.Glob(filepath.Join(in.BootDir(), "initrd.img-*"))
	var largest uint64
	for _, p := range matches {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && uint64(fi.Size()) > largest {
			largest = uint64(fi.Size())
		}
	}
	if largest == 0 {
		return defaultInitrdEstimate
	}
	return largest + largest/4
}
