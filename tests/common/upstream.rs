//! Upstream osbuild (release 191, Python) as a test oracle: where it is and how to run it.
//!
//! Located by `OSBUILD_UPSTREAM`, else `$CARGO_MANIFEST_DIR/../shared/upstream/osbuild` (CI's
//! fresh clone with the shared directory beside it), else `/work/shared/upstream/osbuild`.
//! Tests that need it fail loudly when none of these exists; they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The upstream osbuild runtime directory (its `osbuild/` package, `stages/`, `runners/`...).
pub fn dir() -> PathBuf {
    let mut tried = vec![];
    let candidates = std::env::var_os("OSBUILD_UPSTREAM").map(PathBuf::from).into_iter().chain([
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream/osbuild"),
        PathBuf::from("/work/shared/upstream/osbuild"),
    ]);
    for c in candidates {
        if c.join("osbuild/__init__.py").is_file() && c.join("stages").is_dir() {
            return c;
        }
        tried.push(c.display().to_string());
    }
    panic!("upstream osbuild not found (tried {tried:?}): set OSBUILD_UPSTREAM to its runtime directory");
}

/// The `--inspect` corpus of upstream's test manifests (`compat/`, beside `upstream/`).
pub fn compat_dir() -> PathBuf {
    let d = dir().join("../../compat");
    assert!(d.join("manifests").is_dir(), "{}: upstream's test manifests are missing", d.display());
    d
}

/// A runnable copy of upstream under `dest`. The shared copy lost its symlinks: a runner
/// such as `runners/org.osbuild.debian` is a file holding the name it linked to, which
/// bubblewrap cannot execute. The copy turns those back into links.
pub fn runnable_copy(dest: &Path) -> PathBuf {
    let lib = dest.join("upstream-osbuild");
    let st = Command::new("cp").arg("-a").arg(dir()).arg(&lib).status().unwrap();
    assert!(st.success(), "copying upstream osbuild failed");
    let runners = lib.join("runners");
    for e in std::fs::read_dir(&runners).unwrap() {
        let p = e.unwrap().path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if !md.is_file() || md.len() > 100 {
            continue;
        }
        let target = std::fs::read_to_string(&p).unwrap().trim().to_owned();
        if !target.contains('/')
            && runners.join(&target).is_file()
            && target != p.file_name().unwrap().to_str().unwrap()
        {
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(&target, &p).unwrap();
        }
    }
    lib
}

/// `python3 -m osbuild` from the runnable copy `lib`.
pub fn command(lib: &Path) -> Command {
    // Debian's python3 (with python3-jsonschema from `make deps`), not some other one in PATH
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let mut c = Command::new(python);
    c.current_dir(lib).env("PYTHONDONTWRITEBYTECODE", "1").args(["-m", "osbuild", "--libdir"]).arg(lib);
    c
}
