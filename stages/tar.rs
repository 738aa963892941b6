//! `org.osbuild.tar`: archive the `tree` input into a file in this pipeline's tree with the
//! build root's `tar` (compression chosen by the file name unless given).
//!
//! Beyond upstream: with a `source-epoch` (SOURCE_DATE_EPOCH) entries are sorted by name and
//! extended headers carry no access/change times or PID, so two builds give the same bytes.

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::util::yes;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Archive name, in the tree.
    pub filename: String,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "yes")]
    pub acls: bool,
    #[serde(default = "yes")]
    pub selinux: bool,
    #[serde(default = "yes")]
    pub xattrs: bool,
    #[serde(rename = "root-node")]
    pub root_node: Option<RootNode>,
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub sparse: bool,
    pub transform: Option<String>,
    #[serde(rename = "numeric-owner", default)]
    pub numeric_owner: bool,
}

/// tar's flags to keep ACLs, SELinux labels and (all) extended attributes.
pub(crate) fn metadata_flags(cmd: &mut Command, acls: bool, selinux: bool, xattrs: bool) {
    if acls {
        cmd.arg("--acls");
    }
    if selinux {
        cmd.arg("--selinux");
    }
    if xattrs {
        cmd.args(["--xattrs", "--xattrs-include", "*"]);
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Gnu,
    Oldgnu,
    Posix,
    Ustar,
    V7,
}

/// `auto` picks by file name suffix (`tar --auto-compress`); the others are tar's own flags.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Auto,
    Xz,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootNode {
    Include,
    Omit,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Tar;

impl Stage for Tar {
    const NAME: &'static str = "org.osbuild.tar";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.root_node.is_some() && options.paths.is_some() {
            return Err(StageError::Invalid("options root-node and paths are mutually exclusive".into()));
        }
        let source = args.input_path("tree")?;
        let output = tree_path(args, options.filename.trim_start_matches('/'), true)?;

        let format = match options.format {
            Format::Gnu => "gnu",
            Format::Oldgnu => "oldgnu",
            Format::Posix => "posix",
            Format::Ustar => "ustar",
            Format::V7 => "v7",
        };
        let mut cmd = Command::new("tar");
        cmd.arg(format!("--format={format}"));
        metadata_flags(&mut cmd, options.acls, options.selinux, options.xattrs);
        if options.sparse {
            cmd.arg("--sparse");
        }
        if let Some(t) = &options.transform {
            cmd.args(["--transform", t]);
        }
        if options.numeric_owner {
            cmd.arg("--numeric-owner");
        }
        if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
            // With a source epoch (mtimes are clamped by the engine) the archive must not depend on
            // readdir order, access/change times or tar's PID in extended header names either.
            cmd.arg("--sort=name").arg("--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime");
        }
        cmd.arg(match options.compression {
            Compression::Auto => "--auto-compress",
            Compression::Xz => "--xz",
            Compression::Gzip => "--gzip",
            Compression::Zstd => "--zstd",
        });
        cmd.arg("-cf").arg(&output).arg("-C").arg(&source);
        match options.paths.as_deref() {
            Some(paths) if !paths.is_empty() => {
                cmd.args(paths);
            }
            _ if options.root_node == Some(RootNode::Omit) => {
                // `file` instead of `./file`; sorted, so the archive does not depend on readdir order
                let mut names = Vec::new();
                for entry in std::fs::read_dir(&source).map_err(StageError::io("cannot read directory", &source))? {
                    names.push(entry.map_err(StageError::io("cannot read directory", &source))?.file_name());
                }
                names.sort();
                cmd.arg("--").args(names);
            }
            _ => {
                cmd.arg(".");
            }
        }
        // let xz use every core, as upstream does
        cmd.env("XZ_OPT", "--threads 0").stdout(std::process::Stdio::null());
        cmd.run(Tar::NAME)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    fn list(archive: &std::path::Path) -> Vec<String> {
        let out = Command::new("tar").arg("-tf").arg(archive).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }

    fn setup() -> (tempfile::TempDir, StageArgs) {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        fs::create_dir_all(input.join("etc")).unwrap();
        fs::write(input.join("etc/os-release"), "ID=test\n").unwrap();
        fs::write(input.join("b"), "b").unwrap();
        let out = t.path().join("tree");
        fs::create_dir(&out).unwrap();
        let mut a = args(&out, json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        (t, a)
    }

    #[test]
    fn root_node_include_omit_and_paths() {
        let (t, mut a) = setup();
        let out = t.path().join("tree");
        a.options = json!({"filename": "/inc.tar", "acls": false, "selinux": false, "xattrs": false});
        Tar::execute(&a).unwrap();
        assert!(list(&out.join("inc.tar")).contains(&"./etc/os-release".to_owned()));
        a.options = json!({"filename": "omit.tar", "root-node": "omit"});
        Tar::execute(&a).unwrap();
        assert_eq!(list(&out.join("omit.tar")), ["b", "etc/", "etc/os-release"]);
        a.options = json!({"filename": "paths.tar", "paths": ["etc/os-release"], "format": "posix"});
        Tar::execute(&a).unwrap();
        assert_eq!(list(&out.join("paths.tar")), ["etc/os-release"]);
    }

    #[test]
    fn compression_by_name_and_explicit() {
        let (t, mut a) = setup();
        let out = t.path().join("tree");
        a.options = json!({"filename": "x.tar.gz"});
        Tar::execute(&a).unwrap();
        assert_eq!(&fs::read(out.join("x.tar.gz")).unwrap()[..2], &[0x1f, 0x8b]);
        a.options = json!({"filename": "x.tar", "compression": "xz"});
        Tar::execute(&a).unwrap();
        assert_eq!(&fs::read(out.join("x.tar")).unwrap()[..6], b"\xfd7zXZ\0");
    }

    #[test]
    fn root_node_and_paths_conflict() {
        let (_t, mut a) = setup();
        a.options = json!({"filename": "x.tar", "paths": ["b"], "root-node": "omit"});
        assert_eq!(Tar::execute(&a).unwrap_err().to_string(), "options root-node and paths are mutually exclusive");
        a.inputs.clear();
        a.options = json!({"filename": "x.tar"});
        assert_eq!(Tar::execute(&a).unwrap_err().to_string(), "unknown input 'tree'");
    }
}
