#!/usr/bin/env bash
# Debian tree benchmark: build test-manifests/debian-tree.json (minbase + systemd-sysv, fish,
# linux-image-amd64 …, resolved by osbuild-depsolve-apt from the machine's apt sources) with
# osbuild-rs, next to `mmdebstrap` of the same package set into a directory, and print the
# ratio. Both start from downloaded .debs (osbuild-rs: a warm source cache; mmdebstrap: the
# same files put into its apt archive by a setup hook) and build the tree cold every run.
# mmdebstrap runs its own `apt-get update` and solver each time; the osbuild-rs column does
# not include the depsolver run (timed once, separately).
#
# usage: debian.sh BIN WORK   (BIN: the osbuild-rs binary; osbuild-depsolve-apt next to it)
set -euo pipefail
BIN=$(readlink -f "${1:?usage: debian.sh BIN WORK}")
WORK=$(mkdir -p "${2:?work dir}" && readlink -f "$2")
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES=(systemd-sysv fish linux-image-amd64 initramfs-tools passwd login apt udev)
M="python3 $HERE/measure.py"
# shellcheck source=debian-common.sh
. "$HERE/debian-common.sh"
deb_prepare "$HERE/../test-manifests/debian-tree.json" debian "${PACKAGES[@]}"
# fetch once (warms the cache), and check it builds
"$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/debian.json"
deb_clean
MMROOT="$WORK/mmroot"

$M "osbuild-rs debian-tree.json (dpkg + 5 stages)" "$RUNS" --setup "rm -rf $STORE/objects $STORE/refs $STORE/tmp $OUT" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/debian.json" | tee "$WORK/debian-results"
deb_clean
$M "mmdebstrap, same package set" "$RUNS" --setup "rm -rf $MMROOT" -- \
    bash -c "mmdebstrap_into $MMROOT" | tee -a "$WORK/debian-results"
rm -rf "$MMROOT" "$ARCHIVE"
python3 - "$WORK/debian-results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
ours = r.get("osbuild-rs debian-tree.json (dpkg + 5 stages)")
theirs = r.get("mmdebstrap, same package set")
if ours and theirs:
    print(f"debian tree: osbuild-rs / mmdebstrap = {ours / theirs:.2f}x (target: <= 1.5x)")
PY
