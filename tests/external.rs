//! External stages from `--libdir`: upstream's own stages (those osbuild-rs has no native
//! implementation of) and a site's own, run through upstream's stage interface, compared with
//! upstream osbuild building the same manifest (`tests/common/upstream.rs`).

mod common;

use common::treediff::snapshot;
use common::upstream;
use common::{ok, processes_with, Env};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Upstream osbuild with module directory `lib` on `manifest`, its own store and output.
fn run_upstream(lib: &Path, store: &Path, out: &Path, manifest: &Path, extra: &[&str]) -> std::process::Output {
    upstream::command(lib)
        .arg("--store")
        .arg(store)
        .arg("--output-directory")
        .arg(out)
        .args(extra)
        .arg(manifest)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs upstream osbuild: run `make deps`")
}

fn stage(kind: &str, options: Value) -> Value {
    json!({"type": kind, "options": options})
}

/// Stages osbuild-rs does not implement natively whose tools exist on Debian (most are pure
/// Python configuration writers), with options in the style of upstream's test manifests.
fn external_stages() -> Vec<Value> {
    vec![
        stage("org.osbuild.nginx.conf", json!({"config": {"listen": "*:8080", "pid": "/run/nginx.pid"}})),
        stage("org.osbuild.wsl.conf", json!({"boot": {"systemd": true}})),
        stage(
            "org.osbuild.wsl-distribution.conf",
            json!({"oobe": {"default_uid": 1000, "default_name": "osbuild-rs"}}),
        ),
        stage("org.osbuild.shell.init", json!({"files": {"osbuild.sh": {"env": [{"key": "EDITOR", "value": "vi"}]}}})),
        stage(
            "org.osbuild.crypttab",
            json!({"volumes": [
                {"volume": "luks-data", "uuid": "0fa0d2d8-8b5c-4e61-8fd2-6b4a1d7c8c11", "keyfile": "none", "options": "luks,discard"},
                {"volume": "swap", "path": "/dev/vdb", "keyfile": "/dev/urandom", "options": "swap"},
            ]}),
        ),
        stage(
            "org.osbuild.gcp.guest-agent.conf",
            json!({"config_scope": "distro", "config": {"Accounts": {"deprovision_remove": true}, "Daemons": {"clock_skew_daemon": false}}}),
        ),
        stage("org.osbuild.insights-client.config", json!({"config": {"proxy": "http://proxy.example:3128"}})),
        stage(
            "org.osbuild.yum.config",
            json!({"config": {"http_caching": "packages"}, "plugins": {"langpacks": {"locales": ["en_US.UTF-8"]}}}),
        ),
        stage(
            "org.osbuild.dnf.module-config",
            json!({"conf": {"name": "nodejs", "stream": "18", "state": "enabled", "profiles": ["common"]}}),
        ),
        stage("org.osbuild.dnf4.versionlock", json!({"add": ["kernel-0:6.1.0-1.x86_64", "bash-0:5.2-1.x86_64"]})),
        stage(
            "org.osbuild.containers.unit.create",
            json!({"filename": "data.volume", "unit-path": "etc", "config": {"Volume": {"VolumeName": "data", "Driver": "local"}}}),
        ),
        stage(
            "org.osbuild.bootc.install.config",
            json!({"filename": "10-root.toml", "config": {"install": {"filesystem": {"root": {"type": "xfs"}}, "kargs": ["quiet"]}}}),
        ),
    ]
}

fn manifest(stages: Vec<Value>) -> Value {
    let mut all = vec![stage(
        "org.osbuild.mkdir",
        json!({"paths": [
            {"path": "/etc/nginx", "parents": true},
            {"path": "/etc/profile.d"},
            {"path": "/etc/insights-client"},
            {"path": "/etc/dnf/plugins", "parents": true},
            {"path": "/etc/containers/systemd", "parents": true},
            {"path": "/usr/lib/bootc/install", "parents": true},
        ]}),
    )];
    all.extend(stages);
    // A source epoch: versionlock stamps its entries with the time, from SOURCE_DATE_EPOCH if set.
    json!({"version": "2", "pipelines": [{"name": "tree", "source-epoch": 1700000000, "stages": all}]})
}

/// Build `m` with osbuild-rs (`--libdir` = upstream's runtime as it lies beside the repo) and
/// with upstream (its runnable copy); both must succeed. Returns both exported trees.
fn build_both(env: &Env, m: &Value, upstream_libdir: &Path) -> (PathBuf, PathBuf) {
    let path = env.write_manifest("m.json", m);
    let libdir = upstream::dir();
    let ours = env.run(&path, &["--libdir", libdir.to_str().unwrap(), "--export", "tree"]);
    ok(&ours);
    let up_out = env.path("upstream-out");
    let theirs = run_upstream(upstream_libdir, &env.path("upstream-store"), &up_out, &path, &["--export", "tree"]);
    ok(&theirs);
    (env.out().join("tree"), up_out.join("tree"))
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    let (a, b) = (snapshot(ours), snapshot(theirs));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut differences = Vec::new();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                differences.push(format!("{k}: ours {:?}, upstream {:?}", x.map(|e| &e.fields), y.map(|e| &e.fields)))
            }
        }
    }
    assert!(differences.is_empty(), "trees differ:\n{}", differences.join("\n"));
}

#[test]
fn upstream_stages_run_from_libdir_and_build_what_upstream_builds() {
    let env = Env::new();
    let stages = external_stages();
    for s in &stages {
        let kind = s["type"].as_str().unwrap();
        assert!(osbuild_rs::stages::find(kind).is_none(), "{kind} is native: pick stages that are not");
    }
    let count = stages.len();
    let m = manifest(stages);

    // Without a libdir that has them, they cannot run, and osbuild-rs says where it looked.
    let path = env.write_manifest("m.json", &m);
    let refused = env.run(&path, &["--libdir", env.path("empty").to_str().unwrap(), "--export", "tree"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not implemented by osbuild-rs") && stderr.contains("empty/stages/"), "{stderr}");

    let libdir = upstream::runnable_copy(env.dir.path());
    let (ours, theirs) = build_both(&env, &m, &libdir);
    assert_same_tree(&ours, &theirs);

    // The README's module table shows these as equal to upstream (tests/data/external.tsv).
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/external.tsv")).unwrap();
    let listed: std::collections::BTreeSet<&str> = table
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(1) == Some("equal"))
        .filter_map(|l| l.split('\t').next())
        .collect();
    let tested: std::collections::BTreeSet<&str> =
        m["pipelines"][0]["stages"].as_array().unwrap().iter().skip(1).map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(listed, tested, "tests/data/external.tsv must list exactly the stages compared here");
    let files = snapshot(&ours).values().filter(|e| e.fields["type"] == "file").count();
    assert!(files >= count, "{count} stages wrote only {files} files");
}

/// A site's own stage: a module directory of our own (upstream's Python package for the runner
/// and `osbuild.api`, plus one stage and its meta file).
fn site_libdir(env: &Env, stages: &[(&str, &str, Value)]) -> PathBuf {
    let libdir = env.path("site-libdir");
    std::fs::create_dir_all(libdir.join("stages")).unwrap();
    for dir in ["osbuild", "runners"] {
        std::os::unix::fs::symlink(upstream::dir().join(dir), libdir.join(dir)).unwrap();
    }
    for (name, program, meta) in stages {
        let p = libdir.join("stages").join(name);
        std::fs::write(&p, program).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(libdir.join("stages").join(format!("{name}.meta.json")), meta.to_string()).unwrap();
    }
    libdir
}

fn meta_for(options: Value) -> Value {
    json!({"summary": "a test stage", "description": ["written by the test"], "schema_2": {"options": options}})
}

const HELLO: &str = r#"#!/usr/bin/python3
import os
import sys

import osbuild.api


def main(tree, options):
    with open(os.path.join(tree, "hello"), "w", encoding="utf8") as f:
        f.write(options["greeting"] + "\n")
    print("hello stage ran in", os.environ.get("container"))
    osbuild.api.metadata({"greeted": options["greeting"], "runner_seen": os.path.exists("/run/osbuild/runner")})


if __name__ == "__main__":
    args = osbuild.api.arguments()
    sys.exit(main(args["tree"], args["options"]))
"#;

#[test]
fn a_site_stage_runs_and_its_metadata_reaches_json() {
    let env = Env::new();
    let options = json!({"additionalProperties": false, "required": ["greeting"],
                         "properties": {"greeting": {"type": "string"}}});
    let libdir = site_libdir(&env, &[("org.example.hello", HELLO, meta_for(options))]);
    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.example.hello", json!({"greeting": "hi from the site"})),
    ]}]});
    let path = env.write_manifest("m.json", &m);
    let lib = libdir.to_str().unwrap();

    // The libdir's schema validates the options.
    let bad = env.write_manifest(
        "bad.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
            stage("org.example.hello", json!({"greeting": 7})),
        ]}]}),
    );
    let out = env.run(&bad, &["--libdir", lib, "--inspect"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["path"], json!(["pipelines", 0, "stages", 0, "options", "greeting"]), "{doc}");

    let out = env.run(&path, &["--libdir", lib, "--export", "tree", "--json"]);
    ok(&out);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result["metadata"]["tree"]["org.example.hello"],
        json!({"greeted": "hi from the site", "runner_seen": true}),
        "{result}"
    );
    assert_eq!(std::fs::read_to_string(env.out().join("tree/hello")).unwrap(), "hi from the site\n");

    // Upstream, on the same libdir, reports the same metadata.
    let up = run_upstream(
        &libdir_for_upstream(&env, &libdir),
        &env.path("us"),
        &env.path("uo"),
        &path,
        &["--export", "tree", "--json"],
    );
    ok(&up);
    let theirs: Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(theirs["metadata"], result["metadata"]);
}

/// Every stage of a pipeline gets a fresh (empty) metadata file, although the sandbox scratch is
/// reused from stage to stage: what one stage wrote is never reported for the next.
#[test]
fn metadata_of_one_stage_is_not_reported_for_the_next() {
    let env = Env::new();
    let options = json!({"properties": {"greeting": {"type": "string"}}});
    let libdir = site_libdir(&env, &[("org.example.hello", HELLO, meta_for(options))]);
    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.example.hello", json!({"greeting": "first"})),
        {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/after"}]}},
        {"type": "org.osbuild.noop", "options": {"n": 1}},
    ]}]});
    let path = env.write_manifest("m.json", &m);
    let out = env.run(&path, &["--libdir", libdir.to_str().unwrap(), "--export", "tree", "--json"]);
    ok(&out);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result["metadata"],
        json!({"tree": {"org.example.hello": {"greeted": "first", "runner_seen": true}}}),
        "{result}"
    );
    assert!(env.out().join("tree/after").is_dir());
}

/// For upstream itself: its runnable copy with the site's stages added.
fn libdir_for_upstream(env: &Env, site: &Path) -> PathBuf {
    std::fs::create_dir_all(env.path("u")).unwrap();
    let runnable = upstream::runnable_copy(&env.path("u"));
    for e in std::fs::read_dir(site.join("stages")).unwrap().flatten() {
        std::fs::copy(e.path(), runnable.join("stages").join(e.file_name())).unwrap();
    }
    runnable
}

const RAISES: &str = r#"#!/usr/bin/python3
import osbuild.api


def main():
    raise ValueError("the site stage refuses: 42")


if __name__ == "__main__":
    with osbuild.api.exception_handler():
        main()
"#;

const HANGS: &str = r#"#!/usr/bin/python3
import time

open("/run/osbuild/tree/started", "w").close()
time.sleep(3600)
"#;

fn leftover_mounts(env: &Env) -> Vec<String> {
    env.mounts()
}

#[test]
fn a_raising_stage_fails_with_its_exception_and_a_hanging_one_is_stopped() {
    let env = Env::new();
    let libdir = site_libdir(
        &env,
        &[
            ("org.example.raises", RAISES, meta_for(json!({}))),
            ("org.example.hangs-osbuild-rs-test", HANGS, meta_for(json!({}))),
        ],
    );
    let lib = libdir.to_str().unwrap();
    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.osbuild.mkdir", json!({"paths": [{"path": "/a"}]})),
        stage("org.example.raises", json!({})),
    ]}]});
    let path = env.write_manifest("m.json", &m);
    let out = env.run(&path, &["--libdir", lib, "--export", "tree", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let details = &result["error"]["details"]["stage"];
    assert_eq!(details["type"], "org.example.raises", "{result}");
    assert_eq!(details["error"]["type"], "exception", "{result}");
    assert_eq!(details["error"]["data"]["type"], "ValueError");
    assert_eq!(details["error"]["data"]["value"], "the site stage refuses: 42");
    assert!(details["error"]["data"]["traceback"].as_str().unwrap().contains("in main"), "{result}");
    assert!(details["output"].as_str().unwrap().contains("Traceback (most recent call last)"), "{result}");
    assert!(env.objects().is_empty(), "a failed build committed {:?}", env.objects());
    assert!(env.tmp_entries().is_empty(), "left {:?}", env.tmp_entries());
    assert!(leftover_mounts(&env).is_empty());

    // Upstream reports the same error for the same stage.
    let up = run_upstream(
        &libdir_for_upstream(&env, &libdir),
        &env.path("us"),
        &env.path("uo"),
        &path,
        &["--export", "tree", "--json"],
    );
    assert_eq!(up.status.code(), Some(1));
    let theirs: Value = serde_json::from_slice(&up.stdout).unwrap();
    let up_error = &theirs["error"]["details"]["stage"]["error"];
    assert_eq!(up_error["type"], details["error"]["type"], "{theirs}");
    assert_eq!(up_error["data"]["type"], details["error"]["data"]["type"]);
    assert_eq!(up_error["data"]["value"], details["error"]["data"]["value"]);

    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.example.hangs-osbuild-rs-test", json!({})),
    ]}]});
    let path = env.write_manifest("hang.json", &m);
    let started = Instant::now();
    let out = env.run(&path, &["--libdir", lib, "--export", "tree", "--stage-timeout", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("timed out") || stderr.contains("timed out"), "{stdout}\n{stderr}");
    assert!(processes_with("hangs-osbuild-rs-test").is_empty(), "{:?}", processes_with("hangs-osbuild-rs-test"));
    assert!(env.objects().is_empty() && env.tmp_entries().is_empty());
    assert!(leftover_mounts(&env).is_empty());
}

const FAKE_MKDIR: &str = r#"#!/usr/bin/python3
import osbuild.api

args = osbuild.api.arguments()
with open(args["tree"] + "/made-by-the-external-mkdir", "w", encoding="utf8") as f:
    f.write("yes\n")
"#;

/// Native wins where both exist; `OSBUILD_RS_EXTERNAL_STAGES` picks the external module.
#[test]
fn native_is_the_default_and_the_external_module_can_be_forced() {
    let env = Env::new();
    let libdir = site_libdir(&env, &[("org.osbuild.mkdir", FAKE_MKDIR, meta_for(json!({})))]);
    let lib = libdir.to_str().unwrap();
    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.osbuild.mkdir", json!({"paths": [{"path": "/native"}]})),
    ]}]});
    let path = env.write_manifest("m.json", &m);
    ok(&env.run(&path, &["--libdir", lib, "--export", "tree"]));
    assert!(env.out().join("tree/native").is_dir());
    assert!(!env.out().join("tree/made-by-the-external-mkdir").exists());

    // The same manifest is cached under the same id: a fresh store.
    let forced = std::process::Command::new(common::bin())
        .args(["--libdir", lib, "--export", "tree", "--store"])
        .arg(env.path("store2"))
        .arg("--output-directory")
        .arg(env.path("forced"))
        .arg(&path)
        .env("OSBUILD_RS_EXTERNAL_STAGES", "org.osbuild.noop,org.osbuild.mkdir")
        .output()
        .unwrap();
    ok(&forced);
    assert!(env.path("forced/tree/made-by-the-external-mkdir").is_file());
    assert!(!env.path("forced/tree/native").exists());
}

/// A libdir without a runner for the pipeline is refused before any stage runs.
#[test]
fn an_external_stage_without_a_runner_is_refused_before_any_work() {
    let env = Env::new();
    let libdir = site_libdir(&env, &[("org.example.hello", HELLO, meta_for(json!({})))]);
    std::fs::remove_file(libdir.join("runners")).unwrap();
    std::fs::create_dir(libdir.join("runners")).unwrap();
    let m = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
        stage("org.osbuild.mkdir", json!({"paths": [{"path": "/a"}]})),
        stage("org.example.hello", json!({"greeting": "x"})),
    ]}]});
    let path = env.write_manifest("m.json", &m);
    let out = env.run(&path, &["--libdir", libdir.to_str().unwrap(), "--export", "tree"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pipelines[0].stages[1]") && stderr.contains("has no runner for 'org.osbuild."),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("org.osbuild.mkdir:"), "a stage ran");
    assert!(env.objects().is_empty());
}
