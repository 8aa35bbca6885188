// Package bpf holds kroll's bpf-lsm stopgap mitigations: one precompiled
// LSM program per policy kind, configured entirely through maps so that a
// policy update (mode switch, allow-list change, new deny entry) is a map
// update, never a program swap.
//
// The kinds:
//
//   - socket-family (socket_family.c): hooks socket_create and socket_bind;
//     audits or denies one address family (Config.Family) for the
//     operations in Config.Ops. Kernel-internal sockets are never denied.
//   - module-request (module_request.c): hooks kernel_module_request;
//     audits or denies on-demand module loading of the names in the deny
//     map (see SetDeniedModules for the '(' rule).
//   - userns-create (userns_create.c): hooks userns_create (Linux 6.1 and
//     later); audits or denies creating user namespaces by tasks without
//     CAP_SYS_ADMIN in the initial user namespace.
//   - file-open (file_open.c): hooks file_open; audits or denies opening the
//     files whose Key is in the deny map.
//
// Every kind has the same shared maps (kroll.h): a config (Mode and Ops),
// an allow-list of executables by Key (the calling task's
// current->mm->exe_file; allow-listed executables are let through and
// counted as allowed), a ring buffer of Events, and per-CPU Counters. In
// Audit mode a matching operation is allowed, counted and reported; in
// Enforce mode it fails with EPERM, is counted and reported. A loaded
// program with a zero Config does nothing, so configure before Attach.
//
// The package knows nothing about policy documents: the agent maps a
// policy onto Load, SetConfig, SetAllowed and the deny setters.
//
// The C sources are compiled with bpf2go against the committed vmlinux.h
// (CO-RE) by 'make generate'; the generated Go and .o files are committed.
package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Kind is a policy kind; each kind is one program object.
type Kind uint32

// The kinds, numbered as in kroll.h (Event.Kind).
const (
	KindSocketFamily  Kind = 1
	KindModuleRequest Kind = 2
	KindUsernsCreate  Kind = 3
	KindFileOpen      Kind = 4
)

// Kinds lists all kinds.
var Kinds = []Kind{KindSocketFamily, KindModuleRequest, KindUsernsCreate, KindFileOpen}

var kindNames = map[Kind]string{
	KindSocketFamily:  "socket-family",
	KindModuleRequest: "module-request",
	KindUsernsCreate:  "userns-create",
	KindFileOpen:      "file-open",
}

// String returns the kind's policy name, e.g. "socket-family".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Ops returns all operations a kind's program hooks: what a policy that
// restricts every operation of the kind sets in Config.Ops.
func (k Kind) Ops() Op {
	switch k {
	case KindSocketFamily:
		return OpSocketCreate | OpSocketBind
	case KindModuleRequest:
		return OpModuleRequest
	case KindUsernsCreate:
		return OpUsernsCreate
	case KindFileOpen:
		return OpFileOpen
	}
	return 0
}

// Mode says what a program does with a matching operation.
type Mode uint32

const (
	// Audit allows the operation, counts it and emits an Event.
	Audit Mode = 0
	// Enforce denies the operation with EPERM, counts it and emits an Event.
	Enforce Mode = 1
)

// String returns "audit" or "enforce".
func (m Mode) String() string {
	switch m {
	case Audit:
		return "audit"
	case Enforce:
		return "enforce"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// Op is a set of hooked operations (Config.Ops); in an Event exactly one.
type Op uint32

// The operations, bits as in kroll.h.
const (
	OpSocketCreate  Op = 1 << 0 // socket-family: socket(2), socketpair(2)
	OpSocketBind    Op = 1 << 1 // socket-family: bind(2)
	OpModuleRequest Op = 1 << 2 // module-request: request_module()
	OpUsernsCreate  Op = 1 << 3 // userns-create: unshare/clone(CLONE_NEWUSER)
	OpFileOpen      Op = 1 << 4 // file-open: open(2) and friends
)

var opNames = []string{"socket_create", "socket_bind", "kernel_module_request", "userns_create", "file_open"}

// String returns the LSM hook names of the set, joined by '|'.
func (o Op) String() string {
	var s []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			s = append(s, n)
			o &^= 1 << i
		}
	}
	if o != 0 {
		s = append(s, fmt.Sprintf("op(%#x)", uint32(o)))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Config is the only entry of a program's config map (struct kroll_config).
type Config struct {
	Mode Mode
	// Ops are the operations the program acts on; zero makes it inert.
	// Only bits of the program's Kind.Ops have an effect.
	Ops Op
	// Family is the address family (unix.AF_ALG, ...) for socket-family.
	Family uint32
	_      uint32
}

// Key identifies an inode the way the kernel does: the kernel-internal
// dev_t of its superblock (see KernelDev) and its inode number. Allow-lists
// hold Keys of executables, the file-open deny map Keys of files.
// ExeKey computes a Key from a path.
type Key struct {
	Dev uint64
	Ino uint64
}

// String formats a key as major:minor:inode.
func (k Key) String() string {
	return fmt.Sprintf("%d:%d:%d", k.Dev>>20, k.Dev&(1<<20-1), k.Ino)
}

// KernelDev returns the kernel-internal encoding of a device number,
// MKDEV(major, minor) = major<<20 | minor, which is what
// inode->i_sb->s_dev holds and the programs compare. It is not the st_dev
// stat(2) returns: that is new_encode_dev(), (minor & 0xff) | major<<8 |
// (minor &^ 0xff)<<12, which golang.org/x/sys/unix.Major/Minor decode.
func KernelDev(major, minor uint32) uint64 {
	return uint64(major&(1<<12-1))<<20 | uint64(minor&(1<<20-1))
}

// NameLen is the size of module names in the deny map and of Event.Name.
const NameLen = 64

// MaxModuleName is the longest name the kernel requests
// (MODULE_NAME_LEN - 1).
const MaxModuleName = 55

// ModuleName returns name zero-padded to a module-request deny map key.
// Names longer than NameLen-1 bytes are truncated; SetDeniedModules
// rejects names longer than MaxModuleName instead.
func ModuleName(name string) [NameLen]byte {
	var b [NameLen]byte
	copy(b[:NameLen-1], name)
	return b
}

// Counters are a program's counters, summed over CPUs.
type Counters struct {
	// Allowed counts matching operations of allow-listed executables.
	Allowed uint64
	// Audited counts matching operations allowed in Audit mode.
	Audited uint64
	// Denied counts matching operations denied in Enforce mode.
	Denied uint64
	// Lost counts events dropped because the ring buffer was full.
	Lost uint64
}

// EventSize is the size of a ring buffer record (struct kroll_event).
const EventSize = 136

// Event is one ring buffer record: an operation that matched a policy and
// was audited or denied (struct kroll_event).
type Event struct {
	// Timestamp is bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds.
	Timestamp uint64
	// PID is the thread group id of the calling task.
	PID uint32
	// UID is its real uid in the initial user namespace.
	UID  uint32
	Kind Kind
	Op   Op
	// Verdict is 0 if the operation was allowed (Audit), -EPERM (-1) if
	// it was denied (Enforce).
	Verdict int32
	_       uint32
	// Exe is the task's executable; zero for kernel threads.
	Exe Key
	// Arg is kind-specific: socket-family the family, module-request 1
	// if the name matched by its part before '(' and 0 if exactly,
	// userns-create the task's effective capabilities, file-open the
	// file's inode number.
	Arg  uint64
	Comm [16]byte
	// Name is kind-specific, zero-padded: socket-family the algorithm
	// (salg_name) of AF_ALG binds, module-request the requested name,
	// file-open the file's name (its dentry, no directory).
	Name [NameLen]byte
}

// ParseEvent decodes a ring buffer record.
func ParseEvent(raw []byte) (Event, error) {
	var e Event
	if len(raw) < EventSize {
		return e, fmt.Errorf("bpf: event record of %d bytes, want %d", len(raw), EventSize)
	}
	if err := binary.Read(bytes.NewReader(raw[:EventSize]), binary.LittleEndian, &e); err != nil {
		return e, fmt.Errorf("bpf: decode event: %w", err)
	}
	return e, nil
}

// Denied reports whether the operation was denied.
func (e *Event) Denied() bool { return e.Verdict != 0 }

// CommString returns the task's comm.
func (e *Event) CommString() string { return cString(e.Comm[:]) }

// NameString returns Name up to its first NUL.
func (e *Event) NameString() string { return cString(e.Name[:]) }

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ErrUnavailable is wrapped by Probe's errors: bpf LSM programs cannot be
// loaded, attached or do not run on this kernel.
var ErrUnavailable = errors.New("bpf-lsm unavailable")
