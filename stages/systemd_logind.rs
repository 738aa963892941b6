//! `org.osbuild.systemd-logind`: write a drop-in `/usr/lib/systemd/logind.conf.d/<filename>`.
//!
//! As upstream: the directory is created (0755) if missing, the file is (re)written with mode
//! 0644 in `configparser`'s format, sections and keys in the order of the options.

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
    #[serde(rename = "Login")]
    pub login: Option<Login>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Login {
    #[serde(rename = "NAutoVTs")]
    pub n_auto_vts: Option<u64>,
    #[serde(rename = "ReserveVT")]
    pub reserve_vt: Option<u64>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdLogind;

impl Stage for SystemdLogind {
    const NAME: &'static str = "org.osbuild.systemd-logind";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        check_file_name("drop-in file name", &options.filename)?;
        let ini = dropin_from_config(&options.config.value())?;
        let path = format!("/usr/lib/systemd/logind.conf.d/{}", options.filename);
        write_dropin(args, &path, &ini, Existing::Replace)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_dropin_in_option_order() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "10-x.conf", "config": {"Login": {"ReserveVT": 2, "NAutoVTs": 0}}});
        SystemdLogind::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/logind.conf.d/10-x.conf")).unwrap();
        assert_eq!(text, "[Login]\nReserveVT=2\nNAutoVTs=0\n\n");
    }

    #[test]
    fn rejects_unknown_keys() {
        let t = tempfile::tempdir().unwrap();
        let e = SystemdLogind::execute(&args(
            t.path(),
            json!({"filename": "a.conf", "config": {"Login": {"KillUserProcesses": "no"}}}),
        ));
        assert!(crate::error_chain(&e.unwrap_err()).contains("unknown field `KillUserProcesses`"));
    }
}
