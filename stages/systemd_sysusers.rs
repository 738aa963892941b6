//! `org.osbuild.systemd-sysusers`: create the users and groups the tree's sysusers.d files
//! declare.
//!
//! Like upstream this runs `systemd-sysusers --root <tree>` from the build root: allocating
//! ids and updating passwd, group, shadow and gshadow (with their `-` backups) the way
//! systemd does is its job, and a second implementation could drift from it. A leftover
//! `/etc/.pwd.lock` (systemd before 253 leaves it) is removed, as the tree upstream gets has none.

use super::util::drop_pwd_lock;
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdSysusers;

impl Stage for SystemdSysusers {
    const NAME: &'static str = "org.osbuild.systemd-sysusers";
    type Options = Options;

    fn run(args: &StageArgs, _: Options) -> StageResult {
        Command::new("systemd-sysusers").arg("--root").arg(&args.tree).run(SystemdSysusers::NAME)?;
        // older systemd-sysusers leave their lock file behind; current ones (upstream's) do not
        drop_pwd_lock(args)?;
        println!("Applied systemd-sysusers");
        Ok(None)
    }
}
