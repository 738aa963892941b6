//! A stage written outside the stages crate, against `osbuild-stage-api` only, run the way the
//! sandbox runs a stage: from an arguments file, its metadata written beside it. The README's
//! "Writing a stage" section shows the stage below; a test checks that the two agree.

// readme:example:start
use osbuild_stage_api::tool::CommandRunExt;
use osbuild_stage_api::util::{create_parents, tree_path, write_file};
use osbuild_stage_api::{Stage, StageArgs, StageError, StageResult};
use serde::Deserialize;
use serde_json::json;
use std::process::Command;

/// `org.example.motd`: write the message of the day into the tree.
pub struct Motd;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotdOptions {
    /// The message; a newline is added.
    text: String,
    /// Also show the file in the build log (with the build root's `cat`).
    #[serde(default)]
    show: bool,
}

impl Stage for Motd {
    const NAME: &'static str = "org.example.motd";
    type Options = MotdOptions;

    fn run(args: &StageArgs, options: MotdOptions) -> StageResult {
        if options.text.is_empty() {
            return Err(StageError::Invalid("text must not be empty".into()));
        }
        // resolved inside the tree, whatever symlinks the tree holds
        let path = tree_path(args, "/etc/motd", true)?;
        create_parents(&path)?;
        write_file(&path, format!("{}\n", options.text).as_bytes(), 0o644)?;
        if options.show {
            // a failing tool is a typed error with its argv, exit status and stderr
            Command::new("cat").arg(&path).run(Self::NAME)?;
        }
        Ok(Some(json!({ "bytes": options.text.len() + 1 })))
    }
}

// As an executable of its own (an external stage in `--libdir`), that is all it needs:
// fn main() {
//     std::process::exit(osbuild_stage_api::stage_main::<Motd>())
// }
// readme:example:end

use osbuild_stage_api::{entry, run_main};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Upstream's arguments document for a run on `tree` with `options`, written to `dir`.
fn arguments(dir: &Path, tree: &Path, options: Value) -> PathBuf {
    let path = dir.join("arguments.json");
    let doc = json!({"tree": tree, "options": options, "inputs": {}, "devices": {}, "mounts": {},
                     "meta": {"id": "0".repeat(64)}, "paths": {"mounts": dir.join("mounts")}});
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

#[test]
fn example_stage_runs_from_an_arguments_file() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let meta = t.path().join("meta.json");
    let args = arguments(t.path(), &tree, json!({"text": "hello", "show": true}));
    assert_eq!(run_main(&entry::<Motd>(), &args, &meta), 0);
    assert_eq!(std::fs::read_to_string(tree.join("etc/motd")).unwrap(), "hello\n");
    let written: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(written, json!({"bytes": 6}));
}

#[test]
fn example_stage_stays_in_its_tree_and_refuses_bad_options() {
    let t = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    // the tree's /etc points at a host directory: the write lands in the tree all the same
    std::os::unix::fs::symlink(host.path(), tree.join("etc")).unwrap();
    let meta = t.path().join("meta.json");
    let args = arguments(t.path(), &tree, json!({"text": "inside"}));
    assert_eq!(run_main(&entry::<Motd>(), &args, &meta), 0);
    assert!(!host.path().join("motd").exists(), "nothing written on the host");
    let inside = tree.join(host.path().strip_prefix("/").unwrap()).join("motd");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "inside\n");

    for bad in [json!({"text": ""}), json!({"text": "x", "colour": "red"}), json!({})] {
        std::fs::remove_file(&meta).ok();
        let args = arguments(t.path(), &tree, bad.clone());
        assert_eq!(run_main(&entry::<Motd>(), &args, &meta), 1, "{bad}");
        assert!(!meta.exists(), "no metadata for a failed run ({bad})");
    }
    let info = entry::<Motd>();
    let e = info.check_options(&json!({"text": "x", "colour": "red"})).unwrap_err();
    assert!(osbuild_stage_api::error_chain(&e).contains("unknown field `colour`"), "{e}");
}

#[test]
fn readme_shows_the_example_stage() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stage_example.rs")).unwrap();
    let between = |text: &str, start: &str, end: &str| -> String {
        let a = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
        let b = text[a..].find(end).unwrap_or_else(|| panic!("no {end:?}")) + a;
        text[a..b].trim().to_owned()
    };
    let example = between(&source, "// readme:example:start\n", "// readme:example:end");
    let shown = between(&readme, "## Writing a stage", "\n## ");
    let shown = between(&shown, "```rust\n", "```");
    assert_eq!(shown, example, "README's example stage differs from tests/stage_example.rs");
}
