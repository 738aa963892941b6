//! `org.osbuild.sysctld`: write `/usr/lib/sysctl.d/<filename>`, one `key = value` (or a bare
//! `-key` exclusion, or a key whose value is empty) per line, as upstream does. Like upstream,
//! `/usr/lib/sysctl.d` must already exist (systemd ships it).

use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: Vec<Parameter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Sysctld;

impl Stage for Sysctld {
    const NAME: &'static str = "org.osbuild.sysctld";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.filename.contains('/') {
            return Err(StageError::Invalid(format!("invalid file name {}", options.filename)));
        }
        let mut text = String::new();
        for p in &options.config {
            match p.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => text.push_str(&format!("{} = {v}\n", p.key)),
                None => text.push_str(&format!("{}\n", p.key)),
            }
        }
        let dir = tree_path(args, "/usr/lib/sysctl.d", true)?;
        if !dir.is_dir() {
            return Err(StageError::Invalid("/usr/lib/sysctl.d does not exist in the tree".into()));
        }
        let path = tree_path(args, format!("/usr/lib/sysctl.d/{}", options.filename), true)?;
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
    fn writes_parameters() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "a.conf", "config": [{"key": "vm.x", "value": "1"}, {"key": "-net.y"}]});
        let e = Sysctld::execute(&args(t.path(), opts.clone())).unwrap_err();
        assert_eq!(e.to_string(), "/usr/lib/sysctl.d does not exist in the tree");
        std::fs::create_dir_all(t.path().join("usr/lib/sysctl.d")).unwrap();
        Sysctld::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("usr/lib/sysctl.d/a.conf")).unwrap();
        assert_eq!(got, "vm.x = 1\n-net.y\n");
    }
}
