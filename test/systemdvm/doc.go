// Package systemdvm holds the end-to-end test of the packaged agent on a
// real Debian 12 system under qemu: a root file system built with
// debootstrap from the Debian archive (cached between runs), Debian
// kernels, systemd as PID 1 and the kroll-agent .deb installed with dpkg.
// systemd starts the agent, which registers with a coordinator on the host,
// applies a mitigation policy and upgrades the kernel by kexec through
// systemd's kexec.target; after the new boot systemd is running and the
// agent reports the host healthy.
//
// The test needs root (debootstrap, chroot), debootstrap, qemu and network
// access to deb.debian.org for the first run; with CI=true a missing tool
// is a failure, never a skip.
package systemdvm
