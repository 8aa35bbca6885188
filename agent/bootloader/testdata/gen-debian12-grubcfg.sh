#!/bin/sh
# Regenerates debian12-grub.cfg with Debian 12's own grub-mkconfig
# (grub2-common 2.06-13) for a BIOS host with two kernels installed and
# GRUB_DEFAULT=saved, without touching this machine's boot loader: it runs
# in a private mount namespace where /boot is an empty tmpfs holding two
# fake kernels and grub-probe answers like a host whose root is an ext4
# file system on /dev/vda1.
#
# Usage (as root):
#	unshare -m sh gen-debian12-grubcfg.sh > debian12-grub.cfg
#	GRUB_DEFAULT_VALUE=0 unshare -m sh gen-debian12-grubcfg.sh > debian12-grub-default0.cfg
set -eu
[ "$(id -u)" = 0 ] || { echo "run as root (mount namespace)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mount --make-rprivate /
mount -t tmpfs tmpfs /boot
mkdir -p /boot/grub
for v in 6.1.0-25-amd64 6.1.0-26-amd64; do
	printf 'fake kernel %s\n' "$v" > /boot/vmlinuz-$v
	printf 'fake initrd %s\n' "$v" > /boot/initrd.img-$v
	printf 'CONFIG_X=y\n' > /boot/config-$v
done
cat > "$work/grub-probe" <<'PROBE'
#!/bin/sh
target=
for a in "$@"; do
	case "$a" in
	--target=*) target=${a#--target=} ;;
	-t) next=1 ;;
	*) [ "${next:-}" = 1 ] && target=$a; next= ;;
	esac
done
case "$target" in
device) echo /dev/vda1 ;;
fs) echo ext2 ;;
fs_uuid) echo 0b3c8e43-6b6d-4f86-9a1e-2f0a3f1d9c41 ;;
partuuid) echo 8c5b0d1e-01 ;;
fs_label) echo root ;;
drive) echo '(hd0,msdos1)' ;;
partmap) echo msdos ;;
abstraction) ;;
compatibility_hint) echo hd0,msdos1 ;;
hints_string) echo '--hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1' ;;
cryptodisk_uuid) ;;
*) echo "fake grub-probe: unknown target $target" >&2; exit 1 ;;
esac
PROBE
chmod +x "$work/grub-probe"
mount --bind "$work/grub-probe" /usr/sbin/grub-probe
# /etc/default as on a Debian 12 BIOS host, with GRUB_DEFAULT=saved set
# the way kroll's runbook says (a drop-in in /etc/default/grub.d).
mkdir -p "$work/default/grub.d"
cat > "$work/default/grub" <<'DEF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=ttyS0 lsm=lockdown,capability,landlock,yama,apparmor,bpf"
DEF
printf 'GRUB_DEFAULT=%s\n' "${GRUB_DEFAULT_VALUE:-saved}" > "$work/default/grub.d/kroll.cfg"
mount --bind "$work/default" /etc/default
grub-mkconfig -o "$work/grub.cfg" >&2
cat "$work/grub.cfg"
