#!/usr/bin/env bash
# Part of make bench: org.osbuild.ostree.commit of a generated 20,000-file tree (in OSTree
# layout, unpacked once into the store as a checkpointed pipeline), next to `ostree init` +
# `ostree commit` by hand on the very same tree. Each run starts from an empty repository,
# so the difference is our overhead (sandbox, stage start, metadata) on top of ostree.
#
# usage: ostree.sh BIN [WORK]   (FILES=20000 and BENCH_RUNS=3 by default)
set -euo pipefail
BIN=$(readlink -f "${1:?usage: ostree.sh BIN [WORK]}")
WORK=${2:-${BENCH_DIR:-/var/tmp/osbuild-rs-bench}}
RUNS=${BENCH_RUNS:-3}
FILES=${FILES:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v ostree >/dev/null || { echo "ostree missing: apt-get install -y ostree"; exit 1; }
DIR="$WORK/ostree"
mkdir -p "$DIR"
if [ ! -f "$DIR/tree-$FILES.tar" ]; then
    python3 - "$DIR/gen" "$FILES" <<'PY'
import os, random, shutil, sys
root, n = sys.argv[1], int(sys.argv[2])
shutil.rmtree(root, ignore_errors=True)
rng = random.Random(42)
for d in ("usr/etc", "usr/bin", "var", "boot", "sysroot"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
with open(os.path.join(root, "usr/etc/os-release"), "w") as f:
    f.write("ID=bench\n")
for i in range(n):
    d = os.path.join(root, "usr/share/bench", f"d{i // 200:03d}")
    os.makedirs(d, exist_ok=True)
    # 1-8 KiB each, mostly distinct content (about 90 MiB in all)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 8192)))
os.symlink("usr/bin", os.path.join(root, "bin"))
PY
    tar -C "$DIR/gen" -cf "$DIR/tree-$FILES.tar" .
    rm -rf "$DIR/gen"
fi
python3 - "$DIR/tree-$FILES.tar" "$DIR/commit.json" <<'PY'
import hashlib, json, sys
tar, out = sys.argv[1], sys.argv[2]
h = hashlib.sha256()
with open(tar, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
s = "sha256:" + h.hexdigest()
m = {"version": "2",
     "sources": {"org.osbuild.curl": {"items": {s: "file://" + tar}}},
     "pipelines": [
         {"name": "tree", "stages": [{"type": "org.osbuild.untar", "options": {},
             "inputs": {"file": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {s: {}}}}}]},
         {"name": "commit", "source-epoch": 1700000000, "stages": [
             {"type": "org.osbuild.ostree.init", "options": {"path": "/repo"}},
             {"type": "org.osbuild.ostree.commit", "options": {"ref": "bench/x86_64/tree", "os_version": "1"},
              "inputs": {"tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:tree"]}}}]}]}
json.dump(m, open(out, "w"))
PY
STORE="$DIR/store"
rm -rf "$STORE" "$DIR/byhand"
"$BIN" --quiet --store "$STORE" --checkpoint tree "$DIR/commit.json"   # the tree, once
TREE_ID=$("$BIN" --inspect "$DIR/commit.json" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([p for p in m["pipelines"] if p["name"] == "tree"][0]["stages"][-1]["id"])')
TREE="$STORE/objects/$TREE_ID/tree"
[ -d "$TREE" ] || { echo "the tree pipeline is not at $TREE"; exit 1; }
echo "$(find "$TREE" -type f | wc -l) files, $(du -sm "$TREE" | cut -f1) MiB"
M="python3 $HERE/measure.py"
results="$DIR/results.txt"
{
$M "org.osbuild.ostree.commit, $FILES files" "$RUNS" \
    --setup "find $STORE/objects -mindepth 1 -maxdepth 1 ! -name $TREE_ID -exec rm -rf {} +" -- \
    "$BIN" --quiet --store "$STORE" --checkpoint commit "$DIR/commit.json"
$M "ostree commit by hand, $FILES files" "$RUNS" --setup "rm -rf $DIR/byhand && mkdir -p $DIR/byhand" -- \
    bash -c "ostree init --mode=archive --repo=$DIR/byhand/repo && ostree commit --repo=$DIR/byhand/repo -b bench/x86_64/tree --timestamp=@1700000000 --tree=dir=$TREE >/dev/null"
} | tee "$results"
python3 - "$results" "$FILES" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        label, value = line[7:].rsplit(" ", 1)
        r[label] = float(value)
n = sys.argv[2]
ours, hand = r[f"org.osbuild.ostree.commit, {n} files"], r[f"ostree commit by hand, {n} files"]
print(f"== org.osbuild.ostree.commit / ostree commit by hand: {ours / hand:.2f}x ({100 * (ours / hand - 1):+.1f}%)")
PY
rm -rf "$STORE" "$DIR/byhand"
