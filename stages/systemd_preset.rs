//! `org.osbuild.systemd.preset`: write `/usr/lib/systemd/system-preset/50-osbuild.preset`.
//!
//! As upstream: one `<state> <name>` line per unit in option order; naming a unit twice is an
//! error (even with the same state); the directory must exist; without presets nothing is written.

use super::configparser::file_in_existing_dir;
use super::util::write_file;
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub presets: Vec<Preset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    pub state: State,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Enable,
    Disable,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct SystemdPreset;

impl Stage for SystemdPreset {
    const NAME: &'static str = "org.osbuild.systemd.preset";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.presets.is_empty() {
            return Ok(None);
        }
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        for p in &options.presets {
            if !seen.insert(p.name.as_str()) {
                return Err(StageError::Invalid(format!("'{}' has multiple defined states", p.name)));
            }
            let state = match p.state {
                State::Enable => "enable",
                State::Disable => "disable",
            };
            text.push_str(&format!("{state} {}\n", p.name));
        }
        let path = file_in_existing_dir(args, "/usr/lib/systemd/system-preset", "50-osbuild.preset")?;
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_presets_in_order() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/systemd/system-preset")).unwrap();
        let opts =
            json!({"presets": [{"name": "b.service", "state": "enable"}, {"name": "a.socket", "state": "disable"}]});
        SystemdPreset::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/systemd/system-preset/50-osbuild.preset")).unwrap();
        assert_eq!(text, "enable b.service\ndisable a.socket\n");
    }

    #[test]
    fn duplicates_and_missing_directory_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let dup = json!({"presets": [{"name": "a", "state": "enable"}, {"name": "a", "state": "enable"}]});
        assert_eq!(
            SystemdPreset::execute(&args(t.path(), dup)).unwrap_err().to_string(),
            "'a' has multiple defined states"
        );
        let one = json!({"presets": [{"name": "a", "state": "enable"}]});
        let e = SystemdPreset::execute(&args(t.path(), one)).unwrap_err().to_string();
        assert_eq!(e, "directory /usr/lib/systemd/system-preset does not exist in the tree");
        SystemdPreset::execute(&args(t.path(), json!({}))).unwrap();
    }
}
