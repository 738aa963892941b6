//! `org.osbuild.btrfs.subvol`: create btrfs subvolumes, named relative to the mounts
//! directory (upstream's `paths.mounts`, where the engine mounts the btrfs file system), with
//! `btrfs subvolume create <mounts>/<name>`.
//!
//! Deviation: upstream passes `-p` to create missing parent directories, which btrfs-progs
//! before 6.8 lacks; here the missing parents are created as plain directories (mode 0755)
//! first, which gives the same result with any btrfs-progs. Names are resolved inside the
//! mounts directory like every manifest path.

use super::util::{create_parents, resolve_in_root};
use super::{StageArgs, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub subvolumes: Vec<Subvolume>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subvolume {
    /// Path of the subvolume below the mounted file system's root, e.g. `/home`.
    pub name: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct BtrfsSubvol;

impl Stage for BtrfsSubvol {
    const NAME: &'static str = "org.osbuild.btrfs.subvol";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let volume = args.mount_path("")?;
        for vol in &options.subvolumes {
            let path = resolve_in_root(&volume, vol.name.trim_start_matches('/'), false)?;
            create_parents(&path)?;
            Command::new("btrfs").args(["subvolume", "create"]).arg(&path).run(BtrfsSubvol::NAME)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_util::testing::{image, need, output};
    use crate::testutil::args;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    /// A btrfs image loop-mounted for the test's lifetime.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }

    fn mount_btrfs(dir: &Path) -> Mounted {
        need("mkfs.btrfs", "btrfs-progs");
        let img = image(dir, "fs.img", 256 << 20);
        output("mkfs.btrfs", &["-q", img.to_str().unwrap()], "btrfs-progs");
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt).status().unwrap();
        assert!(st.success(), "this test loop-mounts a btrfs image: it needs root and a loop device");
        Mounted(mnt)
    }

    #[test]
    fn creates_subvolumes_with_parents() {
        let t = tempfile::tempdir().unwrap();
        let m = mount_btrfs(t.path());
        let mut a = args(
            &t.path().join("tree"),
            json!({"subvolumes": [
                {"name": "/root"}, {"name": "home"}, {"name": "/var/lib/machines"}, {"name": "/root/nested"},
            ]}),
        );
        a.paths.insert("mounts".into(), json!(m.0));
        BtrfsSubvol::execute(&a).unwrap();
        let list = output("btrfs", &["subvolume", "list", m.0.to_str().unwrap()], "btrfs-progs");
        let mut paths: Vec<&str> = list.lines().filter_map(|l| l.split(" path ").nth(1)).collect();
        paths.sort();
        assert_eq!(paths, ["home", "root", "root/nested", "var/lib/machines"], "{list}");
        // the parents are plain directories, not subvolumes
        assert!(m.0.join("var/lib").is_dir());
        let e = BtrfsSubvol::execute(&a).unwrap_err().to_string();
        assert!(e.starts_with("`btrfs subvolume create "), "{e}");
    }

    #[test]
    fn names_stay_inside_the_mount() {
        let t = tempfile::tempdir().unwrap();
        let m = mount_btrfs(t.path());
        std::os::unix::fs::symlink("/", m.0.join("up")).unwrap();
        let mut a = args(&t.path().join("tree"), json!({"subvolumes": [{"name": "../../up/sub"}]}));
        a.paths.insert("mounts".into(), json!(m.0));
        BtrfsSubvol::execute(&a).unwrap();
        let list = output("btrfs", &["subvolume", "list", m.0.to_str().unwrap()], "btrfs-progs");
        assert!(list.trim_end().ends_with(" path sub"), "{list}");
        assert!(args(t.path(), json!({})).mount_path("").is_err());
    }
}
