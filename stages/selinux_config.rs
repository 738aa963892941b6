//! `org.osbuild.selinux.config`: set `SELINUX=` and `SELINUXTYPE=` in the tree's existing
//! `/etc/selinux/config`, as upstream does: only lines already holding these keys change,
//! comments and blank lines are kept, and the file must exist. Upstream writes the state
//! even when the option is absent, as `SELINUX=None`; we do the same to give the same tree.

use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Enforcing,
    Permissive,
    Disabled,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyType {
    Targeted,
    Minimum,
    Mls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default, rename = "type")]
    pub policy_type: Option<PolicyType>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SelinuxConfig;

impl Stage for SelinuxConfig {
    const NAME: &'static str = "org.osbuild.selinux.config";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let state = match options.state {
            Some(State::Enforcing) => "enforcing",
            Some(State::Permissive) => "permissive",
            Some(State::Disabled) => "disabled",
            None => "None",
        };
        let policy = options.policy_type.map(|p| match p {
            PolicyType::Targeted => "targeted",
            PolicyType::Minimum => "minimum",
            PolicyType::Mls => "mls",
        });
        let path = tree_path(args, "/etc/selinux/config", true)?;
        let text = std::fs::read(&path).map_err(StageError::io("cannot read", &path))?;
        let text =
            String::from_utf8(text).map_err(|_| StageError::Invalid("/etc/selinux/config is not UTF-8".into()))?;
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if line.starts_with('#') || line.trim().is_empty() {
                out.push_str(line);
                continue;
            }
            let Some((key, _)) = line.trim().split_once('=') else {
                return Err(StageError::Invalid(format!("/etc/selinux/config: line without '=': {}", line.trim())));
            };
            match (key, policy) {
                ("SELINUX", _) => out.push_str(&format!("SELINUX={state}\n")),
                ("SELINUXTYPE", Some(p)) => out.push_str(&format!("SELINUXTYPE={p}\n")),
                _ => out.push_str(line),
            }
        }
        write_file(&path, out.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    const CONFIG: &str = "# c\nSELINUX=enforcing\n\nSELINUXTYPE=targeted\nOTHER=x\n";

    #[test]
    fn sets_state_and_type() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/selinux")).unwrap();
        let p = t.path().join("etc/selinux/config");
        std::fs::write(&p, CONFIG).unwrap();
        SelinuxConfig::execute(&args(t.path(), json!({"state": "permissive", "type": "minimum"}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# c\nSELINUX=permissive\n\nSELINUXTYPE=minimum\nOTHER=x\n");
        SelinuxConfig::execute(&args(t.path(), json!({}))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# c\nSELINUX=None\n\nSELINUXTYPE=minimum\nOTHER=x\n");
    }

    #[test]
    fn errors() {
        let t = tempfile::tempdir().unwrap();
        let e = SelinuxConfig::execute(&args(t.path(), json!({"state": "on"}))).unwrap_err();
        assert!(crate::error_chain(&e).contains("unknown variant `on`"), "{e}");
        let e = SelinuxConfig::execute(&args(t.path(), json!({"state": "enforcing"}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot read"), "{e}");
    }
}
