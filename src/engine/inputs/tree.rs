//! `org.osbuild.tree`: the committed tree of exactly one other pipeline, bound read-only as it
//! is in the store (a symlink in it means what it means inside the sandbox, nothing on the host).

use super::{Context, InputError, InputService, NoOptions, Prepared};

pub struct Tree;

impl InputService for Tree {
    const NAME: &'static str = "org.osbuild.tree";
    type RefOptions = NoOptions;

    fn prepare(cx: &Context<'_>, refs: Vec<(String, NoOptions)>) -> Result<Prepared, InputError> {
        match refs.first() {
            Some((id, _)) if cx.origin_is_pipeline() => Ok(Prepared { host_path: cx.pipeline_tree(id)?, data: None }),
            _ => Ok(Prepared { host_path: cx.target.to_owned(), data: None }),
        }
    }
}
