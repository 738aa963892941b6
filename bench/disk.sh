#!/usr/bin/env bash
# Part of make bench: assemble a 2 GiB GPT disk (BIOS boot, ext4 /boot, ext4 /) from a 300 MiB
# tree and convert it to qcow2 with osbuild-rs (v2 stages: truncate, sfdisk, mkfs.ext4, copy
# into mounts, qemu), next to the same steps by hand (truncate, sfdisk, losetup, mkfs.ext4,
# mount, cp -a, qemu-img). The tree pipeline is built (and cached) before timing in both cases.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: disk.sh BIN WORK}")
WORK=${2:?work dir}
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
M="python3 $HERE/measure.py"
STORE="$WORK/diskstore"
OUT="$WORK/diskout"
HAND="$WORK/diskhand"
python3 - "$WORK/files300.json" "$WORK/disk2g.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
tree = next(p for p in m["pipelines"] if p["name"] == "tree")
sec = 512
size = 2 << 30
boot = (4096, 524288)
root = (528384, size // sec - 528384 - 2048)
dev = lambda start, n, lock=False: {"type": "org.osbuild.loopback", "options": {"filename": "disk.img", "start": start, "size": n, "lock": lock}}
image = {"name": "image", "stages": [
    {"type": "org.osbuild.truncate", "options": {"filename": "disk.img", "size": str(size)}},
    {"type": "org.osbuild.sfdisk", "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}}},
     "options": {"label": "gpt", "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0", "partitions": [
        {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649"},
        {"start": boot[0], "size": boot[1], "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
        {"start": root[0], "size": root[1], "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}},
    {"type": "org.osbuild.mkfs.ext4", "devices": {"device": dev(*boot, True)}, "options": {"uuid": "0194fdc2-fa2f-4cc0-81d3-ff12045b73c8"}},
    {"type": "org.osbuild.mkfs.ext4", "devices": {"device": dev(*root, True)}, "options": {"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"}},
    {"type": "org.osbuild.copy", "inputs": {"root-tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:tree"]}},
     "options": {"paths": [{"from": "input://root-tree/", "to": "mount://root/"}]},
     "devices": {"root": dev(*root), "boot": dev(*boot)},
     "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "root", "target": "/"},
                {"name": "boot", "type": "org.osbuild.ext4", "source": "boot", "target": "/boot"}]},
]}
qcow2 = {"name": "qcow2", "stages": [{"type": "org.osbuild.qemu",
    "inputs": {"image": {"type": "org.osbuild.files", "origin": "org.osbuild.pipeline", "references": {"name:image": {"file": "disk.img"}}}},
    "options": {"filename": "disk.qcow2", "format": {"type": "qcow2", "compression": False}}}]}
json.dump({"version": "2", "sources": m["sources"], "pipelines": [tree, image, qcow2]}, open(sys.argv[2], "w"))
open(sys.argv[2] + ".parts", "w").write(f"{boot[0]} {boot[1]} {root[0]} {root[1]}\n")
PY
read -r BS BN RS RN < "$WORK/disk2g.json.parts"

prepare() {
    rm -rf "$STORE" "$OUT"
    "$BIN" --quiet --store "$STORE" --checkpoint tree "$WORK/disk2g.json"
    sync   # no writeback of the preparation inside the timed run
}
export -f prepare
export BIN STORE OUT WORK
prepare
"$BIN" --quiet --store "$STORE" --output-directory "$HAND/src" --export tree "$WORK/disk2g.json"

$M "2 GiB disk from a 300 MiB tree, qcow2 (osbuild-rs)" "$RUNS" \
    --setup "prepare" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export qcow2 "$WORK/disk2g.json"

cat > "$HAND/by-hand.sh" <<EOS
set -e
cd $HAND
rm -f disk.img disk.qcow2; mkdir -p mnt
truncate -s 2G disk.img
printf 'label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=$BS, size=$BN\nstart=$RS, size=$RN\n' | sfdisk -q disk.img
b=\$(losetup -f --show -o \$(( $BS * 512 )) --sizelimit \$(( $BN * 512 )) disk.img)
r=\$(losetup -f --show -o \$(( $RS * 512 )) --sizelimit \$(( $RN * 512 )) disk.img)
mkfs.ext4 -q \$b; mkfs.ext4 -q \$r
mount \$r mnt; mkdir -p mnt/boot; mount \$b mnt/boot
cp -a src/tree/. mnt/
umount mnt/boot mnt; losetup -d \$b \$r
qemu-img convert -O qcow2 disk.img disk.qcow2
EOS
$M "2 GiB disk from a 300 MiB tree, qcow2 (by hand)" "$RUNS" --setup "rm -f $HAND/disk.img $HAND/disk.qcow2; sync" -- bash "$HAND/by-hand.sh"
rm -rf "$STORE" "$OUT" "$HAND"
