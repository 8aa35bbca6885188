package main

//go:generate go tool bpf2go -go-package main -tags linux -target amd64 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" deny deny.c
