//! A stage's devices and mounts: attached on the host before the stage runs, handed to it as
//! upstream's `devices` / `mounts` arguments, and released afterwards on every path (dropping
//! [`Attached`] unmounts in reverse order, then detaches the loop devices).
//!
//! Everything happens inside osbuild-rs's private mount namespace, and loop devices are
//! autoclear, so even a SIGKILL leaves no mount and no attached loop device behind.

use crate::manifest::{Device, Mount, Stage};
use crate::sandbox::{self, LoopDevice, LoopOptions};
use crate::stages::error_chain;
use serde_json::{json, Map, Value};
use std::path::{Component, Path, PathBuf};

/// Device types the engine can attach.
pub fn device_supported(kind: &str) -> bool {
    kind == "org.osbuild.loopback"
}

/// Mount types the engine can mount.
pub fn mount_supported(kind: &str) -> bool {
    matches!(
        kind,
        "org.osbuild.ext4"
            | "org.osbuild.xfs"
            | "org.osbuild.btrfs"
            | "org.osbuild.fat"
            | "org.osbuild.bind"
            | "org.osbuild.ostree.deployment"
    )
}

/// Where devices and mounts appear inside the sandbox (upstream's `paths`).
pub const DEVICES_MAPPED: &str = "/dev";
pub const MOUNTS_MAPPED: &str = "/run/osbuild/mounts";

struct AttachedDevice {
    name: String,
    lo: LoopDevice,
    /// The image file and the byte range the device covers, to reach partitions by offset.
    file: PathBuf,
    options: LoopOptions,
}

/// The devices and mounts of one stage, live until dropped.
#[derive(Default)]
pub struct Attached {
    devices: Vec<AttachedDevice>,
    /// Loop devices made for `partition` mounts (no partition nodes on loop devices here).
    partition_loops: Vec<LoopDevice>,
    /// Mount points, in the order they were mounted; `true`: detach with everything below it.
    mounted: Vec<(PathBuf, bool)>,
    pub device_args: Map<String, Value>,
    pub mount_args: Map<String, Value>,
}

impl Attached {
    /// Attach every device, then mount every mount, of `stage` whose tree is `tree`; mount points
    /// go under `mounts_root` (bound into the sandbox at [`MOUNTS_MAPPED`]).
    pub fn open(stage: &Stage, tree: &Path, mounts_root: &Path) -> Result<Attached, String> {
        let mut att = Attached::default();
        for (name, dev) in &stage.devices {
            let path = stage.path.key("devices").key(name);
            att.attach(name, dev, tree).map_err(|e| format!("{path}: {e}"))?;
        }
        for m in &stage.mounts {
            let path = stage.path.key("mounts").key(&m.name);
            att.mount(m, tree, mounts_root).map_err(|e| format!("{path}: {e}"))?;
        }
        Ok(att)
    }

    /// Host device nodes the sandbox must expose.
    pub fn nodes(&self) -> Vec<PathBuf> {
        self.devices.iter().map(|d| d.lo.host_path()).collect()
    }

    fn attach(&mut self, name: &str, dev: &Device, tree: &Path) -> Result<(), String> {
        if dev.parent.is_some() {
            return Err("loopback devices take no parent".into());
        }
        let o = &dev.options;
        let filename = o.get("filename").and_then(Value::as_str).ok_or("options.filename is required")?;
        let sector = o.get("sector-size").and_then(Value::as_u64).unwrap_or(512);
        let start = o.get("start").and_then(Value::as_u64).unwrap_or(0) * sector;
        let file = confined(tree, filename).map_err(|e| format!("options.filename: {e}"))?;
        let len = std::fs::metadata(&file).map_err(|e| format!("cannot use image {}: {e}", file.display()))?.len();
        let sizelimit = match o.get("size").and_then(Value::as_u64) {
            Some(size) => size * sector,
            None => len.saturating_sub(start),
        };
        let options = LoopOptions {
            offset: start,
            sizelimit,
            block_size: sector as u32,
            read_only: o.get("read-only").and_then(Value::as_bool).unwrap_or(false),
            partscan: o.get("partscan").and_then(Value::as_bool).unwrap_or(false),
            lock: o.get("lock").and_then(Value::as_bool).unwrap_or(false),
        };
        let lo = LoopDevice::attach(&file, &options, Path::new("/dev"), false).map_err(|e| error_chain(&e))?;
        self.device_args.insert(
            name.to_owned(),
            json!({
                "path": format!("{DEVICES_MAPPED}/{}", lo.name()),
                "node": { "major": lo.major(), "minor": lo.minor() },
            }),
        );
        self.devices.push(AttachedDevice { name: name.to_owned(), lo, file, options });
        Ok(())
    }

    fn mount(&mut self, m: &Mount, tree: &Path, mounts_root: &Path) -> Result<(), String> {
        if m.kind == "org.osbuild.bind" {
            return self.bind(m, tree, mounts_root);
        }
        if m.kind == "org.osbuild.ostree.deployment" {
            return self.ostree_deployment(m, tree, mounts_root);
        }
        let target = m.target.as_ref().and_then(Value::as_str).ok_or("a target is required")?;
        let dev_name = m.source.as_deref().ok_or("a source device is required")?;
        let source = match &m.partition {
            None | Some(Value::Null) => self.device(dev_name)?.lo.host_path(),
            Some(p) => {
                let n = p.as_u64().filter(|n| *n > 0).ok_or("partition must be a positive number")?;
                self.partition(dev_name, n)?
            }
        };
        let mountpoint = confined(mounts_root, target).map_err(|e| format!("target: {e}"))?;
        std::fs::create_dir_all(&mountpoint).map_err(|e| format!("cannot create {}: {e}", mountpoint.display()))?;

        let o = &m.options;
        let fstype = match m.kind.as_str() {
            "org.osbuild.ext4" => "ext4",
            "org.osbuild.xfs" => "xfs",
            "org.osbuild.btrfs" => "btrfs",
            "org.osbuild.fat" => "vfat",
            other => return Err(format!("mount type {other} is not supported")),
        };
        let mut data = Vec::new();
        if fstype == "xfs" {
            // XFS refuses a second mounted file system with the same UUID, kernel-wide: two
            // builds of one manifest (same UUIDs) at the same time must both work.
            data.push("nouuid".to_owned());
        }
        if o.get("norecovery").and_then(Value::as_bool).unwrap_or(false) {
            data.push("norecovery".to_owned());
        }
        for key in ["uid", "gid", "umask", "shortname", "subvol", "compress"] {
            match o.get(key) {
                Some(Value::String(s)) => data.push(format!("{key}={s}")),
                Some(Value::Number(n)) => data.push(format!("{key}={n}")),
                _ => {}
            }
        }
        let read_only = o.get("readonly").and_then(Value::as_bool).unwrap_or(false);
        match sandbox::mount_fs(&source, &mountpoint, fstype, read_only, &data.join(",")) {
            Ok(()) => {}
            Err(sandbox::SysError::MountFs { source: nix::errno::Errno::ENODEV, .. }) => {
                return Err(format!(
                    "the kernel of this machine cannot mount {fstype} file systems (no {fstype} in /proc/filesystems); \
                     {} needs a kernel that can",
                    m.kind
                ))
            }
            Err(e) => return Err(error_chain(&e)),
        }
        self.mounted.push((mountpoint.clone(), false));
        let rel = mountpoint.strip_prefix(mounts_root).expect("confined").to_string_lossy().into_owned();
        let rel = if rel.is_empty() { ".".to_owned() } else { rel };
        self.mount_args.insert(m.name.clone(), json!({ "path": format!("{MOUNTS_MAPPED}/{rel}") }));
        Ok(())
    }

    /// `org.osbuild.bind`: `options.source` and `target` are `tree://` or `mount://` locations.
    fn bind(&mut self, m: &Mount, tree: &Path, mounts_root: &Path) -> Result<(), String> {
        let location = |what: &str, s: &str| -> Result<PathBuf, String> {
            let (root, rest) = if let Some(rest) = s.strip_prefix("tree://") {
                (tree, rest)
            } else if let Some(rest) = s.strip_prefix("mount://") {
                (mounts_root, rest)
            } else {
                return Err(format!("{what}: '{s}' is neither a tree:// nor a mount:// location"));
            };
            confined(root, rest).map_err(|e| format!("{what}: {e}"))
        };
        let src = m.options.get("source").and_then(Value::as_str).ok_or("options.source is required")?;
        let src = location("options.source", src)?;
        let target = m.target.as_ref().and_then(Value::as_str).ok_or("a target is required")?;
        let dest = location("target", target)?;
        std::fs::create_dir_all(&dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
        sandbox::rbind_mount(&src, &dest).map_err(|e| error_chain(&e))?;
        self.mounted.push((dest, true));
        self.mount_args.insert(m.name.clone(), json!({}));
        Ok(())
    }

    /// `org.osbuild.ostree.deployment`: make the tree (or the disk mounted at `/`) look like the
    /// booted deployment, as ostree does at boot: the deployment's root at the target, with the
    /// physical root at `/sysroot`, the stateroot's `var` at `/var` and `/boot` bound in.
    fn ostree_deployment(&mut self, m: &Mount, tree: &Path, mounts_root: &Path) -> Result<(), String> {
        let o = &m.options;
        let target = match o.get("source").and_then(Value::as_str).unwrap_or("tree") {
            "tree" => tree.to_path_buf(),
            "mount" => mounts_root.to_path_buf(),
            other => return Err(format!("options.source must be 'tree' or 'mount', not '{other}'")),
        };
        let d = o.get("deployment").ok_or("options.deployment is required")?;
        let (osname, commit, serial) = if d.get("default").and_then(Value::as_bool).unwrap_or(false) {
            default_deployment(&target)?
        } else {
            let osname = d.get("osname").and_then(Value::as_str).ok_or("options.deployment.osname is required")?;
            let reference = d.get("ref").and_then(Value::as_str).ok_or("options.deployment.ref is required")?;
            let serial = d.get("serial").and_then(Value::as_u64).unwrap_or(0);
            (osname.to_owned(), resolve_ref(&target.join("ostree/repo"), reference)?, serial)
        };
        let stateroot = confined(&target, &format!("ostree/deploy/{osname}"))?;
        let root = confined(&stateroot, &format!("deploy/{commit}.{serial}"))?;
        if !root.is_dir() {
            return Err(format!("deployment {} does not exist", root.display()));
        }
        let bind = |src: &Path, dest: &Path| sandbox::bind_mount_flat(src, dest).map_err(|e| error_chain(&e));
        // The physical root bound onto itself first, so the deployment can be moved over it and
        // both come off again in reverse order.
        bind(&target, &target)?;
        self.mounted.push((target.clone(), true));
        bind(&root, &root)?;
        let rest = (|| {
            bind(&target, &root.join("sysroot"))?;
            bind(&stateroot.join("var"), &root.join("var"))?;
            bind(&target.join("boot"), &root.join("boot"))?;
            sandbox::move_mount(&root, &target).map_err(|e| error_chain(&e))
        })();
        if let Err(e) = rest {
            let _ = sandbox::unmount(&root, true);
            return Err(e);
        }
        self.mounted.push((target, true));
        self.mount_args.insert(m.name.clone(), json!({}));
        Ok(())
    }

    fn device(&self, name: &str) -> Result<&AttachedDevice, String> {
        self.devices.iter().find(|d| d.name == name).ok_or_else(|| format!("unknown device '{name}'"))
    }

    /// The kernel here makes no `loopNpM` nodes, so partition `n` of a device gets its own loop
    /// device over the same byte range (what upstream's manifests do with `start`/`size`).
    fn partition(&mut self, dev_name: &str, n: u64) -> Result<PathBuf, String> {
        let dev = self.device(dev_name)?;
        let node = PathBuf::from(format!("{}p{n}", dev.lo.host_path().display()));
        if node.exists() {
            return Ok(node);
        }
        let (start, size) = partition_range(&dev.lo.host_path(), n)?;
        let options = LoopOptions {
            offset: dev.options.offset + start,
            sizelimit: size,
            block_size: dev.options.block_size,
            read_only: dev.options.read_only,
            partscan: false,
            lock: false,
        };
        let lo = LoopDevice::attach(&dev.file, &options, Path::new("/dev"), false).map_err(|e| error_chain(&e))?;
        let path = lo.host_path();
        self.partition_loops.push(lo);
        Ok(path)
    }

    /// Sync and unmount everything, reporting the first failure (dropping does the same silently).
    pub fn close(mut self) -> Result<(), String> {
        self.release()
    }

    fn release(&mut self) -> Result<(), String> {
        let mut first_err = None;
        while let Some((mp, recursive)) = self.mounted.pop() {
            let _ = std::process::Command::new("sync").arg("-f").arg(&mp).status();
            if let Err(e) = sandbox::unmount(&mp, recursive) {
                // Busy (a process escaped the sandbox?): detach lazily so nothing stays visible.
                let _ = sandbox::unmount(&mp, true);
                first_err.get_or_insert_with(|| error_chain(&e));
            }
        }
        self.partition_loops.clear();
        self.devices.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Byte offset and length of partition `n` (1-based) in the table on `dev`, read with sfdisk.
fn partition_range(dev: &Path, n: u64) -> Result<(u64, u64), String> {
    let out = std::process::Command::new("sfdisk")
        .arg("--json")
        .arg(dev)
        .output()
        .map_err(|e| format!("cannot run sfdisk to find partition {n}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "partition {n}: no partition table on the device ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("sfdisk --json: {e}"))?;
    let table = &v["partitiontable"];
    let sector = table["sectorsize"].as_u64().unwrap_or(512);
    let parts = table["partitions"].as_array().cloned().unwrap_or_default();
    let p = parts
        .iter()
        .find(|p| {
            p["node"].as_str().is_some_and(|node| node.ends_with(&format!("p{n}")) || node.ends_with(&n.to_string()))
        })
        .or_else(|| parts.get(n as usize - 1))
        .ok_or_else(|| format!("partition {n} does not exist (the table has {})", parts.len()))?;
    let start = p["start"].as_u64().ok_or("sfdisk gave no start")?;
    let size = p["size"].as_u64().ok_or("sfdisk gave no size")?;
    Ok((start * sector, size * sector))
}

/// The only deployment with serial 0 under `root/ostree/deploy/*/deploy/` (upstream's
/// `default: true`).
fn default_deployment(root: &Path) -> Result<(String, String, u64), String> {
    let mut found = vec![];
    for os in std::fs::read_dir(root.join("ostree/deploy"))
        .map_err(|e| format!("no ostree/deploy in the tree: {e}"))?
        .flatten()
    {
        let Ok(entries) = std::fs::read_dir(os.path().join("deploy")) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(commit) = name.strip_suffix(".0") {
                if e.path().is_dir() {
                    found.push((os.file_name().to_string_lossy().into_owned(), commit.to_owned(), 0));
                }
            }
        }
    }
    match found.len() {
        0 => Err("could not find a deployment".into()),
        1 => Ok(found.remove(0)),
        _ => Err(format!("more than one deployment found: {found:?}")),
    }
}

/// A commit checksum, or the commit a ref (`name` or `remote:name`) points at in `repo`.
fn resolve_ref(repo: &Path, reference: &str) -> Result<String, String> {
    if reference.len() == 64 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(reference.to_owned());
    }
    let candidates = match reference.split_once(':') {
        Some((remote, name)) => vec![format!("refs/remotes/{remote}/{name}")],
        None => vec![format!("refs/heads/{reference}"), format!("refs/mirrors/{reference}")],
    };
    for c in &candidates {
        if let Ok(path) = confined(repo, c) {
            if let Ok(text) = std::fs::read_to_string(path) {
                return Ok(text.trim().to_owned());
            }
        }
    }
    Err(format!("ref '{reference}' not found in {}", repo.display()))
}

/// `root` joined with a manifest path that may not leave it (no `..`; absolute means from `root`).
/// Symlinks are not followed beyond what the kernel does when mounting, so the tree being built
/// cannot point a mount outside: mount points are checked after creation.
fn confined(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err(format!("'{rel}' leaves its root")),
        }
    }
    // Resolve symlinks in what exists so far and make sure we are still inside.
    let mut probe = out.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if let (Ok(real), Ok(real_root)) = (probe.canonicalize(), root.canonicalize()) {
        if !real.starts_with(&real_root) {
            return Err(format!("'{rel}' leaves its root through a symlink"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_paths_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(confined(d.path(), "/boot").unwrap(), d.path().join("boot"));
        assert_eq!(confined(d.path(), "/").unwrap(), d.path());
        assert!(confined(d.path(), "/../etc").is_err());
        std::os::unix::fs::symlink("/etc", d.path().join("evil")).unwrap();
        assert!(confined(d.path(), "/evil/x").unwrap_err().contains("symlink"));
    }
}
