//! `org.osbuild.bind`: `options.source` bound recursively onto `target` (`mount --rbind`);
//! both are `tree://` or `mount://` locations, each resolved inside its root, so neither a
//! source nor a target can be a host path, however the tree's symlinks point.

use super::{target, Context, MountError, MountService, Mounted};
use crate::manifest::Mount;
use osbuild_sys::{bind_fd, Root};
use serde::Deserialize;
use serde_json::json;
use std::os::fd::AsFd;

pub struct Bind;

#[derive(Debug, Deserialize)]
pub struct BindOptions {
    source: String,
}

impl MountService for Bind {
    const NAME: &'static str = "org.osbuild.bind";
    type Options = BindOptions;

    fn mount(cx: &mut Context<'_>, m: &Mount, o: BindOptions) -> Result<Mounted, MountError> {
        let (root, rel) = location(cx, &o.source, &["options", "source"])?;
        let src = root.open_path(rel, true).map_err(|source| MountError::Path {
            what: "the bind source",
            field: &["options", "source"],
            source,
        })?;
        let (root, rel) = location(cx, target(m)?, &["target"])?;
        let dest = root.create_dir_all(rel, 0o755).map_err(|source| MountError::Path {
            what: "the mount point",
            field: &["target"],
            source,
        })?;
        let mounted = bind_fd(src.as_fd(), dest.fd(), true)?;
        Ok(Mounted { mounts: vec![mounted], sync: false, args: json!({}) })
    }
}

/// The root a `tree://` or `mount://` location is in, and the path below it.
fn location<'a>(cx: &Context<'_>, s: &'a str, field: &'static [&'static str]) -> Result<(Root, &'a str), MountError> {
    if let Some(rest) = s.strip_prefix("tree://") {
        Ok((cx.tree_root()?, rest))
    } else if let Some(rest) = s.strip_prefix("mount://") {
        Ok((cx.mounts()?, rest))
    } else {
        Err(MountError::Invalid { field, message: format!("'{s}' is neither a tree:// nor a mount:// location") })
    }
}
