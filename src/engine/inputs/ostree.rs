//! `org.osbuild.ostree`: OSTree commits pulled into a new archive repository (with a ref
//! each, when `ref` is given), from the `org.osbuild.ostree` source's repository in the store
//! or from a pipeline that ran `org.osbuild.ostree.commit` (its `/repo`, the commit named by
//! its `/compose.json`).
//!
//! The host's `ostree` reads a pipeline's repository, so that repository is opened inside the
//! pipeline's tree and must hold no symlink that ostree would follow (a link to a host
//! repository or file would otherwise be read on the host and pulled into the image).

use super::{Context, InputError, InputService, Prepared};
use crate::engine::host_tool;
use osbuild_stage_api::ostree_ref::{self, Lookup};
use osbuild_sys::{EntryKind, Root};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `compose.json` is a few hundred bytes; this only bounds a hostile one.
const MAX_COMPOSE_JSON: u64 = 1 << 20;

pub struct Ostree;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OstreeRef {
    /// A ref to create for the commit in the input's repository.
    #[serde(rename = "ref")]
    reference: Option<String>,
}

impl InputService for Ostree {
    const NAME: &'static str = "org.osbuild.ostree";
    type RefOptions = OstreeRef;

    fn prepare(cx: &Context<'_>, refs: Vec<(String, OstreeRef)>) -> Result<Prepared, InputError> {
        let repo_out = cx.target.join("repo");
        std::fs::create_dir_all(&repo_out).map_err(|source| InputError::Io { path: repo_out.clone(), source })?;
        ostree(&["init".into(), "--mode=archive".into()], &repo_out)?;
        let mut data = Map::new();
        for (commit, options) in commits(cx, refs)? {
            ostree(&["pull-local".into(), commit.repo.into(), commit.checksum.clone().into()], &repo_out)?;
            let mut reply = Map::new();
            if let Some(r) = options.reference {
                // A ref is an argument of `ostree refs`: nothing that is not a ref may pass.
                if ostree_ref::parse_refspec(&r).is_none() {
                    return Err(InputError::Reference { reference: r, expected: "a valid ostree ref" });
                }
                ostree(
                    &["refs".into(), "--create".into(), r.clone().into(), commit.checksum.clone().into()],
                    &repo_out,
                )?;
                reply.insert("ref".into(), Value::String(r));
            }
            data.insert(commit.checksum, Value::Object(reply));
        }
        Ok(Prepared { host_path: repo_out, data: Some(json!({ "refs": data })) })
    }
}

/// A commit an input names, and the repository (a real host path) that holds it.
pub(super) struct Commit {
    pub checksum: String,
    pub repo: PathBuf,
}

/// The commits of `refs`, each with its options, in order.
pub(super) fn commits<O>(cx: &Context<'_>, refs: Vec<(String, O)>) -> Result<Vec<(Commit, O)>, InputError> {
    let mut out = Vec::with_capacity(refs.len());
    for (reference, options) in refs {
        let commit =
            if cx.origin_is_pipeline() { from_pipeline(cx, &reference)? } else { from_source(cx, &reference)? };
        out.push((commit, options));
    }
    Ok(out)
}

fn from_source(cx: &Context<'_>, checksum: &str) -> Result<Commit, InputError> {
    if !ostree_ref::is_checksum(checksum) {
        return Err(InputError::Reference { reference: checksum.to_owned(), expected: "an ostree commit checksum" });
    }
    let not_fetched = || InputError::NotFetched { checksum: checksum.to_owned() };
    let sources = Root::open(cx.store.sources_dir("org.osbuild.ostree")?)?;
    let repo = match sources.open_dir("repo") {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_fetched()),
        Err(e) => return Err(e.into()),
    };
    if !ostree_ref::has_commit(&repo, checksum)? {
        return Err(not_fetched());
    }
    Ok(Commit { checksum: checksum.to_owned(), repo: repo.path().to_owned() })
}

fn from_pipeline(cx: &Context<'_>, id: &str) -> Result<Commit, InputError> {
    let tree_err = |source| InputError::Tree { pipeline: id.to_owned(), source };
    let compose_err = |problem: String| InputError::Compose { pipeline: id.to_owned(), problem };
    let tree = Root::open(cx.pipeline_tree(id)?).map_err(tree_err)?;
    let text = tree.read_bounded("compose.json", MAX_COMPOSE_JSON).map_err(tree_err)?;
    let doc: Value = serde_json::from_slice(&text).map_err(|e| compose_err(format!("is not JSON: {e}")))?;
    let commit = doc
        .get("ostree-commit")
        .and_then(Value::as_str)
        .ok_or_else(|| compose_err("names no commit ('ostree-commit')".into()))?;
    let repo = tree.open_dir("repo").map_err(tree_err)?;
    let commit = ostree_ref::resolve_rev(&repo, commit, Lookup::LocalOnly)?;
    if !ostree_ref::is_checksum(&commit) || !ostree_ref::has_commit(&repo, &commit)? {
        return Err(InputError::NoCommit { commit, repo: repo.path().to_owned() });
    }
    refuse_links(&repo, id)?;
    Ok(Commit { checksum: commit, repo: repo.path().to_owned() })
}

/// Refuse a repository holding a symlink the host's ostree would follow. The only symlinks an
/// ostree repository has are the file objects of a bare repository that are symlinks
/// themselves (`objects/xx/<62 hex>.file`), which ostree reads as links.
fn refuse_links(repo: &Root, pipeline: &str) -> Result<(), InputError> {
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        for e in repo.read_dir(&dir)? {
            let path = dir.join(&e.name);
            match e.kind {
                EntryKind::Dir => dirs.push(path),
                EntryKind::Symlink if is_link_object(&path) => {}
                EntryKind::Symlink => {
                    return Err(InputError::RepoLink {
                        pipeline: pipeline.to_owned(),
                        path: path.display().to_string(),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn is_link_object(path: &Path) -> bool {
    let parts: Vec<_> = path.iter().map(|c| c.to_string_lossy()).collect();
    matches!(parts.as_slice(), [objects, dir, name]
        if objects == "objects" && dir.len() == 2 && name.strip_suffix(".file").is_some_and(|s| s.len() == 62))
}

/// The host's `ostree ARGS --repo=REPO`.
pub(super) fn ostree(args: &[OsString], repo: &Path) -> Result<(), InputError> {
    let mut repo_arg = OsString::from("--repo=");
    repo_arg.push(repo);
    host_tool::run(Command::new("ostree").args(args).arg(repo_arg), "an ostree input")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_link_object;
    use std::path::Path;

    #[test]
    fn only_bare_file_objects_may_be_links() {
        let ok = format!("objects/ab/{}.file", "c".repeat(62));
        assert!(is_link_object(Path::new(&ok)));
        for bad in ["objects/ab", "refs/heads/x", "objects/ab/short.file", "config"] {
            assert!(!is_link_object(Path::new(bad)), "{bad}");
        }
        assert!(!is_link_object(Path::new(&format!("objects/ab/{}.commit", "c".repeat(62)))));
    }
}
