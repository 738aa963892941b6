//! `org.osbuild.copy`: copy files and directories from inputs, mounts or the tree into the
//! tree or a mount, with `cp -a --reflink=auto` like upstream.
//!
//! Both ends are confined to their root (see `util`). When the destination is an existing
//! directory, the final destination `<dir>/<source name>` is resolved (confined) here and
//! handed to `cp -T`, so a hostile symlink at that name cannot redirect the copy either.

use super::util::{location, location_parts, resolve_in_root};
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub paths: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `input://NAME/p`, `mount://NAME/p` or `tree:///p`.
    pub from: String,
    /// `mount://NAME/p` or `tree:///p`.
    pub to: String,
    #[serde(default)]
    pub remove_destination: bool,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Copy;

impl Stage for Copy {
    const NAME: &'static str = "org.osbuild.copy";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for item in &options.paths {
            // cp -a never dereferences the source itself; the destination is followed unless
            // it is going to be removed first
            let src = location(&item.from, args, false)?;
            let follow_dst = !item.remove_destination;
            let mut dst = location(&item.to, args, follow_dst)?;
            let mut no_target_dir = false;
            // `dir/.` (from a trailing `/`) copies the contents: cp handles that itself
            let contents = src.as_os_str().as_bytes().ends_with(b"/.");
            let src_name = src.file_name().map(|n| n.to_owned());
            if let Some(name) = src_name.filter(|_| dst.is_dir() && !contents) {
                let (root, path) = location_parts(&item.to, args)?;
                let joined = PathBuf::from(path).join(name);
                dst = resolve_in_root(&root, joined, follow_dst)?;
                no_target_dir = true;
            }
            println!("copying '{}' -> '{}'", src.display(), dst.display());
            let mut cmd = Command::new("cp");
            cmd.args(["-a", "--reflink=auto"]);
            if item.remove_destination {
                cmd.arg("--remove-destination");
            }
            if no_target_dir {
                cmd.arg("-T");
            }
            cmd.arg("--").arg(&src).arg(&dst);
            cmd.run(Copy::NAME)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    #[test]
    fn copies_files_and_directory_contents() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        let input = t.path().join("input");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::create_dir_all(input.join("EFI/BOOT")).unwrap();
        fs::write(input.join("EFI/BOOT/x.efi"), "efi").unwrap();
        fs::write(input.join("sha256:abc"), "content").unwrap();
        fs::write(tree.join("etc/os-release"), "old").unwrap();
        let mut a = args(
            &tree,
            json!({"paths": [
                {"from": "input://in/sha256:abc", "to": "tree:///testfile"},
                {"from": "input://in/sha256:abc", "to": "tree:///etc/os-release", "remove_destination": true},
                {"from": "input://in/EFI", "to": "tree:///"},
                {"from": "input://in/EFI/", "to": "tree:///efi-copy"},
                {"from": "input://in/EFI/", "to": "tree:///efi-copy"},
                {"from": "input://in/EFI/", "to": "tree:///"},
            ]}),
        );
        a.inputs.insert("in".into(), json!({"path": input}));
        Copy::execute(&a).unwrap();
        assert_eq!(fs::read_to_string(tree.join("testfile")).unwrap(), "content");
        assert_eq!(fs::read_to_string(tree.join("etc/os-release")).unwrap(), "content");
        assert_eq!(fs::read_to_string(tree.join("EFI/BOOT/x.efi")).unwrap(), "efi");
        assert_eq!(fs::read_to_string(tree.join("efi-copy/BOOT/x.efi")).unwrap(), "efi");
        // copying the contents again into the now existing directory merges, no nested EFI/
        assert!(!tree.join("efi-copy/EFI").exists());
        assert_eq!(fs::read_to_string(tree.join("BOOT/x.efi")).unwrap(), "efi");
    }

    #[test]
    fn copy_onto_hostile_symlink_stays_in_tree() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("passwd");
        fs::write(&victim, "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(t.path().join("passwd"), "evil").unwrap();
        std::os::unix::fs::symlink(&victim, tree.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(host.path(), tree.join("hostdir")).unwrap();
        // the re-rooted link targets exist inside the tree
        fs::create_dir_all(tree.join(host.path().strip_prefix("/").unwrap())).unwrap();
        let mut a = args(
            &tree,
            json!({"paths": [
                {"from": "input://in/passwd", "to": "tree:///etc/passwd"},
                {"from": "input://in/passwd", "to": "tree:///hostdir"},
            ]}),
        );
        a.inputs.insert("in".into(), json!({"path": t.path()}));
        Copy::execute(&a).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host");
        let rerooted = tree.join(victim.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(rerooted).unwrap(), "evil");
    }

    #[test]
    fn missing_source_fails_with_cp_message() {
        let t = tempfile::tempdir().unwrap();
        let a = args(t.path(), json!({"paths": [{"from": "tree:///nope", "to": "tree:///x"}]}));
        let e = Copy::execute(&a).unwrap_err().to_string();
        assert!(e.contains("failed") && e.contains("cp -a --reflink=auto"), "{e}");
    }
}
