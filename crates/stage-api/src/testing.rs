//! Helpers for stage tests.

use crate::StageArgs;
use serde_json::{json, Value};
use std::path::Path;

/// Arguments for a stage run on `tree` with `options`.
pub fn args(tree: &Path, options: Value) -> StageArgs {
    serde_json::from_value(json!({"tree": tree, "options": options, "meta": {"id": "test"}})).unwrap()
}
