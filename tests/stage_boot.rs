//! Tree-difference tests (recorded in tests/data/stages/) for the configuration stages of
//! RPM-based OS trees: kernel-cmdline, fstab, fix-bls, dracut.conf, modprobe, udev.rules,
//! sysctld, keymap, sysconfig and selinux.config.
//!
//! Where upstream has a stage test manifest in the compat corpus
//! (`../shared/compat/manifests/test__data__stages__<name>__b.json`), its options for the
//! stage are loaded from there and run as cases `compat` (or `compat-<n>` when the manifest
//! uses the stage several times); the files the packages would have installed are prepared
//! in the tree instead.

mod common;
#[path = "common/compat.rs"]
mod compat;

use common::treediff::check_stage;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn read(tree: &Path, rel: &str) -> String {
    fs::read_to_string(tree.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn mode(tree: &Path, rel: &str) -> u32 {
    fs::symlink_metadata(tree.join(rel)).unwrap().permissions().mode() & 0o7777
}

fn mkdirs(tree: &Path, dirs: &[&str]) {
    for d in dirs {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
}

/// Run `stage` directly and return its one-line error (the stage must fail).
fn stage_error(stage: &str, options: Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let info = osbuild_rs::stages::find(stage).unwrap();
    let args = json!({"tree": tree, "options": options});
    let args: osbuild_rs::stages::StageArgs = serde_json::from_value(args).unwrap();
    if let Err(e) = info.check_options(&args.options) {
        return osbuild_rs::stages::error_chain(&e);
    }
    match (info.run)(&args) {
        Ok(_) => panic!("{stage} accepted {}", args.options),
        Err(e) => osbuild_rs::stages::error_chain(&e),
    }
}

#[test]
fn kernel_cmdline_compat() {
    let opts = compat::stage_test_options("kernel-cmdline").remove(0);
    let (_d, tree) = check_stage("org.osbuild.kernel-cmdline", "compat", |_| {}, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/kernel/cmdline"),
        "root=UUID=76a22bf4-f153-4541-b6c7-0332c0dfaeac net.ifnames=0 crashkernel=auto"
    );
    assert_eq!(mode(&tree, "etc/kernel/cmdline"), 0o644);
}

#[test]
fn kernel_cmdline_too_long() {
    let e =
        stage_error("org.osbuild.kernel-cmdline", json!({"kernel_opts": "x".repeat(257), "kernel_cmdline_size": 256}));
    assert_eq!(e, "The size of the kernel cmdline options cannot be larger than 256");
}

#[test]
fn fstab_compat() {
    let opts = compat::stage_test_options("fstab").remove(0);
    let (_d, tree) = check_stage("org.osbuild.fstab", "compat", |t| mkdirs(t, &["etc"]), opts, json!({}));
    assert_eq!(
        read(&tree, "etc/fstab"),
        "UUID=76a22bf4-f153-4541-b6c7-0332c0dfaeac\t/\text4\tdefaults\t1\t1\n\
         /dev/root\t/sysroot\text4\tdefaults\t1\t1\n\
         PARTLABEL=THEPARTITION\t/thepart\text4\tdefaults\t1\t1\n\
         LABEL=LABEL\t/label\text4\tdefaults\t1\t1\n"
    );
}

#[test]
fn fstab_default_ostree_deployment() {
    let commit = "c".repeat(64);
    let dep = format!("ostree/deploy/fedora-coreos/deploy/{commit}.0");
    let opts = json!({"filesystems": [{"label": "boot", "path": "/boot", "vfs_type": "ext4", "options": "ro"}],
                      "ostree": {"deployment": {"default": true}}});
    let (_d, tree) =
        check_stage("org.osbuild.fstab", "ostree-default", |t| mkdirs(t, &[&format!("{dep}/etc")]), opts, json!({}));
    assert_eq!(read(&tree, &format!("{dep}/etc/fstab")), "LABEL=boot\t/boot\text4\tro\t0\t0\n");
}

#[test]
fn fstab_bad_options() {
    let e = stage_error("org.osbuild.fstab", json!({"filesystems": [{"uuid": "x"}]}));
    assert!(e.starts_with("invalid options: missing field `path`"), "{e}");
    let e = stage_error("org.osbuild.fstab", json!({"filesystems": [{"path": "/"}]}));
    assert_eq!(e, "Need 'uuid' or 'label'");
}

#[test]
fn fix_bls_strips_the_build_prefix() {
    let entry = "title Fedora\nversion 6.5.6\nlinux /run/osbuild/tree/boot/vmlinuz-6.5.6\n\
                 initrd /run/osbuild/tree/boot/initramfs-6.5.6.img\noptions root=UUID=x ro\n";
    let prepare = |t: &Path| {
        mkdirs(t, &["boot/loader/entries"]);
        fs::write(t.join("boot/loader/entries/abc-6.5.6.conf"), entry).unwrap();
        fs::set_permissions(t.join("boot/loader/entries/abc-6.5.6.conf"), fs::Permissions::from_mode(0o600)).unwrap();
    };
    let (_d, tree) = check_stage("org.osbuild.fix-bls", "default", prepare, json!({}), json!({}));
    assert_eq!(
        read(&tree, "boot/loader/entries/abc-6.5.6.conf"),
        "title Fedora\nversion 6.5.6\nlinux /boot/vmlinuz-6.5.6\ninitrd /boot/initramfs-6.5.6.img\noptions root=UUID=x ro\n"
    );
    assert_eq!(mode(&tree, "boot/loader/entries/abc-6.5.6.conf"), 0o600);
    let (_d, tree) = check_stage(
        "org.osbuild.fix-bls",
        "no-boot-prefix",
        prepare,
        json!({"prefix": "", "require_boot_prefix": false}),
        json!({}),
    );
    assert!(read(&tree, "boot/loader/entries/abc-6.5.6.conf").contains("\nlinux /vmlinuz-6.5.6\ninitrd /initramfs"));
}

#[test]
fn fix_bls_bad_option() {
    let e = stage_error("org.osbuild.fix-bls", json!({"prefix": 1}));
    assert!(e.starts_with("invalid options: invalid type: number, expected a string"), "{e}");
}

#[test]
fn dracut_conf_upstream_test() {
    // upstream's test/data/stages/dracut.conf/b.json
    let opts = json!({"filename": "sgdisk.conf", "config": {"install_items": ["sgdisk"]}});
    let (_d, tree) =
        check_stage("org.osbuild.dracut.conf", "upstream", |t| mkdirs(t, &["usr/lib/dracut"]), opts, json!({}));
    assert_eq!(read(&tree, "usr/lib/dracut/dracut.conf.d/sgdisk.conf"), "install_items+=\" sgdisk \"\n");
}

#[test]
fn dracut_conf_bad_option() {
    let e = stage_error("org.osbuild.dracut.conf", json!({"filename": "x.conf", "config": {"hostonly": true}}));
    assert!(e.starts_with("invalid options: unsupported configuration option 'hostonly'"), "{e}");
}

#[test]
fn modprobe_compat() {
    let all = compat::stage_test_options("modprobe");
    assert_eq!(all.len(), 3);
    let mut contents = vec![];
    for (i, opts) in all.into_iter().enumerate() {
        let name = opts["filename"].as_str().unwrap().to_owned();
        let (_d, tree) =
            check_stage("org.osbuild.modprobe", &format!("compat-{i}"), |t| mkdirs(t, &["usr/lib"]), opts, json!({}));
        contents.push(read(&tree, &format!("usr/lib/modprobe.d/{name}")));
    }
    assert_eq!(contents[0], "blacklist nouveau\nblacklist floppy\n");
    assert_eq!(contents[1], "blacklist my-module\n");
    assert!(
        contents[2].starts_with("install nf_conntrack /usr/sbin/modprobe --ignore-install nf_conntrack $CMDLINE_OPTS")
    );
}

#[test]
fn modprobe_bad_option() {
    let e = stage_error(
        "org.osbuild.modprobe",
        json!({"filename": "x.conf", "commands": [{"command": "install", "modulename": "m"}]}),
    );
    assert!(e.starts_with("invalid options: missing field `cmdline`"), "{e}");
}

#[test]
fn udev_rules_compat() {
    let all = compat::stage_test_options("udev.rules");
    assert_eq!(all.len(), 2);
    let mut contents = vec![];
    for (i, opts) in all.into_iter().enumerate() {
        let name = opts["filename"].as_str().unwrap().trim_start_matches('/').to_owned();
        let prepare = |t: &Path| mkdirs(t, &["etc/udev/rules.d"]);
        let (_d, tree) = check_stage("org.osbuild.udev.rules", &format!("compat-{i}"), prepare, opts, json!({}));
        contents.push(read(&tree, &name));
    }
    assert_eq!(
        contents[0],
        "# Accelerated Networking on Azure exposes a new SRIOV interface to the VM.\n\
         # This interface is transparently bonded to the synthetic interface,\n\
         # so NetworkManager should just ignore any SRIOV interfaces.\n\
         SUBSYSTEM==\"net\", DRIVERS==\"hv_pci\", ACTION==\"add\", ENV{NM_UNMANAGED}=\"1\"\n"
    );
    assert_eq!(contents[1], "# Test\"\n\nENV{test}=\"\\\"foo\\\"\"\n");
}

#[test]
fn udev_rules_bad_option() {
    let e =
        stage_error("org.osbuild.udev.rules", json!({"filename": "/x.rules", "rules": [[{"key": "A", "op": "=="}]]}));
    assert!(e.starts_with("invalid options: data did not match any variant"), "{e}");
}

#[test]
fn sysctld_upstream_test() {
    // upstream's test/data/stages/sysctld/b.json
    let cases = [
        (
            "sap",
            json!({"filename": "sap.conf", "config": [{"key": "kernel.pid_max", "value": "4194304"},
            {"key": "vm.max_map_count", "value": "2147483647"}]}),
            "kernel.pid_max = 4194304\nvm.max_map_count = 2147483647\n",
        ),
        (
            "example",
            json!({"filename": "example.conf", "config": [{"key": "-key.that.will.not.fail", "value": "the-greatest-value-ever"},
            {"key": "-key.pattern.excluded.with.glob"}]}),
            "-key.that.will.not.fail = the-greatest-value-ever\n-key.pattern.excluded.with.glob\n",
        ),
    ];
    for (case, opts, want) in cases {
        let file = format!("usr/lib/sysctl.d/{}", opts["filename"].as_str().unwrap());
        let (_d, tree) =
            check_stage("org.osbuild.sysctld", case, |t| mkdirs(t, &["usr/lib/sysctl.d"]), opts, json!({}));
        assert_eq!(read(&tree, &file), want);
    }
}

#[test]
fn sysctld_bad_option_and_missing_dir() {
    let e = stage_error("org.osbuild.sysctld", json!({"filename": "x.conf", "config": [{"value": "1"}]}));
    assert!(e.starts_with("invalid options: missing field `key`"), "{e}");
    let e = stage_error("org.osbuild.sysctld", json!({"filename": "x.conf", "config": [{"key": "a", "value": "1"}]}));
    assert_eq!(e, "/usr/lib/sysctl.d does not exist in the tree");
}

#[test]
fn keymap_upstream_test() {
    // upstream's test/data/stages/keymap/b.json; the tree has the lock file earlier stages leave
    let opts = json!({"keymap": "se-dvorak", "x11-keymap": {"layouts": ["cz"]}, "font": "eurlatgr"});
    let prepare = |t: &Path| {
        mkdirs(t, &["etc/X11"]);
        fs::write(t.join("etc/.pwd.lock"), "").unwrap();
        fs::write(t.join("etc/vconsole.conf"), "KEYMAP=us\n").unwrap();
    };
    let (_d, tree) = check_stage("org.osbuild.keymap", "upstream", prepare, opts, json!({}));
    assert_eq!(read(&tree, "etc/vconsole.conf"), "KEYMAP=se-dvorak\nFONT=eurlatgr\n");
    assert_eq!(
        read(&tree, "etc/X11/xorg.conf.d/00-keyboard.conf"),
        "# Created by osbuild. Do not edit manually, use localectl(1).\nSection \"InputClass\"\n        \
         Identifier \"system-keyboard\"\n        MatchIsKeyboard \"on\"\n        Option \"XkbLayout\" \"cz\"\nEndSection\n"
    );
    assert_eq!(mode(&tree, "etc/X11/xorg.conf.d"), 0o755);
}

#[test]
fn keymap_bad_option() {
    let e = stage_error("org.osbuild.keymap", json!({"x11-keymap": {"layouts": ["cz"]}}));
    assert!(e.starts_with("invalid options: missing field `keymap`"), "{e}");
    assert_eq!(stage_error("org.osbuild.keymap", json!({"keymap": "a/b"})), "keymap a/b is not valid");
}

#[test]
fn sysconfig_compat() {
    let opts = compat::stage_test_options("sysconfig").remove(0);
    let prepare = |t: &Path| {
        // what the initscripts/kernel packages ship
        mkdirs(t, &["etc/sysconfig"]);
        fs::write(
            t.join("etc/sysconfig/kernel"),
            "# UPDATEDEFAULT specifies if new-kernel-pkg should make\nUPDATEDEFAULT=no\n",
        )
        .unwrap();
        fs::write(t.join("etc/sysconfig/network"), "# Created by anaconda\n").unwrap();
    };
    let (_d, tree) = check_stage("org.osbuild.sysconfig", "compat", prepare, opts, json!({}));
    assert_eq!(read(&tree, "etc/sysconfig/kernel"), "UPDATEDEFAULT=yes\nDEFAULTKERNEL=kernel\n");
    assert_eq!(read(&tree, "etc/sysconfig/network"), "NETWORKING=yes\nNOZEROCONF=yes\n");
    assert_eq!(
        read(&tree, "etc/sysconfig/network-scripts/ifcfg-eth0"),
        "DEVICE=\"eth0\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nUSERCTL=\"yes\"\nPEERDNS=\"yes\"\nIPV6INIT=\"no\"\n"
    );
    assert_eq!(
        read(&tree, "etc/sysconfig/network-scripts/ifcfg-eth1"),
        "DEVICE=\"eth1\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nUSERCTL=\"no\"\nPEERDNS=\"yes\"\nIPV6INIT=\"yes\"\n"
    );
    // upstream writes these placeholders literally (no f-string); so do we
    assert_eq!(read(&tree, "etc/sysconfig/livesys"), "livesys_session=\"{livesys_options['session']}\"\n");
    assert_eq!(
        read(&tree, "etc/sysconfig/desktop"),
        "PREFERRED={desktop_options['preferred']}\nDISPLAYMANAGER={desktop_options['displaymanager']}\n"
    );
}

#[test]
fn sysconfig_bad_option() {
    let e = stage_error("org.osbuild.sysconfig", json!({"network": {"networking": "yes"}}));
    assert!(e.starts_with("invalid options: sysconfig network networking must be a boolean"), "{e}");
}

#[test]
fn selinux_config_compat() {
    let opts = compat::stage_test_options("selinux.config").remove(0);
    let config = "# This file controls the state of SELinux on the system.\n\
                  # SELINUX= can take one of these three values:\n#     enforcing\n\
                  SELINUX=enforcing\n# SELINUXTYPE= can take one of these three values:\n\
                  SELINUXTYPE=targeted\n\n";
    let prepare = |t: &Path| {
        mkdirs(t, &["etc/selinux"]);
        fs::write(t.join("etc/selinux/config"), config).unwrap();
    };
    let (_d, tree) = check_stage("org.osbuild.selinux.config", "compat", prepare, opts, json!({}));
    let want = config
        .replace("SELINUX=enforcing", "SELINUX=permissive")
        .replace("SELINUXTYPE=targeted", "SELINUXTYPE=minimum");
    assert_eq!(read(&tree, "etc/selinux/config"), want);
}

#[test]
fn selinux_config_bad_option() {
    let e = stage_error("org.osbuild.selinux.config", json!({"state": "on"}));
    assert!(e.starts_with("invalid options: unknown variant `on`"), "{e}");
}

// ---------------------------------------------------------------- org.osbuild.selinux

/// setfiles must be on this machine (Debian: policycoreutils); never skip without it.
fn require_setfiles() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("setfiles").is_file()))
        .unwrap_or(false);
    assert!(found, "setfiles is missing: install policycoreutils (apt-get install policycoreutils)");
}

const FILE_CONTEXTS: &str = "/.*\tsystem_u:object_r:default_t:s0\n\
    /bin\t-l\tsystem_u:object_r:bin_t:s0\n\
    /boot(/.*)?\tsystem_u:object_r:boot_t:s0\n\
    /dev(/.*)?\tsystem_u:object_r:device_t:s0\n\
    /etc(/.*)?\tsystem_u:object_r:etc_t:s0\n\
    /home\t-d\tsystem_u:object_r:home_root_t:s0\n\
    /lib\t-l\tsystem_u:object_r:lib_t:s0\n\
    /usr(/.*)?\tsystem_u:object_r:usr_t:s0\n\
    /usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0\n\
    /var/cache(/.*)?\tsystem_u:object_r:var_t:s0\n";

/// A small Fedora-like tree with a policy's file_contexts (instead of installing it).
fn selinux_tree(t: &Path) {
    mkdirs(t, &["boot", "dev", "home", "usr/bin", "usr/lib", "var/cache/dnf", "etc/selinux/targeted/contexts/files"]);
    fs::write(t.join("etc/selinux/targeted/contexts/files/file_contexts"), FILE_CONTEXTS).unwrap();
    for f in ["usr/bin/ls", "usr/bin/cp", "var/cache/dnf/x"] {
        fs::write(t.join(f), "").unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
    std::os::unix::fs::symlink("usr/lib", t.join("lib")).unwrap();
}

fn label(tree: &Path, rel: &str) -> String {
    let v = xattr::get(tree.join(rel), "security.selinux").unwrap().unwrap_or_else(|| panic!("{rel} has no label"));
    String::from_utf8(v).unwrap().trim_end_matches('\0').to_owned()
}

#[test]
fn selinux_upstream_test_basic() {
    require_setfiles();
    // upstream's test/data/stages/selinux/test_basic.json
    let opts = json!({"file_contexts": "etc/selinux/targeted/contexts/files/file_contexts",
                      "labels": {"/usr/bin/cp": "system_u:object_r:install_exec_t:s0"}});
    let (_d, tree) = check_stage("org.osbuild.selinux", "basic", selinux_tree, opts, json!({}));
    for (path, want) in [
        ("bin", "system_u:object_r:bin_t:s0"),
        ("boot", "system_u:object_r:boot_t:s0"),
        ("dev", "system_u:object_r:device_t:s0"),
        ("etc", "system_u:object_r:etc_t:s0"),
        ("home", "system_u:object_r:home_root_t:s0"),
        ("lib", "system_u:object_r:lib_t:s0"),
        ("usr", "system_u:object_r:usr_t:s0"),
        ("usr/bin/ls", "system_u:object_r:bin_t:s0"),
        ("usr/bin/cp", "system_u:object_r:install_exec_t:s0"),
    ] {
        assert_eq!(label(&tree, path), want, "{path}");
    }
    assert!(!tree.join(".autorelabel").exists());
}

#[test]
fn selinux_exclude_paths_and_autorelabel() {
    require_setfiles();
    let opts = json!({"file_contexts": "tree:///etc/selinux/targeted/contexts/files/file_contexts",
                      "exclude_paths": ["/var/cache"], "force_autorelabel": true});
    let (_d, tree) = check_stage("org.osbuild.selinux", "exclude-autorelabel", selinux_tree, opts, json!({}));
    assert_eq!(label(&tree, "usr/bin/cp"), "system_u:object_r:bin_t:s0");
    assert_eq!(xattr::get(tree.join("var/cache/dnf/x"), "security.selinux").unwrap(), None);
    assert_eq!(read(&tree, ".autorelabel"), "-F");
}

#[test]
fn selinux_bad_option() {
    let e = stage_error("org.osbuild.selinux", json!({"labels": {"/x": 1}}));
    assert!(e.starts_with("invalid options: invalid type: number, expected a string"), "{e}");
}

/// Not a test of its own: when `selinux_without_setfiles` sets the variables, run the stage
/// with its arguments file and exit with its exit code (so the parent can change `PATH`).
#[test]
fn child_runner() {
    let Ok(args) = std::env::var("OSBUILD_RS_TEST_CHILD_ARGS") else { return };
    let meta = Path::new(&args).with_file_name("meta.json");
    std::process::exit(osbuild_rs::stages::run_stage_from_file("org.osbuild.selinux", Path::new(&args), &meta));
}

#[test]
fn selinux_without_setfiles() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    selinux_tree(&{
        fs::create_dir(&tree).unwrap();
        tree.clone()
    });
    let args = dir.path().join("arguments.json");
    let opts = json!({"file_contexts": "etc/selinux/targeted/contexts/files/file_contexts"});
    fs::write(&args, serde_json::to_vec(&json!({"tree": tree, "options": opts})).unwrap()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runner", "--nocapture", "--test-threads=1"])
        .env("OSBUILD_RS_TEST_CHILD_ARGS", &args)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("org.osbuild.selinux: setfiles not found in the build root, but org.osbuild.selinux needs it"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- org.osbuild.dracut

#[test]
fn dracut_missing_in_the_tree() {
    let e = stage_error("org.osbuild.dracut", json!({"kernel": ["6.5.6-300.fc39.x86_64"]}));
    assert_eq!(e, "/usr/bin/dracut not found in the tree, but org.osbuild.dracut needs it");
}

#[test]
fn dracut_bad_option() {
    let e = stage_error("org.osbuild.dracut", json!({"kernel": "6.5.6"}));
    assert!(e.starts_with("invalid options: invalid type: string \"6.5.6\", expected a sequence"), "{e}");
}

/// A tree whose `dracut` is a shell script (busybox) recording how it was called and what it
/// saw of the chroot; needs root (mounts) and a static busybox, as the other build tests do.
#[test]
fn dracut_runs_in_a_chroot_of_the_tree() {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is missing: run `make deps`");
    let script = "#!/bin/sh\n\
        logger this-goes-nowhere\n\
        echo \"$@\" > /boot/args-$3\n\
        test -e /proc/self/status && echo proc >> /boot/args-$3\n\
        test -d /sys/kernel && echo sys >> /boot/args-$3\n\
        test -e /dev/null && echo dev >> /boot/args-$3\n";
    let prepare = |t: &Path| {
        mkdirs(t, &["usr/bin", "boot"]);
        fs::copy(busybox, t.join("usr/bin/busybox")).unwrap();
        for tool in ["sh", "test", "true", "logger", "echo"] {
            std::os::unix::fs::symlink("busybox", t.join("usr/bin").join(tool)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
        fs::write(t.join("usr/bin/dracut"), script).unwrap();
        fs::set_permissions(t.join("usr/bin/dracut"), fs::Permissions::from_mode(0o755)).unwrap();
    };
    let opts = json!({"kernel": ["6.5.6-300.fc39.x86_64"], "add_modules": ["ostree", "fips"],
                      "install": ["/etc/x"], "extra": ["--xz"]});
    let (_d, tree) = check_stage("org.osbuild.dracut", "fake-dracut", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "boot/args-6.5.6-300.fc39.x86_64"),
        "--no-hostonly --kver 6.5.6-300.fc39.x86_64 --force -v --show-modules --no-early-microcode --reproducible \
         --add ostree fips --install /etc/x --xz\nproc\nsys\ndev\n"
    );
    // everything was unmounted again
    for d in ["proc", "sys", "dev"] {
        assert_eq!(fs::read_dir(tree.join(d)).unwrap().count(), 0, "{d} still mounted");
    }
}

// ---------------------------------------------------------------- end to end

/// The configuration stages one after another in a real build (sandbox, host as build root).
#[test]
fn configuration_stages_build_in_the_sandbox() {
    let env = common::Env::new();
    let uuid = "76a22bf4-f153-4541-b6c7-0332c0dfaeac";
    let m = env.write_manifest(
        "m.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
            {"type": "org.osbuild.mkdir", "options": {"paths": [
                {"path": "/etc/selinux", "parents": true}, {"path": "/usr/lib/sysctl.d", "parents": true}]}},
            {"type": "org.osbuild.kernel-cmdline", "options": {"root_fs_uuid": uuid, "kernel_opts": "ro"}},
            {"type": "org.osbuild.fstab", "options": {"filesystems": [{"uuid": uuid, "vfs_type": "ext4", "path": "/"}]}},
            {"type": "org.osbuild.sysctld", "options": {"filename": "a.conf", "config": [{"key": "vm.x", "value": "1"}]}},
            {"type": "org.osbuild.keymap", "options": {"keymap": "us"}},
            {"type": "org.osbuild.sysconfig", "options": {"kernel": {"update_default": true}}},
            {"type": "org.osbuild.dracut.conf", "options": {"filename": "x.conf", "config": {"compress": "xz"}}},
            {"type": "org.osbuild.modprobe", "options": {"filename": "x.conf",
                "commands": [{"command": "blacklist", "modulename": "floppy"}]}},
            {"type": "org.osbuild.selinux", "options": {"labels": {"/etc/fstab": "system_u:object_r:etc_t:s0"}}}
        ]}]}),
    );
    common::ok(&env.run(&m, &["--export", "tree"]));
    let tree = env.out().join("tree");
    assert_eq!(read(&tree, "etc/kernel/cmdline"), format!("root=UUID={uuid} ro"));
    assert_eq!(read(&tree, "etc/fstab"), format!("UUID={uuid}\t/\text4\tdefaults\t0\t0\n"));
    assert_eq!(read(&tree, "usr/lib/sysctl.d/a.conf"), "vm.x = 1\n");
    assert_eq!(read(&tree, "etc/vconsole.conf"), "KEYMAP=us\n");
    assert_eq!(read(&tree, "etc/sysconfig/kernel"), "UPDATEDEFAULT=yes\n");
    assert_eq!(read(&tree, "usr/lib/dracut/dracut.conf.d/x.conf"), "compress=\"xz\"\n");
    assert_eq!(read(&tree, "usr/lib/modprobe.d/x.conf"), "blacklist floppy\n");
    assert_eq!(label(&tree, "etc/fstab"), "system_u:object_r:etc_t:s0");
    for f in ["etc/fstab", "etc/kernel/cmdline", "etc/vconsole.conf", "usr/lib/modprobe.d/x.conf"] {
        assert_eq!(mode(&tree, f), 0o644, "{f}");
    }
}
