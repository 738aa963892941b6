//! `org.osbuild.tar` (assembler): the input tree as a tar archive in the output directory,
//! with ACLs, SELinux labels and all extended attributes unless switched off (upstream's
//! defaults).

use crate::tool::CommandRunExt;
use crate::util::tree_path;
use crate::util::yes;
use crate::Stage;
use crate::{StageArgs, StageResult};
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub compression: Option<Compression>,
    #[serde(default = "yes")]
    pub acls: bool,
    #[serde(default = "yes")]
    pub selinux: bool,
    #[serde(default = "yes")]
    pub xattrs: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Bzip2,
    Xz,
    Lzip,
    Lzma,
    Lzop,
    Gzip,
}

impl Compression {
    fn flag(self) -> &'static str {
        match self {
            Compression::Bzip2 => "--bzip2",
            Compression::Xz => "--xz",
            Compression::Lzip => "--lzip",
            Compression::Lzma => "--lzma",
            Compression::Lzop => "--lzop",
            Compression::Gzip => "--gzip",
        }
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Tar;

impl Stage for Tar {
    const NAME: &'static str = "org.osbuild.tar";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let input = args.input_path("tree")?;
        let out = tree_path(args, &o.filename, false)?;
        let mut cmd = Command::new("tar");
        if let Some(c) = o.compression {
            cmd.arg(c.flag());
        }
        crate::tar::metadata_flags(&mut cmd, o.acls, o.selinux, o.xattrs);
        cmd.arg("-cf").arg(&out).arg("-C").arg(&input).arg(".").env("XZ_OPT", "--threads 0");
        cmd.run(Tar::NAME)?;
        Ok(None)
    }
}
