#!/usr/bin/env bash
# make bench: wall time and peak memory of osbuild-rs on generated manifests, and the
# ratio to upstream osbuild when OSBUILD_UPSTREAM points at an upstream checkout (run
# as `python3 -m osbuild --libdir $OSBUILD_UPSTREAM`).
set -euo pipefail
BIN=$(readlink -f "${1:?usage: run.sh BIN}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${BENCH_DIR:-/var/tmp/osbuild-rs-bench}
RUNS=${BENCH_RUNS:-5}
mkdir -p "$WORK"
python3 "$HERE/gen.py" "$WORK"
M="python3 $HERE/measure.py"
STORE="$WORK/store"
OUT="$WORK/out"
results="$WORK/results.txt"
: > "$results"

run() { "$@" | tee -a "$results"; }

# Upstream osbuild can leave bind mounts of the host's /usr behind in its store when it
# fails; never delete through them: unmount first, and stay on one file system.
clean() {
    for d in "$@"; do
        { grep -F " $d" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done
        rm -rf --one-file-system "$d"
    done
}
export -f clean

echo "== osbuild-rs ($("$BIN" --version))"
largest=$(ls -S "$HERE"/../../shared/compat/manifests/*.json 2>/dev/null | head -1 || true)
if [ -n "$largest" ]; then
    run $M "inspect $(basename "$largest" .json | sed 's/test__data__manifests__//')" 20 -- "$BIN" --inspect "$largest"
fi
run $M "51 trivial stages (cold store)" "$RUNS" --setup "clean $STORE $OUT" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/noop51.json"
# The same with a bubblewrap per stage (stage sessions off): what sessions save.
run $M "51 trivial stages, a bubblewrap each" "$RUNS" --setup "clean $STORE $OUT" -- \
    env OSBUILD_RS_STAGE_SESSIONS=0 "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree "$WORK/noop51.json"
run $M "300 MiB file:// sources, 2 exports (cold)" "$RUNS" --setup "clean $STORE $OUT" -- \
    "$BIN" --quiet --store "$STORE" --output-directory "$OUT" --export tree --export tarball "$WORK/files300.json"
# The overhead targets (issue 16): medians of the two runs above.
python3 - "$results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
for label, target in [("51 trivial stages (cold store)", 0.3), ("300 MiB file:// sources, 2 exports (cold)", 0.8)]:
    v = r.get(label)
    if v is not None:
        print(f"== {label}: median {v:.3f} s, target under {target} s: {'met' if v < target else 'NOT met'}")
PY
run $M "fully cached rebuild" 10 -- \
    "$BIN" --quiet --store "$STORE" --checkpoint tree --checkpoint tarball "$WORK/files300.json"

"$HERE/rpms.sh" "$BIN" "$WORK" | tee -a "$results"
"$HERE/disk.sh" "$BIN" "$WORK" | tee -a "$results"
"$HERE/ostree.sh" "$BIN" "$WORK" | tee -a "$results"
"$HERE/debian.sh" "$BIN" "$WORK" | tee -a "$results"
"$HERE/debian-image.sh" "$BIN" "$WORK" | tee -a "$results"
"$HERE/iot.sh" "$BIN" "$WORK" | tee -a "$results"
python3 - "$results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
ours, hand = r.get("org.osbuild.rpm, 500 packages"), r.get("rpm -i --root by hand, 500 packages")
if ours and hand:
    print(f"== org.osbuild.rpm overhead over rpm -i by hand: {100 * (ours / hand - 1):+.1f}%")
PY

if [ -n "${OSBUILD_UPSTREAM:-}" ]; then
    # upstream's host build root binds /etc/containers: it must exist.
    mkdir -p /etc/containers
    UP="python3 -m osbuild --libdir $OSBUILD_UPSTREAM"
    export PYTHONPATH="$OSBUILD_UPSTREAM"
    echo "== upstream osbuild ($OSBUILD_UPSTREAM)"
    [ -n "$largest" ] && run $M "upstream inspect" 5 -- $UP --inspect "$largest"
    run $M "upstream 51 trivial stages" 2 --setup "clean $STORE $OUT" -- \
        $UP --store "$STORE" --output-directory "$OUT" --export tree "$WORK/noop51.json"
    run $M "upstream 300 MiB sources, 2 exports" 2 --setup "clean $STORE $OUT" -- \
        $UP --store "$STORE" --output-directory "$OUT" --export tree --export tarball "$WORK/files300.json"
    # Upstream only keeps checkpointed trees: checkpoint both so the rebuild is cached.
    clean "$STORE" "$OUT"
    $UP --store "$STORE" --output-directory "$OUT" --checkpoint tree --checkpoint tarball --export tarball "$WORK/files300.json" >/dev/null 2>&1
    run $M "upstream cached rebuild" 3 -- \
        $UP --store "$STORE" --checkpoint tree --checkpoint tarball "$WORK/files300.json"
    python3 - "$results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        _, rest = line.split(" ", 1)
        label, value = rest.rsplit(" ", 1)
        r[label] = float(value)
pairs = [("inspect", "upstream inspect"), ("51 trivial", "upstream 51"), ("300 MiB", "upstream 300"), ("fully cached", "upstream cached")]
print("== speed-up (upstream median / osbuild-rs median)")
for ours, theirs in pairs:
    a = next((v for k, v in r.items() if k.startswith(ours)), None)
    b = next((v for k, v in r.items() if k.startswith(theirs)), None)
    if a and b:
        print(f"  {ours:<14} {b / a:6.1f}x")
PY
fi
clean "$STORE" "$OUT"
