//! `org.osbuild.discinfo`: write the installer's `/.discinfo` (as lorax does): the build
//! time, the release and the base architecture, one per line.
//!
//! Beyond upstream: with a `source-epoch` (`SOURCE_DATE_EPOCH`) the time written is the
//! epoch, not the clock's, so two builds give the same file. The time is a Python float, as
//! upstream writes `time.time()`.

use super::fs_image::source_epoch_from_env;
use super::pyfmt::py_float;
use super::util::{tree_path, write_file};
use super::{StageArgs, StageResult};
use crate::Stage;
use serde::Deserialize;

/// Upstream's schema allows other keys (and ignores them).
#[derive(Debug, Deserialize)]
pub struct Options {
    pub basearch: String,
    pub release: String,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Discinfo;

impl Stage for Discinfo {
    const NAME: &'static str = "org.osbuild.discinfo";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let time = match source_epoch_from_env()? {
            Some(epoch) => epoch as f64,
            None => {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
            }
        };
        let path = tree_path(args, ".discinfo", true)?;
        write_file(&path, render(time, &options).as_bytes(), 0o644)?;
        Ok(None)
    }
}

fn render(time: f64, o: &Options) -> String {
    format!("{}\n{}\n{}\n", py_float(time), o.release, o.basearch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_time_release_and_arch() {
        let o = Options { basearch: "x86_64".into(), release: "202010217.n.0".into() };
        assert_eq!(render(1_700_000_000.0, &o), "1700000000.0\n202010217.n.0\nx86_64\n");
        assert_eq!(render(1_733_550_000.25, &o), "1733550000.25\n202010217.n.0\nx86_64\n");

        let t = tempfile::tempdir().unwrap();
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        Discinfo::execute(&args(t.path(), json!({"basearch": "aarch64", "release": "43", "other": 1}))).unwrap();
        let text = std::fs::read_to_string(t.path().join(".discinfo")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1..], ["43", "aarch64"]);
        let written: f64 = lines[0].parse().unwrap();
        assert!(written >= before.floor() && written < before + 60.0, "{written} is not the build time");
    }
}
