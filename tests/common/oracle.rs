//! Upstream osbuild as the test oracle: where its runtime is, and a copy of it that runs here.
//!
//! The runtime lives beside the repository (`../shared/upstream/osbuild`, read-only; or
//! `$OSBUILD_UPSTREAM`). That copy stores upstream's runner symlinks as small text files holding
//! the target's name, so upstream itself cannot start a stage from it on this host (its Debian
//! runner is such a link). [`runnable_libdir`] makes a private copy with the links restored.
//! osbuild-rs reads the original directly: it follows such flattened links itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Upstream's runtime directory; fails loudly when it is missing (tests never skip).
pub fn upstream_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("OSBUILD_UPSTREAM").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream/osbuild")),
        Some(PathBuf::from("/work/shared/upstream/osbuild")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("osbuild/__main__.py").is_file())
        .unwrap_or_else(|| {
            panic!(
                "upstream osbuild's runtime is missing: set OSBUILD_UPSTREAM or put it at ../shared/upstream/osbuild"
            )
        })
        .canonicalize()
        .unwrap()
}

/// A copy of upstream's runtime under `dir`, runnable by upstream itself (runner links restored).
pub fn runnable_libdir(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let copy = dir.join("upstream-libdir");
    let st = Command::new("cp").arg("-a").arg(upstream_dir()).arg(&copy).status().unwrap();
    assert!(st.success(), "copying upstream's runtime failed");
    let st = Command::new("chmod").args(["-R", "u+w"]).arg(&copy).status().unwrap();
    assert!(st.success());
    let runners = copy.join("runners");
    for e in std::fs::read_dir(&runners).unwrap().flatten() {
        let md = e.metadata().unwrap();
        if std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o111 != 0 || md.len() > 255 {
            continue;
        }
        let target = std::fs::read_to_string(e.path()).unwrap().trim().to_owned();
        if runners.join(&target).is_file() {
            std::fs::remove_file(e.path()).unwrap();
            std::os::unix::fs::symlink(&target, e.path()).unwrap();
        }
    }
    copy
}

/// Run upstream osbuild (`python3 -m osbuild`) with `libdir` on `manifest`.
pub fn run_upstream(libdir: &Path, store: &Path, out: &Path, manifest: &Path, extra: &[&str]) -> Output {
    Command::new("python3")
        .args(["-m", "osbuild", "--libdir"])
        .arg(libdir)
        .arg("--store")
        .arg(store)
        .arg("--output-directory")
        .arg(out)
        .args(extra)
        .arg(manifest)
        .env("PYTHONPATH", libdir)
        .stdin(Stdio::null())
        .output()
        .expect("python3 is needed to run upstream osbuild: run `make deps`")
}
