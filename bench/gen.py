#!/usr/bin/env python3
"""Generate the benchmark manifests (and their data) into a directory.

noop51.json      51 trivial stages in one pipeline
files300.json    300 x 1 MiB file:// sources copied into a tree, then tarred (2 pipelines)
"""
import hashlib
import json
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

noop = {
    "version": "2",
    "pipelines": [{"name": "tree", "stages": [{"type": "org.osbuild.noop", "options": {"n": i}} for i in range(51)]}],
}
# noop accepts any options upstream; ours too — the option only makes the 51 ids distinct.
with open(os.path.join(out, "noop51.json"), "w") as f:
    json.dump(noop, f)

data_dir = os.path.join(out, "data")
os.makedirs(data_dir, exist_ok=True)
items, refs, paths = {}, {}, []
for i in range(300):
    blob = hashlib.sha256(str(i).encode()).digest() * (1024 * 1024 // 32)
    path = os.path.join(data_dir, f"file{i:03}.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(blob)
    checksum = "sha256:" + hashlib.sha256(blob).hexdigest()
    items[checksum] = {"url": "file://" + path}
    refs[checksum] = {}
    paths.append({"from": f"input://files/{checksum}", "to": f"tree:///data/file{i:03}.bin"})

files = {
    "version": "2",
    "sources": {"org.osbuild.curl": {"items": items}},
    "pipelines": [
        {
            "name": "tree",
            "stages": [
                {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/data"}]}},
                {
                    "type": "org.osbuild.copy",
                    "inputs": {"files": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": refs}},
                    "options": {"paths": paths},
                },
            ],
        },
        {
            "name": "tarball",
            "stages": [
                {
                    "type": "org.osbuild.tar",
                    "inputs": {"tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:tree"]}},
                    "options": {"filename": "tree.tar"},
                }
            ],
        },
    ],
}
with open(os.path.join(out, "files300.json"), "w") as f:
    json.dump(files, f)
