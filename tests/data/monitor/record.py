#!/usr/bin/python3
"""Produce the reference data in this directory from upstream osbuild's own code.

This is a test-data generator written for osbuild-rs (not upstream code): it imports
upstream's `osbuild` package (release 191, path given as the first argument, default
/work/upstream), loads `manifest-v2.json` / `manifest-v1.json` with upstream's loaders
(so pipeline, stage and source ids are upstream's), then plays a scripted build:

- the JSONSeqMonitor calls in the order upstream's main_cli and pipeline code make them
  (`starting -`, source, two pipelines of two stages each, their output and results,
  `manifest - finished successfully`) -> upstream-2pipelines.jsonseq; the same with the
  second stage of the first pipeline failing -> upstream-stage-failure.jsonseq
- upstream's `formats.v2.output()` / `formats.v1.output()` on hand-made results
  -> result-v2-success.json, result-v2-stage-error.json, result-v2-source-error.json,
     result-v1-success.json

Nothing is built: stage output, results and metadata are invented, the call sequence
and document shapes come from upstream. tests/monitor.rs replays the same script
through osbuild-rs and compares. Re-run: python3 record.py [/path/to/upstream]
"""

import json
import os
import sys

UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "/work/upstream"
sys.path.insert(0, UPSTREAM)

# pylint: disable=wrong-import-position
import osbuild.formats.v1 as fmt_v1  # noqa: E402
import osbuild.formats.v2 as fmt_v2  # noqa: E402
import osbuild.meta  # noqa: E402
from osbuild import monitor  # noqa: E402
from osbuild.pipeline import DownloadResult, ManifestBuildResult, PipelineResult, StageResult  # noqa: E402
from osbuild.sources import SourceItemResult, SourceResults  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64

# The scripted build; tests/monitor.rs has the same script.
STAGE_OUTPUT = {
    ("build", "org.osbuild.rpm"): ["Installing a-1.0-1.noarch\n"],
    ("build", "org.osbuild.selinux"): ["restoring file contexts\n"],
    ("os", "org.osbuild.rpm"): ["Installing b-2.0-1.x86_64\n"],
    # 10 chunks of 4000 characters: more than the 31000 kept in a result
    ("os", "org.osbuild.hostname"): [f"{i}" * 3999 + "\n" for i in range(10)],
}


def package(name, version, release, arch):
    return {"name": name, "version": version, "release": release, "epoch": None, "arch": arch,
            "sigmd5": "0" * 32, "sigpgp": None, "siggpg": None}


METADATA = {
    ("build", "org.osbuild.rpm"): {"packages": [package("a", "1.0", "1", "noarch")]},
    ("os", "org.osbuild.rpm"): {"packages": [package("b", "2.0", "1", "x86_64")]},
    ("tree", "org.osbuild.rpm"): {"packages": [package("b", "2.0", "1", "x86_64")]},
}
FAILURE = {"type": "RuntimeError", "value": "hostname: boom", "traceback": "Traceback ...\n"}


def load(name, fmt):
    index = osbuild.meta.Index(UPSTREAM)
    with open(os.path.join(HERE, name), encoding="utf8") as f:
        return fmt.load(json.load(f), index)


def stage_result(pipeline, stage, success=True):
    output = "".join(STAGE_OUTPUT.get((pipeline.name, stage.name), []))
    return StageResult.from_dict({"name": stage.name, "id": stage.id, "success": success, "output": output,
                                  "error": None if success else FAILURE})


def curl_result(fail_b=False):
    res = SourceResults("org.osbuild.curl")
    res.add(SourceItemResult(metadata={"checksum": A, "cached": False}))
    item = SourceItemResult(metadata={"checksum": B, "cached": True})
    if fail_b:
        item = SourceItemResult(metadata={"checksum": B, "cached": False})
        item.set_error("curl: (22) The requested URL returned error: 404")
    res.add(item)
    return res


def record_stream(manifest, name, fail_stage=None):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf8") as f:
        pipelines = list(manifest.pipelines.values())
        mon = monitor.make("JSONSeqMonitor", f.fileno(), len(manifest.sources) + len(pipelines))
        mon.log("starting -", origin="osbuild.main_cli")
        for source in manifest.sources:
            mon.begin(source)
            mon.log("source/org.osbuild.curl (org.osbuild.curl): Downloaded "
                    "https://example.com/repo/a-1.0-1.noarch.rpm\n")
            mon.result(curl_result())
            mon.finish({"name": source.info_name})
        for p in pipelines:
            mon.begin(p)
            for stage in p.stages:
                mon.stage(stage)
                origin = os.path.join("stages", stage.name)
                for chunk in STAGE_OUTPUT.get((p.name, stage.name), []):
                    mon.log(chunk, origin=origin)
                mon.log("", origin=origin)  # the read after the stage exits
                ok = (p.name, stage.name) != fail_stage
                mon.result(stage_result(p, stage, ok), METADATA.get((p.name, stage.name)))
                if not ok:
                    break
            mon.finish({"name": p.name})
            if fail_stage and fail_stage[0] == p.name:
                break
        if fail_stage:
            mon.log("manifest - failed\n", origin="osbuild.main_cli")
        else:
            mon.log("manifest - finished successfully\n", origin="osbuild.main_cli")


class Obj:
    def __init__(self, meta):
        self.meta = meta


class Store:
    """Stand-in for the object store: stage metadata of built pipelines."""

    def __init__(self, manifest):
        self.objs = {}
        for p in manifest.pipelines.values():
            meta = {s.id: METADATA[(p.name, s.name)] for s in p.stages if (p.name, s.name) in METADATA}
            self.objs[p.id] = Obj(meta)

    def get(self, oid):
        return self.objs.get(oid)


def build_result(manifest, fail_stage=None, fail_source=False):
    dr = DownloadResult()
    dr.add("org.osbuild.curl", curl_result(fail_b=fail_source))
    res = ManifestBuildResult(dr)
    if fail_source:
        return res
    for p in manifest.pipelines.values():
        results = []
        for stage in p.stages:
            ok = (p.name, stage.name) != fail_stage
            results.append(stage_result(p, stage, ok))
            if not ok:
                break
        pr = PipelineResult(p.name)
        pr.set_stages(results)
        res.add_pipeline(p.id, pr)
        if not pr.success:
            break
    return res


def dump(name, doc):
    with open(os.path.join(HERE, name), "w", encoding="utf8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main():
    m2 = load("manifest-v2.json", fmt_v2)
    record_stream(m2, "upstream-2pipelines.jsonseq")
    record_stream(m2, "upstream-stage-failure.jsonseq", fail_stage=("build", "org.osbuild.selinux"))
    dump("result-v2-success.json", fmt_v2.output(m2, build_result(m2), Store(m2)))
    dump("result-v2-stage-error.json",
         fmt_v2.output(m2, build_result(m2, fail_stage=("os", "org.osbuild.hostname")), Store(m2)))
    dump("result-v2-source-error.json", fmt_v2.output(m2, build_result(m2, fail_source=True), Store(m2)))
    m1 = load("manifest-v1.json", fmt_v1)
    dump("result-v1-success.json", fmt_v1.output(m1, build_result(m1), Store(m1)))


if __name__ == "__main__":
    main()
