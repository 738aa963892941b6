//! Upstream's manifests in the compat corpus beside the repository (as in CI), where the
//! stage tests take their options from. Included by `#[path]` where a test has no `common`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The corpus: one JSON manifest per file.
pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/manifests")
}

/// The corpus's manifest `file`.
pub fn manifest(file: &str) -> Value {
    let path = manifests_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every stage of type `ty` in `doc`'s pipelines, in order.
pub fn stages_of<'a>(doc: &'a Value, ty: &str) -> Vec<&'a Value> {
    doc["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["stages"].as_array().into_iter().flatten())
        .filter(|s| s["type"] == ty)
        .collect()
}

/// The options of every stage of type `ty` in the corpus's manifest `file`, in order (`null`
/// for a stage without options).
pub fn stage_options(file: &str, ty: &str) -> Vec<Value> {
    stages_of(&manifest(file), ty).into_iter().map(|s| s["options"].clone()).collect()
}

/// The options of every `org.osbuild.<stage>` in upstream's test of that stage
/// (`test/data/stages/<stage>/b.json`), which must use it.
pub fn stage_test_options(stage: &str) -> Vec<Value> {
    let file = format!("test__data__stages__{stage}__b.json");
    let found = stage_options(&file, &format!("org.osbuild.{stage}"));
    assert!(!found.is_empty(), "{file} does not use org.osbuild.{stage}");
    found
}
