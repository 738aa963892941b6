//! OSTree fixtures for tests that deploy without building an OS first.

use super::Env;
use std::path::PathBuf;
use std::process::Command;

/// The kernel version of [`bootable_commit`]'s tree.
pub const KVER: &str = "6.1.0-osbuildrs";

/// A commit `ostree admin deploy` accepts: a kernel and initramfs where ostree looks for them
/// (`/usr/lib/modules/KVER`), `/usr/etc`, and the `extra` files (path, content); committed
/// on `branch` in a new archive repository `repo` of `env`. Returns (repo, commit).
pub fn bootable_commit(env: &Env, branch: &str, extra: &[(&str, &str)]) -> (PathBuf, String) {
    let src = env.path("os");
    let base = [
        (format!("usr/lib/modules/{KVER}/vmlinuz"), "not really a kernel\n"),
        (format!("usr/lib/modules/{KVER}/initramfs.img"), "not really an initramfs\n"),
        ("usr/etc/hostname".to_owned(), "osbuild-rs-iot\n"),
        ("usr/lib/os-release".to_owned(), "NAME=osbuild-rs\nID=osbuildrs\nVERSION_ID=1\n"),
    ];
    for (path, content) in base.into_iter().chain(extra.iter().map(|(p, c)| (p.to_string(), *c))) {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    for dir in ["var", "sysroot", "boot"] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
    }
    let repo = env.path("repo");
    let ostree = |args: &[String]| {
        let o = Command::new("ostree").arg(format!("--repo={}", repo.display())).args(args).output().unwrap();
        assert!(o.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    ostree(&["init".into(), "--mode=archive".into()]);
    let commit = ostree(&[
        "commit".into(),
        format!("--branch={branch}"),
        "--subject=test".into(),
        "--timestamp=2023-11-14T22:13:20Z".into(),
        format!("--tree=dir={}", src.display()),
    ]);
    (repo, commit)
}
