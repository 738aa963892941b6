//! `org.osbuild.truncate`: create a file of a given size (or resize one) in the tree, with
//! `truncate --size` like upstream (so sizes such as `4GB`, `10G` or `+1M` work the same).

use super::util::tree_path;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Path of the file inside the tree.
    pub filename: String,
    /// A size as `truncate --size` takes it.
    pub size: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Truncate;

impl Stage for Truncate {
    const NAME: &'static str = "org.osbuild.truncate";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let dest = tree_path(args, &options.filename, true)?;
        Command::new("truncate").arg("--size").arg(&options.size).arg("--").arg(&dest).run(Truncate::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn creates_sparse_file_of_size() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("LiveOS")).unwrap();
        Truncate::execute(&args(t.path(), json!({"filename": "LiveOS/rootfs.img", "size": "4GB"}))).unwrap();
        Truncate::execute(&args(t.path(), json!({"filename": "/empty.service", "size": "0"}))).unwrap();
        assert_eq!(std::fs::metadata(t.path().join("LiveOS/rootfs.img")).unwrap().len(), 4_000_000_000);
        assert_eq!(std::fs::metadata(t.path().join("empty.service")).unwrap().len(), 0);
    }

    #[test]
    fn bad_size_names_tool() {
        let t = tempfile::tempdir().unwrap();
        let e = Truncate::execute(&args(t.path(), json!({"filename": "x", "size": "lots"}))).unwrap_err().to_string();
        assert!(e.starts_with("`truncate --size lots --"), "{e}");
    }
}
