// Command lsmdeny runs inside a VM: it loads a bpf LSM program that denies
// creating AF_ALG sockets, and reports socket(AF_ALG) results before,
// while and after the program is attached, plus the program's own count
// of denials.
package main

import (
	"errors"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/test/vm/guest"
)

// tryAFALG creates and closes an AF_ALG socket and returns the errno name,
// or "ok".
func tryAFALG() string {
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	unix.Close(fd)
	return "ok"
}

func main() {
	if err := rlimit.RemoveMemlock(); err != nil {
		guest.Fail("memlock: %v", err)
	}
	guest.Report("before", tryAFALG())

	var objs denyObjects
	if err := loadDenyObjects(&objs, nil); err != nil {
		guest.Fail("load: %v", err)
	}
	defer objs.Close()
	l, err := link.AttachLSM(link.LSMOptions{Program: objs.DenyAfAlg})
	if err != nil {
		guest.Fail("attach: %v", err)
	}
	guest.Report("attached", tryAFALG())

	var n uint64
	if err := objs.Denials.Lookup(uint32(0), &n); err != nil {
		guest.Fail("read counter: %v", err)
	}
	guest.Report("denials", n)

	if err := l.Close(); err != nil {
		guest.Fail("detach: %v", err)
	}
	guest.Report("after", tryAFALG())
}
