//! `org.osbuild.pam.limits.conf`: write a pam_limits drop-in,
//! `/etc/security/limits.d/<filename>`.
//!
//! As upstream: one `<domain> <type> <item> <value>` line per directive, mode 0644. The
//! directory must already exist (upstream does not create it, and neither do we).

use super::util::{tree_path, write_file};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: Vec<Directive>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directive {
    pub domain: String,
    #[serde(rename = "type")]
    pub kind: LimitType,
    pub item: Item,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub enum LimitType {
    #[serde(rename = "hard")]
    Hard,
    #[serde(rename = "soft")]
    Soft,
    #[serde(rename = "-")]
    Both,
}

impl LimitType {
    fn as_str(self) -> &'static str {
        match self {
            LimitType::Hard => "hard",
            LimitType::Soft => "soft",
            LimitType::Both => "-",
        }
    }
}

macro_rules! items {
    ($($v:ident = $s:literal),* $(,)?) => {
        /// The resources pam_limits knows.
        #[derive(Debug, Clone, Copy, Deserialize)]
        pub enum Item { $(#[serde(rename = $s)] $v),* }
        impl Item {
            fn as_str(self) -> &'static str {
                match self { $(Item::$v => $s),* }
            }
        }
    };
}

items!(
    Core = "core",
    Data = "data",
    Fsize = "fsize",
    Memlock = "memlock",
    Nofile = "nofile",
    Rss = "rss",
    Stack = "stack",
    Cpu = "cpu",
    Nproc = "nproc",
    As = "as",
    Maxlogins = "maxlogins",
    Maxsyslogins = "maxsyslogins",
    Nonewprivs = "nonewprivs",
    Priority = "priority",
    Locks = "locks",
    Sigpending = "sigpending",
    Msgqueue = "msgqueue",
    Nice = "nice",
    Rtprio = "rtprio",
);

/// An integer or `unlimited` / `infinity`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(i64),
    Word(Unlimited),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlimited {
    Unlimited,
    Infinity,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Word(Unlimited::Unlimited) => f.write_str("unlimited"),
            Value::Word(Unlimited::Infinity) => f.write_str("infinity"),
        }
    }
}

fn render(config: &[Directive]) -> String {
    config.iter().map(|d| format!("{} {} {} {}\n", d.domain, d.kind.as_str(), d.item.as_str(), d.value)).collect()
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct PamLimitsConf;

impl Stage for PamLimitsConf {
    const NAME: &'static str = "org.osbuild.pam.limits.conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.filename.contains('/') || !options.filename.ends_with(".conf") {
            return Err(StageError::Invalid(format!(
                "invalid file name {}: must be a '*.conf' name",
                options.filename
            )));
        }
        let path = tree_path(args, format!("/etc/security/limits.d/{}", options.filename), true)?;
        write_file(&path, render(&options.config).as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_one_line_per_directive() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/security/limits.d")).unwrap();
        let opts = json!({"filename": "99-x.conf", "config": [
            {"domain": "@sapsys", "type": "hard", "item": "nofile", "value": 65536},
            {"domain": "*", "type": "-", "item": "nproc", "value": "unlimited"},
        ]});
        PamLimitsConf::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/security/limits.d/99-x.conf")).unwrap(),
            "@sapsys hard nofile 65536\n* - nproc unlimited\n"
        );
    }

    #[test]
    fn bad_options_and_missing_directory() {
        let t = tempfile::tempdir().unwrap();
        let bad = json!({"filename": "x.conf", "config": [{"domain": "a", "type": "hard", "item": "nofile", "value": "lots"}]});
        let e = crate::error_chain(&PamLimitsConf::execute(&args(t.path(), bad)).unwrap_err());
        assert!(e.starts_with("invalid options: data did not match any variant"), "{e}");
        let bad =
            json!({"filename": "x.conf", "config": [{"domain": "a", "type": "hard", "item": "files", "value": 1}]});
        let e = crate::error_chain(&PamLimitsConf::execute(&args(t.path(), bad)).unwrap_err());
        assert!(e.contains("unknown variant `files`"), "{e}");
        let ok =
            json!({"filename": "x.conf", "config": [{"domain": "a", "type": "hard", "item": "nofile", "value": 1}]});
        let e = crate::error_chain(&PamLimitsConf::execute(&args(t.path(), ok)).unwrap_err());
        assert!(e.starts_with("cannot write"), "{e}");
        let sneaky =
            json!({"filename": "../x.conf", "config": [{"domain": "a", "type": "hard", "item": "nofile", "value": 1}]});
        assert!(PamLimitsConf::execute(&args(t.path(), sneaky))
            .unwrap_err()
            .to_string()
            .starts_with("invalid file name"));
    }
}
