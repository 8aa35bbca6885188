package bpf

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Filesystems whose stat(2) device number is not their superblock's s_dev.
var unsupportedFS = map[int64]string{
	unix.BTRFS_SUPER_MAGIC:     "btrfs (stat reports the subvolume's device, not the superblock's)",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs (stat reports the underlying file's device and inode)",
	0xca451a4e:                 "bcachefs (stat reports the subvolume's device, not the superblock's)",
}

// ExeKey returns the Key the programs see for the file at path (symbolic
// links followed): for an executable, what current->mm->exe_file of a
// process running it yields; for any file, what file_open sees. It takes
// the device and inode from statx(2), which report inode->i_sb->s_dev and
// i_ino on ordinary filesystems (ext4, xfs, tmpfs, ...), and re-encodes
// the device as the kernel does internally (KernelDev).
//
// Filesystems whose reported device or inode differ from the kernel's own
// (btrfs, overlayfs, bcachefs) are refused with an error rather than
// yielding a key that would silently never match.
func ExeKey(path string) (Key, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO, &stx); err != nil {
		return Key{}, fmt.Errorf("bpf: key of %s: statx: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return Key{}, fmt.Errorf("bpf: key of %s: statfs: %w", path, err)
	}
	if why, ok := unsupportedFS[int64(fs.Type)]; ok {
		return Key{}, fmt.Errorf("bpf: key of %s: unsupported filesystem %s", path, why)
	}
	return Key{Dev: KernelDev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}, nil
}
