//! `org.osbuild.ostree.checkout`: OSTree commits (as for `org.osbuild.ostree`) checked out into
//! directories named by their checksum.

use super::ostree::{commits, ostree};
use super::{Context, InputError, InputService, NoOptions, Prepared};
use serde_json::{json, Map};

pub struct OstreeCheckout;

impl InputService for OstreeCheckout {
    const NAME: &'static str = "org.osbuild.ostree.checkout";
    type RefOptions = NoOptions;

    fn prepare(cx: &Context<'_>, refs: Vec<(String, NoOptions)>) -> Result<Prepared, InputError> {
        let mut data = Map::new();
        for (commit, _) in commits(cx, refs)? {
            let dest = cx.target.join(&commit.checksum);
            ostree(&["checkout".into(), commit.checksum.clone().into(), dest.into()], &commit.repo)?;
            data.insert(commit.checksum.clone(), json!({ "path": commit.checksum }));
        }
        Ok(Prepared { host_path: cx.target.to_owned(), data: Some(json!({ "refs": data })) })
    }
}
