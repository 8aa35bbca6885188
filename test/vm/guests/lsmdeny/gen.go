package main

// The fixture uses only UAPI headers; the x86_64 multiarch include path
// supplies asm/types.h, whose __u32/__u64 are the same on arm64, so both
// targets build from it (the arm64 object keeps the tree building with
// GOARCH=arm64; the VM harness itself boots x86 guests).

//go:generate go tool bpf2go -go-package main -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" deny deny.c
