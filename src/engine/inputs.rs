//! Inputs: what a stage reads besides its tree, prepared on the host and bound read-only
//! into the sandbox at `/run/osbuild/inputs/<name>` (upstream's input services).

use crate::manifest::{Input, ORIGIN_PIPELINE, ORIGIN_SOURCE};
use crate::store::ObjectStore;
use serde_json::{json, Map, Value};
use std::path::{Component, Path, PathBuf};

pub fn is_supported(kind: &str) -> bool {
    matches!(kind, "org.osbuild.files" | "org.osbuild.tree" | "org.osbuild.noop")
}

pub struct Prepared {
    pub host_path: PathBuf,
    pub data: Option<Value>,
}

/// Hard-link (same file system as the store, so free) or else copy `src` to `dst`.
fn link_or_copy(src: &Path, dst: &Path) -> Result<(), String> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))
}

/// A relative path with only normal components: nothing from a manifest may climb out.
fn confined(rel: &str) -> Result<PathBuf, String> {
    let p = Path::new(rel.trim_start_matches('/'));
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("path '{rel}' must stay inside the tree (no '..', no empty path)"));
    }
    Ok(p.to_owned())
}

fn metadata_of(opts: &Value) -> Value {
    opts.get("metadata").cloned().unwrap_or_else(|| Value::Object(Map::new()))
}

pub fn prepare(store: &ObjectStore, name: &str, input: &Input, target: &Path) -> Result<Prepared, String> {
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    match input.kind.as_str() {
        "org.osbuild.noop" => {
            mkdir(target)?;
            Ok(Prepared { host_path: target.to_owned(), data: None })
        }
        "org.osbuild.tree" => match input.refs.keys().next() {
            Some(id) if input.origin == ORIGIN_PIPELINE => {
                let dir = store.get(id).ok_or_else(|| format!("input '{name}': pipeline {id} has not been built"))?;
                Ok(Prepared { host_path: dir.join("tree"), data: None })
            }
            _ => {
                mkdir(target)?;
                Ok(Prepared { host_path: target.to_owned(), data: None })
            }
        },
        "org.osbuild.files" => {
            mkdir(target)?;
            let mut files = Map::new();
            for (reference, opts) in &input.refs {
                if input.origin == ORIGIN_SOURCE {
                    let file = confined(reference)?;
                    if file.components().count() != 1 {
                        return Err(format!("input '{name}': '{reference}' is not a checksum"));
                    }
                    let src = store.sources_dir("org.osbuild.files").map_err(|e| e.to_string())?.join(&file);
                    if !src.is_file() {
                        return Err(format!("input '{name}': source item {reference} was not fetched"));
                    }
                    link_or_copy(&src, &target.join(&file))?;
                    files.insert(reference.clone(), metadata_of(opts));
                } else {
                    let rel = opts
                        .get("file")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("input '{name}': a pipeline reference needs a 'file' option"))?;
                    let file = confined(rel)?;
                    let dir = store
                        .get(reference)
                        .ok_or_else(|| format!("input '{name}': pipeline {reference} has not been built"))?;
                    let src = dir.join("tree").join(&file);
                    let meta = std::fs::symlink_metadata(&src).map_err(|e| format!("input '{name}': {rel}: {e}"))?;
                    if !meta.is_file() {
                        return Err(format!("input '{name}': {rel} is not a regular file in pipeline {reference}"));
                    }
                    link_or_copy(&src, &target.join(&file))?;
                    files.insert(file.to_string_lossy().into_owned(), metadata_of(opts));
                }
            }
            Ok(Prepared { host_path: target.to_owned(), data: Some(json!({ "files": files })) })
        }
        other => Err(format!("input '{name}': unsupported input type '{other}'")),
    }
}
