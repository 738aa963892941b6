//! `org.osbuild.files`: single files, downloaded by a source (named by checksum) or taken from
//! another pipeline's tree (`file`), hard-linked (or copied) into the input directory.
//!
//! A pipeline's `file` is opened inside that pipeline's tree with `RESOLVE_IN_ROOT`, must be a
//! regular file, and is linked from the descriptor that was opened: a `hostetc -> /etc` link
//! in the tree leads to the tree's own `/etc`, never to the host's.

use super::{Context, InputError, InputService, Prepared};
use osbuild_sys::{is_plain_name, link_or_copy, PathError, Root};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

pub struct Files;

/// The options of one reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Handed to the stage as it is.
    #[serde(default)]
    metadata: Option<Value>,
    /// For a pipeline reference: the file in its tree.
    file: Option<String>,
}

impl InputService for Files {
    const NAME: &'static str = "org.osbuild.files";
    type RefOptions = FileRef;

    fn prepare(cx: &Context<'_>, refs: Vec<(String, FileRef)>) -> Result<Prepared, InputError> {
        let target = Root::open(cx.target)?;
        let mut files = Map::new();
        for (reference, o) in refs {
            let metadata = o.metadata.unwrap_or_else(|| json!({}));
            let key = if cx.origin_is_pipeline() {
                let file = o.file.ok_or(InputError::File {
                    reference: reference.clone(),
                    message: "a reference to a pipeline needs the 'file' option",
                })?;
                from_pipeline(cx, &target, &reference, &file)?
            } else {
                if o.file.is_some() {
                    return Err(InputError::File {
                        reference,
                        message: "the 'file' option is only for references to pipelines",
                    });
                }
                from_source(cx, &target, &reference)?;
                reference
            };
            files.insert(key, metadata);
        }
        Ok(Prepared { host_path: cx.target.to_owned(), data: Some(json!({ "files": files })) })
    }
}

/// A fetched source item, by checksum, from the store's `org.osbuild.files` directory.
fn from_source(cx: &Context<'_>, target: &Root, checksum: &str) -> Result<(), InputError> {
    if !is_plain_name(checksum) {
        return Err(InputError::Reference { reference: checksum.to_owned(), expected: "a checksum" });
    }
    let sources = Root::open(cx.store.sources_dir("org.osbuild.files")?)?;
    let not_fetched = || InputError::NotFetched { checksum: checksum.to_owned() };
    let src = sources.open_path(checksum, false).map_err(|_| not_fetched())?;
    if !is_regular(src.as_fd())? {
        return Err(not_fetched());
    }
    link_or_copy(src.as_fd(), target, OsStr::new(checksum))
        .map_err(|source| InputError::Copy { file: checksum.to_owned(), source })
}

/// `file` of pipeline `id`: resolved in its tree, a regular file, linked from the opened file.
/// Returns the name it has in the input (upstream's: the path without its leading `/`).
fn from_pipeline(cx: &Context<'_>, target: &Root, id: &str, file: &str) -> Result<String, InputError> {
    let tree_err = |source| InputError::Tree { pipeline: id.to_owned(), source };
    let dest = relative(file).ok_or_else(|| InputError::File {
        reference: id.to_owned(),
        message: "'file' must name a file inside the tree (no '..', not empty)",
    })?;
    let tree = Root::open(cx.pipeline_tree(id)?).map_err(tree_err)?;
    let src = tree.open_path(file, true).map_err(tree_err)?;
    if !is_regular(src.as_fd())? {
        return Err(tree_err(PathError {
            op: "use",
            root: tree.path().to_owned(),
            path: file.to_owned(),
            source: std::io::Error::other("not a regular file"),
        }));
    }
    let name = dest.file_name().expect("normal components only");
    let dir = target.create_dir_all(dest.parent().unwrap_or(Path::new("")), 0o755)?;
    link_or_copy(src.as_fd(), &dir, name).map_err(|source| InputError::Copy { file: file.to_owned(), source })?;
    Ok(dest.to_string_lossy().into_owned())
}

fn is_regular(fd: std::os::fd::BorrowedFd<'_>) -> Result<bool, InputError> {
    let st = rustix::fs::fstat(fd).map_err(|e| InputError::Copy { file: "an input file".into(), source: e.into() })?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile)
}

/// `file` relative to the tree's root, if it is made of plain names only.
fn relative(file: &str) -> Option<PathBuf> {
    let p = Path::new(file.trim_start_matches('/'));
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && p.file_name().is_some()).then(|| p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn file_names_stay_inside() {
        assert_eq!(relative("/etc/hostname").unwrap().to_str(), Some("etc/hostname"));
        assert_eq!(relative("a").unwrap().to_str(), Some("a"));
        for bad in ["", "/", "../x", "/a/../b", "./a"] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }
}
