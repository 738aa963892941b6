//! The bubblewrap command line, built in one place: what the build root contributes is read
//! from the file system first (`scan_build_root`), then `build_argv` turns it into argv with no I/O.

use std::path::{Path, PathBuf};

use super::StageSandbox;

/// Where things live inside the sandbox (upstream's stage ABI).
pub const TREE_DIR: &str = "/run/osbuild/tree";
pub const API_DIR: &str = "/run/osbuild/api";
pub const META_FILE: &str = "/run/osbuild/meta";
pub const BIN_DIR: &str = "/run/osbuild/bin";
pub const EXE_PATH: &str = "/run/osbuild/bin/osbuild-rs";
pub const INPUTS_DIR: &str = "/run/osbuild/inputs";
pub const MOUNTS_DIR: &str = "/run/osbuild/mounts";

/// Host file whose content (`root=/dev/osbuild`) replaces `/proc/cmdline` inside the sandbox, as
/// upstream does, so tools like kernel-install never copy the host's kernel command line into an image.
pub const PROC_CMDLINE_FILE: &str = "/run/osbuild-rs/proc-cmdline";
pub const PROC_CMDLINE: &str = "root=/dev/osbuild\n";

/// `PATH` inside the sandbox.
pub const SANDBOX_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Host directories that make up the build root when the host itself is the build root.
const HOST_ROOT_ENTRIES: &[&str] = &["bin", "etc", "lib", "lib64", "sbin", "usr"];

/// Top-level directories of a tree build root that the sandbox provides itself (fresh, not from the tree).
const PROVIDED_BY_SANDBOX: &[&str] = &["dev", "proc", "run", "sys", "tmp", "var"];

/// Top-level names that point into `/usr` on a merged-/usr system; made as symlinks when the root lacks them.
const USR_LINKS: &[&str] = &["bin", "lib", "lib64", "sbin"];

/// What upstream's build root takes from the build root besides `/usr` (bound if present).
const UPSTREAM_ROOT_FILES: &[(&str, &str)] = &[
    ("etc/mke2fs.conf", "/etc/mke2fs.conf"),
    ("etc/containers", "/etc/containers"),
    ("ostree", "/ostree"),
    ("etc/selinux", "/etc/selinux"),
];

/// The build root as upstream lays it out: its `/usr` (and `/boot` for a build pipeline's tree),
/// and `/bin`, `/sbin`, `/lib`, `/lib64` as links into `usr/`.
fn upstream_root_entries(root: &[RootEntry], with_boot: bool) -> Vec<RootEntry> {
    let mut entries: Vec<RootEntry> = root
        .iter()
        .filter(|e| matches!(e, RootEntry::Dir { name, .. } if name == "usr" || (with_boot && name == "boot")))
        .cloned()
        .collect();
    entries.extend(USR_LINKS.iter().map(|n| RootEntry::Symlink { name: n.to_string(), target: format!("usr/{n}") }));
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    entries
}

/// How one top-level entry of the build root appears inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    /// A directory of the build root, bound read-only at `/<name>`.
    Dir { name: String, host: PathBuf },
    /// A symlink `/<name>` -> `target`, recreated as it is in the build root.
    Symlink { name: String, target: String },
}

impl RootEntry {
    fn name(&self) -> &str {
        match self {
            RootEntry::Dir { name, .. } | RootEntry::Symlink { name, .. } => name,
        }
    }
}

/// What the build root contributes to `/`: for the host (`None`) its `/usr`, `/etc`, `/bin`, `/sbin`,
/// `/lib`, `/lib64`; for a tree every top-level directory or symlink except the ones the sandbox
/// makes fresh (`/dev`, `/proc`, `/sys`, `/run`, `/tmp`, `/var`). Symlinks stay symlinks (merged
/// /usr); a missing `/bin`, `/sbin`, `/lib` or `/lib64` becomes a symlink into `usr/` as upstream does.
/// Sorted by name.
pub fn scan_build_root(build_root: Option<&Path>) -> Vec<RootEntry> {
    let (root, names): (&Path, Vec<String>) = match build_root {
        None => (Path::new("/"), HOST_ROOT_ENTRIES.iter().map(|s| s.to_string()).collect()),
        Some(tree) => {
            let mut names: Vec<String> = std::fs::read_dir(tree)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| !PROVIDED_BY_SANDBOX.contains(&n.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            names.extend(USR_LINKS.iter().map(|s| s.to_string()));
            (tree, names)
        }
    };
    let mut entries: Vec<RootEntry> = Vec::new();
    for name in names {
        if entries.iter().any(|e| e.name() == name) {
            continue;
        }
        let host = root.join(&name);
        let entry = match std::fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => match std::fs::read_link(&host) {
                Ok(target) => RootEntry::Symlink { name, target: target.to_string_lossy().into_owned() },
                Err(_) => continue,
            },
            Ok(md) if md.is_dir() => RootEntry::Dir { name, host },
            Ok(_) => continue,
            Err(_) if USR_LINKS.contains(&name.as_str()) => RootEntry::Symlink { target: format!("usr/{name}"), name },
            Err(_) => continue,
        };
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    entries
}

/// The environment inside the sandbox: a minimal fixed set, then the stage's own (later wins).
/// It is bubblewrap's whole environment (passed by `run`, not on the command line: `--clearenv` and
/// `--setenv` need bubblewrap 0.5, CentOS Stream 9 ships 0.4).
pub fn sandbox_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        [("PATH", SANDBOX_PATH), ("LC_ALL", "C.UTF-8"), ("TERM", "dumb"), ("container", "bwrap-osbuild")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    for (key, value) in extra {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The bubblewrap argv for `sb`, given the build root's entries and the capabilities to keep.
/// Only options bubblewrap 0.4 knows are used. Mount order matters to bubblewrap: `/` first, then the fresh API file systems, then our binds
/// (the stage's binds last, so they can cover anything before them).
pub(crate) fn build_argv(sb: &StageSandbox, root: &[RootEntry], caps: &[String]) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));

    push(&["bwrap", "--chdir", "/", "--die-with-parent", "--new-session"]);
    push(&["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]);
    push(&["--cap-drop", "ALL"]);
    for cap in caps {
        push(&["--cap-add", cap]);
    }

    // The build root, read-only, as `/`.
    let upstream = sb.upstream_root.then(|| upstream_root_entries(root, sb.build_root.is_some()));
    for entry in upstream.as_deref().unwrap_or(root) {
        match entry {
            RootEntry::Dir { name, host } => push(&["--ro-bind", &lossy(host), &format!("/{name}")]),
            RootEntry::Symlink { name, target } => push(&["--symlink", target, &format!("/{name}")]),
        }
    }
    if sb.upstream_root {
        let base = sb.build_root.clone().unwrap_or_else(|| PathBuf::from("/"));
        push(&["--dir", "/etc"]);
        for (from, to) in UPSTREAM_ROOT_FILES {
            push(&["--ro-bind-try", &lossy(&base.join(from)), to]);
        }
    }

    // Fresh API and scratch file systems.
    push(&["--dev", "/dev"]);
    for dev in &sb.devices {
        let dev = lossy(dev);
        push(&["--dev-bind", &dev, &dev]);
    }
    push(&["--proc", "/proc"]);
    push(&["--ro-bind", PROC_CMDLINE_FILE, "/proc/cmdline"]);
    push(&["--ro-bind", "/sys", "/sys"]);
    push(&["--tmpfs", "/run"]);
    push(&["--tmpfs", "/tmp"]);
    push(&["--tmpfs", "/var"]);
    push(&["--dir", "/var/tmp"]);

    // The stage ABI.
    push(&["--ro-bind", &lossy(&sb.exe), EXE_PATH]);
    push(&["--ro-bind", &lossy(&sb.api_dir), API_DIR]);
    push(&["--bind", &lossy(&sb.meta_file), META_FILE]);
    push(&["--bind", &lossy(&sb.tree), TREE_DIR]);
    for bind in &sb.binds {
        let flag = if bind.writable { "--bind" } else { "--ro-bind" };
        push(&[flag, &lossy(&bind.src), &lossy(&bind.dest)]);
    }

    push(&["--"]);
    a.extend(sb.argv.iter().cloned());
    a
}
