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
DEPSOLVE=$(dirname "$BIN")/osbuild-depsolve-apt
PACKAGES=(systemd-sysv fish linux-image-amd64 initramfs-tools passwd login apt udev)
[ "$(id -u)" = 0 ] || { echo "debian.sh needs root (dpkg in a chroot, mmdebstrap --mode=root)"; exit 1; }
[ -x "$DEPSOLVE" ] || { echo "$DEPSOLVE missing: cargo build --release"; exit 1; }
command -v mmdebstrap >/dev/null || apt-get install -y mmdebstrap >/dev/null
M="python3 $HERE/measure.py"

CACHE=${OSBUILD_RS_DEB_CACHE:-/var/cache/osbuild-rs-tests}
mkdir -p "$CACHE/debs" "$CACHE/apt-state"
$M "osbuild-depsolve-apt, ${#PACKAGES[@]} packages + minbase" 1 -- \
    "$DEPSOLVE" --state-dir "$CACHE/apt-state" --template "$HERE/../test-manifests/debian-tree.json" \
    --output "$WORK/debian.json" "${PACKAGES[@]}"
"$DEPSOLVE" --state-dir "$CACHE/apt-state" --output "$WORK/debian-packages.json" "${PACKAGES[@]}"

STORE="$WORK/debstore"
OUT="$WORK/debout"
clean() { rm -rf "$STORE/objects" "$STORE/refs" "$STORE/tmp" "$OUT"; }
mkdir -p "$STORE/sources"
[ -e "$STORE/sources/org.osbuild.files" ] || ln -s "$CACHE/debs" "$STORE/sources/org.osbuild.files"
# fetch once (warms the cache), and check it builds
"$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/debian.json"
clean

# the same .deb files under apt's names, for mmdebstrap's archive
ARCHIVE="$WORK/debarchive"
rm -rf "$ARCHIVE"; mkdir -p "$ARCHIVE"
python3 - "$WORK/debian-packages.json" "$CACHE/debs" "$ARCHIVE" <<'PY'
import json, os, sys, urllib.parse
doc, cache, archive = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for p in doc["packages"]:
    name = os.path.basename(urllib.parse.urlparse(p["url"]).path)
    os.link(os.path.join(cache, p["checksum"]), os.path.join(archive, urllib.parse.unquote(name).replace(":", "%3a")))
print(f'{len(doc["packages"])} packages, {sum(p["size"] for p in doc["packages"]) >> 20} MiB')
PY
INCLUDE=$(python3 -c 'import json,sys; print(",".join(p["name"] for p in json.load(open(sys.argv[1]))["packages"]))' "$WORK/debian-packages.json")
SOURCES=()
[ -s /etc/apt/sources.list ] && SOURCES+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do [ -e "$f" ] && SOURCES+=("$f"); done
SUITE=$(. /etc/os-release && echo "$VERSION_CODENAME")
MMROOT="$WORK/mmroot"

$M "osbuild-rs debian-tree.json (dpkg + 5 stages)" "$RUNS" --setup "rm -rf $STORE/objects $STORE/refs $STORE/tmp $OUT" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/debian.json" | tee "$WORK/debian-results"
clean
$M "mmdebstrap, same package set" "$RUNS" --setup "rm -rf $MMROOT" -- \
    mmdebstrap --mode=root --variant=essential --include="$INCLUDE" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && cp -l $ARCHIVE/*.deb \"\$1/var/cache/apt/archives/\" 2>/dev/null || cp $ARCHIVE/*.deb \"\$1/var/cache/apt/archives/\"" \
    "$SUITE" "$MMROOT" "${SOURCES[@]}" | tee -a "$WORK/debian-results"
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
