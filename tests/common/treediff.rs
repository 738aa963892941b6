//! Stage tests in the spirit of upstream's `test/data/stages/<name>/{a,b}.json` + `diff.json`:
//! prepare a tree, snapshot it, run one stage on it, snapshot again, and compare the
//! difference with a recorded expectation in `tests/data/stages/<stage>/<case>.json`.
//!
//! Expectation format (upstream's diff.json): `added_files`, `deleted_files`, and
//! `differences` mapping a path to the fields that changed, each `[before, after]`;
//! `null` there means "changed, value not pinned". `OSBUILD_RS_BLESS=1` (make bless)
//! rewrites the expectations from the actual results; CI checks they are unchanged.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub fields: BTreeMap<&'static str, Value>,
}

/// Every path under `root` (as "/etc/x") with type, mode, owner, content digest, link target, xattrs.
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    // A missing root is an empty tree (a stage may not have made it).
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let p = e.path();
        let md = std::fs::symlink_metadata(p).unwrap();
        let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
        let mut f: BTreeMap<&'static str, Value> = BTreeMap::new();
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "directory"
        } else if ft.is_file() {
            "file"
        } else {
            "special"
        };
        f.insert("type", json!(kind));
        f.insert("mode", json!(format!("{:o}", md.mode() & 0o7777)));
        f.insert("uid", json!(md.uid()));
        f.insert("gid", json!(md.gid()));
        if ft.is_file() {
            let data = std::fs::read(p).unwrap();
            f.insert("content", json!(format!("sha256:{}", hex::encode(Sha256::digest(&data)))));
        }
        if ft.is_symlink() {
            f.insert("target", json!(std::fs::read_link(p).unwrap().to_string_lossy()));
        }
        let mut xattrs = Map::new();
        if let Ok(names) = xattr::list(p) {
            for n in names {
                let name = n.to_string_lossy().into_owned();
                if let Ok(Some(v)) = xattr::get(p, &n) {
                    xattrs.insert(name, json!(String::from_utf8_lossy(&v).trim_end_matches('\0')));
                }
            }
        }
        if !xattrs.is_empty() {
            f.insert("xattrs", Value::Object(xattrs));
        }
        out.insert(rel, Entry { fields: f });
    }
    out
}

/// Upstream's diff.json shape for two snapshots.
pub fn diff(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>) -> Value {
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let deleted: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut differences = Map::new();
    for (path, b) in before {
        let Some(a) = after.get(path) else { continue };
        let mut changed = Map::new();
        for key in b.fields.keys().chain(a.fields.keys()) {
            let (x, y) =
                (b.fields.get(key).cloned().unwrap_or(Value::Null), a.fields.get(key).cloned().unwrap_or(Value::Null));
            if x != y {
                changed.insert((*key).to_owned(), json!([x, y]));
            }
        }
        if !changed.is_empty() {
            differences.insert(path.clone(), Value::Object(changed));
        }
    }
    json!({"added_files": added, "deleted_files": deleted, "differences": differences})
}

/// `expected` with `null` as a wildcard for "changed, not pinned".
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Null, _) => true,
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len() && e.iter().all(|(k, v)| a.get(k).is_some_and(|x| matches(v, x)))
        }
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y)),
        _ => expected == actual,
    }
}

/// Compare `actual` with `tests/data/stages/<stage>/<case>.json`, or write it when blessing.
pub fn assert_expected(stage: &str, case: &str, actual: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stages").join(stage).join(format!("{case}.json"));
    if std::env::var_os("OSBUILD_RS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make bless` to record it)", path.display())),
    )
    .unwrap();
    assert!(
        matches(&expected, actual),
        "{stage} case {case}: tree difference does not match {}\nexpected: {}\nactual:   {}",
        path.display(),
        serde_json::to_string_pretty(&expected).unwrap(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

/// Run `stage` with `options` (and `inputs`) on the tree `prepare` builds, and check the
/// difference it makes against the recorded expectation `<stage>/<case>.json`.
/// Returns the tree directory (kept for further checks) and the stage's exit code.
pub fn check_stage(
    stage: &str,
    case: &str,
    prepare: impl FnOnce(&Path),
    options: Value,
    inputs: Value,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    prepare(&tree);
    let before = snapshot(&tree);
    let args = json!({
        "tree": tree, "options": options, "inputs": inputs, "devices": {}, "mounts": {},
        "meta": {"id": "0".repeat(64)}, "paths": {"mounts": dir.path().join("mounts")},
    });
    let args_path = dir.path().join("arguments.json");
    std::fs::write(&args_path, serde_json::to_vec(&args).unwrap()).unwrap();
    let code = osbuild_rs::stages::run_stage_from_file(stage, &args_path, &dir.path().join("meta.json"));
    assert_eq!(code, 0, "{stage} case {case} failed");
    let after = snapshot(&tree);
    assert_expected(stage, case, &diff(&before, &after));
    (dir, tree)
}
