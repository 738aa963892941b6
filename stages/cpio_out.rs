//! `org.osbuild.cpio.out`: archive the `tree` input into a cpio file in this pipeline's tree
//! with the build root's `cpio`, listing the files in upstream's order: a top-down walk in
//! directory order, each directory's files first, then the directory itself (the root as `.`
//! unless `root-node` is `omit`), then its subdirectories. Like upstream's walk, a symlink to
//! a directory is neither listed nor followed.

use super::fs_image::output_file;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The archive, in the tree.
    pub filename: String,
    #[serde(default)]
    pub append: bool,
    #[serde(default = "newc")]
    pub format: String,
    #[serde(rename = "root-node", default)]
    pub root_node: RootNode,
    /// `cpio --reproducible`: no inode or device numbers from the build host.
    #[serde(default = "yes")]
    pub reproducible: bool,
    pub owner: Option<Owner>,
}

fn newc() -> String {
    "newc".into()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootNode {
    #[default]
    Include,
    Omit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub user: String,
    pub group: Option<String>,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct CpioOut;

impl Stage for CpioOut {
    const NAME: &'static str = "org.osbuild.cpio.out";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let tree = args.input_path("tree")?;
        let output = output_file(args, &options.filename)?;
        let mut list = Vec::new();
        walk(&tree, Path::new(""), options.root_node == RootNode::Include, &mut list)?;
        let input = list.iter().map(|p| p.as_os_str().as_bytes()).collect::<Vec<_>>().join(&b'\0');
        cpio(&tree, &output, &options).run_with_input(CpioOut::NAME, &input)?;
        Ok(None)
    }
}

fn cpio(tree: &Path, output: &Path, o: &Options) -> Command {
    let mut cmd = Command::new("cpio");
    cmd.args(["-v", "-o", &format!("--format={}", o.format), "--null"]);
    if o.reproducible {
        cmd.arg("--reproducible");
    }
    if o.append {
        cmd.arg("--append");
    }
    if let Some(owner) = &o.owner {
        let mut arg = format!("--owner={}", owner.user);
        if let Some(group) = owner.group.as_deref().filter(|g| !g.is_empty()) {
            arg += &format!(":{group}");
        }
        cmd.arg(arg);
    }
    cmd.arg("-O").arg(output).arg("-D").arg(tree);
    cmd
}

/// Python's `os.walk(top)` below `top/rel`, as upstream lists it (see the module docs).
fn walk(top: &Path, rel: &Path, include_root: bool, out: &mut Vec<PathBuf>) -> Result<(), StageError> {
    let dir = top.join(rel);
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(StageError::io("cannot read directory", &dir))? {
        let entry = entry.map_err(StageError::io("cannot read directory", &dir))?;
        let path = rel.join(entry.file_name());
        let ty = entry.file_type().map_err(StageError::io("cannot stat", entry.path()))?;
        // scandir's is_dir() follows symlinks; the walk then does not enter a linked directory
        if ty.is_dir() {
            subdirs.push(path);
        } else if !(ty.is_symlink() && entry.path().is_dir()) {
            out.push(path);
        }
    }
    if !rel.as_os_str().is_empty() {
        out.push(rel.to_owned());
    } else if include_root {
        out.push(PathBuf::from(OsString::from_vec(b".".to_vec())));
    }
    for d in subdirs {
        walk(top, &d, include_root, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    fn setup() -> (tempfile::TempDir, StageArgs) {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("etc/sub")).unwrap();
        fs::write(input.join("init"), "#!/bin/sh\n").unwrap();
        fs::write(input.join("etc/sub/conf"), "x\n").unwrap();
        std::os::unix::fs::symlink("etc", input.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("init", input.join("linkfile")).unwrap();
        fs::create_dir_all(t.path().join("tree")).unwrap();
        let mut a = args(&t.path().join("tree"), json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        (t, a)
    }

    fn listing(archive: &Path) -> Vec<String> {
        let out = Command::new("cpio").args(["-it", "--quiet", "-F"]).arg(archive).output().expect("cpio");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn lists_the_tree_in_upstreams_walk_order() {
        let (t, a) = setup();
        let mut list = vec![];
        walk(&t.path().join("input"), Path::new(""), true, &mut list).unwrap();
        let list: Vec<String> = list.iter().map(|p| p.display().to_string()).collect();
        // files of a directory (in directory order), the directory, then its subdirectories
        let pos = |s: &str| list.iter().position(|p| p == s).unwrap_or_else(|| panic!("{s} not in {list:?}"));
        assert!(pos("init") < pos(".") && pos("linkfile") < pos("."));
        assert!(pos(".") < pos("etc") && pos("etc") < pos("etc/sub/conf") && pos("etc/sub/conf") < pos("etc/sub"));
        assert!(!list.contains(&"linkdir".to_owned()), "{list:?}");
        assert_eq!(list.len(), 6);

        let mut a = a;
        a.options = json!({"filename": "/initrd.cpio", "root-node": "omit", "owner": {"user": "0", "group": "0"}});
        CpioOut::execute(&a).unwrap();
        let got = listing(&t.path().join("tree/initrd.cpio"));
        assert!(!got.contains(&".".to_owned()) && got.contains(&"etc/sub/conf".to_owned()), "{got:?}");
        let data = fs::read(t.path().join("tree/initrd.cpio")).unwrap();
        assert_eq!(&data[..6], b"070701", "not the newc format");
    }

    #[test]
    fn reproducible_append_and_formats() {
        let (t, mut a) = setup();
        a.options = json!({"filename": "a.cpio"});
        CpioOut::execute(&a).unwrap();
        a.options = json!({"filename": "b.cpio"});
        CpioOut::execute(&a).unwrap();
        let read = |n: &str| fs::read(t.path().join("tree").join(n)).unwrap();
        assert!(read("a.cpio") == read("b.cpio"));
        assert!(listing(&t.path().join("tree/a.cpio")).contains(&".".to_owned()));
        a.options = json!({"filename": "a.cpio", "append": true});
        CpioOut::execute(&a).unwrap();
        assert_eq!(listing(&t.path().join("tree/a.cpio")).len(), 12);
        a.options = json!({"filename": "c.cpio", "format": "odc", "reproducible": false});
        CpioOut::execute(&a).unwrap();
        assert_eq!(&read("c.cpio")[..6], b"070707");
        let o: Options = serde_json::from_value(json!({"filename": "x", "owner": {"user": "u"}})).unwrap();
        let argv = crate::tool::argv_string(&cpio(Path::new("/t"), Path::new("/o"), &o));
        assert_eq!(argv, "cpio -v -o --format=newc --null --reproducible --owner=u -O /o -D /t");
    }
}
