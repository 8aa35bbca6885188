// Package vm boots real Debian kernels under qemu (TCG) with an initramfs
// built in Go, runs a static test program inside and returns what it
// reported.
//
// It is the harness for everything that cannot be proven on the
// development machine's own kernel: bpf-lsm enforcement, kexec, reboots.
// Kernels come from the Debian archive (apt-get download + dpkg -x) and are
// cached outside the repository; the initramfs holds busybox-static, the
// test program, the kernel modules it asks for (with their dependencies,
// .ko.xz decompressed) and any extra files. The guest reports results with
// package guest, one line per result on the serial console.
//
// A run may also carry Extra kernels and a persistent ext4 data disk
// mounted at DataDir: the disk holds every kernel of the run with this very
// initramfs as its initrd, and /init loads the module set of whichever
// kernel runs, so a guest can kexec between them and keep its state.
package vm
