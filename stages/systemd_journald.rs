//! `org.osbuild.systemd-journald`: write a drop-in `/usr/lib/systemd/journald.conf.d/<filename>`.
//!
//! As upstream: the directory is created (0755) if missing and the file must not exist yet
//! (upstream opens it with mode `x`); it is written with mode 0644 in `configparser`'s format,
//! sections and keys in the order of the options.

use super::configparser::{check_file_name, dropin_from_config, write_dropin, Existing};
use super::util::InOrder;
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: InOrder<Config>,
}

/// The drop-in's sections and keys; written in the manifest's order (see [`InOrder`]).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "Journal")]
    pub journal: Option<Journal>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Journal {
    pub storage: Option<String>,
    pub compress: Option<String>,
    pub split_mode: Option<String>,
    pub max_file_sec: Option<String>,
    pub max_retention_sec: Option<String>,
    pub sync_interval_sec: Option<String>,
    pub audit: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdJournald;

impl Stage for SystemdJournald {
    const NAME: &'static str = "org.osbuild.systemd-journald";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        check_file_name("drop-in file name", &options.filename)?;
        let ini = dropin_from_config(&options.config.value())?;
        let path = format!("/usr/lib/systemd/journald.conf.d/{}", options.filename);
        write_dropin(args, &path, &ini, Existing::Refuse)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_dropin_once() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "j.conf", "config": {"Journal": {"Storage": "persistent", "Compress": "yes"}}});
        SystemdJournald::execute(&args(t.path(), opts.clone())).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/journald.conf.d/j.conf")).unwrap();
        assert_eq!(text, "[Journal]\nStorage=persistent\nCompress=yes\n\n");
        let e = crate::error_chain(&SystemdJournald::execute(&args(t.path(), opts)).unwrap_err());
        assert!(e.starts_with("cannot create") && e.ends_with("File exists (os error 17)"), "{e}");
    }
}
