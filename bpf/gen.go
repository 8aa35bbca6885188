package bpf

// The programs are compiled against the committed vmlinux.h (CO-RE). The
// generated *_x86_bpfel.go and .o files are committed, so building needs
// no clang; 'make generate' (after 'make deps-generate') regenerates them.
//
// vmlinux.h was generated with
//
//	bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
//
// on a 6.18 kernel; the programs only use types and fields that exist on
// 6.1 and later (see each .c file).

//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror" socketFamily socket_family.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror" moduleRequest module_request.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror" usernsCreate userns_create.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror" fileOpen file_open.c -- -I.
//go:generate go tool bpf2go -go-package bpf -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror" probe probe.c -- -I.
