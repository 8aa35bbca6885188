package boot

import (
	"context"
	"os"
)

// Linux ABI values; system_linux.go checks them against x/sys/unix.
const (
	kexecFileNoInitramfs = 0x4        // KEXEC_FILE_NO_INITRAMFS
	rebootCmdRestart     = 0x1234567  // LINUX_REBOOT_CMD_RESTART
	rebootCmdKexec       = 0x45584543 // LINUX_REBOOT_CMD_KEXEC
)

// system performs the privileged actions of a boot: the real system
// (newSystem) in production, a fake in unit tests.
type system interface {
	// kexecFileLoad calls kexec_file_load(2); initrd is nil when flags
	// holds kexecFileNoInitramfs.
	kexecFileLoad(kernel, initrd *os.File, cmdline string, flags int) error
	// sync flushes file systems (sync(2)).
	sync()
	// reboot calls reboot(2) with cmd; it does not return on success.
	reboot(cmd int) error
	// startUnit asks systemd over D-Bus to start unit in job mode mode and
	// returns once the job is queued.
	startUnit(ctx context.Context, unit, mode string) error
}
