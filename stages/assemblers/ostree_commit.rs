//! `org.osbuild.ostree.commit` (assembler): the input tree as an OSTree commit in a new
//! archive repository `repo/` of the output directory, with `compose.json` beside it (or both
//! packed into `tar.filename`).
//!
//! As upstream: a fresh root is laid out as `org.osbuild.ostree.preptree` lays it out; `usr`,
//! `boot`, `var` and the top-level `bin`/`lib*`/`sbin` of the tree are copied in (reflinks
//! where the file system has them), and the result is committed with the same metadata the
//! `org.osbuild.ostree.commit` stage writes (that stage does the commit).

use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use crate::{StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(rename = "ref")]
    pub reference: String,
    pub os_version: Option<String>,
    #[serde(rename = "tmp-is-dir", default = "yes")]
    pub tmp_is_dir: bool,
    pub parent: Option<String>,
    pub tar: Option<Tar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tar {
    pub filename: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeCommit;

impl Stage for OstreeCommit {
    const NAME: &'static str = "org.osbuild.ostree.commit";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let tree = args.input_path("tree")?;
        let out = args.tree.clone();
        // the new root, removed however the commit ends
        let root = tempfile::Builder::new()
            .prefix(".osbuild-ostree-root.")
            .tempdir_in(&out)
            .map_err(StageError::io("cannot create a scratch directory in", &out))?;
        let result = commit(args, &o, &tree, root.path(), &out);
        drop(root);
        let meta = result?;
        if let Some(tar) = &o.tar {
            let dest = crate::util::tree_path(args, &tar.filename, false)?;
            Command::new("tar")
                .args(["--remove-files", "--auto-compress", "-cf"])
                .arg(&dest)
                .arg("-C")
                .arg(&out)
                .args(["repo", "compose.json"])
                .run(OstreeCommit::NAME)?;
        }
        Ok(meta)
    }
}

fn commit(args: &StageArgs, o: &Options, tree: &Path, root: &Path, out: &Path) -> StageResult {
    std::fs::create_dir_all(root).map_err(StageError::io("cannot create directory", root))?;
    crate::ostree_preptree::init_root(root, o.tmp_is_dir)?;
    for name in ["usr", "boot", "var", "bin", "lib", "lib32", "lib64", "sbin"] {
        let src = tree.join(name);
        let required = matches!(name, "usr" | "boot" | "var");
        if !required && std::fs::symlink_metadata(&src).is_err() {
            continue;
        }
        if name == "var" {
            // `var` exists in the new root already: merge the tree's into it.
            Command::new("cp")
                .args(["--reflink=auto", "-a", "-T"])
                .arg(&src)
                .arg(root.join("var"))
                .run(OstreeCommit::NAME)?;
        } else {
            Command::new("cp").args(["--reflink=auto", "-a"]).arg(&src).arg("-t").arg(root).run(OstreeCommit::NAME)?;
        }
    }
    Command::new("ostree")
        .args(["init", "--mode=archive"])
        .arg(format!("--repo={}", out.join("repo").display()))
        .run(OstreeCommit::NAME)?;

    // The stage commits: same arguments document, the new root as its tree input.
    let mut stage_args = args.clone();
    stage_args.options = json!({ "ref": o.reference });
    if let Some(v) = &o.os_version {
        stage_args.options["os_version"] = json!(v);
    }
    if let Some(p) = &o.parent {
        stage_args.options["parent"] = json!(p);
    }
    stage_args.inputs.insert("tree".into(), json!({ "path": root }));
    let info = crate::find(OstreeCommit::NAME).expect("the ostree.commit stage is built in");
    let meta: Option<Value> = (info.run)(&stage_args)?;
    Ok(meta)
}
