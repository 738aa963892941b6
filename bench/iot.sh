#!/usr/bin/env bash
# Part of make bench: the two builds of the IoT story (README, "The IoT story"), each next to
# the same work done by hand with the same tools, as ratios.
#
# - commit: iot-commit.json's `commit` pipeline (org.osbuild.ostree.init + ostree.commit) on its
#   prepared OSTree tree (the `ostree-tree` pipeline, built once and kept), next to
#   `ostree init --mode=archive` + `ostree commit` of that very tree;
# - image: iot-qcow2.json from that commit (file:// URL; the ostree source's download cache is
#   warm, as the .deb cache is), next to ostree admin init-fs / os-init / config, the menu files
#   and GRUB modules, ostree pull-local + admin deploy, ostree remote add, systemd-tmpfiles for
#   /var, fstab, truncate / sfdisk / losetup / mkfs.ext4 / mount / cp -a, grub-mkimage and the
#   boot sector, qemu-img convert;
# - installer ISO: iot-installer.json (its `installer-root` live tree kept, the commit pulled
#   from the file:// repository), next to ostree init + pull-local, the kickstart, kernel and
#   initrd copied, mksquashfs of the live root, the ISOLINUX files and menu, the UEFI boot
#   files and their FAT image (mkfs.fat, mcopy), xorriso -as mkisofs (El Torito for BIOS and
#   UEFI, isohybrid MBR and GPT), implantisomd5.
# Every run starts from an empty store (bar what is named above) or an empty directory.
#
# usage: iot.sh BIN WORK   (BIN: the osbuild-rs binary, osbuild-depsolve-apt next to it;
#                          BENCH_RUNS=3 by default; root, loop devices, ostree, GRUB, qemu-img)
set -euo pipefail
BIN=$(readlink -f "${1:?usage: iot.sh BIN WORK}")
WORK=$(mkdir -p "${2:?work dir}" && readlink -f "$2")
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
MANIFESTS="$HERE/../test-manifests"
DEPSOLVE=$(dirname "$BIN")/osbuild-depsolve-apt
REF=osbuild-rs/x86_64/iot
[ "$(id -u)" = 0 ] || { echo "iot.sh needs root (dpkg in a chroot, loop devices, mounts)"; exit 1; }
[ -x "$DEPSOLVE" ] || { echo "$DEPSOLVE missing: cargo build --release"; exit 1; }
for t in ostree grub-mkimage qemu-img sfdisk mkfs.ext4 losetup systemd-tmpfiles; do
    command -v "$t" >/dev/null || { echo "$t missing: make deps"; exit 1; }
done
M="python3 $HERE/measure.py"
DIR="$WORK/iot"
STORE="$DIR/store"
CACHE=${OSBUILD_RS_DEB_CACHE:-/var/cache/osbuild-rs-tests}
mkdir -p "$DIR" "$STORE/sources" "$CACHE/debs" "$CACHE/apt-state"
[ -e "$STORE/sources/org.osbuild.files" ] || ln -s "$CACHE/debs" "$STORE/sources/org.osbuild.files"
# `ostree admin deploy` marks deployments immutable; clear that before removing them
unfreeze() { chattr -R -f -i "$@" 2>/dev/null || true; }
export -f unfreeze

mapfile -t PACKAGES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MANIFESTS/iot-packages.txt")
"$DEPSOLVE" --state-dir "$CACHE/apt-state" --template "$MANIFESTS/iot-commit.json" --output "$DIR/commit.json" \
    "${PACKAGES[@]}"
# the Debian tree and its OSTree layout, once (and a check that the commit builds)
rm -rf "$DIR/out"
"$BIN" --quiet --store "$STORE" --checkpoint os --checkpoint ostree-tree --output-directory "$DIR/out" --export commit "$DIR/commit.json"
REPO="$DIR/out/commit/repo"
COMMIT=$(ostree --repo="$REPO" rev-parse "$REF")
TREE_ID=$("$BIN" --inspect "$DIR/commit.json" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([p for p in m["pipelines"] if p["name"] == "ostree-tree"][0]["stages"][-1]["id"])')
OS_ID=$("$BIN" --inspect "$DIR/commit.json" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([p for p in m["pipelines"] if p["name"] == "os"][0]["stages"][-1]["id"])')
TREE="$STORE/objects/$TREE_ID/tree"
[ -d "$TREE" ] || { echo "the ostree-tree pipeline is not at $TREE"; exit 1; }
echo "IoT commit $COMMIT: $(find "$TREE" -xdev -type f | wc -l) files, $(du -sm "$TREE" | cut -f1) MiB"
sed -e "s|@COMMIT@|$COMMIT|g" -e "s|@URL@|file://$REPO|" -e "s|@REMOTE_URL@|http://10.0.2.2:8765/repo|" \
    "$MANIFESTS/iot-qcow2.json" > "$DIR/image.json"
# fill the ostree source's cache once
"$BIN" --quiet --store "$STORE" --output-directory "$DIR/imgout" --export qcow2 "$DIR/image.json"
# the installer ISO (issue 14) carrying the commit; its live root (installer-root) is kept
mapfile -t IPACKAGES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MANIFESTS/iot-installer-packages.txt")
"$DEPSOLVE" --state-dir "$CACHE/apt-state" --template "$MANIFESTS/iot-installer.json" --output "$DIR/iso.json" \
    "${IPACKAGES[@]}"
KERNEL=$(python3 -c '
import json, sys
items = json.load(open(sys.argv[1]))["sources"]["org.osbuild.curl"]["items"].values()
names = [u.rsplit("/", 1)[1].split("_")[0][len("linux-image-"):] for u in items if "/linux-image-" in u]
print([n for n in names if n[:1].isdigit()][0])' "$DIR/iso.json")
sed -i -e "s|@COMMIT@|$COMMIT|g" -e "s|@URL@|file://$REPO|" -e "s|@KERNEL_VERSION@|$KERNEL|g" \
    -e "s|@REMOTE_URL@|http://10.0.2.2:8765/repo|" "$DIR/iso.json"
"$BIN" --quiet --store "$STORE" --checkpoint installer-root --output-directory "$DIR/isoout" --export iso "$DIR/iso.json"
ROOT_ID=$("$BIN" --inspect "$DIR/iso.json" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([p for p in m["pipelines"] if p["name"] == "installer-root"][0]["stages"][-1]["id"])')

# The ISO by hand: a repository with the commit, the kickstart, kernel and initrd, the live
# root as squashfs, ISOLINUX, the UEFI boot files and their FAT image (mkfs.fat, mcopy),
# xorriso with every date the epoch, implantisomd5.
cat > "$DIR/byhand-iso.sh" <<'SH'
set -euo pipefail
D=$1 REPO=$2 REF=$3 ROOT=$4 KERNEL=$5
T=$D/iso-tree
mkdir -p "$T/images/pxeboot" "$T/ostree/repo" "$T/live" "$T/isolinux"
ostree init --mode=archive --repo="$T/ostree/repo"
ostree --repo="$T/ostree/repo" pull-local --remote=osbuild-rs "$REPO" "$REF" >/dev/null
printf 'ostreesetup --osname=debian --url=file:///run/install/repo/ostree/repo --ref=%s --remote=osbuild-rs --nogpg\nzerombr\nclearpart --all --initlabel\nautopart --type=plain --nohome\nreboot\n' "$REF" > "$T/osbuild.ks"
cp -a "$ROOT/boot/vmlinuz-$KERNEL" "$T/images/pxeboot/vmlinuz"
cp -a "$ROOT/boot/initrd.img-$KERNEL" "$T/images/pxeboot/initrd.img"
SOURCE_DATE_EPOCH=1700000000 mksquashfs "$ROOT" "$T/live/filesystem.squashfs" -comp zstd -noappend -quiet -no-progress >/dev/null
cp /usr/lib/ISOLINUX/isolinux.bin "$T/isolinux/"
for m in ldlinux libcom32 libutil vesamenu; do cp "/usr/lib/syslinux/modules/bios/$m.c32" "$T/isolinux/"; done
printf 'default vesamenu.c32\ntimeout 600\nlabel linux\n  kernel vmlinuz\n  append initrd=initrd.img boot=live quiet\n' > "$T/isolinux/isolinux.cfg"
ln "$T/images/pxeboot/vmlinuz" "$T/isolinux/vmlinuz"
ln "$T/images/pxeboot/initrd.img" "$T/isolinux/initrd.img"
mkdir -p "$T/EFI/BOOT/fonts"
cp "$ROOT/usr/lib/shim/shimx64.efi.signed" "$T/EFI/BOOT/BOOTX64.EFI"
cp "$ROOT/usr/lib/shim/mmx64.efi.signed" "$T/EFI/BOOT/mmx64.efi"
cp "$ROOT/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed" "$T/EFI/BOOT/grubx64.efi"
cp "$ROOT/usr/share/grub/unicode.pf2" "$T/EFI/BOOT/fonts/"
printf "set timeout=60\nsearch --no-floppy --set=root -l 'OSBUILD-RS-IOT'\nmenuentry 'Install' {\n\tlinux /images/pxeboot/vmlinuz boot=live quiet\n\tinitrd /images/pxeboot/initrd.img\n}\n" > "$T/EFI/BOOT/grub.cfg"
truncate -s 16M "$T/images/efiboot.img"
SOURCE_DATE_EPOCH=1700000000 mkfs.fat -i 6f736269 -n EFIBOOT "$T/images/efiboot.img" >/dev/null
SOURCE_DATE_EPOCH=1700000000 MTOOLS_SKIP_CHECK=1 mcopy -s -m -Q -i "$T/images/efiboot.img" "$T/EFI" ::/
xorriso -as mkisofs -V OSBUILD-RS-IOT -sysid LINUX -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -b isolinux/isolinux.bin -c isolinux/boot.cat --boot-catalog-hide -boot-load-size 4 -boot-info-table \
    -no-emul-boot -R -J -eltorito-alt-boot -e images/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
    --modification-date=2023111422132000 -o "$D/installer.iso" "$T" 2>/dev/null
implantisomd5 "$D/installer.iso" >/dev/null
SH

# The image by hand: the stages' work with the tools they call, in a private mount namespace.
cat > "$DIR/byhand-image.sh" <<'SH'
set -euo pipefail
D=$1 REPO=$2 COMMIT=$3 REF=$4
S=$D/sysroot
mkdir -p "$S"
ostree admin init-fs --modern "$S" >/dev/null
ostree admin os-init debian --sysroot="$S" >/dev/null
ostree config --repo="$S/ostree/repo" set sysroot.readonly true
ostree config --repo="$S/ostree/repo" set sysroot.bootloader syslinux
mkdir -p "$S/boot/loader.0" "$S/boot/syslinux" "$S/boot/grub2/i386-pc"
printf 'TIMEOUT 30\n' > "$S/boot/loader.0/syslinux.cfg"
ln -s loader.0 "$S/boot/loader"
ln -s ../loader/syslinux.cfg "$S/boot/syslinux/syslinux.cfg"
cp -p /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$S/boot/grub2/i386-pc/"
printf 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nsearch --no-floppy --set=root --label boot\nsyslinux_source -s /boot/syslinux/syslinux.cfg\n' \
    > "$S/boot/grub2/grub.cfg"
ostree --repo="$S/ostree/repo" pull-local --remote=osbuild-rs "$REPO" "$REF" >/dev/null
mount --bind "$S/boot" "$S/boot"
ostree admin deploy --sysroot="$S" --os=debian --karg-append=rw --karg-append=console=tty0 \
    --karg-append=console=ttyS0,115200 --karg-append=root=LABEL=root "osbuild-rs:$REF" >/dev/null
umount "$S/boot"
ostree remote add --repo="$S/ostree/repo" --if-not-exists --no-gpg-verify osbuild-rs http://10.0.2.2:8765/repo "$REF"
DEP=$(ls -d "$S"/ostree/deploy/debian/deploy/*.0)
mkdir -p "$DEP/var"
mount --bind "$S/ostree/deploy/debian/var" "$DEP/var"
mkdir -p "$DEP/var/lib" "$DEP/var/log"
systemd-tmpfiles --create --boot --root="$DEP" --prefix=/var/home --prefix=/var/roothome --prefix=/var/opt \
    --prefix=/var/srv --prefix=/var/usrlocal --prefix=/var/mnt --prefix=/var/media --prefix=/var/spool \
    >/dev/null 2>&1 || [ $? = 65 ]
umount "$DEP/var"
printf 'LABEL=root\t/\text4\tdefaults\t1\t1\nLABEL=boot\t/boot\text4\tdefaults\t1\t2\n' > "$DEP/etc/fstab"
truncate -s 4294967296 "$D/disk.img"
sfdisk -q "$D/disk.img" <<EOF
label: gpt
label-id: D209C89E-EA5E-4FBD-B161-B461CCE297E0
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios-boot
start=4096, size=1048576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot
start=1052672, size=7335903, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOF
LB=$(losetup -f --show -o $((4096 * 512)) --sizelimit $((1048576 * 512)) "$D/disk.img")
LR=$(losetup -f --show -o $((1052672 * 512)) --sizelimit $((7335903 * 512)) "$D/disk.img")
mkfs.ext4 -q -U 0194fdc2-fa2f-4cc0-81d3-ff12045b73c8 -L boot "$LB"
mkfs.ext4 -q -U 6e4ff95f-f662-45ee-a82a-bdf44a2d0b75 -L root "$LR"
mkdir -p "$D/mnt"
mount "$LR" "$D/mnt"
mkdir -p "$D/mnt/boot"
mount "$LB" "$D/mnt/boot"
cp -a "$S/." "$D/mnt/"
umount "$D/mnt/boot" "$D/mnt"
losetup -d "$LB" "$LR"
grub-mkimage -O i386-pc -o "$D/core.img" -p '(,gpt2)/grub2' --compression auto biosdisk part_gpt ext2
python3 - "$D/disk.img" "$D/core.img" <<'PY'
import struct, sys
disk, core = sys.argv[1], bytearray(open(sys.argv[2], "rb").read())
boot = bytearray(open("/usr/lib/grub/i386-pc/boot.img", "rb").read()[:440])
boot[0x5c:0x64] = struct.pack("<Q", 2048)       # where the core starts
core[500:508] = struct.pack("<Q", 2049)         # where the core's second sector is
with open(disk, "r+b") as f:
    f.write(boot)
    f.seek(2048 * 512)
    f.write(core)
PY
qemu-img convert -O qcow2 -c -o compat=1.1 "$D/disk.img" "$D/disk.qcow2"   # compressed, as org.osbuild.qemu does
SH

results="$DIR/results.txt"
{
# the ISO first: the commit and image runs below empty the store, the ISO keeps its live root
$M "IoT installer ISO: iot-installer.json" "$RUNS" \
    --setup "unfreeze $STORE/objects; find $STORE/objects -mindepth 1 -maxdepth 1 ! -name $ROOT_ID ! -name $TREE_ID -exec rm -rf {} +; rm -rf $DIR/isoout" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$DIR/isoout" --export iso "$DIR/iso.json"
$M "IoT installer ISO: ostree pull-local, mksquashfs, isolinux, xorriso, implantisomd5 by hand" "$RUNS" \
    --setup "unfreeze $DIR/byhand; rm -rf $DIR/byhand && mkdir -p $DIR/byhand" -- \
    bash "$DIR/byhand-iso.sh" "$DIR/byhand" "$REPO" "$REF" "$STORE/objects/$ROOT_ID/tree" "$KERNEL"
$M "IoT commit: org.osbuild.ostree.commit" "$RUNS" \
    --setup "unfreeze $STORE/objects; find $STORE/objects -mindepth 1 -maxdepth 1 ! -name $TREE_ID -exec rm -rf {} +" -- \
    "$BIN" --quiet --store "$STORE" --checkpoint commit "$DIR/commit.json"
$M "IoT commit: ostree commit by hand" "$RUNS" --setup "rm -rf $DIR/byhand && mkdir -p $DIR/byhand" -- \
    bash -c "ostree init --mode=archive --repo=$DIR/byhand/repo && ostree commit --repo=$DIR/byhand/repo -b $REF \
        --timestamp=@1700000000 --add-metadata-string=version=1 --tree=dir=$TREE >/dev/null"
$M "IoT image: iot-qcow2.json" "$RUNS" \
    --setup "unfreeze $STORE/objects; find $STORE/objects -mindepth 1 -maxdepth 1 -exec rm -rf {} +; rm -rf $DIR/imgout" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$DIR/imgout" --export qcow2 "$DIR/image.json"
$M "IoT image: ostree admin deploy, mkfs, qemu-img by hand" "$RUNS" \
    --setup "unfreeze $DIR/byhand; rm -rf $DIR/byhand && mkdir -p $DIR/byhand" -- \
    unshare -m --propagation private bash "$DIR/byhand-image.sh" "$DIR/byhand" "$REPO" "$COMMIT" "$REF"
} | tee "$results"
python3 - "$results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
for what, ours, hand in [("commit", "IoT commit: org.osbuild.ostree.commit", "IoT commit: ostree commit by hand"),
                         ("image", "IoT image: iot-qcow2.json", "IoT image: ostree admin deploy, mkfs, qemu-img by hand"),
                         ("installer ISO", "IoT installer ISO: iot-installer.json",
                          "IoT installer ISO: ostree pull-local, mksquashfs, isolinux, xorriso, implantisomd5 by hand")]:
    a, b = r[ours], r[hand]
    print(f"== IoT {what}: osbuild-rs {a:.1f} s / by hand {b:.1f} s = {a / b:.2f}x ({100 * (a / b - 1):+.1f}%)")
PY
unfreeze "$DIR"
rm -rf "$DIR/byhand" "$DIR/imgout" "$DIR/isoout" "$STORE/objects"
