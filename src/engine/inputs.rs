//! Inputs: what a stage reads besides its tree, prepared on the host and bound read-only
//! into the sandbox at `/run/osbuild/inputs/<name>` (upstream's input services).

use crate::manifest::{Input, ORIGIN_PIPELINE, ORIGIN_SOURCE};
use crate::store::ObjectStore;
use serde_json::{json, Map, Value};
use std::path::{Component, Path, PathBuf};

pub fn is_supported(kind: &str) -> bool {
    matches!(
        kind,
        "org.osbuild.files"
            | "org.osbuild.tree"
            | "org.osbuild.noop"
            | "org.osbuild.ostree"
            | "org.osbuild.ostree.checkout"
    )
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
        "org.osbuild.ostree" => {
            let repo_out = target.join("repo");
            mkdir(&repo_out)?;
            ostree_cli(name, &["init", "--mode=archive"], &repo_out)?;
            let mut refs = Map::new();
            for (commit, source_repo, opts) in ostree_commits(store, name, input)? {
                let src = source_repo.to_string_lossy().into_owned();
                ostree_cli(name, &["pull-local", &src, &commit], &repo_out)?;
                if let Some(r) = opts.get("ref").and_then(Value::as_str) {
                    ostree_cli(name, &["refs", "--create", r, &commit], &repo_out)?;
                }
                refs.insert(commit, opts);
            }
            Ok(Prepared { host_path: repo_out, data: Some(json!({ "refs": refs })) })
        }
        "org.osbuild.ostree.checkout" => {
            mkdir(target)?;
            let mut refs = Map::new();
            for (commit, source_repo, _) in ostree_commits(store, name, input)? {
                let dest = target.join(&commit);
                let dest_s = dest.to_string_lossy().into_owned();
                ostree_cli(name, &["checkout", &commit, &dest_s], &source_repo)?;
                refs.insert(commit.clone(), json!({ "path": commit }));
            }
            Ok(Prepared { host_path: target.to_owned(), data: Some(json!({ "refs": refs })) })
        }
        other => Err(format!("input '{name}': unsupported input type '{other}'")),
    }
}

/// Run the host's `ostree ARGS --repo=REPO` for input `name`; its error output is the message.
fn ostree_cli(name: &str, args: &[&str], repo: &Path) -> Result<(), String> {
    let out = std::process::Command::new("ostree")
        .args(args)
        .arg(format!("--repo={}", repo.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("input '{name}': ostree not found on the host, but the input needs it")
            }
            _ => format!("input '{name}': cannot run ostree: {e}"),
        })?;
    if !out.status.success() {
        return Err(format!(
            "input '{name}': `ostree {} --repo={}` failed: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The commits an ostree input names, each with the repository holding it and its options:
/// from the `org.osbuild.ostree` source's repository in the store, or from a pipeline that
/// ran `org.osbuild.ostree.commit` (its `/repo`, the commit read from its `/compose.json`).
fn ostree_commits(store: &ObjectStore, name: &str, input: &Input) -> Result<Vec<(String, PathBuf, Value)>, String> {
    let mut out = Vec::new();
    for (reference, opts) in &input.refs {
        let opts = if opts.is_object() { opts.clone() } else { Value::Object(Map::new()) };
        if input.origin == ORIGIN_PIPELINE {
            let dir = store
                .get(reference)
                .ok_or_else(|| format!("input '{name}': pipeline {reference} has not been built"))?;
            let tree = dir.join("tree");
            let compose = tree.join("compose.json");
            let text = std::fs::read_to_string(&compose).map_err(|e| {
                format!("input '{name}': pipeline {reference} has no compose.json (no ostree commit): {e}")
            })?;
            let doc: Value =
                serde_json::from_str(&text).map_err(|e| format!("input '{name}': {}: {e}", compose.display()))?;
            let commit = doc
                .get("ostree-commit")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("input '{name}': {} names no ostree-commit", compose.display()))?;
            out.push((commit.to_owned(), tree.join("repo"), opts));
        } else {
            if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("input '{name}': '{reference}' is not an ostree commit checksum"));
            }
            let repo = store.sources_dir("org.osbuild.ostree").map_err(|e| e.to_string())?.join("repo");
            if !repo.join("config").is_file() {
                return Err(format!(
                    "input '{name}': commit {reference} was not fetched (no ostree source repository)"
                ));
            }
            out.push((reference.clone(), repo, opts));
        }
    }
    Ok(out)
}
