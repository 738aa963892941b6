//! Pure tests: the bubblewrap argv against golden argvs (no root, no bubblewrap needed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn sample() -> StageSandbox {
    StageSandbox {
        build_root: None,
        tree: "/var/lib/osbuild/store/tmp/tree".into(),
        binds: vec![
            Bind {
                src: "/var/lib/osbuild/store/tmp/inputs/root".into(),
                dest: "/run/osbuild/inputs/root".into(),
                writable: false,
            },
            Bind {
                src: "/var/lib/osbuild/store/tmp/mounts".into(),
                dest: "/run/osbuild/mounts".into(),
                writable: true,
            },
        ],
        api_dir: "/var/lib/osbuild/store/tmp/api".into(),
        meta_file: "/var/lib/osbuild/store/tmp/meta".into(),
        exe: "/usr/bin/osbuild-rs".into(),
        argv: vec!["/run/osbuild/bin/osbuild-rs".into(), "__stage".into(), "org.osbuild.mkdir".into()],
        capabilities: vec!["CAP_MAC_ADMIN".into()],
        devices: vec!["/dev/loop3".into()],
        timeout: Some(Duration::from_secs(5)),
        env: vec![("SOURCE_DATE_EPOCH".into(), "0".into()), ("LC_ALL".into(), "C".into())],
        upstream_root: false,
    }
}

fn host_like_root() -> Vec<RootEntry> {
    let link = |name: &str, target: &str| RootEntry::Symlink { name: name.into(), target: target.into() };
    let dir = |name: &str| RootEntry::Dir { name: name.into(), host: Path::new("/").join(name) };
    vec![
        link("bin", "usr/bin"),
        dir("etc"),
        link("lib", "usr/lib"),
        link("lib64", "usr/lib64"),
        link("sbin", "usr/sbin"),
        dir("usr"),
    ]
}

/// Split a golden text (one argv item per line; `#` comments and blank lines ignored).
fn golden(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

const GOLDEN_HOST: &str = r#"
bwrap --chdir / --die-with-parent --new-session
--unshare-ipc --unshare-pid --unshare-net --unshare-uts
--cap-drop ALL
--cap-add CAP_AUDIT_WRITE --cap-add CAP_CHOWN --cap-add CAP_DAC_OVERRIDE --cap-add CAP_DAC_READ_SEARCH
--cap-add CAP_FOWNER --cap-add CAP_FSETID --cap-add CAP_IPC_LOCK --cap-add CAP_LINUX_IMMUTABLE
--cap-add CAP_MAC_ADMIN --cap-add CAP_MAC_OVERRIDE --cap-add CAP_MKNOD --cap-add CAP_NET_BIND_SERVICE
--cap-add CAP_SETFCAP --cap-add CAP_SETGID --cap-add CAP_SETPCAP --cap-add CAP_SETUID --cap-add CAP_SYS_ADMIN
--cap-add CAP_SYS_CHROOT --cap-add CAP_SYS_NICE --cap-add CAP_SYS_RESOURCE
# build root
--symlink usr/bin /bin
--ro-bind /etc /etc
--symlink usr/lib /lib
--symlink usr/lib64 /lib64
--symlink usr/sbin /sbin
--ro-bind /usr /usr
# fresh API and scratch file systems
--dev /dev
--dev-bind /dev/loop3 /dev/loop3
--proc /proc
--ro-bind /run/osbuild-rs/proc-cmdline /proc/cmdline
--ro-bind /sys /sys
--tmpfs /run
--tmpfs /tmp
--tmpfs /var
--dir /var/tmp
# stage ABI
--ro-bind /usr/bin/osbuild-rs /run/osbuild/bin/osbuild-rs
--ro-bind /var/lib/osbuild/store/tmp/api /run/osbuild/api
--bind /var/lib/osbuild/store/tmp/meta /run/osbuild/meta
--bind /var/lib/osbuild/store/tmp/tree /run/osbuild/tree
--ro-bind /var/lib/osbuild/store/tmp/inputs/root /run/osbuild/inputs/root
--bind /var/lib/osbuild/store/tmp/mounts /run/osbuild/mounts
--
/run/osbuild/bin/osbuild-rs __stage org.osbuild.mkdir
"#;

#[test]
fn golden_argv_host_build_root() {
    let sb = sample();
    let argv = sb.bwrap_argv_with(&host_like_root(), &caps::requested(&sb.capabilities));
    assert_eq!(argv, golden(GOLDEN_HOST));
}

#[test]
fn bwrap_argv_scans_the_host_root() {
    // Whatever this host's layout, the scanned root yields the same argv as building it by hand.
    let sb = sample();
    let root = scan_build_root(None);
    assert!(root.iter().any(|e| matches!(e, RootEntry::Dir { name, .. } if name == "usr")));
    assert_eq!(sb.bwrap_argv(), sb.bwrap_argv_with(&root, &caps::requested(&sb.capabilities)));
}

const GOLDEN_TREE_ROOT: &str = r#"
--symlink usr/bin /bin
--ro-bind TREE/boot /boot
--ro-bind TREE/etc /etc
--symlink usr/lib /lib
--symlink usr/lib64 /lib64
--ro-bind TREE/opt /opt
--symlink /usr/sbin /sbin
--ro-bind TREE/usr /usr
--dev /dev
"#;

#[test]
fn golden_argv_tree_build_root() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("buildroot");
    for dir in ["usr/bin", "etc", "boot", "opt", "var/lib", "dev", "proc", "sys", "run", "tmp"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", tree.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/sbin", tree.join("sbin")).unwrap();
    std::fs::write(tree.join("a-file"), "not a directory").unwrap();

    let sb = StageSandbox { build_root: Some(tree.clone()), ..sample() };
    let argv = sb.bwrap_argv();
    let start = argv.iter().position(|a| a == "--symlink").unwrap();
    let end = argv.iter().position(|a| a == "--dev").unwrap() + 2;
    let expected = GOLDEN_TREE_ROOT.replace("TREE", &tree.display().to_string());
    assert_eq!(argv[start..end], golden(&expected)[..]);
}

#[test]
fn minimal_sandbox_argv() {
    let sb = StageSandbox {
        tree: "/t".into(),
        api_dir: "/a".into(),
        meta_file: "/m".into(),
        exe: "/e".into(),
        argv: vec!["/bin/true".into()],
        ..Default::default()
    };
    let argv = sb.bwrap_argv_with(&[], &[]);
    let text = argv.join(" ");
    assert!(text.starts_with(
        "bwrap --chdir / --die-with-parent --new-session --unshare-ipc --unshare-pid --unshare-net --unshare-uts \
         --cap-drop ALL --dev /dev --proc /proc --ro-bind /run/osbuild-rs/proc-cmdline /proc/cmdline"
    ));
    assert!(text.ends_with(
        "--ro-bind /e /run/osbuild/bin/osbuild-rs --ro-bind /a /run/osbuild/api --bind /m /run/osbuild/meta \
         --bind /t /run/osbuild/tree -- /bin/true"
    ));
}

#[test]
fn missing_usr_links_become_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("usr/bin")).unwrap();
    std::fs::create_dir_all(tmp.path().join("lib")).unwrap();
    let root = scan_build_root(Some(tmp.path()));
    let link = |name: &str| RootEntry::Symlink { name: name.into(), target: format!("usr/{name}") };
    assert_eq!(
        root,
        vec![
            link("bin"),
            RootEntry::Dir { name: "lib".into(), host: tmp.path().join("lib") },
            link("lib64"),
            link("sbin"),
            RootEntry::Dir { name: "usr".into(), host: tmp.path().join("usr") },
        ]
    );
}

#[test]
fn run_names_missing_paths() {
    let sb = StageSandbox { argv: vec!["/bin/true".into()], tree: PathBuf::from("/nonexistent/tree"), ..sample() };
    let err = sb.run(&mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "tree not found: /nonexistent/tree");
    let err = StageSandbox::default().run(&mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "sandbox has an empty command");
}

#[test]
fn environment_is_minimal_and_overridable() {
    let env = sandbox_env(&sample().env);
    let text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        text,
        [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "LC_ALL=C",
            "TERM=dumb",
            "container=bwrap-osbuild",
            "SOURCE_DATE_EPOCH=0"
        ]
    );
}

#[test]
fn exit_status_display() {
    assert_eq!(ExitStatusLike::Code(3).to_string(), "exit code 3");
    assert_eq!(ExitStatusLike::Signal(9).to_string(), "killed by signal 9");
    assert!(ExitStatusLike::Code(0).success());
    assert_eq!(ExitStatusLike::Signal(9).code(), None);
}

/// External stages get upstream's build root: only /usr (and a build tree's /boot), links into
/// it, and a fresh /etc with the few files upstream binds from the build root.
#[test]
fn upstream_root_takes_only_usr_and_a_fresh_etc() {
    let host = StageSandbox { upstream_root: true, ..sample() };
    let text = host.bwrap_argv_with(&host_like_root(), &[]).join(" ");
    assert!(text.contains("--ro-bind /usr /usr"), "{text}");
    assert!(!text.contains("--ro-bind /etc /etc"), "{text}");
    for link in ["bin", "lib", "lib64", "sbin"] {
        assert!(text.contains(&format!("--symlink usr/{link} /{link}")), "{text}");
    }
    assert!(
        text.contains(
            "--dir /etc --ro-bind-try /etc/mke2fs.conf /etc/mke2fs.conf --ro-bind-try /etc/containers /etc/containers \
         --ro-bind-try /ostree /ostree --ro-bind-try /etc/selinux /etc/selinux"
        ),
        "{text}"
    );

    let tree = PathBuf::from("/store/objects/b/tree");
    let dir = |name: &str| RootEntry::Dir { name: name.into(), host: tree.join(name) };
    let build = StageSandbox { build_root: Some(tree.clone()), upstream_root: true, ..sample() };
    let text = build.bwrap_argv_with(&[dir("boot"), dir("etc"), dir("opt"), dir("usr")], &[]).join(" ");
    assert!(text.contains("--ro-bind /store/objects/b/tree/boot /boot"), "{text}");
    assert!(!text.contains("/opt"), "{text}");
    assert!(text.contains("--ro-bind-try /store/objects/b/tree/etc/containers /etc/containers"), "{text}");
}
