#!/usr/bin/env bash
# Part of make bench: install 500 RPMs (about 300 MiB) with org.osbuild.rpm, next to
# `rpm -i --root` of the same files by hand. Sources are fetched once (warm source cache),
# trees are built cold every run, so the difference is our overhead on top of rpm.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: rpms.sh BIN}")
WORK=${2:?work dir}
RUNS=${BENCH_RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v rpmbuild >/dev/null || { echo "rpmbuild missing: run make deps"; exit 1; }
DIR="$WORK/rpms"
if [ ! -f "$DIR/done" ]; then
    rm -rf "$DIR"; mkdir -p "$DIR/SPECS"
    # One spec, 500 subpackages of one incompressible 600 KiB file each; payload stored
    # uncompressed so that building the fixtures stays quick.
    {
        printf 'Name: benchpkg\nVersion: 1.0\nRelease: 1\nSummary: bench\nLicense: MIT\nBuildArch: noarch\n'
        printf '%%define _binary_payload w0.ufdio\n%%description\nbench\n'
        for i in $(seq -w 1 500); do printf '%%package p%s\nSummary: p%s\n%%description p%s\nbench\n%%files p%s\n/usr/share/bench/f%s\n' "$i" "$i" "$i" "$i" "$i"; done
        printf '%%install\nmkdir -p %%{buildroot}/usr/share/bench\nfor i in $(seq -w 1 500); do head -c 614400 /dev/urandom > %%{buildroot}/usr/share/bench/f$i; done\n'
    } > "$DIR/SPECS/bench.spec"
    rpmbuild --quiet --define "_topdir $DIR" -bb "$DIR/SPECS/bench.spec" >/dev/null 2>&1
    touch "$DIR/done"
fi
python3 - "$DIR" "$WORK/rpms500.json" <<'PY'
import glob, hashlib, json, sys
d, out = sys.argv[1], sys.argv[2]
items, refs = {}, {}
for p in sorted(glob.glob(d + "/RPMS/noarch/*.rpm")):
    h = hashlib.sha256(open(p, "rb").read()).hexdigest()
    items["sha256:" + h] = "file://" + p
    refs["sha256:" + h] = {}
m = {"version": "2", "sources": {"org.osbuild.curl": {"items": items}},
     "pipelines": [{"name": "tree", "stages": [{"type": "org.osbuild.rpm", "options": {"exclude": {"docs": True}},
         "inputs": {"packages": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": refs}}}]}]}
json.dump(m, open(out, "w"))
print(f"{len(items)} packages, {sum(len(open(p,'rb').read()) for p in glob.glob(d + '/RPMS/noarch/*.rpm')) >> 20} MiB")
PY
STORE="$WORK/rpmstore"
rm -rf "$STORE"
"$BIN" --quiet --store "$STORE" --checkpoint tree "$WORK/rpms500.json"   # warms the source cache
M="python3 $HERE/measure.py"
$M "org.osbuild.rpm, 500 packages" "$RUNS" --setup "rm -rf $STORE/objects" -- \
    "$BIN" --quiet --store "$STORE" --checkpoint tree "$WORK/rpms500.json"
$M "rpm -i --root by hand, 500 packages" "$RUNS" --setup "rm -rf $WORK/rpmroot && mkdir -p $WORK/rpmroot" -- \
    bash -c "rpm -i --root $WORK/rpmroot --dbpath /usr/lib/sysimage/rpm --nosignature --excludedocs $DIR/RPMS/noarch/*.rpm"
rm -rf "$STORE" "$WORK/rpmroot"
