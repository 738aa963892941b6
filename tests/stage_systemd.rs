//! Tree-difference tests (recorded in tests/data/stages/) for the systemd configuration
//! stages. Where the compat corpus has a manifest for a stage, its options are the ones
//! tested; the tree is prepared with the files the stage needs instead of installing packages.

mod common;
#[path = "common/compat.rs"]
mod compat;

use common::treediff::check_stage;
use osbuild_rs::stages::{error_chain, find, run_stage_from_file};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use std::process::Command;

fn dirs(tree: &Path, list: &[&str]) {
    for d in list {
        fs::create_dir_all(tree.join(d.trim_start_matches('/'))).unwrap();
    }
}

fn usr_lib_systemd(tree: &Path) {
    dirs(tree, &["/usr/lib/systemd"]);
}

fn sha256(path: &Path) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(fs::read(path).unwrap())))
}

fn read(tree: &Path, path: &str) -> String {
    fs::read_to_string(tree.join(path.trim_start_matches('/'))).unwrap()
}

/// `stage` rejects `options`: its option check names the problem, and a run fails.
fn assert_bad_options(stage: &str, options: Value, message: &str) {
    let e = error_chain(&find(stage).unwrap().check_options(&options).unwrap_err());
    assert!(e.contains(message), "{stage}: {e}");
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("tree")).unwrap();
    let args = json!({"tree": dir.path().join("tree"), "options": options});
    fs::write(dir.path().join("args.json"), args.to_string()).unwrap();
    assert_eq!(run_stage_from_file(stage, &dir.path().join("args.json"), &dir.path().join("meta.json")), 1);
}

#[test]
fn logind_dropin_from_compat_manifest() {
    let options = compat::stage_test_options("systemd-logind");
    let (_d, tree) =
        check_stage("org.osbuild.systemd-logind", "ec2-getty-fix", usr_lib_systemd, options[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "/usr/lib/systemd/logind.conf.d/10-ec2-getty-fix.conf"),
        "[Login]\nNAutoVTs=0\nReserveVT=2\n\n"
    );
}

#[test]
fn logind_bad_option() {
    assert_bad_options(
        "org.osbuild.systemd-logind",
        json!({"filename": "a.conf", "config": {"Login": {"NAutoVTs": "0"}}}),
        "invalid options: invalid type: string \"0\", expected u64",
    );
}

#[test]
fn journald_dropin() {
    // upstream's test/data/stages/systemd-journald
    let options = json!({"filename": "10-test-file-journald.conf", "config": {"Journal": {
        "Storage": "persistent", "Compress": "300K", "SplitMode": "uid", "Audit": "yes"}}});
    let (_d, tree) = check_stage("org.osbuild.systemd-journald", "test-file", usr_lib_systemd, options, json!({}));
    assert_eq!(
        read(&tree, "/usr/lib/systemd/journald.conf.d/10-test-file-journald.conf"),
        "[Journal]\nStorage=persistent\nCompress=300K\nSplitMode=uid\nAudit=yes\n\n"
    );
}

#[test]
fn journald_bad_option() {
    assert_bad_options(
        "org.osbuild.systemd-journald",
        json!({"filename": "a.conf", "config": {"Journal": {"Storage": "persistent", "RateLimit": "1"}}}),
        "unknown field `RateLimit`",
    );
}

#[test]
fn preset_from_compat_manifest() {
    let options = compat::stage_test_options("systemd.preset");
    let prepare = |t: &Path| dirs(t, &["/usr/lib/systemd/system-preset"]);
    let (_d, tree) = check_stage("org.osbuild.systemd.preset", "ssh-nftables", prepare, options[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "/usr/lib/systemd/system-preset/50-osbuild.preset"),
        "enable ssh.service\nenable nftables.service\n"
    );
}

#[test]
fn preset_bad_option() {
    assert_bad_options(
        "org.osbuild.systemd.preset",
        json!({"presets": [{"name": "a.service", "state": "on"}]}),
        "unknown variant `on`, expected `enable` or `disable`",
    );
}

#[test]
fn tmpfilesd_files() {
    // upstream's test/data/stages/tmpfilesd
    let prepare = |t: &Path| dirs(t, &["/usr/lib/tmpfiles.d"]);
    let options = json!({"filename": "example.conf", "config": [
        {"type": "w-", "path": "/proc/sys/vm/swappiness", "argument": "10"},
        {"type": "d", "path": "/tmp/.X11-unix", "mode": "1777", "user": "root", "group": "root", "age": "10d"},
        {"type": "d", "path": "/run/uscreens", "mode": "0755", "group": "screen"},
        {"type": "t", "path": "/run/cups", "argument": "security.SMACK64=printing user.attr-with-spaces=\"foo bar\""}]});
    let (_d, tree) = check_stage("org.osbuild.tmpfilesd", "example", prepare, options, json!({}));
    assert_eq!(
        read(&tree, "/usr/lib/tmpfiles.d/example.conf"),
        "w- /proc/sys/vm/swappiness - - - - 10\nd /tmp/.X11-unix 1777 root root 10d\nd /run/uscreens 0755 - screen\n\
         t /run/cups - - - - security.SMACK64=printing user.attr-with-spaces=\"foo bar\"\n"
    );
    let options = json!({"filename": "sap.conf", "config": [
        {"type": "x", "path": "/tmp/.sap*"}, {"type": "x", "path": "/tmp/.hdb*lock"}, {"type": "x", "path": "/tmp/.trex*lock"}]});
    let (_d, tree) = check_stage("org.osbuild.tmpfilesd", "sap", prepare, options, json!({}));
    assert_eq!(read(&tree, "/usr/lib/tmpfiles.d/sap.conf"), "x /tmp/.sap*\nx /tmp/.hdb*lock\nx /tmp/.trex*lock\n");
}

#[test]
fn tmpfilesd_bad_option() {
    assert_bad_options(
        "org.osbuild.tmpfilesd",
        json!({"filename": "a.conf", "config": [{"path": "/tmp/x"}]}),
        "missing field `type`",
    );
}

#[test]
fn first_boot_from_compat_manifest() {
    let options = compat::stage_test_options("first-boot");
    let (_d, tree) = check_stage("org.osbuild.first-boot", "wait-for-network", |_| {}, options[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "/usr/lib/systemd/system/osbuild-first-boot.service"),
        "[Unit]\nDescription=OSBuild First Boot Service\nConditionPathExists=/etc/osbuild-first-boot\n\
         Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\n\n\
         ExecStart=/usr/bin/rm /etc/osbuild-first-boot\nExecStart=/usr/bin/true\n"
    );
    assert_eq!(read(&tree, "/etc/osbuild-first-boot"), "");
}

#[test]
fn first_boot_bad_option() {
    assert_bad_options("org.osbuild.first-boot", json!({"commands": "/usr/bin/true"}), "expected a sequence");
}

#[test]
fn unit_dropins() {
    // upstream's test/data/stages/systemd.unit
    let cases = [
        (
            "nm-cloud-setup",
            json!({"unit": "nm-cloud-setup.service", "dropin": "10-rh-enable-for-ec2.conf",
            "config": {"Service": {"Environment": "NM_CLOUD_SETUP_EC2=yes"}}}),
            "/usr/lib/systemd/system/nm-cloud-setup.service.d/10-rh-enable-for-ec2.conf",
            "[Service]\nEnvironment=NM_CLOUD_SETUP_EC2=yes\n\n",
        ),
        (
            "grub-boot-success",
            json!({"unit": "grub-boot-success.timer", "dropin": "10-disable-if-greenboot.conf",
            "unit-type": "global", "config": {"Unit": {"ConditionPathExists": "/usr/lib/greenboot/greenboot"}}}),
            "/usr/lib/systemd/user/grub-boot-success.timer.d/10-disable-if-greenboot.conf",
            "[Unit]\nConditionPathExists=/usr/lib/greenboot/greenboot\n\n",
        ),
        (
            "boltd",
            json!({"unit": "boltd.service", "dropin": "30-boltd-debug.conf", "config": {"Service": {
            "Environment": [{"key": "G_MESSAGES_DEBUG", "value": "all"}, {"key": "G_MESSAGES_TRACE", "value": "none"}]}}}),
            "/usr/lib/systemd/system/boltd.service.d/30-boltd-debug.conf",
            "[Service]\nEnvironment=\"G_MESSAGES_DEBUG=all\"\nEnvironment=\"G_MESSAGES_TRACE=none\"\n\n",
        ),
    ];
    for (case, options, path, text) in cases {
        let prepare = |t: &Path| dirs(t, &["/usr/lib/systemd/system", "/usr/lib/systemd/user"]);
        let (_d, tree) = check_stage("org.osbuild.systemd.unit", case, prepare, options, json!({}));
        assert_eq!(read(&tree, path), text);
    }
}

#[test]
fn unit_bad_option() {
    assert_bad_options(
        "org.osbuild.systemd.unit",
        json!({"unit": "a.service", "dropin": "a.conf", "unit-type": "user", "config": {}}),
        "unknown variant `user`, expected `system` or `global`",
    );
}

#[test]
fn unit_create_from_compat_manifest() {
    let options = compat::stage_test_options("systemd.unit.create");
    // the file each one writes and its content's digest in upstream's diff.json
    let expected = [
        (
            "create-directory",
            "/etc/systemd/user/create-directory.service",
            "sha256:81ee5966cdfedee4d43a304e19a4c3655eae4c215f1856f245d137a4982d3601",
        ),
        (
            "data-mount",
            "/usr/lib/systemd/system/data.mount",
            "sha256:2f7e14d9785faa8e9b31188473cb5f87a7bc2a37b31b4c0c533f0e3bfd9d427d",
        ),
        (
            "service-socket",
            "/usr/lib/systemd/system/service.socket",
            "sha256:2c029a69c7a57f920c99a3537c8db87b26825436e131a87106e25a69197d7eb6",
        ),
        (
            "swap",
            "/usr/lib/systemd/system/dev-disk-by-uuid-4f581be3-e8c2-4b44-9456-54df3ab92944.swap",
            "sha256:4bb9e774438a2857a3845936c551b945f2ed6edabec3f9955d8e7d6b794a5a59",
        ),
    ];
    assert_eq!(options.len(), expected.len());
    for (options, (case, path, digest)) in options.into_iter().zip(expected) {
        let prepare = |t: &Path| dirs(t, &["/usr/lib/systemd/system", "/etc/systemd/user"]);
        let (_d, tree) = check_stage("org.osbuild.systemd.unit.create", case, prepare, options, json!({}));
        assert_eq!(sha256(&tree.join(path.trim_start_matches('/'))), digest, "{case}\n{}", read(&tree, path));
    }
}

#[test]
fn unit_create_bad_option() {
    assert_bad_options(
        "org.osbuild.systemd.unit.create",
        json!({"filename": "a.service", "config": {"Service": {"ExecStart": "/bin/true"}}}),
        "invalid type: string \"/bin/true\", expected a sequence",
    );
}

fn write(tree: &Path, path: &str, text: &str) {
    let p = tree.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// The tree of upstream's systemd stage test: nftables, sshd (enabled by its preset) and the
/// `-.mount` unit that test copies in, with the [Install] sections the packages ship.
fn systemd_tree(tree: &Path) {
    let lib = "/usr/lib/systemd/system";
    write(
        tree,
        &format!("{lib}/nftables.service"),
        "[Unit]\nDescription=Netfilter Tables\n\n[Service]\nType=oneshot\n\n[Install]\nWantedBy=multi-user.target\n",
    );
    write(tree, &format!("{lib}/sshd.service"), "[Unit]\nDescription=OpenSSH server daemon\n\n[Service]\nExecStart=/usr/sbin/sshd -D\n\n[Install]\nWantedBy=multi-user.target\n");
    write(tree, &format!("{lib}/ldconfig.service"), "[Unit]\nDescription=Rebuild Dynamic Linker Cache\n");
    write(tree, &format!("{lib}/multi-user.target"), "[Unit]\nDescription=Multi-User System\n");
    // the inline file upstream's test copies to /usr/lib/systemd/system/-.mount
    write(tree, &format!("{lib}/-.mount"), "[Unit]\nBefore=local-fs.target\nAfter=blockdev@dev-disk-by\\x2duuid-af34257d\\x2d3e14\\x2d4a51\\x2db91d\\x2dc430a956dcba.target\n\n[Mount]\nWhat=/dev/disk/by-uuid/af34257d-3e14-4a51-b91d-c430a956dcba\nWhere=/\nType=ext4\nOptions=rw,noatime\n\n[Install]\nRequiredBy=local-fs.target\n");
    let wants = tree.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(format!("{lib}/sshd.service"), wants.join("sshd.service")).unwrap();
}

fn link(tree: &Path, path: &str) -> String {
    fs::read_link(tree.join(path.trim_start_matches('/'))).unwrap().to_string_lossy().into_owned()
}

#[test]
fn systemd_from_compat_manifest() {
    let options = compat::stage_test_options("systemd");
    let (_d, tree) =
        check_stage("org.osbuild.systemd", "enable-disable-mask", systemd_tree, options[0].clone(), json!({}));
    let etc = "/etc/systemd/system";
    assert_eq!(
        link(&tree, &format!("{etc}/multi-user.target.wants/nftables.service")),
        "/usr/lib/systemd/system/nftables.service"
    );
    assert_eq!(link(&tree, &format!("{etc}/local-fs.target.requires/-.mount")), "/usr/lib/systemd/system/-.mount");
    assert_eq!(link(&tree, &format!("{etc}/ldconfig.service")), "/dev/null");
    assert_eq!(link(&tree, "/etc/systemd/system-generators/systemd-sysv-generator"), "/dev/null");
    assert!(fs::symlink_metadata(tree.join("etc/systemd/system/multi-user.target.wants/sshd.service")).is_err());
}

#[test]
fn systemd_default_target() {
    let (_d, tree) = check_stage(
        "org.osbuild.systemd",
        "default-target",
        systemd_tree,
        json!({"default_target": "multi-user.target"}),
        json!({}),
    );
    assert_eq!(link(&tree, "/etc/systemd/system/default.target"), "/usr/lib/systemd/system/multi-user.target");
}

#[test]
fn systemd_bad_options() {
    assert_bad_options("org.osbuild.systemd", json!({"enabled_services": "sshd"}), "expected a sequence");
    assert_bad_options("org.osbuild.systemd", json!({"enable_services": ["sshd"]}), "unknown field `enable_services`");
}

fn have_systemctl() -> bool {
    let found = Command::new("systemctl").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("no systemctl here; skipped");
    }
    found
}

/// Run the stage on the tree `prepare` makes, and `systemctl --root` as upstream does on
/// another copy; both trees must end up the same (paths, types and link targets).
fn compare_with_systemctl(case: &str, prepare: fn(&Path), options: Value) {
    let (_d, ours) = check_stage("org.osbuild.systemd", case, prepare, options.clone(), json!({}));
    let theirs = tempfile::tempdir().unwrap();
    prepare(theirs.path());
    let root = theirs.path().to_str().unwrap();
    let mut runs: Vec<Vec<String>> = Vec::new();
    for (key, verb) in [("enabled_services", "enable"), ("disabled_services", "disable"), ("masked_services", "mask")] {
        for unit in options[key].as_array().into_iter().flatten() {
            runs.push(vec!["--root".into(), root.into(), verb.into(), "--".into(), unit.as_str().unwrap().into()]);
        }
    }
    for argv in runs {
        let status = Command::new("systemctl").args(&argv).output().unwrap().status;
        assert!(status.success(), "systemctl {argv:?}");
    }
    if let Some(generators) = options["masked_generators"].as_array() {
        let gens = theirs.path().join("etc/systemd/system-generators");
        fs::create_dir_all(&gens).unwrap();
        for g in generators {
            std::os::unix::fs::symlink("/dev/null", gens.join(g.as_str().unwrap())).unwrap();
        }
    }
    if let Some(target) = options["default_target"].as_str() {
        let status = Command::new("systemctl").args(["--root", root, "set-default", target]).output().unwrap().status;
        assert!(status.success(), "systemctl set-default {target}");
    }
    let strip = |s: std::collections::BTreeMap<String, common::treediff::Entry>| {
        s.into_iter()
            .map(|(k, v)| (k, v.fields.get("type").cloned(), v.fields.get("target").cloned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(common::treediff::snapshot(&ours)), strip(common::treediff::snapshot(theirs.path())), "{case}");
}

#[test]
fn systemd_matches_systemctl() {
    if !have_systemctl() {
        return;
    }
    let options = compat::stage_test_options("systemd").remove(0);
    compare_with_systemctl("enable-disable-mask", systemd_tree, options);
}

/// Aliases, units in /etc, linked units, templates, Also= and a default target via an alias.
fn rich_tree(tree: &Path) {
    let lib = "/usr/lib/systemd/system";
    write(tree, &format!("{lib}/dbus-broker.service"), "[Install]\nWantedBy=multi-user.target\nAlias=dbus.service\n");
    std::os::unix::fs::symlink("dbus-broker.service", tree.join("usr/lib/systemd/system/dbus.service")).unwrap();
    write(tree, "/etc/systemd/system/local.service", "[Install]\nWantedBy=multi-user.target\n");
    write(tree, "/opt/ext.service", "[Install]\nWantedBy=multi-user.target\n");
    std::os::unix::fs::symlink("/opt/ext.service", tree.join("etc/systemd/system/ext.service")).unwrap();
    write(tree, &format!("{lib}/getty@.service"), "[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n");
    write(tree, &format!("{lib}/a.service"), "[Install]\nWantedBy=multi-user.target\nAlso=a.socket\n");
    write(tree, &format!("{lib}/a.socket"), "[Install]\nWantedBy=sockets.target\n");
    write(tree, &format!("{lib}/old.service"), "[Install]\nWantedBy=old.target\nAlso=old.socket\n");
    write(tree, &format!("{lib}/old.socket"), "[Install]\nWantedBy=sockets.target\n");
    write(tree, &format!("{lib}/static.service"), "[Unit]\nDescription=no install section\n");
    write(tree, &format!("{lib}/multi-user.target"), "[Unit]\n");
    std::os::unix::fs::symlink("multi-user.target", tree.join("usr/lib/systemd/system/runlevel3.target")).unwrap();
    let etc = tree.join("etc/systemd/system");
    fs::create_dir_all(etc.join("old.target.wants")).unwrap();
    fs::create_dir_all(etc.join("sockets.target.wants")).unwrap();
    std::os::unix::fs::symlink(format!("{lib}/old.service"), etc.join("old.target.wants/old.service")).unwrap();
    std::os::unix::fs::symlink(format!("{lib}/old.socket"), etc.join("sockets.target.wants/old.socket")).unwrap();
    fs::create_dir_all(etc.join("empty.wants")).unwrap();
    write(tree, &format!("{lib}/masked.service"), "[Install]\nWantedBy=multi-user.target\n");
    std::os::unix::fs::symlink("/dev/null", etc.join("masked.service")).unwrap();
    fs::create_dir_all(etc.join("x.target.wants")).unwrap();
    std::os::unix::fs::symlink(format!("{lib}/nope.service"), etc.join("x.target.wants/nope.service")).unwrap();
}

#[test]
fn systemd_matches_systemctl_on_aliases_templates_and_also() {
    if !have_systemctl() {
        return;
    }
    let options = json!({
        "enabled_services": ["dbus", "local.service", "ext", "getty@.service", "getty@tty2", "a", "static"],
        "disabled_services": ["old", "nope", "masked"],
        "masked_services": ["ldconfig", "ldconfig"],
        "default_target": "runlevel3",
    });
    compare_with_systemctl("aliases-templates-also", rich_tree, options);
}

#[test]
fn systemd_refuses_what_systemctl_refuses() {
    for (options, message) in [
        (json!({"enabled_services": ["nope"]}), "unit file nope.service does not exist"),
        (
            json!({"masked_services": ["local"]}),
            "/etc/systemd/system/local.service already exists and is not a symlink",
        ),
        (json!({"enabled_services": ["dbus", "dbus"]}), "refusing to operate on linked unit file dbus.service"),
        (json!({"default_target": "nope"}), "unit file nope.target does not exist"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        rich_tree(&tree);
        // enabling dbus creates the alias in /etc; enabling through it is refused
        let args = json!({"tree": tree, "options": options});
        fs::write(dir.path().join("args.json"), args.to_string()).unwrap();
        let code = run_stage_from_file("org.osbuild.systemd", &dir.path().join("args.json"), &dir.path().join("m"));
        assert_eq!(code, 1, "{options}");
        // and the message says why
        let stage_args: osbuild_rs::stages::StageArgs =
            serde_json::from_value(json!({"tree": tree, "options": options})).unwrap();
        let e = (find("org.osbuild.systemd").unwrap().run)(&stage_args).unwrap_err();
        assert_eq!(error_chain(&e), message);
        if have_systemctl() {
            let theirs = tempfile::tempdir().unwrap();
            rich_tree(theirs.path());
            let root = theirs.path().to_str().unwrap();
            let mut ok = true;
            for (key, verb) in [("enabled_services", "enable"), ("masked_services", "mask")] {
                for unit in options[key].as_array().into_iter().flatten() {
                    ok &= Command::new("systemctl")
                        .args(["--root", root, verb, unit.as_str().unwrap()])
                        .output()
                        .unwrap()
                        .status
                        .success();
                }
            }
            if let Some(t) = options["default_target"].as_str() {
                ok &= Command::new("systemctl")
                    .args(["--root", root, "set-default", t])
                    .output()
                    .unwrap()
                    .status
                    .success();
            }
            assert!(!ok, "systemctl accepts {options}");
        }
    }
}

fn sysusers_options() -> [(&'static str, Value); 2] {
    // upstream's test/data/stages/systemd-sysusers
    [
        (
            "usr",
            json!({"config": {"filename": "new.conf", "entries": [
                {"type": "u", "name": "sysuser-a", "id": "-"},
                {"type": "g", "name": "sysuser-a-group", "id": "101"},
                {"type": "m", "name": "sysuser-a", "id": "sysuser-a-group"}]}}),
        ),
        (
            "etc",
            json!({"config": {"path-prefix": "etc", "filename": "new-etc.conf", "entries": [
                {"type": "u", "name": "sysuser-etc", "id": "-"},
                {"type": "g", "name": "sysuser-etc-group", "id": "102"},
                {"type": "m", "name": "sysuser-etc", "id": "sysuser-etc-group"}]}}),
        ),
    ]
}

fn sysusers_tree(tree: &Path) {
    dirs(tree, &["/usr/lib/sysusers.d", "/etc/sysusers.d"]);
    write(tree, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    write(tree, "/etc/group", "root:x:0:\n");
}

#[test]
fn sysusers_d_files() {
    for (case, options) in sysusers_options() {
        let (_d, tree) = check_stage("org.osbuild.systemd-sysusers.d", case, sysusers_tree, options, json!({}));
        let (path, user) = match case {
            "usr" => ("/usr/lib/sysusers.d/new.conf", "sysuser-a"),
            _ => ("/etc/sysusers.d/new-etc.conf", "sysuser-etc"),
        };
        let group = format!("{user}-group");
        let id = if case == "usr" { 101 } else { 102 };
        assert_eq!(read(&tree, path), format!("u {user} - - - -\ng {group} {id} - - -\nm {user} {group} - - -\n"));
    }
}

#[test]
fn sysusers_d_bad_options() {
    assert_bad_options(
        "org.osbuild.systemd-sysusers.d",
        json!({"config": {"filename": "a.conf", "entries": [{"type": "x", "name": "a"}]}}),
        "unknown variant `x`, expected one of `u`, `u!`, `g`, `m`, `r`",
    );
    assert_bad_options(
        "org.osbuild.systemd-sysusers.d",
        json!({"config": {"filename": "a.conf", "entries": [{"name": "a"}]}}),
        "missing field `type`",
    );
}

/// Runs the build root's (here: the host's) systemd-sysusers on a tree with upstream's test
/// configuration; without it the stage fails. The recorded passwd/group digests are left
/// unpinned (null) as they depend on the tool's version: reset them after blessing.
#[test]
fn sysusers_applies_configuration() {
    let prepare = |t: &Path| {
        sysusers_tree(t);
        for (case, options) in sysusers_options() {
            let dir = if case == "usr" { "/usr/lib/sysusers.d" } else { "/etc/sysusers.d" };
            let config = &options["config"];
            let text: String = config["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {} - - -\n",
                        e["type"].as_str().unwrap(),
                        e["name"].as_str().unwrap(),
                        e["id"].as_str().unwrap()
                    )
                })
                .collect();
            write(t, &format!("{dir}/{}", config["filename"].as_str().unwrap()), &text);
        }
    };
    if Command::new("systemd-sysusers").arg("--version").output().is_err() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tree")).unwrap();
        let args = json!({"tree": dir.path().join("tree"), "options": {}});
        fs::write(dir.path().join("args.json"), args.to_string()).unwrap();
        assert_eq!(
            run_stage_from_file("org.osbuild.systemd-sysusers", &dir.path().join("args.json"), &dir.path().join("m")),
            1
        );
        return;
    }
    let (_d, tree) = check_stage("org.osbuild.systemd-sysusers", "new-users", prepare, json!({}), json!({}));
    let group = read(&tree, "/etc/group");
    assert!(group.contains("sysuser-a-group:x:101:sysuser-a\n"), "{group}");
    assert!(group.contains("sysuser-etc-group:x:102:sysuser-etc\n"), "{group}");
    let passwd = read(&tree, "/etc/passwd");
    assert!(passwd.lines().any(|l| l.starts_with("sysuser-a:x:")), "{passwd}");
}

#[test]
fn sysusers_bad_options() {
    assert_bad_options("org.osbuild.systemd-sysusers", json!({"root": "/"}), "unknown field `root`");
}

/// Every option set tested here fits our schema for its stage, too.
#[test]
fn tested_options_pass_the_schemas() {
    use osbuild_rs::schema::{module_schema, validate_against, ModuleKind};
    let mut all: Vec<(&str, Value)> = vec![
        ("org.osbuild.systemd", json!({"default_target": "multi-user.target"})),
        ("org.osbuild.tmpfilesd", json!({"filename": "a.conf", "config": [{"type": "x", "path": "/tmp/.sap*"}]})),
        (
            "org.osbuild.systemd.unit",
            json!({"unit": "boltd.service", "dropin": "30-boltd-debug.conf", "config": {
            "Service": {"Environment": [{"key": "G_MESSAGES_DEBUG", "value": "all"}]}}}),
        ),
        (
            "org.osbuild.systemd.unit",
            json!({"unit": "grub-boot-success.timer", "dropin": "10-x.conf",
            "unit-type": "global", "config": {"Unit": {"ConditionPathExists": "/x"}}}),
        ),
        (
            "org.osbuild.systemd-journald",
            json!({"filename": "10-test-file-journald.conf", "config": {"Journal": {
            "Storage": "persistent", "Compress": "300K", "SplitMode": "uid", "Audit": "yes"}}}),
        ),
        ("org.osbuild.systemd-sysusers", json!({})),
    ];
    for (_, o) in sysusers_options() {
        all.push(("org.osbuild.systemd-sysusers.d", o));
    }
    for (name, stage) in [
        ("systemd", "org.osbuild.systemd"),
        ("systemd-logind", "org.osbuild.systemd-logind"),
        ("systemd.preset", "org.osbuild.systemd.preset"),
        ("systemd.unit.create", "org.osbuild.systemd.unit.create"),
        ("first-boot", "org.osbuild.first-boot"),
    ] {
        all.extend(compat::stage_test_options(name).into_iter().map(|o| (stage, o)));
    }
    for (stage, options) in all {
        let schema = module_schema(ModuleKind::Stage, stage).unwrap_or_else(|| panic!("no schema for {stage}"));
        let errors = validate_against(&format!("stages/{stage}"), schema, &options);
        assert!(errors.is_empty(), "{stage}: {options}: {errors:?}");
        find(stage).unwrap().check_options(&options).unwrap();
    }
}

/// Symlinks in the tree that point at host paths are followed inside the tree only.
#[test]
fn hostile_symlinks_stay_in_the_tree() {
    let host = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    systemd_tree(&tree);
    fs::create_dir_all(tree.join("usr/lib/systemd")).unwrap();
    // /etc/systemd/system-generators and logind.conf.d lead to the host directory
    std::os::unix::fs::symlink(host.path(), tree.join("etc/systemd/system-generators")).unwrap();
    std::os::unix::fs::symlink(host.path(), tree.join("usr/lib/systemd/logind.conf.d")).unwrap();
    for (stage, options) in [
        ("org.osbuild.systemd", json!({"masked_generators": ["g"], "enabled_services": ["nftables"]})),
        ("org.osbuild.systemd-logind", json!({"filename": "a.conf", "config": {"Login": {"NAutoVTs": 1}}})),
    ] {
        let args = json!({"tree": tree, "options": options});
        fs::write(dir.path().join("args.json"), args.to_string()).unwrap();
        assert_eq!(run_stage_from_file(stage, &dir.path().join("args.json"), &dir.path().join("m")), 0, "{stage}");
    }
    assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0, "the host directory was written to");
    let inside = tree.join(host.path().strip_prefix("/").unwrap());
    assert_eq!(fs::read_link(inside.join("g")).unwrap(), Path::new("/dev/null"));
    assert!(inside.join("a.conf").is_file());
}

/// Our schemas give the same verdict as upstream's `.meta.json` on these samples (upstream
/// osbuild as `common::upstream::dir()` finds it: `OSBUILD_UPSTREAM` or ../shared/upstream).
#[test]
fn schemas_agree_with_upstream() {
    use osbuild_rs::schema::{module_schema, validate_against, ModuleKind};
    let upstream = common::upstream::dir();
    let env = |v: Value| json!({"unit": "a.service", "dropin": "a.conf", "config": {"Service": {"Environment": v}}});
    let svc = |c: Value| json!({"filename": "a.service", "config": c});
    let samples: Vec<(&str, Value)> = vec![
        ("systemd", json!({"enabled_services": ["a"], "default_target": "multi-user"})),
        ("systemd", json!({"enabled_services": "a"})),
        ("systemd", json!({"unit_dropins": {}})),
        ("systemd.unit", env(json!("A=1"))),
        ("systemd.unit", env(json!([{"key": "A", "value": "1"}]))),
        ("systemd.unit", env(json!([{"key": "A", "value": "1", "x": 1}]))),
        ("systemd.unit", env(json!([{"key": "1A", "value": "1"}]))),
        ("systemd.unit", json!({"unit": "a.socket", "dropin": "a.conf", "config": {}})),
        ("systemd.unit", json!({"unit": "a@b.timer", "dropin": "a.txt", "config": {}})),
        ("systemd.unit", json!({"unit": "a.service", "dropin": "a.conf", "unit-type": "user", "config": {}})),
        ("tmpfilesd", json!({"filename": "a.conf", "config": [{"type": "d!-", "path": "/a", "mode": "~0755"}]})),
        ("tmpfilesd", json!({"filename": "a.conf", "config": [{"type": "y", "path": "/a"}]})),
        ("tmpfilesd", json!({"filename": "a.conf", "config": [{"type": "d", "path": "/a", "mode": "755"}]})),
        ("tmpfilesd", json!({"filename": "a.conf", "config": []})),
        ("tmpfilesd", json!({"filename": "a", "config": [{"type": "d", "path": "/a"}]})),
        (
            "systemd-sysusers.d",
            json!({"config": {"filename": "a.conf", "entries": [{"type": "u", "name": "a", "x": 1}]}}),
        ),
        ("systemd-sysusers.d", json!({"config": {"filename": "a.conf", "entries": [{"type": "u", "name": "Bad"}]}})),
        ("systemd-sysusers.d", json!({"config": {"filename": "a.conf", "path-prefix": "opt", "entries": []}})),
        ("systemd-sysusers.d", json!({"config": {"filename": "a.txt", "entries": []}})),
        ("systemd-sysusers.d", json!({})),
        ("systemd-sysusers", json!({})),
        ("systemd-sysusers", json!({"root": "/"})),
        ("systemd-journald", json!({"filename": "a.conf", "config": {"Journal": {"Audit": ""}}})),
        ("systemd-journald", json!({"filename": "a.conf", "config": {"Journal": {"Storage": "x"}}})),
        ("systemd-journald", json!({"filename": "a.conf", "config": {}})),
        ("systemd-logind", json!({"filename": "a.conf", "config": {"Login": {"NAutoVTs": -1}}})),
        ("systemd-logind", json!({"filename": "a.conf", "config": {"Login": {}}})),
        ("systemd.unit.create", svc(json!({"Unit": {}, "Service": {}, "Install": {}}))),
        ("systemd.unit.create", svc(json!({"Unit": {}, "Service": {}}))),
        ("systemd.unit.create", svc(json!({"Unit": {}, "Service": {}, "Install": {}, "Socket": {}}))),
        ("systemd.unit.create", json!({"filename": "a.mount", "config": {"Mount": {"What": "/dev/a"}}})),
        ("systemd.unit.create", json!({"filename": "a.timer", "config": {"Swap": {"What": "/a"}}})),
        ("systemd.unit.create", svc(json!({"Unit": {}, "Service": {"StandardOutput": "file:/../x"}, "Install": {}}))),
        ("systemd.preset", json!({"presets": []})),
        ("systemd.preset", json!({"presets": [{"name": "a", "state": "mask"}]})),
        ("first-boot", json!({"wait_for_network": true})),
        ("first-boot", json!({"commands": [], "wait_for_network": "yes"})),
    ];
    let mut verdicts = std::collections::BTreeSet::new();
    for (name, options) in samples {
        let stage = format!("org.osbuild.{name}");
        let meta: Value = serde_json::from_str(
            &fs::read_to_string(upstream.join("stages").join(format!("{stage}.meta.json"))).unwrap(),
        )
        .unwrap();
        let mut theirs = meta["schema"].clone();
        theirs.as_object_mut().unwrap().insert("type".into(), json!("object"));
        let theirs_text: &'static str = Box::leak(theirs.to_string().into_boxed_str());
        let ours = module_schema(ModuleKind::Stage, &stage).unwrap();
        let a = validate_against(&format!("stages/{stage}"), ours, &options).is_empty();
        let b = validate_against(&format!("upstream/{stage}"), theirs_text, &options).is_empty();
        assert_eq!(a, b, "{stage}: {options}: ours {a}, upstream {b}");
        verdicts.insert(a);
    }
    assert_eq!(verdicts.len(), 2, "samples both accepted and rejected");
}
