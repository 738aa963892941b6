#!/usr/bin/env bash
# make bench-compare OLD=/path/to/older/osbuild-rs: the osbuild-rs-only benchmarks of make
# bench (inspect, trivial stages, file:// sources and exports, cached rebuild, a disk image,
# an OSTree commit) for an older build and this one, interleaved run by run so that load on
# the machine falls on both alike, then new/old median ratios (< 1: the new build is faster).
# BENCH_QUICK=1 leaves out the disk image and the OSTree commit; BENCH_ROUNDS (3) rounds.
set -euo pipefail
OLD=$(readlink -f "${1:?usage: compare.sh OLD_BIN NEW_BIN}")
NEW=$(readlink -f "${2:?usage: compare.sh OLD_BIN NEW_BIN}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${BENCH_DIR:-/var/tmp/osbuild-rs-bench}/compare
ROUNDS=${BENCH_ROUNDS:-3}
mkdir -p "$WORK"
python3 "$HERE/gen.py" "$WORK"
# disk.sh and ostree.sh keep their stores in the directory they are given: one each
for tag in old new; do mkdir -p "$WORK/$tag" && python3 "$HERE/gen.py" "$WORK/$tag"; done
results="$WORK/results.txt"
: > "$results"
largest=$(ls -S "$HERE"/../../shared/compat/manifests/*.json 2>/dev/null | head -1 || true)

clean() { rm -rf --one-file-system "$@"; }
export -f clean

one_round() { # BIN TAG
    local bin=$1 tag=$2 store="$WORK/store-$2" out="$WORK/out-$2" M="python3 $HERE/measure.py"
    if [ -n "$largest" ]; then
        $M "$tag inspect" 10 -- "$bin" --inspect "$largest"
    fi
    $M "$tag 51 trivial stages (cold store)" 1 --setup "clean $store $out" -- \
        "$bin" --quiet --store "$store" --output-directory "$out" --export tree "$WORK/noop51.json"
    $M "$tag 300 MiB file:// sources, 2 exports (cold)" 1 --setup "clean $store $out" -- \
        "$bin" --quiet --store "$store" --output-directory "$out" --export tree --export tarball "$WORK/files300.json"
    $M "$tag fully cached rebuild" 5 -- \
        "$bin" --quiet --store "$store" --checkpoint tree --checkpoint tarball "$WORK/files300.json"
    [ -n "${BENCH_QUICK:-}" ] && { clean "$store" "$out"; return; }
    BENCH_RUNS=1 "$HERE/disk.sh" "$bin" "$WORK/$tag" | grep "(osbuild-rs)" | sed "s/^/$tag /;s/^$tag RESULT /RESULT $tag /"
    BENCH_RUNS=1 "$HERE/ostree.sh" "$bin" "$WORK/$tag" | grep "org.osbuild.ostree.commit" | sed "s/^/$tag /;s/^$tag RESULT /RESULT $tag /"
    clean "$store" "$out"
}

echo "== old: $OLD"
echo "== new: $NEW"
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    one_round "$OLD" old | tee -a "$results"
    one_round "$NEW" new | tee -a "$results"
done
python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        tag, name = label.split(" ", 1)
        runs.setdefault(name, {}).setdefault(tag, []).append(float(value))
print("== new / old (median over rounds; < 1.00: the new build is faster)")
for name, by in runs.items():
    if "old" in by and "new" in by:
        old, new = statistics.median(by["old"]), statistics.median(by["new"])
        print(f"  {name:<50} old {old:8.3f} s  new {new:8.3f} s  ratio {new / old:5.2f}")
PY
