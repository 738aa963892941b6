//! `org.osbuild.modprobe`: write `/usr/lib/modprobe.d/<filename>` with `blacklist` and
//! `install` commands, one per line, as upstream does (directory created 0755, file 0644).

use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub commands: Vec<Command>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Command {
    Blacklist { modulename: String },
    Install { modulename: String, cmdline: String },
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Modprobe;

impl Stage for Modprobe {
    const NAME: &'static str = "org.osbuild.modprobe";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if options.filename.contains('/') {
            return Err(StageError::Invalid(format!("invalid file name {}", options.filename)));
        }
        let mut text = String::new();
        for c in &options.commands {
            match c {
                Command::Blacklist { modulename } => text.push_str(&format!("blacklist {modulename}\n")),
                Command::Install { modulename, cmdline } => text.push_str(&format!("install {modulename} {cmdline}\n")),
            }
        }
        let path = tree_path(args, format!("/usr/lib/modprobe.d/{}", options.filename), true)?;
        create_parents(&path)?;
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
    fn writes_commands() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "x.conf", "commands": [
            {"command": "blacklist", "modulename": "floppy"},
            {"command": "install", "modulename": "nf_conntrack", "cmdline": "/bin/true"}]});
        Modprobe::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("usr/lib/modprobe.d/x.conf")).unwrap();
        assert_eq!(got, "blacklist floppy\ninstall nf_conntrack /bin/true\n");
    }

    #[test]
    fn bad_command() {
        let t = tempfile::tempdir().unwrap();
        let e = Modprobe::execute(&args(
            t.path(),
            json!({"filename": "x.conf", "commands": [{"command": "remove", "modulename": "m"}]}),
        ));
        assert!(crate::error_chain(&e.unwrap_err()).contains("unknown variant `remove`"));
    }
}
