//! Exports: a committed pipeline tree moved or copied to `<output>/<name>/`.
//!
//! `name` must be one plain file name, `<output>/<name>` is made with `mkdirat` in the opened
//! output directory, and whatever already stands there that is not a directory (a symlink
//! above all) is refused, never followed.
//!
//! A tree that nothing else needs (see [`Mode::Move`]) is moved: one rename(2) relative to the
//! output directory's descriptor onto the empty directory just made, after the whole object left
//! the store ([`ObjectStore::take_tree`]). Where that cannot be done (an export already there,
//! another file system, another process using the object), the tree is copied as every other
//! export is. The copy replaces, never writes through, what a previous export left
//! (`cp --remove-destination`): a symlink `f -> /etc/shadow` left by one export cannot make the
//! next one write the host's file.

use crate::manifest::Pipeline;
use crate::store::ObjectStore;
use osbuild_stage_api::tool::{argv_string, stderr_detail};
use osbuild_sys::{fd_path, is_plain_name, PathError, Root};
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("'{0}' is not a plain file name (no '/', not '.' or '..', not empty)")]
    Name(String),
    #[error("the pipeline has no stages")]
    NoStages,
    #[error("the pipeline was not built")]
    NotBuilt,
    #[error("cannot create the output directory")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot run cp")]
    Spawn(#[source] std::io::Error),
    #[error("`{argv}` failed ({outcome}){stderr}")]
    Copy { argv: String, outcome: String, stderr: String },
}

/// How an export may get the tree out of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Always a copy: the object stays in the store (checkpointed, or exported more than once).
    Copy,
    /// Move the tree if the store lets it go (only an object this run made, that no other process
    /// uses), else copy.
    Move,
}

/// Whether an inode of `tree` is immutable or append-only (`chattr +i`/`+a`: `ostree admin
/// deploy` leaves its deployments so). `cp -a` does not carry these flags, so an export by copy
/// can be changed and removed like any file the user owns; a moved tree would keep them, so such
/// a tree is copied. A walk of `statx` calls: no file is opened, no link followed. What cannot be
/// looked at counts as locked.
fn has_locked_inodes(tree: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    let locked = StatxAttributes::IMMUTABLE | StatxAttributes::APPEND;
    walkdir::WalkDir::new(tree).follow_links(false).into_iter().any(|entry| {
        let Ok(entry) = entry else { return true };
        match statx(CWD, entry.path(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::empty()) {
            Ok(st) => st.stx_attributes.intersects(locked),
            Err(_) => true,
        }
    })
}

/// Move or copy the committed tree of `p` to `<output>/<name>/`.
pub fn export(store: &ObjectStore, p: &Pipeline, name: &str, output: &Path, mode: Mode) -> Result<(), ExportError> {
    if !is_plain_name(name) {
        return Err(ExportError::Name(name.to_owned()));
    }
    let id = p.id().ok_or(ExportError::NoStages)?;
    let tree = store.get(id).ok_or(ExportError::NotBuilt)?.join("tree");
    // The output directory is the user's choice: symlinks in its path are theirs.
    std::fs::create_dir_all(output).map_err(ExportError::Output)?;
    let out = Root::open(output)?;
    let dest = out.create_dir(name, 0o755)?;
    let no_owners = std::env::var("OSBUILD_EXPORT_FORCE_NO_PRESERVE_OWNER").as_deref() == Ok("1");
    // A move keeps the store's owners, so not when the copy would drop them. Any failure of the
    // rename (an earlier export left files there, EXDEV, ...) leaves the object in the store.
    if mode == Mode::Move
        && !no_owners
        && !has_locked_inodes(&tree)
        && store.take_tree(id, |tree| out.move_dir_in(tree, name).map_err(|e| e.source))?
    {
        return Ok(());
    }
    // Where the object was, and is again when it was not taken.
    let dest_path = fd_path(dest.fd()).map_err(ExportError::Output)?;
    let mut cmd = Command::new("cp");
    cmd.args(["-a", "--reflink=auto", "--remove-destination"]);
    if no_owners {
        cmd.arg("--no-preserve=ownership");
    }
    cmd.arg(tree.join(".")).arg(&dest_path);
    // tied to the build, as every host helper: a killed osbuild-rs leaves no cp running
    let out = crate::sandbox::run_helper(&mut cmd, None, None).map_err(ExportError::Spawn)?;
    if !out.success() {
        return Err(ExportError::Copy {
            argv: argv_string(&cmd),
            outcome: out.describe(),
            stderr: stderr_detail(&out.stderr),
        });
    }
    Ok(())
}
