//! `org.osbuild.selinux`: label the tree (or a mount) for SELinux.
//!
//! As upstream: with `file_contexts`, the build root's `setfiles -F -r <root> [-e <excluded>]…
//! <file_contexts> <root><target>` sets every label from the policy's specification (we call the
//! tool, through the stage API's tool runner, because matching its regular-expression specification semantics
//! and precedence rules exactly is setfiles' job; on Debian it is in `policycoreutils`). Then
//! each of `labels` is set as the `security.selinux` extended attribute of its path (following
//! a final symlink, no translation, an unsupported file system accepted when it already has the
//! label, like upstream's `setfilecon`). `force_autorelabel` writes `-F` to `<root>/.autorelabel`.
//!
//! A plain `file_contexts` path is taken in the tree; URLs (`tree://`, `mount://`, `input://`)
//! and `labels` paths are resolved inside their root like every other location. Excluded paths
//! are given to setfiles as upstream builds them, `<root>/<target>/<path>` normalised.

use super::util::{location, location_parts, resolve_in_root, tree_path, write_file, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const XATTR: &str = "security.selinux";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub file_contexts: Option<String>,
    #[serde(default)]
    pub exclude_paths: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Ordered<String>,
    #[serde(default)]
    pub force_autorelabel: bool,
}

/// Python's `os.path.normpath` for absolute paths: lexical, `..` at the root stays there.
fn normpath(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn setfilecon(path: &Path, context: &str) -> Result<(), StageError> {
    match rustix::fs::setxattr(path, XATTR, context.as_bytes(), rustix::fs::XattrFlags::empty()) {
        Ok(()) => Ok(()),
        Err(e) => {
            if e == rustix::io::Errno::NOTSUP {
                let mut buf = vec![0u8; 4096];
                if let Ok(n) = rustix::fs::lgetxattr(path, XATTR, &mut buf[..]) {
                    let have = String::from_utf8_lossy(&buf[..n]);
                    if have.trim_matches(|c| c == '\n' || c == '\0') == context {
                        return Ok(());
                    }
                }
            }
            Err(StageError::Io { op: "cannot set the SELinux label of", path: path.to_owned(), source: e.into() })
        }
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Selinux;

impl Stage for Selinux {
    const NAME: &'static str = "org.osbuild.selinux";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let target = options.target.as_deref().unwrap_or("tree:///");
        let (root, target_path) = location_parts(target, args)?;
        let root = normpath(&root.to_string_lossy());

        if let Some(fc) = options.file_contexts.as_deref().filter(|f| !f.is_empty()) {
            let spec = if fc.contains("://") { location(fc, args, true)? } else { tree_path(args, fc, true)? };
            let mut cmd = Command::new("setfiles");
            cmd.arg("-F").arg("-r").arg(&root);
            for p in options.exclude_paths.iter().flatten() {
                cmd.arg("-e").arg(normpath(&format!("{}/{target_path}/{p}", root.display())));
            }
            cmd.arg(&spec).arg(format!("{}{target_path}", root.display()));
            cmd.run(Selinux::NAME)?;
        }

        for (path, label) in &options.labels.0 {
            setfilecon(&location(path, args, true)?, label)?;
        }

        if options.force_autorelabel {
            let stamp = resolve_in_root(&root, "/.autorelabel", true)?;
            write_file(&stamp, b"-F", 0o644)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn normpath_is_lexical() {
        assert_eq!(normpath("/a//b/./c/../d/"), Path::new("/a/b/d"));
        assert_eq!(normpath("/../x"), Path::new("/x"));
    }

    #[test]
    fn autorelabel_and_missing_setfiles() {
        let t = tempfile::tempdir().unwrap();
        Selinux::execute(&args(t.path(), json!({"labels": {}, "force_autorelabel": true}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join(".autorelabel")).unwrap(), "-F");
        let e = Selinux::execute(&args(
            t.path(),
            json!({"file_contexts": "etc/selinux/targeted/contexts/files/file_contexts"}),
        ));
        // with or without setfiles on this machine, the error names the problem
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("setfiles"), "{msg}");
    }
}
