// Package systemdvm holds the end-to-end tests of the packaged agent on a
// real Debian 12 system under qemu, booted the way a server boots: from its
// disk through the BIOS (SeaBIOS) and GRUB, with no -kernel or -initrd on
// the qemu command line.
//
// The root file system is built with debootstrap from the Debian archive
// (cached between runs) with the oldest 6.1 kernel and grub-pc; the target
// kernel is not installed. Each test writes it into a disk image with an
// MBR partition table and one ext4 partition, installs GRUB for i386-pc
// into the MBR with grub-install and generates grub.cfg with update-grub in
// a chroot of the loop-mounted image (bootdisk.sh, in a private mount
// namespace; the host's own boot loader is never touched), with the
// kroll-agent .deb installed with dpkg. systemd starts the agent, which
// registers with a coordinator on the host and applies a mitigation
// policy; the scenarios then roll the newest 6.1 kernel's linux-image .deb
// onto the host: installed with dpkg inside the VM, booted by kexec
// (kexec.target) or by a full reboot through GRUB's one-shot entry, and
// rolled back when a health check fails on it. The guest reports on its
// serial console what the host checks: systemd's state, a module of the
// running kernel loading, the anycast route and GRUB's environment.
//
// The tests need root (debootstrap, chroot, loop devices), debootstrap,
// sfdisk, qemu with SeaBIOS and network access to deb.debian.org for the
// first run; with CI=true a missing tool is a failure, never a skip.
package systemdvm
