//! `org.osbuild.tmpfilesd`: write a tmpfiles.d(5) file `/usr/lib/tmpfiles.d/<filename>`.
//!
//! As upstream: one line per entry, `<type> <path>` followed by mode, user, group, age and
//! argument up to the last one given (empty counts as not given), with `-` for those left out
//! before it; the directory must exist; the file is (re)written with mode 0644.

use super::configparser::file_in_existing_dir;
use super::util::write_file;
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub config: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub mode: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub age: Option<String>,
    pub argument: Option<String>,
}

impl Entry {
    fn line(&self) -> String {
        let optional = [&self.mode, &self.user, &self.group, &self.age, &self.argument];
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        let mut line = format!("{} {}", self.kind, self.path);
        if let Some(last) = optional.iter().rposition(|v| given(v).is_some()) {
            for v in &optional[..=last] {
                line.push(' ');
                line.push_str(given(v).unwrap_or("-"));
            }
        }
        line.push('\n');
        line
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Tmpfilesd;

impl Stage for Tmpfilesd {
    const NAME: &'static str = "org.osbuild.tmpfilesd";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let text: String = options.config.iter().map(Entry::line).collect();
        let path = file_in_existing_dir(args, "/usr/lib/tmpfiles.d", &options.filename)?;
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
    fn lines_fill_gaps_with_dashes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/tmpfiles.d")).unwrap();
        let opts = json!({"filename": "x.conf", "config": [
            {"type": "d", "path": "/etc/a"},
            {"type": "d", "path": "/etc/b", "mode": "0755", "user": "", "age": "1d"},
            {"type": "L+", "path": "/etc/c", "argument": "/x"},
        ]});
        Tmpfilesd::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(t.path().join("usr/lib/tmpfiles.d/x.conf")).unwrap();
        assert_eq!(text, "d /etc/a\nd /etc/b 0755 - - 1d\nL+ /etc/c - - - - /x\n");
    }

    #[test]
    fn missing_directory_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let e =
            Tmpfilesd::execute(&args(t.path(), json!({"filename": "x.conf", "config": [{"type": "d", "path": "/a"}]})));
        assert_eq!(e.unwrap_err().to_string(), "directory /usr/lib/tmpfiles.d does not exist in the tree");
    }
}
