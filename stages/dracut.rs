//! `org.osbuild.dracut`: build the initramfs of each kernel in `kernel` with the tree's own
//! dracut (or `initoverlayfs-install`), run in a chroot of the tree.
//!
//! Like upstream we run `chroot <tree> /usr/bin/dracut --no-hostonly --kver <kver> --force -v
//! --show-modules --[no-]early-microcode --[no-]reproducible [options…] [extra…]`, with
//! `/proc`, `/dev` (devtmpfs, or the host's `/dev` bound when that is refused) and `/sys`
//! mounted in the tree for the run (missing mount points are created), and the tree's
//! `/usr/bin/logger` bind-mounted over by its `/usr/bin/true` so dracut does not flood the log.
//! dracut cannot be replaced by anything simpler, so it is called; the mounts are made with
//! mount(2) directly instead of the `mount` tool, which gives the same result. A tree without
//! the tool is reported before anything is mounted.

use super::util::{run_tool, tree_path, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

fn yes() -> bool {
    true
}

/// Upstream does not restrict the option keys.
#[derive(Debug, Deserialize)]
pub struct Options {
    pub kernel: Vec<String>,
    #[serde(default)]
    pub compress: Option<String>,
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub add_modules: Vec<String>,
    #[serde(default)]
    pub omit_modules: Vec<String>,
    #[serde(default)]
    pub drivers: Vec<String>,
    #[serde(default)]
    pub add_drivers: Vec<String>,
    #[serde(default)]
    pub omit_drivers: Vec<String>,
    #[serde(default)]
    pub force_drivers: Vec<String>,
    #[serde(default)]
    pub filesystems: Vec<String>,
    #[serde(default)]
    pub include: Vec<Ordered<String>>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub install: Vec<String>,
    #[serde(default)]
    pub early_microcode: bool,
    #[serde(default = "yes")]
    pub reproducible: bool,
    #[serde(default)]
    pub initoverlayfs: bool,
    #[serde(default)]
    pub extra: Vec<String>,
}

fn yesno(name: &str, value: bool) -> String {
    format!("--{}{name}", if value { "" } else { "no-" })
}

/// The options after `--kver <kver>`, in upstream's order.
fn dracut_options(o: &Options) -> Vec<String> {
    let mut opts: Vec<String> = vec!["--force".into(), "-v".into(), "--show-modules".into()];
    opts.push(yesno("early-microcode", o.early_microcode));
    opts.push(yesno("reproducible", o.reproducible));
    if let Some(c) = o.compress.as_deref().filter(|c| !c.is_empty()) {
        opts.push(format!("--compress={c}"));
    }
    for (flag, list) in [
        ("--modules", &o.modules),
        ("--add", &o.add_modules),
        ("--omit", &o.omit_modules),
        ("--drivers", &o.drivers),
        ("--add-drivers", &o.add_drivers),
        ("--omit-drivers", &o.omit_drivers),
        ("--force-drivers", &o.force_drivers),
        ("--filesystems", &o.filesystems),
    ] {
        if !list.is_empty() {
            opts.push(flag.into());
            opts.push(list.join(" "));
        }
    }
    for map in &o.include {
        for (k, v) in &map.0 {
            opts.extend(["--include".into(), k.clone(), v.clone()]);
        }
    }
    for r in &o.remove {
        opts.extend(["--remove".into(), r.clone()]);
    }
    for i in &o.install {
        opts.extend(["--install".into(), i.clone()]);
    }
    opts.extend(o.extra.iter().cloned());
    opts
}

/// Mounts made for the run, undone (lazily, like upstream) in reverse order when dropped.
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), StageError> {
        mount(Some(src), target, fstype, flags, data).map_err(|e| StageError::Io {
            op: "cannot mount",
            path: target.to_owned(),
            source: e.into(),
        })?;
        self.0.push(target.to_owned());
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            if let Err(e) = umount2(p, MntFlags::MNT_DETACH) {
                eprintln!("cannot unmount {}: {e}", p.display());
            }
        }
    }
}

fn chroot_mounts(args: &StageArgs, m: &mut Mounts) -> Result<(), StageError> {
    let mut dirs = Vec::new();
    for d in ["/proc", "/dev", "/sys"] {
        let p = tree_path(args, d, true)?;
        if !p.exists() {
            println!("Making missing chroot directory: {d}");
            std::fs::create_dir_all(&p).map_err(StageError::io("cannot create directory", &p))?;
        }
        dirs.push(p);
    }
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    m.mount("proc", &dirs[0], Some("proc"), safe | MsFlags::MS_NODEV, Some(""))?;
    if m.mount("devtmpfs", &dirs[1], Some("devtmpfs"), safe | MsFlags::MS_STRICTATIME, Some("mode=0755")).is_err() {
        m.mount("/dev", &dirs[1], None, MsFlags::MS_BIND, None)?;
    }
    m.mount("sysfs", &dirs[2], Some("sysfs"), safe | MsFlags::MS_NODEV, Some(""))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Dracut;

impl Stage for Dracut {
    const NAME: &'static str = "org.osbuild.dracut";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let opts = dracut_options(&options);
        let tool = if options.initoverlayfs { "/usr/bin/initoverlayfs-install" } else { "/usr/bin/dracut" };
        if !options.kernel.is_empty() && !tree_path(args, tool, true)?.is_file() {
            return Err(StageError::ToolMissing { tool: tool.into(), stage: Dracut::NAME, place: "in the tree" });
        }
        for kver in &options.kernel {
            eprintln!("Building initramfs for {kver}");
            let mut mounts = Mounts::default();
            let logger = tree_path(args, "/usr/bin/logger", true)?;
            if logger.exists() {
                let truth = tree_path(args, "/usr/bin/true", true)?;
                let truth = truth.to_string_lossy().into_owned();
                mounts.mount(&truth, &logger, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
            }
            chroot_mounts(args, &mut mounts)?;
            let mut cmd = Command::new("chroot");
            cmd.arg(&args.tree).arg(tool).args(["--no-hostonly", "--kver", kver]).args(&opts);
            match run_tool(Dracut::NAME, &mut cmd) {
                Err(StageError::ToolFailed { status, .. }) if status.code() == Some(127) => {
                    return Err(StageError::ToolMissing {
                        tool: tool.into(),
                        stage: Dracut::NAME,
                        place: "in the tree",
                    });
                }
                other => other?,
            }
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
    fn options_in_upstream_order() {
        let o: Options = serde_json::from_value(json!({
            "kernel": ["6.5"], "compress": "zstd", "add_modules": ["a", "b"], "omit_drivers": ["x"],
            "include": [{"/s": "/d", "/s2": "/d2"}], "install": ["/i"], "remove": ["/r"],
            "early_microcode": true, "reproducible": false, "extra": ["--zz"], "unknown": 1}))
        .unwrap();
        assert_eq!(
            dracut_options(&o),
            [
                "--force",
                "-v",
                "--show-modules",
                "--early-microcode",
                "--no-reproducible",
                "--compress=zstd",
                "--add",
                "a b",
                "--omit-drivers",
                "x",
                "--include",
                "/s",
                "/d",
                "--include",
                "/s2",
                "/d2",
                "--remove",
                "/r",
                "--install",
                "/i",
                "--zz"
            ]
        );
    }

    #[test]
    fn missing_dracut_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let e = Dracut::execute(&args(t.path(), json!({"kernel": ["6.5.6-300.fc39.x86_64"]}))).unwrap_err();
        assert_eq!(e.to_string(), "/usr/bin/dracut not found in the tree, but org.osbuild.dracut needs it");
        let e = Dracut::execute(&args(t.path(), json!({"kernel": ["6.5"], "initoverlayfs": true}))).unwrap_err();
        assert!(e.to_string().starts_with("/usr/bin/initoverlayfs-install not found in the tree"), "{e}");
        assert!(!t.path().join("proc").exists());
    }
}
