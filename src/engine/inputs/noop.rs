//! `org.osbuild.noop`: an empty directory; its references are ignored, as upstream does.

use super::{Context, InputError, InputService, Prepared};

pub struct Noop;

impl InputService for Noop {
    const NAME: &'static str = "org.osbuild.noop";
    type RefOptions = serde_json::Value;

    fn prepare(cx: &Context<'_>, _refs: Vec<(String, serde_json::Value)>) -> Result<Prepared, InputError> {
        Ok(Prepared { host_path: cx.target.to_owned(), data: None })
    }
}
