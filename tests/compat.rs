//! `--inspect` against upstream osbuild's own output for upstream's test manifests.
//!
//! Runs over every file in `../shared/compat/manifests/` (new files are picked up without
//! code changes). Accepted manifests must describe to exactly upstream's JSON value;
//! rejected ones must give upstream's `type`, `title`, `success` and errors (message and
//! path of each).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn compat_dir() -> PathBuf {
    match std::env::var_os("OSBUILD_RS_COMPAT_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/compat"),
    }
}

fn compare(ours: &Value, expected: &Value) -> Result<(), String> {
    let is_error = expected.get("type").and_then(Value::as_str) == Some("https://osbuild.org/validation-error");
    if !is_error {
        return if ours == expected { Ok(()) } else { Err(first_difference(ours, expected, "")) };
    }
    for key in ["type", "title", "success"] {
        if ours.get(key) != expected.get(key) {
            return Err(format!("{key}: ours {:?}, upstream {:?}", ours.get(key), expected.get(key)));
        }
    }
    // upstream keeps errors in a set: at one path their order varies, so compare sorted
    let errors = |v: &Value| -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|e| (e["path"].to_string(), e["message"].to_string())).collect())
            .unwrap_or_default();
        e.sort();
        e
    };
    if errors(ours) != errors(expected) {
        return Err(format!("errors: ours {:?}, upstream {:?}", errors(ours), errors(expected)));
    }
    Ok(())
}

fn first_difference(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) if u != v => return first_difference(u, v, &format!("{at}.{k}")),
                    (None, Some(_)) => return format!("{at}.{k}: missing in ours"),
                    (Some(_), None) => return format!("{at}.{k}: not in upstream's"),
                    _ => {}
                }
            }
            format!("{at}: differs")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                if u != v {
                    return first_difference(u, v, &format!("{at}[{i}]"));
                }
            }
            format!("{at}: differs")
        }
        _ => format!("{at}: ours {}, upstream {}", trunc(a), trunc(b)),
    }
}

fn trunc(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}…", &s[..120])
    } else {
        s
    }
}

#[test]
fn inspect_matches_upstream_on_the_compat_corpus() {
    let dir = compat_dir();
    let manifests = dir.join("manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&manifests)
        .unwrap_or_else(|e| panic!("compat corpus missing at {}: {e}", manifests.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", manifests.display());

    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected").join(name)).expect("expected output exists"))
                .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_osbuild-rs")).arg("--inspect").arg(f).output().unwrap();
        let ours: Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{}: no JSON on stdout ({e}); stderr: {}",
                    name.to_string_lossy(),
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
        };
        let want_status = if expected.get("success") == Some(&Value::Bool(false)) { 2 } else { 0 };
        if out.status.code() != Some(want_status) {
            failures.push(format!("{}: exit {:?}, upstream {want_status}", name.to_string_lossy(), out.status.code()));
            continue;
        }
        if let Err(d) = compare(&ours, &expected) {
            failures.push(format!("{}: {d}", name.to_string_lossy()));
        }
    }
    println!("{}/{} manifests match", files.len() - failures.len(), files.len());
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn canonical_json_vectors_match_python() {
    let v: Value =
        serde_json::from_slice(&std::fs::read(compat_dir().join("canonical-json-vectors.json")).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let mut n = 0;
    for c in cases {
        let input: Value = serde_json::from_str(c["input"].as_str().unwrap()).unwrap();
        let text = osbuild_rs::canonical_json::to_string(&input);
        assert_eq!(text, c["python_json_dumps_sort_keys"].as_str().unwrap(), "input {}", c["input"]);
        let mut h = osbuild_rs::canonical_json::IdHasher::new();
        h.update(&input);
        assert_eq!(h.finish(), c["sha256"].as_str().unwrap());
        n += 1;
    }
    println!("{n}/{} canonical JSON vectors match", cases.len());
}
