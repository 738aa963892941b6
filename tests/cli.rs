//! The command line as callers use it: exit codes, one-line errors, stdin, version.

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_osbuild-rs")
}

fn run_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The process may exit before reading stdin (e.g. a refused flag): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line, no panic, the given exit code.
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn pipeline(name: &str, stages: Value) -> Value {
    json!({"name": name, "stages": stages})
}

#[test]
fn inspect_reads_stdin() {
    let m = json!({"version": "2", "pipelines": [pipeline("tree", json!([{"type": "org.osbuild.noop"}]))]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["pipelines"][0]["stages"][0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 64);
}

#[test]
fn bad_json_is_a_one_line_error() {
    let o = run_stdin(&["--inspect", "-"], "{\"version\": \"2\", ");
    assert_one_line_error(&o, 2, "not valid JSON");
}

#[test]
fn missing_file_is_a_one_line_error() {
    let o = Command::new(bin()).args(["--inspect", "/nonexistent/manifest.json"]).output().unwrap();
    assert_one_line_error(&o, 2, "/nonexistent/manifest.json");
}

#[test]
fn unknown_version_is_a_one_line_error() {
    let o = run_stdin(&["--inspect", "-"], r#"{"version": "3", "pipelines": []}"#);
    assert_one_line_error(&o, 2, "unsupported manifest version");
}

#[test]
fn reference_cycles_and_dangling_references_name_the_path() {
    // A pipeline can only build on pipelines defined before it, so a cycle shows up as
    // a reference to a later pipeline or to itself.
    let m = json!({"version": "2", "pipelines": [
        {"name": "a", "build": "name:b", "stages": [{"type": "org.osbuild.noop"}]},
        {"name": "b", "build": "name:a", "stages": [{"type": "org.osbuild.noop"}]},
    ]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_one_line_error(&o, 2, "pipelines[0].build");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], json!(["pipelines", 0, "build"]));

    let m = json!({"version": "2", "pipelines": [
        {"name": "a", "stages": [{"type": "org.osbuild.copy", "options": {"paths": [{"from": "input://tree/x", "to": "tree:///x"}]}, "inputs": {"tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:a"]}}}]},
    ]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_one_line_error(&o, 2, "pipelines[0].stages[0].inputs.tree");

    let m = json!({"version": "2", "pipelines": [
        {"name": "a", "stages": [{"type": "org.osbuild.copy", "options": {"paths": [{"from": "input://tree/x", "to": "tree:///x"}]}, "inputs": {"tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:nope"]}}}]},
    ]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_one_line_error(&o, 2, "name:nope");
}

#[test]
fn duplicate_pipeline_names_and_unknown_keys_are_errors() {
    let m = json!({"version": "2", "pipelines": [pipeline("a", json!([])), pipeline("a", json!([]))]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_one_line_error(&o, 2, "duplicate pipeline name 'a'");

    let m = json!({"version": "2", "pipelines": [], "bogus": 1});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "https://osbuild.org/validation-error");
    assert_eq!(v["success"], false);
}

#[test]
fn unknown_stage_type_warns_but_inspect_computes_ids() {
    let m = json!({"version": "2", "pipelines": [pipeline("t", json!([{"type": "org.example.unknown"}]))]});
    let o = run_stdin(&["--inspect", "-"], &m.to_string());
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("pipelines[0].stages[0]"), "{}", stderr(&o));
    assert!(stderr(&o).contains("org.example.unknown"));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pipelines"][0]["stages"][0]["id"].as_str().unwrap().len(), 64);
}

#[test]
fn version_answers_by_invocation_name() {
    let o = Command::new(bin()).arg("--version").output().unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.starts_with("osbuild-rs ") && s.contains("191"), "{s}");

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("osbuild");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let o = Command::new(&link).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "osbuild 191\n");
}

#[test]
fn in_vm_is_refused_clearly() {
    let m = json!({"version": "2", "pipelines": []});
    let o = run_stdin(&["--in-vm", "tree", "-"], &m.to_string());
    assert_one_line_error(&o, 1, "--in-vm is not supported");
}

#[test]
fn unknown_export_fails_before_work() {
    let m = json!({"version": "2", "pipelines": [pipeline("tree", json!([]))]});
    let o = run_stdin(&["--export", "nope", "--output-directory", "/tmp/x", "-"], &m.to_string());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("export 'nope' not found"));
}

#[test]
fn validation_errors_are_collected_with_paths() {
    let m = json!({"version": "2", "pipelines": [{"name": 5, "stages": [{"options": {}}]}]});
    let o = run_stdin(&["--json", "-"], &m.to_string());
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<Value> = v["errors"].as_array().unwrap().iter().map(|e| e["path"].clone()).collect();
    assert!(paths.contains(&json!(["pipelines", 0, "name"])), "{paths:?}");
    assert!(paths.contains(&json!(["pipelines", 0, "stages", 0])), "{paths:?}");
}

/// Issue 12: a failing unshare (no CAP_SYS_ADMIN in the bounding set, so the root process
/// osbuild-rs becomes has none) and a store lock that cannot be taken (`lock` is a directory)
/// reach the user with the errno's text, on one line. (A failing mount's errno is tested in
/// tests/security_engine.rs.)
#[test]
fn unshare_and_lock_failures_show_the_errno() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("noop.json");
    std::fs::write(
        &manifest,
        json!({"version": "2", "pipelines": [pipeline("t", json!([{"type": "org.osbuild.noop"}]))]}).to_string(),
    )
    .unwrap();
    let store = dir.path().join("store");
    let o = Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin", bin(), "--store"])
        .arg(&store)
        .arg(&manifest)
        .output()
        .expect("setpriv (util-linux)");
    assert_one_line_error(&o, 1, "cannot unshare the mount namespace: EPERM: Operation not permitted");

    std::fs::create_dir_all(store.join("lock")).unwrap();
    let o = Command::new(bin()).arg("--store").arg(&store).arg(&manifest).output().unwrap();
    assert_one_line_error(&o, 1, "Is a directory (os error 21)");
    assert!(stderr(&o).contains(&format!("cannot lock {}", store.join("lock").display())), "{}", stderr(&o));
}
