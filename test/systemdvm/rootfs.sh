#!/bin/bash
# rootfs.sh ROOT PKG...: builds the Debian 12 root file system of the
# systemd VM test in ROOT (which must not exist): debootstrap's minbase of
# bookworm from the Debian archive, then PKG... installed with apt inside
# it (the old kernel and grub-pc among them; the boot loader is put on a
# disk by bootdisk.sh). Run by the test in a private mount namespace (unshare --mount), so
# the /proc, /sys and /dev mounts of the chroot end with this script.
set -euo pipefail
root=$1
shift
mirror=http://deb.debian.org/debian

debootstrap --variant=minbase bookworm "$root" "$mirror"

mount --make-rprivate /
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

# The kernels come from bookworm and bookworm-security.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# No hostonly initramfs: the one built here must boot in qemu.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo MODULES=most >"$root/etc/initramfs-tools/conf.d/kroll.conf"

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# grub-pc is installed into the disk image's MBR later (bootdisk.sh), not
# here: its postinst must not ask for a device.
in_root debconf-set-selections <<'SEL'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
SEL
in_root apt-get update
in_root apt-get install -y --no-install-recommends "$@"
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
ls "$root"/boot
