//! `org.osbuild.rpmkeys.import`: import public keys into the tree's RPM database.
//!
//! As upstream: for every file of the `keys` input (in the input's order),
//! `rpmkeys --verbose --root <tree> --import <file>` is run with the build root's `rpmkeys`
//! (Debian: package `rpm`). The stage has no options.
//!
//! Deviation: when the tree already holds an RPM database in `/usr/lib/sysimage/rpm` or
//! `/var/lib/rpm`, `--dbpath` names it. Upstream relies on the build root's default database
//! path matching the tree's; a build root whose `rpm` is configured differently (Debian's
//! uses `~/.rpmdb`) would otherwise start a second, unused database in the tree.

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct RpmkeysImport;

impl Stage for RpmkeysImport {
    const NAME: &'static str = "org.osbuild.rpmkeys.import";
    type Options = Options;

    fn run(args: &StageArgs, _options: Options) -> StageResult {
        let (base, files) = args.input_files("keys")?;
        let dbpath = existing_dbpath(args)?;
        for name in files.keys() {
            let path = base.join(name);
            let mut cmd = Command::new("rpmkeys");
            cmd.arg("--verbose").arg("--root").arg(&args.tree);
            if let Some(db) = dbpath {
                cmd.args(["--dbpath", db]);
            }
            cmd.arg("--import").arg(&path).run(RpmkeysImport::NAME)?;
            println!("imported key '{name}'");
        }
        Ok(None)
    }
}

/// The tree's RPM database directory, if it has one.
fn existing_dbpath(args: &StageArgs) -> Result<Option<&'static str>, StageError> {
    for dir in ["/usr/lib/sysimage/rpm", "/var/lib/rpm"] {
        let p = tree_path(args, dir, true)?;
        if ["rpmdb.sqlite", "Packages", "Packages.db"].iter().any(|f| p.join(f).is_file()) {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn needs_the_keys_input() {
        let t = tempfile::tempdir().unwrap();
        let e = RpmkeysImport::execute(&args(t.path(), json!({}))).unwrap_err();
        assert_eq!(e.to_string(), "unknown input 'keys'");
        let mut a = args(t.path(), json!({}));
        a.inputs.insert("keys".into(), json!({"path": "/nonexistent", "data": {}}));
        assert_eq!(RpmkeysImport::execute(&a).unwrap_err().to_string(), "input 'keys' lists no files");
        let e = RpmkeysImport::execute(&args(t.path(), json!({"foo": 1}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown field `foo`"), "{e:?}");
    }
}
