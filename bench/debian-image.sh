#!/usr/bin/env bash
# Whole-image benchmark (issue 16): build test-manifests/debian-qcow2.json (the e2e test's
# Debian 12 qcow2: the tree with dpkg and 8 configuration stages, a GPT disk, the root file
# system written from the tree by org.osbuild-rs.mkfs.ext4.tree, GRUB, qcow2) into a cold
# store with a warm .deb cache, next to the same steps by hand: mmdebstrap of the same package
# set, the configuration in a chroot, truncate + sfdisk, mkfs.ext4 -d at the partition's offset,
# grub-mkimage + dd, qemu-img convert. Prints the ratio (target: <= 1.2x). Neither side
# includes downloading (.debs cached) nor the depsolver (timed once, separately).
#
# usage: debian-image.sh BIN WORK   (BIN: the osbuild-rs binary; osbuild-depsolve-apt next to it)
set -euo pipefail
BIN=$(readlink -f "${1:?usage: debian-image.sh BIN WORK}")
WORK=$(mkdir -p "${2:?work dir}" && readlink -f "$2")
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
M="python3 $HERE/measure.py"
# the e2e test's package set (tests/e2e.rs, PACKAGES)
PACKAGES=(systemd-sysv fish linux-image-amd64 initramfs-tools grub-pc-bin passwd login apt udev dbus)
# shellcheck source=debian-common.sh
. "$HERE/debian-common.sh"
deb_prepare "$HERE/../test-manifests/debian-qcow2.json" image "${PACKAGES[@]}"
KERNEL=$(python3 -c 'import json,sys
for p in json.load(open(sys.argv[1]))["packages"]:
    n = p["name"]
    if n.startswith("linux-image-") and n[12:13].isdigit(): print(n[12:])' "$WORK/image-packages.json")
sed -i "s/@KERNEL_VERSION@/$KERNEL/g" "$WORK/image.json"
# fetch once (warms the cache), and check it builds
"$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export qcow2 "$WORK/image.json"
deb_clean

$M "osbuild-rs debian-qcow2.json (tree, disk, qcow2)" "$RUNS" --setup "rm -rf $STORE/objects $STORE/refs $STORE/tmp $OUT" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export qcow2 "$WORK/image.json" | tee "$WORK/image-results"
deb_clean

# The same image by hand (layout and ids of the manifest).
by_hand() {
    local root=$1 img=$1.img kernel=$2 grub=/usr/lib/grub/i386-pc
    mmdebstrap_into "$root"
    chroot "$root" useradd -m -u 1000 -s /usr/bin/fish -c "osbuild-rs test user" test
    echo osbuild-rs > "$root/etc/hostname"
    chroot "$root" systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1
    chroot "$root" systemctl set-default multi-user.target >/dev/null 2>&1
    echo "UUID=9a1d4e0c-5f3b-4d8e-9c61-0b7f2a6d3e15 / ext4 errors=remount-ro 0 1" > "$root/etc/fstab"
    mkdir -p "$root/boot/grub2" && cp -r "$grub" "$root/boot/grub2/"
    printf 'set timeout=1\nmenuentry Debian { linux /boot/vmlinuz-%s root=UUID=9a1d4e0c-5f3b-4d8e-9c61-0b7f2a6d3e15 ro\n initrd /boot/initrd.img-%s\n}\n' \
        "$kernel" "$kernel" > "$root/boot/grub2/grub.cfg"
    ln -s grub2 "$root/boot/grub"
    truncate -s 2G "$img"
    printf 'label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, size=4188127, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
        sfdisk -q "$img"
    mkfs.ext4 -q -U 9a1d4e0c-5f3b-4d8e-9c61-0b7f2a6d3e15 -L root -E offset=$((4096 * 512)) -d "$root" "$img" $((4188127 / 8))
    grub-mkimage -O i386-pc -o "$root.core" -p '(hd0,gpt2)/boot/grub2' biosdisk part_gpt ext2
    dd if="$grub/boot.img" of="$img" bs=440 count=1 conv=notrunc status=none
    dd if="$root.core" of="$img" bs=512 seek=2048 conv=notrunc status=none
    qemu-img convert -O qcow2 -o compat=1.1 "$img" "$root.qcow2"
}
export -f by_hand
HAND="$WORK/hand"
$M "by hand: mmdebstrap + config + sfdisk + mkfs.ext4 -d + grub + qemu-img" "$RUNS" --setup "rm -rf $HAND $HAND.*" -- \
    bash -c "by_hand $HAND $KERNEL" | tee -a "$WORK/image-results"
rm -rf "$HAND" "$HAND".* "$ARCHIVE"
python3 - "$WORK/image-results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
ours = r.get("osbuild-rs debian-qcow2.json (tree, disk, qcow2)")
theirs = r.get("by hand: mmdebstrap + config + sfdisk + mkfs.ext4 -d + grub + qemu-img")
if ours and theirs:
    print(f"debian qcow2: osbuild-rs / by hand = {ours / theirs:.2f}x (target: <= 1.2x)")
PY
