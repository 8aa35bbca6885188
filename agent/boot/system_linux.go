//go:build linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"
)

// The constants of system.go are the kernel's (compile error otherwise).
const (
	_ = uint(kexecFileNoInitramfs-unix.KEXEC_FILE_NO_INITRAMFS) + uint(unix.KEXEC_FILE_NO_INITRAMFS-kexecFileNoInitramfs)
	_ = uint(rebootCmdRestart-unix.LINUX_REBOOT_CMD_RESTART) + uint(unix.LINUX_REBOOT_CMD_RESTART-rebootCmdRestart)
	_ = uint(rebootCmdKexec-unix.LINUX_REBOOT_CMD_KEXEC) + uint(unix.LINUX_REBOOT_CMD_KEXEC-rebootCmdKexec)
)

// linuxSystem is the real system.
type linuxSystem struct{}

func newSystem() system { return linuxSystem{} }

func (linuxSystem) kexecFileLoad(kernel, initrd *os.File, cmdline string, flags int) error {
	initrdFd := -1
	if initrd != nil {
		initrdFd = int(initrd.Fd())
	}
	return unix.KexecFileLoad(int(kernel.Fd()), initrdFd, cmdline, flags)
}

func (linuxSystem) sync() { unix.Sync() }

func (linuxSystem) reboot(cmd int) error { return unix.Reboot(cmd) }

func (linuxSystem) startUnit(ctx context.Context, unit, mode string) error {
	conn, err := dbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.StartUnitContext(ctx, unit, mode, nil); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	return nil
}

// kexecRefused reports whether a kexec_file_load error means that this
// kernel will not kexec the image at all (rather than a transient or I/O
// failure): no KEXEC_FILE support (ENOSYS), not permitted by privileges,
// sysctl or lockdown (EPERM), refused by an LSM or IMA (EACCES), image
// format or arguments not accepted (ENOEXEC, EINVAL, EOPNOTSUPP), or a
// missing or bad signature (EKEYREJECTED, ENOKEY, EBADMSG, ENOPKG,
// EKEYEXPIRED, EKEYREVOKED).
func kexecRefused(err error) bool {
	for _, e := range []unix.Errno{
		unix.ENOSYS, unix.EPERM, unix.EACCES, unix.ENOEXEC, unix.EINVAL, unix.EOPNOTSUPP,
		unix.EKEYREJECTED, unix.ENOKEY, unix.EBADMSG, unix.ENOPKG, unix.EKEYEXPIRED, unix.EKEYREVOKED,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
