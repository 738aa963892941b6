//! `org.osbuild.cron.script`: write a script to `/etc/cron.<interval>/<filename>`.
//!
//! As upstream: mode 0755; the directory must exist. The content is a first line, the
//! comment lines as `# <line>`, then the command line. Upstream's first line is
//! `!/bin/bash` (no `#`); we write the very same so that trees are identical — cron runs
//! these scripts with run-parts, which execs them, so the script falls back to `/bin/sh`
//! exactly as it does with upstream.

use super::util::{tree_path, write_file_chmod};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub interval: Interval,
    pub filename: String,
    pub simple: Simple,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Interval {
    fn as_str(self) -> &'static str {
        match self {
            Interval::Hourly => "hourly",
            Interval::Daily => "daily",
            Interval::Weekly => "weekly",
            Interval::Monthly => "monthly",
        }
    }
}

/// Upstream's schema allows more keys here; it only uses these two.
#[derive(Debug, Deserialize)]
pub struct Simple {
    pub command: String,
    #[serde(default)]
    pub comment: Vec<String>,
}

fn render(simple: &Simple) -> String {
    let mut out = String::from("!/bin/bash\n");
    for c in &simple.comment {
        out.push_str(&format!("# {c}\n"));
    }
    out.push_str(&simple.command);
    out.push('\n');
    out
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct CronScript;

impl Stage for CronScript {
    const NAME: &'static str = "org.osbuild.cron.script";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let name = &options.filename;
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(StageError::Invalid(format!("invalid file name '{name}'")));
        }
        let path = tree_path(args, format!("/etc/cron.{}/{name}", options.interval.as_str()), true)?;
        write_file_chmod(&path, render(&options.simple).as_bytes(), 0o755)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_script_with_comments() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/cron.daily");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("job"), "old").unwrap();
        let opts = json!({"interval": "daily", "filename": "job",
                          "simple": {"comment": ["a", "b c"], "command": "osbuild --help"}});
        CronScript::execute(&args(t.path(), opts)).unwrap();
        let p = dir.join("job");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "!/bin/bash\n# a\n# b c\nosbuild --help\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"interval": "yearly", "filename": "x", "simple": {"command": "true"}});
        let e = crate::error_chain(&CronScript::execute(&args(t.path(), opts)).unwrap_err());
        assert!(e.contains("unknown variant `yearly`"), "{e}");
        let opts = json!({"interval": "daily", "filename": "..", "simple": {"command": "true"}});
        assert_eq!(CronScript::execute(&args(t.path(), opts)).unwrap_err().to_string(), "invalid file name '..'");
        let opts = json!({"interval": "daily", "filename": "x", "simple": {"command": "true"}});
        assert!(CronScript::execute(&args(t.path(), opts)).unwrap_err().to_string().starts_with("cannot write"));
    }
}
