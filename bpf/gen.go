package bpf

// The programs are compiled against the committed vmlinux.h (CO-RE). The
// generated *_x86_bpfel.go / *_arm64_bpfel.go and their .o files are
// committed, so building needs no clang; 'make generate' (after 'make
// deps-generate') regenerates them.
//
// vmlinux.h was generated with
//
//	bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
//
// on a 6.18 kernel; the programs only use types and fields that exist on
// 6.1 and later (see each .c file).
//
// amd64 and arm64: one vmlinux.h, dumped on x86, serves both. That is
// sound because every program is an LSM program (BPF_PROG reads the
// hook's arguments from the trampoline's u64 array: no pt_regs, so
// __TARGET_ARCH_*, which bpf2go sets per target, changes nothing), and
// the programs read only arch-independent kernel structs (file, inode,
// super_block, dentry, socket, sock_common, cred, user_namespace,
// task_struct->mm->exe_file) through CO-RE relocations
// (preserve_access_index in vmlinux.h), which the loader resolves
// against the running kernel's own BTF, whatever its layout. The two
// targets' objects come out byte-identical today; TestArm64Objects checks
// that each arm64 object has the same programs, attach points and maps
// as its amd64 twin and that every program is an LSM program. A kprobe or
// tracepoint program added here would need its arch-specific parts
// reviewed (PT_REGS_*, x86-only fields of thread_struct or pt_regs).
// bpf LSM on arm64 needs the arm64 bpf trampoline: Linux 6.0 or later.

//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" socketFamily socket_family.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" moduleRequest module_request.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" usernsCreate userns_create.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" fileOpen file_open.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror" probe probe.c -- -I.
