//! `org.osbuild.machine-id`: decide what `/etc/machine-id` does on first boot.
//!
//! `yes`: write `uninitialized\n` (systemd then runs first-boot units and commits a new id);
//! `no`: an empty file (a new id is generated at boot, without first-boot semantics);
//! `preserve`: keep the existing file, failing if there is none.

use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(rename = "first-boot")]
    pub first_boot: FirstBoot,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FirstBoot {
    Yes,
    No,
    Preserve,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct MachineId;

impl Stage for MachineId {
    const NAME: &'static str = "org.osbuild.machine-id";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        // like upstream, an existing /etc/machine-id symlink is written through (inside the tree)
        let path = tree_path(args, "/etc/machine-id", true)?;
        match options.first_boot {
            FirstBoot::Yes => write_file(&path, b"uninitialized\n", 0o644)?,
            FirstBoot::No => write_file(&path, b"", 0o644)?,
            FirstBoot::Preserve => {
                if !path.is_file() {
                    return Err(StageError::Invalid("/etc/machine-id cannot be preserved, it does not exist".into()));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn modes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("etc/machine-id");
        std::fs::create_dir(t.path().join("etc")).unwrap();
        let e = MachineId::execute(&args(t.path(), json!({"first-boot": "preserve"}))).unwrap_err();
        assert_eq!(e.to_string(), "/etc/machine-id cannot be preserved, it does not exist");
        MachineId::execute(&args(t.path(), json!({"first-boot": "yes"}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "uninitialized\n");
        std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
        MachineId::execute(&args(t.path(), json!({"first-boot": "preserve"}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "0123456789abcdef0123456789abcdef\n");
        MachineId::execute(&args(t.path(), json!({"first-boot": "no"}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
    }

    #[test]
    fn bad_mode() {
        let t = tempfile::tempdir().unwrap();
        let e = MachineId::execute(&args(t.path(), json!({"first-boot": "maybe"}))).unwrap_err();
        let chain = crate::error_chain(&e);
        assert!(chain.starts_with("invalid options: unknown variant `maybe`"), "{chain}");
    }
}
