#!/bin/bash
# bootdisk.sh ROOT DISK SIZE_MB UUID DEFAULT_RELEASE: writes a BIOS-bootable
# disk image DISK of SIZE_MB MiB from the root file system ROOT (which has
# grub-pc and /etc/default/grub.d/kroll.cfg): an MBR partition table with
# one ext4 partition (file system UUID) holding ROOT, GRUB for i386-pc
# installed into the MBR and the gap behind it by grub-install run in a
# chroot of the mounted partition, grub.cfg generated there by update-grub
# (root=UUID=...), and the saved default entry set to kernel
# DEFAULT_RELEASE with grub-set-default.
#
# Run by the test in a private mount namespace (unshare --mount): every
# mount ends with this script. The loop device is detached on exit; the
# test detaches leftovers of a killed run too. Never touches the host's
# own /boot or boot loader: grub-install only ever sees the loop device.
set -euo pipefail
root=$1 disk=$2 size=$3 uuid=$4 release=$5

rm -f "$disk"
truncate -s "${size}M" "$disk"
# One bootable Linux partition from 1 MiB: the gap in front of it holds
# GRUB's core image.
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"

mnt=$(mktemp -d)
loop=
cleanup() {
	umount -R "$mnt" 2>/dev/null || true
	if [ -n "$loop" ]; then losetup -d "$loop" || true; fi
	rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT
loop=$(losetup --show -f -P "$disk")
echo "bootdisk: $disk on $loop"
part=${loop}p1
# Some kernels have no MSDOS partition parser (CONFIG_MSDOS_PARTITION):
# partx adds the partition from user space then.
[ -b "$part" ] || partx -a "$loop"
[ -b "$part" ] || { echo "bootdisk: no partition device $part" >&2; exit 1; }

mke2fs -q -F -t ext4 -L kroll-root -U "$uuid" -d "$root" "$part"

mount --make-rprivate /
mount "$part" "$mnt"
# A /dev of its own for the chroot: the loop devices grub-install and
# grub-probe look at, and the /dev/disk/by-uuid link update-grub wants for
# root=UUID=... (no udev here). The host's /dev stays untouched.
mount -t tmpfs -o mode=0755 kroll-dev "$mnt/dev"
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom "$loop" "$part" "$mnt/dev/"
mkdir -p "$mnt/dev/disk/by-uuid"
ln -s "../../$(basename "$part")" "$mnt/dev/disk/by-uuid/$uuid"
mount -t proc proc "$mnt/proc"
mount -t sysfs sysfs "$mnt/sys"

in_root() { chroot "$mnt" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root grub-install --target=i386-pc --boot-directory=/boot "$loop"
in_root update-grub
# The menu entry of DEFAULT_RELEASE in Debian's grub.cfg (10_linux): in
# the "Advanced options" submenu.
entry="gnulinux-advanced-$uuid>gnulinux-$release-advanced-$uuid"
grep -q "menuentry_id_option 'gnulinux-$release-advanced-$uuid'" "$mnt/boot/grub/grub.cfg" ||
	{ echo "bootdisk: grub.cfg has no entry for $release:" >&2; grep -E "menuentry|linux\s" "$mnt/boot/grub/grub.cfg" >&2; exit 1; }
grep -qE "^\s*linux\s.*root=UUID=$uuid " "$mnt/boot/grub/grub.cfg" ||
	{ echo "bootdisk: grub.cfg does not boot root=UUID=$uuid:" >&2; grep -E "^\s*linux\s" "$mnt/boot/grub/grub.cfg" >&2; exit 1; }
in_root grub-set-default "$entry"
in_root grub-editenv list
grep -E "^\s*(linux|menuentry|submenu)\s" "$mnt/boot/grub/grub.cfg"
ls "$mnt/boot" "$mnt/boot/grub/i386-pc/core.img"
umount -R "$mnt"
losetup -d "$loop"
loop=
echo "bootdisk: done"
