//! `org.osbuild.debconf`: preseed debconf answers in the tree with the tree's own
//! `debconf-set-selections` (run chrooted, so the tree's debconf database is changed).
//!
//! osbuild-rs' own stage. `selections` are lines in debconf-set-selections(1)'s format,
//! `<owner> <question> <type> <value>`, e.g. `locales locales/default_environment_locale
//! select en_US.UTF-8`. They are answers for later (re)configuration of the packages, e.g.
//! by `dpkg-reconfigure` or a later `org.osbuild.dpkg` stage; to preseed packages installed by
//! one `org.osbuild.dpkg` stage use that stage's `debconf` option. The tree must have debconf.

use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub selections: Vec<String>,
}

/// Check one selection line: owner, question, type and (possibly empty) value.
fn check(line: &str) -> Result<(), StageError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if line.contains(['\n', '\r']) || fields.len() < 3 || line.trim_start().starts_with('#') {
        return Err(StageError::Invalid(format!(
            "debconf selection {line:?} is not '<owner> <question> <type> <value>'"
        )));
    }
    Ok(())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Debconf;

impl Stage for Debconf {
    const NAME: &'static str = "org.osbuild.debconf";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        if o.selections.is_empty() {
            return Err(StageError::Invalid("no debconf selections given".into()));
        }
        for s in &o.selections {
            check(s)?;
        }
        if !tree_path(args, "/usr/bin/debconf-set-selections", true)?.exists() {
            return Err(StageError::Invalid("the tree has no debconf-set-selections: install debconf first".into()));
        }
        let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
        let chroot = Chroot::enter(&args.tree, ApiFs::None)?;
        super::dpkg::set_debconf_selections(&chroot, &o.selections, epoch.as_deref())?;
        chroot.close()?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn selections_are_checked_before_anything_runs() {
        let t = tempfile::tempdir().unwrap();
        for bad in ["tzdata tzdata/Areas", "# comment x y z", "a b c\nd e f g"] {
            let e = Debconf::execute(&args(t.path(), json!({"selections": [bad]}))).unwrap_err().to_string();
            assert!(e.contains("is not '<owner> <question> <type> <value>'"), "{e}");
        }
        let e = Debconf::execute(&args(t.path(), json!({"selections": []}))).unwrap_err().to_string();
        assert_eq!(e, "no debconf selections given");
        let e = Debconf::execute(&args(t.path(), json!({"selections": ["tzdata tzdata/Areas select Europe"]})))
            .unwrap_err();
        assert_eq!(e.to_string(), "the tree has no debconf-set-selections: install debconf first");
        assert!(check("d-i debian-installer/locale string").is_ok());
    }
}
