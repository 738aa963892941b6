//! `org.osbuild.dracut`: build the initramfs of each kernel in `kernel` with the tree's own
//! dracut (or `initoverlayfs-install`), run in a chroot of the tree.
//!
//! Like upstream we run `chroot <tree> /usr/bin/dracut --no-hostonly --kver <kver> --force -v
//! --show-modules --[no-]early-microcode --[no-]reproducible [options…] [extra…]`, with
//! `/proc`, `/dev` (devtmpfs, or the host's `/dev` bound when that is refused) and `/sys`
//! mounted in the tree for the run (missing mount points are created), and the tree's
//! `/usr/bin/logger` bind-mounted over by its `/usr/bin/true` so dracut does not flood the log.
//! dracut cannot be replaced by anything simpler, so it is called; the mounts are the stage
//! API's `Chroot` (upstream's `Chroot`), made with mount(2) instead of the `mount` tool,
//! which gives the same result. A tree without the tool is reported before anything is
//! mounted.

use super::util::{tree_path, yes, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::sys::BindFlags;
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;

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
            // The tree's logger would flood the log; its `true` takes its place for the run.
            let logger = tree_path(args, "/usr/bin/logger", true)?;
            let mut quiet = crate::sys::MountGuard::new();
            if logger.exists() {
                let truth = tree_path(args, "/usr/bin/true", true)?;
                quiet.bind(&truth, &logger, BindFlags { recursive: true, ..BindFlags::default() })?;
            }
            let chroot = Chroot::enter(&args.tree, ApiFs::Fresh)?;
            let mut cmd = chroot.command(tool);
            cmd.args(["--no-hostonly", "--kver", kver]).args(&opts);
            let ran = cmd.run(Dracut::NAME);
            chroot.close()?;
            quiet.close()?;
            match ran {
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
