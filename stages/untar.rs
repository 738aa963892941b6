//! `org.osbuild.untar`: extract the archive given as the `file` input into the tree (below
//! `prefix`) with the build root's `tar`, which detects the compression.

use super::util::tree_path;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Directory in the tree to extract into.
    #[serde(default = "root")]
    pub prefix: String,
}

fn root() -> String {
    "/".into()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Untar;

impl Stage for Untar {
    const NAME: &'static str = "org.osbuild.untar";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let source = args.single_input_file("file")?;
        let target = tree_path(args, &options.prefix, true)?;
        let mut cmd = Command::new("tar");
        cmd.args(["--auto-compress", "-x", "-f"]).arg(&source).arg("-C").arg(&target);
        cmd.run(Untar::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    #[test]
    fn extracts_into_prefix() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f"), "hello").unwrap();
        let input = t.path().join("input");
        fs::create_dir(&input).unwrap();
        let archive = input.join("sha256:0123");
        let ok = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&src).arg(".").status().unwrap();
        assert!(ok.success());
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("opt")).unwrap();
        let mut a = args(&tree, json!({"prefix": "/opt"}));
        a.inputs.insert("file".into(), json!({"path": input, "data": {"files": {"sha256:0123": {}}}}));
        Untar::execute(&a).unwrap();
        assert_eq!(fs::read_to_string(tree.join("opt/d/f")).unwrap(), "hello");
    }

    #[test]
    fn needs_exactly_one_file() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({}));
        a.inputs.insert("file".into(), json!({"path": "/x", "data": {"files": {}}}));
        assert_eq!(Untar::execute(&a).unwrap_err().to_string(), "input 'file' must hold exactly one file");
    }
}
