//! Differential tests: upstream osbuild (release 191, ../shared/upstream) is the oracle.
//!
//! For every built-in stage that can run on this Debian host, the same small manifest is
//! built by osbuild-rs and by upstream: a `base` pipeline makes a small Debian-ish tree from
//! inline sources, and each case is one pipeline that copies `base` and runs the stage(s) of
//! the case on it. All cases sit in one manifest (one build each, so upstream's start-up is
//! paid once), every pipeline is exported, and the exported trees are compared: paths, types,
//! modes, owners, content, symlink targets and xattrs (`common::treediff::snapshot`).
//! Timestamps are not compared: neither implementation sets them reproducibly (files get the
//! time they were written), so mtimes and atimes always differ between two builds.
//!
//! Options come from upstream's own test manifests (`../shared/compat/manifests`, read at run
//! time) where they exercise a stage, and from cases written here for what those miss.
//!
//! `tests/data/differential.tsv` holds every stage's status (`equal`, `differs`, `not-run`)
//! with the reason; the test checks it against what it measured, so it cannot go stale.
//! `OSBUILD_RS_BLESS=1` rewrites the status column from the measurement (reasons are kept;
//! a new or changed status needs its reason written by hand).

mod common;

use common::treediff::{snapshot, Entry};
use common::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TABLE: &str = "tests/data/differential.tsv";

struct Case {
    stage: &'static str,
    name: String,
    stages: Vec<Value>,
    /// starts from an empty tree rather than a copy of `base`
    empty: bool,
    /// the pipeline's `source-epoch` (such a case gets a pipeline of its own): for image
    /// stages whose tools take SOURCE_DATE_EPOCH and so can equal upstream's byte for byte
    epoch: Option<u64>,
}

#[derive(Default)]
struct Cases {
    items: Map<String, Value>,
    cases: Vec<Case>,
    /// pipelines that cases take as inputs (built, not compared)
    helpers: Vec<Value>,
}

impl Cases {
    /// An `org.osbuild.files` input holding `data` (an inline source item), and its checksum.
    fn file(&mut self, data: &[u8]) -> (Value, String) {
        let (sum, item) = inline_item(data);
        self.items.insert(sum.clone(), item);
        (json!({"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}), sum)
    }

    /// A pipeline `name` that cases can take as a tree input: an empty tree changed by
    /// `stages`, with a source epoch, so that both implementations give every file in it the
    /// epoch as its mtime (upstream clamps what was written during the build, we clamp
    /// everything newer).
    fn helper(&mut self, name: &str, epoch: u64, stages: Vec<Value>) {
        self.helpers.push(json!({"name": name, "source-epoch": epoch, "stages": stages}));
    }

    /// One stage with `options`.
    fn add(&mut self, stage: &'static str, options: Value) {
        self.add_stages(stage, vec![json!({"type": stage, "options": options})]);
    }

    fn add_stages(&mut self, stage: &'static str, stages: Vec<Value>) {
        let n = self.cases.iter().filter(|c| c.stage == stage).count();
        self.cases.push(Case {
            stage,
            name: format!("{}-{n}", stage.trim_start_matches("org.osbuild.")),
            stages,
            empty: false,
            epoch: None,
        });
    }

    /// Every use of `stage` in upstream's test manifest `manifest` (a file of the compat
    /// corpus) that takes no inputs, devices or mounts, in order, as one case.
    fn compat(&mut self, stage: &'static str, manifest: &str) {
        let path = upstream::compat_dir().join("manifests").join(manifest);
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut stages = vec![];
        for p in m["pipelines"].as_array().unwrap() {
            for s in p["stages"].as_array().into_iter().flatten() {
                let plain = ["inputs", "devices", "mounts"].iter().all(|k| s.get(*k).is_none_or(|v| v == &json!({})));
                if s["type"] == stage && plain {
                    stages.push(json!({"type": stage, "options": s.get("options").cloned().unwrap_or(json!({}))}));
                }
            }
        }
        assert!(!stages.is_empty(), "{manifest} has no plain {stage}");
        self.add_stages(stage, stages);
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwheel:x:10:\nnogroup:x:65534:\n";
const SHADOW: &str = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n";
const GSHADOW: &str = "root:*::\ndaemon:*::\nwheel:*::\nnogroup:*::\n";
const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
    VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
const SERVICE: &str =
    "[Unit]\nDescription=Example\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";
const BLS: &str =
    "title Debian\nversion 6.1.0\nlinux /boot/vmlinuz-6.1.0\ninitrd /boot/initrd.img-6.1.0\noptions root=UUID=x ro\n";

/// The base tree every case starts from, as stages (with its files in `cases.items`).
fn base_stages(cases: &mut Cases) -> Vec<Value> {
    let dirs = [
        "/etc/systemd/system",
        "/etc/default",
        "/etc/skel",
        "/etc/selinux",
        "/etc/dnf",
        "/etc/rhsm",
        "/etc/ssh",
        "/etc/sysconfig",
        "/etc/modprobe.d",
        "/etc/cloud/cloud.cfg.d",
        "/etc/NetworkManager/conf.d",
        "/etc/NetworkManager/system-connections",
        "/etc/udev/rules.d",
        "/etc/yum.repos.d",
        "/etc/security/limits.d",
        "/etc/sysctl.d",
        "/etc/tmpfiles.d",
        "/etc/dracut.conf.d",
        "/etc/containers",
        "/etc/cron.daily",
        "/etc/greenboot",
        "/etc/rpm",
        "/etc/rhsm/facts",
        "/etc/tuned",
        "/etc/dnf/vars",
        "/usr/lib/rpm/macros.d",
        "/usr/lib/sysusers.d",
        "/usr/lib/tmpfiles.d",
        "/usr/lib/systemd/system",
        "/usr/lib/systemd/user",
        "/etc/systemd/user",
        "/usr/lib/systemd/system-preset",
        "/usr/lib/sysctl.d",
        "/usr/lib/modprobe.d",
        "/usr/lib/udev/rules.d",
        "/boot/efi/EFI/debian",
        "/srv",
        "/usr/share/zoneinfo/Europe",
        "/usr/bin",
        "/usr/sbin",
        "/boot/loader/entries",
        "/var/lib",
        "/root",
        "/home",
        "/tmp",
    ];
    let files: &[(&str, &str)] = &[
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/shadow", SHADOW),
        ("/etc/gshadow", GSHADOW),
        ("/usr/lib/os-release", OS_RELEASE),
        ("/etc/chrony.conf", "pool 2.debian.pool.ntp.org iburst\ndriftfile /var/lib/chrony/chrony.drift\nmakestep 1 3\n"),
        ("/etc/selinux/config", "# SELinux\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"),
        ("/etc/dnf/automatic.conf", "[commands]\nupgrade_type = default\napply_updates = no\n\n[emitters]\nemit_via = stdio\n"),
        ("/etc/rhsm/rhsm.conf", "[server]\nhostname = subscription.rhsm.redhat.com\n\n[rhsm]\nmanage_repos = 1\n\n[rhsmcertd]\nauto_registration = 0\n"),
        ("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin prohibit-password\n"),
        ("/etc/security/pwquality.conf", "# Configuration for systemwide password quality limits\n# minlen = 8\n# dcredit = 0\n"),
        ("/usr/lib/tuned/virtual-guest/tuned.conf", "[main]\nsummary=Optimize for running inside a virtual guest\n"),
        ("/usr/lib/tuned/balanced/tuned.conf", "[main]\nsummary=General non-specialized tuned profile\n"),
        ("/etc/greenboot/greenboot.conf", "# greenboot configuration\nGREENBOOT_MONITOR_SERVICES=\"sshd\"\nGREENBOOT_MAX_BOOT_ATTEMPTS=3\n"),
        ("/etc/dnf/plugins/product-id.conf", "[main]\nenabled=1\n"),
        ("/etc/dnf/plugins/subscription-manager.conf", "[main]\nenabled=0\n"),
        ("/etc/default/grub", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"\"\n"),
        ("/etc/skel/.profile", "# ~/.profile\n"),
        ("/etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
        ("/usr/share/zoneinfo/UTC", "TZif2 fake UTC\n"),
        ("/usr/share/zoneinfo/Europe/Prague", "TZif2 fake Prague\n"),
        ("/usr/lib/systemd/system/example.service", SERVICE),
        ("/usr/lib/systemd/system/other.service", SERVICE),
        ("/usr/lib/systemd/system/multi-user.target", "[Unit]\nDescription=Multi-User System\n"),
        ("/usr/lib/systemd/user/example-user.service", SERVICE),
        ("/boot/loader/entries/debian-6.1.0.conf", BLS),
    ];
    // the directories above, and those holding the files
    let mut all_dirs: std::collections::BTreeSet<String> = dirs.iter().map(|d| d.to_string()).collect();
    all_dirs.extend(files.iter().map(|(p, _)| Path::new(p).parent().unwrap().display().to_string()));
    let mut stages = vec![json!({"type": "org.osbuild.mkdir", "options": {"paths":
        all_dirs.iter().map(|d| json!({"path": d, "parents": true})).collect::<Vec<_>>()}})];
    let mut refs = Map::new();
    let mut paths = vec![];
    for (to, content) in files {
        let (_, sum) = cases.file(content.as_bytes());
        refs.insert(sum.clone(), json!({}));
        paths.push(json!({"from": format!("input://f/{sum}"), "to": format!("tree://{to}")}));
    }
    let input = json!({"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": refs});
    stages.push(json!({"type": "org.osbuild.copy", "inputs": {"f": input}, "options": {"paths": paths}}));
    stages.push(json!({"type": "org.osbuild.ln", "options": {"paths": [
        {"target": "../usr/lib/os-release", "link_name": "tree:///etc/os-release", "symbolic": true}]}}));
    stages.push(json!({"type": "org.osbuild.truncate", "options": {"filename": "/base.img", "size": "1MiB"}}));
    stages.push(json!({"type": "org.osbuild.chmod", "options": {"items": {
        "/etc/shadow": {"mode": "0640"}, "/etc/gshadow": {"mode": "0640"}, "/tmp": {"mode": "1777"},
        "/root": {"mode": "0700"}}}}));
    stages
}

fn all_cases(c: &mut Cases) {
    // ---- from upstream's test manifests (test/data/stages/<stage>/b.json and others)
    for (stage, manifest) in [
        ("org.osbuild.chrony", "test__data__stages__chrony__b.json"),
        ("org.osbuild.cloud-init", "test__data__stages__cloud-init__b.json"),
        ("org.osbuild.dnf-automatic.config", "test__data__stages__dnf-automatic.config__b.json"),
        ("org.osbuild.first-boot", "test__data__stages__first-boot__b.json"),
        ("org.osbuild.fstab", "test__data__stages__fstab__b.json"),
        ("org.osbuild.fstab", "test__data__manifests__fedora-boot-btrfs.json"),
        ("org.osbuild.groups", "test__data__stages__groups__b.json"),
        ("org.osbuild.hostname", "test__data__stages__hostname__b.json"),
        ("org.osbuild.kernel-cmdline", "test__data__stages__kernel-cmdline__b.json"),
        ("org.osbuild.locale", "test__data__stages__locale__b.json"),
        ("org.osbuild.modprobe", "test__data__stages__modprobe__b.json"),
        ("org.osbuild.nm.conf", "test__data__stages__nm.conf__b.json"),
        ("org.osbuild.pwquality.conf", "test__data__stages__pwquality.conf__b.json"),
        ("org.osbuild.resolv-conf", "test__data__stages__resolv-conf__b.json"),
        ("org.osbuild.rhsm.facts", "test__data__stages__rhsm.facts__b.json"),
        ("org.osbuild.selinux.config", "test__data__stages__selinux.config__b.json"),
        ("org.osbuild.sysconfig", "test__data__stages__sysconfig__a.json"),
        ("org.osbuild.sysconfig", "test__data__stages__sysconfig__b.json"),
        ("org.osbuild.systemd-logind", "test__data__stages__systemd-logind__b.json"),
        ("org.osbuild.systemd-journald", "test__data__manifests__fedora-ostree-commit.json"),
        ("org.osbuild.systemd.unit.create", "test__data__stages__systemd.unit.create__b.json"),
        ("org.osbuild.timezone", "test__data__stages__timezone__b.json"),
        ("org.osbuild.udev.rules", "test__data__stages__udev.rules__b.json"),
        ("org.osbuild.yum.repos", "test__data__stages__yum.repos__b.json"),
        ("org.osbuild.rpm.macros", "test__data__manifests__fedora-container.json"),
        ("org.osbuild.rpm.macros", "test__data__manifests__fedora-ostree-commit.json"),
        ("org.osbuild.users", "test__data__manifests__centos-stream-uki.json"),
        ("org.osbuild.fix-bls", "test__data__manifests__fedora-boot-btrfs.json"),
        ("org.osbuild.ignition", "test__data__manifests__fedora-coreos-container.json"),
        ("org.osbuild.ostree.init-fs", "test__data__manifests__fedora-coreos-container.json"),
    ] {
        c.compat(stage, manifest);
    }

    // ---- written here
    c.add("org.osbuild.chmod", json!({"items": {"/etc/hostname-x": {"mode": "a+x"}, "/etc/passwd": {"mode": "0600"}}}));
    c.cases
        .last_mut()
        .unwrap()
        .stages
        .insert(0, json!({"type": "org.osbuild.truncate", "options": {"filename": "/etc/hostname-x", "size": "10"}}));
    c.add("org.osbuild.chmod", json!({"items": {"/etc": {"mode": "g+w", "recursive": true}}}));
    c.add(
        "org.osbuild.chrony",
        json!({"servers": [{"hostname": "127.0.0.1", "minpoll": 0, "maxpoll": 4, "iburst": true,
        "prefer": true}], "leapsectz": ""}),
    );
    c.add(
        "org.osbuild.containers.storage.conf",
        json!({"config": {"storage": {"driver": "overlay", "options": {"additionalimagestores": ["/usr/share/containers/storage"]}}}}),
    );
    c.add(
        "org.osbuild.containers.storage.conf",
        json!({"filename": "/etc/containers/storage.conf", "comment": ["a", "b"],
        "config": {"storage": {"driver": "vfs", "runroot": "/run/containers/storage"}}}),
    );
    {
        let (f, sum) = c.file(b"copied by the copy stage\n");
        c.add_stages(
            "org.osbuild.copy",
            vec![json!({"type": "org.osbuild.copy", "inputs": {"f": f},
            "options": {"paths": [{"from": format!("input://f/{sum}"), "to": "tree:///etc/a"},
                                  {"from": format!("input://f/{sum}"), "to": "tree:///usr/"},
                                  {"from": "tree:///etc/skel/", "to": "tree:///root/skel"}]}})],
        );
    }
    c.add(
        "org.osbuild.cron.script",
        json!({"interval": "daily", "filename": "osbuild-x",
        "simple": {"comment": ["Example", "two"], "command": "/usr/bin/true --x"}}),
    );
    c.add(
        "org.osbuild.dnf.config",
        json!({"variables": [{"name": "release", "value": "1"}],
        "config": {"main": {"ip_resolve": "4"}}}),
    );
    c.add(
        "org.osbuild.dracut.conf",
        json!({"filename": "x.conf", "config": {"compress": "xz", "add_dracutmodules": ["a"],
        "omit_dracutmodules": ["b"], "add_drivers": ["c"], "force_drivers": ["d"], "filesystems": ["ext4"],
        "install_items": ["/x"], "early_microcode": true, "reproducible": false}}),
    );
    c.add("org.osbuild.first-boot", json!({"commands": ["/bin/a", "/bin/b c"]}));
    c.add("org.osbuild.greenboot", json!({"config": {"monitor_services": ["sshd", "NetworkManager"]}}));
    c.add("org.osbuild.groups", json!({"groups": {"g1": {"gid": 2000}, "g2": {}}}));
    c.add(
        "org.osbuild.grub2",
        json!({"rootfs": {"label": "root"}, "bootfs": {"uuid": "156f0420-627b-4151-ae6f-fda298097515"},
        "legacy": "i386-pc", "uefi": {"vendor": "debian"}, "kernel_opts": "ro quiet", "write_defaults": true,
        "config": {"timeout": 3, "terminal_output": ["console"]}}),
    );
    c.add("org.osbuild.grub2.legacy", json!({"rootfs": {"label": "root"}, "bios": {"platform": "i386-pc"},
        "uefi": {"vendor": "debian"}, "config": {"cmdline": "ro", "timeout": 3},
        "entries": [{"id": "76a22bf4-f153-4541-b6c7-0332c0dfaeac", "kernel": "6.1.0", "product": {"name": "Debian", "version": "12"}}]}));
    {
        let (f, sum) = c.file(b"some data to compress, some data to compress, some data to compress\n");
        let _ = sum;
        for (stage, opts) in [
            ("org.osbuild.gzip", json!({"filename": "data.gz", "level": 9})),
            ("org.osbuild.gzip", json!({"filename": "data.gz"})),
            ("org.osbuild.xz", json!({"filename": "data.xz"})),
            ("org.osbuild.zstd", json!({"filename": "data.zst"})),
        ] {
            c.add_stages(stage, vec![json!({"type": stage, "inputs": {"file": f.clone()}, "options": opts})]);
        }
    }
    c.add("org.osbuild.hostname", json!({"hostname": "a"}));
    c.add("org.osbuild.keymap", json!({"keymap": "us", "x11-keymap": {"layouts": ["us", "cz"]}}));
    c.add(
        "org.osbuild.ln",
        json!({"paths": [{"target": "/etc/passwd", "link_name": "tree:///etc/p", "symbolic": true},
        {"target": "../usr/lib", "link_name": "tree:///etc/l", "symbolic": true}]}),
    );
    c.add("org.osbuild.locale", json!({"language": "en_US.UTF-8"}));
    c.add("org.osbuild.machine-id", json!({"first-boot": "yes"}));
    c.add("org.osbuild.machine-id", json!({"first-boot": "no"}));
    c.add("org.osbuild.machine-id", json!({"first-boot": "preserve"}));
    c.add(
        "org.osbuild.mkdir",
        json!({"paths": [{"path": "/a/b/c", "parents": true, "mode": 448}, {"path": "/etc/x", "exist_ok": true},
        {"path": "/etc", "exist_ok": true}]}),
    );
    c.add("org.osbuild.nm.conn", json!({"filename": "eth0.nmconnection", "settings": {"connection": {"id": "eth0",
        "uuid": "d7b9bb24-9d8c-4ab4-8e7a-7a0e0f5c6a51", "type": "ethernet", "interface-name": "eth0"}, "ipv4": {"method": "auto"}}}));
    c.add("org.osbuild.noop", json!({}));
    c.add(
        "org.osbuild.pam.limits.conf",
        json!({"filename": "90-x.conf", "config": [{"domain": "*", "type": "soft",
        "item": "nofile", "value": 1024}, {"domain": "@wheel", "type": "-", "item": "core", "value": "unlimited"}]}),
    );
    c.add("org.osbuild.rhsm", json!({"dnf-plugins": {"product-id": {"enabled": false}, "subscription-manager": {"enabled": true}},
        "subscription-manager": {"rhsm": {"manage_repos": false, "auto_enable_yum_plugins": false}, "rhsmcertd": {"auto_registration": true}}}));
    c.add("org.osbuild.resolv-conf", json!({"nameserver": ["1.1.1.1", "::1"]}));
    c.add("org.osbuild.selinux.config", json!({"state": "disabled"}));
    c.add(
        "org.osbuild.sshd.config",
        json!({"config": {"PasswordAuthentication": false, "ChallengeResponseAuthentication": false,
        "ClientAliveInterval": 180, "PermitRootLogin": false}}),
    );
    c.add(
        "org.osbuild.sysctld",
        json!({"filename": "x.conf", "config": [{"key": "net.ipv4.ip_forward", "value": "1"},
        {"key": "-kernel.yama.*"}]}),
    );
    c.add(
        "org.osbuild.systemd",
        json!({"enabled_services": ["example.service"], "disabled_services": ["other.service"],
        "masked_services": ["masked.service"], "default_target": "multi-user.target"}),
    );
    c.add(
        "org.osbuild.systemd-journald",
        json!({"filename": "x.conf", "config": {"Journal": {"Storage": "volatile",
        "Compress": "yes"}}}),
    );
    c.add("org.osbuild.systemd-sysusers.d", json!({"config": {"filename": "x.conf", "entries": [
        {"type": "u", "name": "svc", "id": "900", "gecos": "Service", "home": "/var/lib/svc", "shell": "/usr/sbin/nologin"},
        {"type": "g", "name": "grp"}, {"type": "m", "name": "svc", "group": "grp"}]}}));
    c.add_stages(
        "org.osbuild.systemd-sysusers",
        vec![
            json!({"type": "org.osbuild.systemd-sysusers.d", "options": {"config": {"filename": "y.conf",
            "entries": [{"type": "u", "name": "svc", "id": "900"}, {"type": "g", "name": "grp", "id": "901"}]}}}),
            json!({"type": "org.osbuild.systemd-sysusers", "options": {}}),
        ],
    );
    c.add(
        "org.osbuild.systemd.preset",
        json!({"presets": [{"name": "example.service", "state": "enable"},
        {"name": "other.service", "state": "disable"}]}),
    );
    c.add(
        "org.osbuild.systemd.unit",
        json!({"unit": "example.service", "dropin": "10-x.conf",
        "config": {"Service": {"Environment": [{"key": "A", "value": "1"}]}}}),
    );
    c.add(
        "org.osbuild.systemd.unit",
        json!({"unit": "example-user.service", "dropin": "10-x.conf", "unit-type": "global",
        "config": {"Unit": {"ConditionPathExists": "/x"}}}),
    );
    c.add(
        "org.osbuild.systemd.unit.create",
        json!({"filename": "x.service", "config": {"Unit": {"Description": "X"},
        "Service": {"Type": "oneshot", "ExecStart": ["/bin/true"]}, "Install": {"WantedBy": ["multi-user.target"]}}}),
    );
    c.add(
        "org.osbuild.tmpfilesd",
        json!({"filename": "x.conf", "config": [{"type": "d", "path": "/var/x", "mode": "0755",
        "user": "root", "group": "root", "age": "10d"}, {"type": "L+", "path": "/var/y", "argument": "/x"}]}),
    );
    c.add("org.osbuild.truncate", json!({"filename": "/var/disk.img", "size": "1MiB"}));
    c.add("org.osbuild.tuned", json!({"profiles": ["virtual-guest", "balanced"]}));
    c.add("org.osbuild.timezone", json!({"zone": "UTC"}));
    c.add_stages("org.osbuild.users", vec![
        json!({"type": "org.osbuild.groups", "options": {"groups": {"alice": {"gid": 1200}}}}),
        json!({"type": "org.osbuild.users", "options": {"users": {"alice": {"uid": 1200, "gid": 1200, "groups": ["wheel"],
            "description": "Alice", "home": "/home/alice", "shell": "/bin/bash", "password": "$6$xyz$abc",
            "key": "ssh-ed25519 AAAA alice@x"}}}}),
    ]);
    c.add("org.osbuild.users", json!({"users": {"root": {"password": "$6$r$x"}, "bob": {}}}));
    c.add("org.osbuild.kernel-cmdline", json!({"root_fs_uuid": "76a22bf4-f153-4541-b6c7-0332c0dfaeac"}));
    c.add("org.osbuild.ignition", json!({"network": ["ip=dhcp"]}));
    {
        // a tarball with modes, owners, a symlink and a hard link, made with fixed times
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("opt/x")).unwrap();
        std::fs::write(src.join("opt/x/a"), "a\n").unwrap();
        std::os::unix::fs::symlink("a", src.join("opt/x/l")).unwrap();
        std::fs::hard_link(src.join("opt/x/a"), src.join("opt/x/h")).unwrap();
        let tarball = dir.path().join("t.tar");
        let st = Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=1", "--group=10", "--numeric-owner", "-cf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .arg("opt")
            .status()
            .unwrap();
        assert!(st.success());
        let (f, _) = c.file(&std::fs::read(&tarball).unwrap());
        for opts in [json!({}), json!({"prefix": "/srv"})] {
            c.add_stages(
                "org.osbuild.untar",
                vec![json!({"type": "org.osbuild.untar", "inputs": {"file": f.clone()}, "options": opts})],
            );
        }
    }
    for format in [
        json!({"type": "qcow2", "compat": "1.1"}),
        json!({"type": "vmdk", "subformat": "streamOptimized"}),
        json!({"type": "vpc"}),
    ] {
        c.add_stages(
            "org.osbuild.qemu",
            vec![json!({"type": "org.osbuild.qemu",
            "inputs": {"image": {"type": "org.osbuild.files", "origin": "org.osbuild.pipeline",
                                 "references": {"name:base": {"file": "base.img"}}}},
            "options": {"filename": "disk", "format": format}})],
        );
    }
    c.add("org.osbuild.ostree.init", json!({"path": "/repo", "mode": "archive"}));
    c.add_stages(
        "org.osbuild.ostree.config",
        vec![
            json!({"type": "org.osbuild.ostree.init", "options": {"path": "/ostree/repo", "mode": "bare"}}),
            json!({"type": "org.osbuild.ostree.config", "options": {"repo": "/ostree/repo",
            "config": {"sysroot": {"readonly": true, "bootloader": "none"}}}}),
        ],
    );
    c.add_stages(
        "org.osbuild.ostree.remotes",
        vec![
            json!({"type": "org.osbuild.ostree.init", "options": {"path": "/ostree/repo", "mode": "bare"}}),
            json!({"type": "org.osbuild.ostree.remotes", "options": {"repo": "/ostree/repo",
            "remotes": [{"name": "r", "url": "https://example.com/repo", "branches": ["a/b"], "gpgkeys": []}]}}),
        ],
    );
    c.add_stages(
        "org.osbuild.ostree.os-init",
        vec![
            json!({"type": "org.osbuild.ostree.init-fs", "options": {}}),
            json!({"type": "org.osbuild.ostree.os-init", "options": {"osname": "debian"}}),
        ],
    );
    c.cases.last_mut().unwrap().empty = true; // a sysroot: boot/loader must not be a directory
                                              // Device stages: a loopback device on an image file in the tree, compared byte for byte.
    let dev = |stage: &str, size: &str, options: Value| {
        vec![
            json!({"type": "org.osbuild.truncate", "options": {"filename": format!("/{stage}.img"), "size": size}}),
            json!({"type": stage, "options": options,
                   "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": format!("{stage}.img")}}}}),
        ]
    };
    let gpt_parts = json!([
        {"start": 2048, "size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "BIOS-BOOT",
         "uuid": "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "bootable": true},
        {"start": 4096, "size": 8192, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "name": "root",
         "uuid": "6264D520-3FB9-423F-8AB8-7A0A8E3D3562"}]);
    c.add_stages(
        "org.osbuild.sfdisk",
        dev(
            "org.osbuild.sfdisk",
            "8MiB",
            json!({"label": "gpt",
        "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0", "partitions": gpt_parts}),
        ),
    );
    c.add_stages(
        "org.osbuild.sfdisk",
        dev(
            "org.osbuild.sfdisk",
            "8MiB",
            json!({"label": "dos", "uuid": "0x14fc63d2",
        "partitions": [{"start": 2048, "size": 4096, "type": "83", "bootable": true}, {"start": 6144, "type": "82"}]}),
        ),
    );
    c.add_stages(
        "org.osbuild.sgdisk",
        dev(
            "org.osbuild.sgdisk",
            "8MiB",
            json!({"label": "gpt",
        "uuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0", "partitions": gpt_parts}),
        ),
    );
    c.add_stages("org.osbuild.parted", dev("org.osbuild.parted", "8MiB", json!({"label": "gpt",
        "partitions": [{"start": 2048, "size": 4096, "name": "a", "bootable": true}, {"start": 6144, "size": 4096, "name": "b"}]})));
    c.add_stages(
        "org.osbuild.mkswap",
        dev("org.osbuild.mkswap", "1MiB", json!({"uuid": "2ba0dd4e-b6b6-41b7-9ade-dcd8bd10a7c7", "label": "swap"})),
    );
    c.add_stages(
        "org.osbuild.mkfs.fat",
        dev("org.osbuild.mkfs.fat", "4MiB", json!({"volid": "7B7795E7", "label": "EFI"})),
    );
    c.add_stages(
        "org.osbuild.mkfs.ext4",
        dev("org.osbuild.mkfs.ext4", "8MiB", json!({"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", "label": "root"})),
    );
    c.add_stages(
        "org.osbuild.mkfs.btrfs",
        dev(
            "org.osbuild.mkfs.btrfs",
            "120MiB",
            json!({"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", "label": "root", "metadata": "dup"}),
        ),
    );
    // Image stages: the tree of `base` packed into a file, with a source epoch (mksquashfs
    // and mkfs.erofs take SOURCE_DATE_EPOCH as the creation time and clamp file times to it).
    for (stage, options) in [
        ("org.osbuild.squashfs", json!({"filename": "base.squashfs", "compression": {"method": "lz4"}})),
        (
            "org.osbuild.squashfs",
            json!({"filename": "/var/base.squashfs", "compression": {"method": "xz", "options": {"bcj": "x86"}},
                   "exclude_paths": ["etc/ssh.*", "usr/lib/systemd/.*"]}),
        ),
        ("org.osbuild.squashfs", json!({"filename": "etc.squashfs", "source": "input://tree/etc/"})),
        (
            "org.osbuild.erofs",
            json!({"filename": "base.erofs", "compression": {"method": "lz4hc", "level": 12},
                   "exclude_paths": ["etc/ssh"]}),
        ),
    ] {
        c.add_stages(stage, vec![json!({"type": stage, "inputs": {"tree": tree_input("base")}, "options": options})]);
        c.cases.last_mut().unwrap().epoch = Some(1_700_000_000);
    }
    // ISO images of a small tree whose files all carry the epoch as their mtime (xorriso
    // records file times; it takes SOURCE_DATE_EPOCH for the volume dates and GPT GUIDs).
    const EPOCH: u64 = 1_700_000_000;
    let truncate =
        |f: &str, size: &str| json!({"type": "org.osbuild.truncate", "options": {"filename": f, "size": size}});
    c.helper(
        "iso-tree",
        EPOCH,
        vec![
            json!({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/isolinux"}, {"path": "/images"},
                {"path": "/EFI/BOOT", "parents": true}]}}),
            truncate("/isolinux/isolinux.bin", "2048"),
            truncate("/images/eltorito.img", "32768"),
            truncate("/images/efiboot.img", "1MiB"),
            truncate("/EFI/BOOT/BOOTX64.EFI", "4096"),
        ],
    );
    let iso = |options: Value| json!({"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input("iso-tree")}, "options": options});
    let syslinux_iso = iso(json!({"filename": "boot.iso", "volid": "OSBUILD-RS-43", "sysid": "LINUX",
        "boot": {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"}, "efi": "images/efiboot.img",
        "isohybridmbr": "/usr/lib/ISOLINUX/isohdpfx.bin", "exclude": ["EFI"]}));
    let grub2_iso = iso(json!({"filename": "grub.iso", "volid": "GRUB2", "isolevel": 3, "appid": "app",
        "pub": "osbuild", "prep": "test", "grub2mbr": "/usr/lib/grub/i386-pc/boot_hybrid.img",
        "efi": "images/efiboot.img", "boot": {"image": "images/eltorito.img", "catalog": "boot.cat"}}));
    for (stage, stages) in [
        ("org.osbuild.xorrisofs", vec![syslinux_iso.clone()]),
        ("org.osbuild.xorrisofs", vec![grub2_iso]),
        (
            "org.osbuild.implantisomd5",
            vec![syslinux_iso, json!({"type": "org.osbuild.implantisomd5", "options": {"filename": "boot.iso"}})],
        ),
    ] {
        c.add_stages(stage, stages);
        c.cases.last_mut().unwrap().epoch = Some(EPOCH);
    }
    for options in [
        json!({"filename": "initrd.cpio"}),
        json!({"filename": "/boot/x.cpio", "root-node": "omit", "format": "odc", "owner": {"user": "root", "group": "root"}}),
    ] {
        c.add_stages(
            "org.osbuild.cpio.out",
            vec![
                json!({"type": "org.osbuild.cpio.out", "inputs": {"tree": tree_input("iso-tree")}, "options": options}),
            ],
        );
    }
    // The installer's metadata files. discinfo writes the clock's time (ours: the epoch when
    // there is one), buildstamp the clock's minute.
    c.compat("org.osbuild.buildstamp", "test__data__manifests__fedora-ostree-bootiso.json");
    c.compat("org.osbuild.discinfo", "test__data__manifests__fedora-ostree-bootiso.json");
    c.compat("org.osbuild.kickstart", "test__data__manifests__fedora-ostree-bootiso.json");
    c.compat("org.osbuild.anaconda", "test__data__manifests__fedora-ostree-bootiso.json");
    c.add(
        "org.osbuild.anaconda",
        json!({"activatable-modules": ["org.fedoraproject.Anaconda.Modules.Timezone"],
               "forbidden-modules": ["org.fedoraproject.Anaconda.Modules.Subscription"],
               "optional-modules": ["org.fedoraproject.Anaconda.Modules.Security", "x"]}),
    );
    c.add(
        "org.osbuild.kickstart",
        json!({"path": "/usr/share/anaconda/interactive-defaults.ks",
            "ostreecontainer": {"url": "/run/install/repo/container", "transport": "oci", "stateroot": "debian"},
            "groups": {"g1": {"gid": 1200}, "g2": {}},
            "users": {"alice": {"uid": 1200, "gid": 1200, "shell": "/bin/bash", "home": "/home/a",
                                "key": "ssh-ed25519 AAA a@b", "groups": ["wheel", "adm"], "password": "$6$x"}},
            "rootpw": {"lock": true}, "lang": "en_US.UTF-8", "keyboard": "us", "timezone": "UTC", "zerombr": true,
            "clearpart": {"all": true, "initlabel": true, "disklabel": "gpt"}, "display_mode": "cmdline",
            "autopart": {"type": "plain", "fstype": "xfs", "nohome": true}, "reboot": {"eject": true},
            "network": [{"device": "link", "bootproto": "dhcp", "nameservers": ["1.1.1.1"], "activate": true}],
            "bootloader": {"append": "console=ttyS0"},
            "%post": [{"erroronfail": true, "log": "/root/post.log", "commands": ["bootc switch --mutate-in-place x"]}]}),
    );
    c.add_stages(
        "org.osbuild.treeinfo",
        vec![
            json!({"type": "org.osbuild.truncate", "options": {"filename": "/testfile1", "size": "1000"}}),
            json!({"type": "org.osbuild.treeinfo", "options": {"path": "/.treeinfo", "treeinfo": {
                "checksums": ["testfile1", "/etc/passwd"], "general": {"arch": "x86_64", "family": "Fedora",
                "name": "Fedora 21", "platforms": ["x86_64", "xen"], "timestamp": 1417653911, "version": "21"}}}}),
            json!({"type": "org.osbuild.treeinfo", "options": {"path": "/sub/dir/.treeinfo", "treeinfo": {
                "header": {"x": "y"}, "release": {"name": "Fedora", "short": "F", "version": "43"},
                "images-x86_64": {"kernel": "images/pxeboot/vmlinuz"},
                "images": [{"name": "x86_64", "config": {"initrd": "images/pxeboot/initrd.img"}}, {"config": {"a": true}}],
                "tree": {"build_timestamp": 1.5, "variants": ["BaseOS", "AppStream"]}, "stage2": {"mainimage": "images/install.img"}}}}),
        ],
    );
    c.add_stages(
        "org.osbuild.mkfs.xfs",
        dev("org.osbuild.mkfs.xfs", "300MiB", json!({"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", "label": "root"})),
    );
}

fn run_both(env: &Env, lib: &Path, manifest: &Path, exports: &[String]) {
    let mut up = upstream::command(lib);
    up.arg("--store").arg(env.path("up-store")).arg("--output-directory").arg(env.path("up-out"));
    let mut rs = Command::new(bin());
    rs.arg("--store").arg(env.path("rs-store")).arg("--output-directory").arg(env.path("rs-out"));
    for e in exports {
        up.args(["--export", e]);
        rs.args(["--export", e]);
    }
    up.arg(manifest);
    rs.arg(manifest);
    let children: Vec<_> = [("upstream", &mut up), ("osbuild-rs", &mut rs)]
        .into_iter()
        .map(|(who, c)| (who, c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()))
        .collect();
    let mut failed = vec![];
    for (who, child) in children {
        let o = child.wait_with_output().unwrap();
        if !o.status.success() {
            let tail = |b: &[u8]| {
                let s = String::from_utf8_lossy(b).into_owned();
                s[s.len().saturating_sub(4000)..].to_owned()
            };
            failed.push(format!("{who} failed ({:?}):\n{}\n{}", o.status, tail(&o.stdout), tail(&o.stderr)));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A readable account of how the trees differ, with small text contents shown.
fn describe(ours: &Path, theirs: &Path, a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut out = vec![];
    for path in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (a.get(path), b.get(path)) {
            (Some(_), None) => out.push(format!("{path}: only ours")),
            (None, Some(_)) => out.push(format!("{path}: only upstream's")),
            (Some(x), Some(y)) if x != y => {
                for k in x.fields.keys().chain(y.fields.keys()).collect::<std::collections::BTreeSet<_>>() {
                    let (u, v) = (x.fields.get(k), y.fields.get(k));
                    if u != v {
                        if *k == "content" {
                            let rel = path.trim_start_matches('/');
                            let (p, q) =
                                (std::fs::read(ours.join(rel)).unwrap(), std::fs::read(theirs.join(rel)).unwrap());
                            let text = |d: &[u8]| {
                                if d.len() < 3000 {
                                    format!("{:?}", String::from_utf8_lossy(d))
                                } else {
                                    format!("{} bytes", d.len())
                                }
                            };
                            out.push(format!(
                                "{path}: content\n    ours:     {}\n    upstream: {}",
                                text(&p),
                                text(&q)
                            ));
                        } else {
                            out.push(format!("{path}: {k}: ours {:?}, upstream {:?}", u, v));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn read_table() -> Vec<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLE);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let mut next = || f.next().unwrap_or("").to_owned();
            (next(), next(), next())
        })
        .collect()
}

#[test]
fn stages_build_the_same_trees_as_upstream() {
    let started = Instant::now();
    let env = Env::new();
    let lib = upstream::runnable_copy(env.dir.path());
    let mut cases = Cases::default();
    let base = base_stages(&mut cases);
    all_cases(&mut cases);
    // OSBUILD_RS_DIFF_ONLY=a,b runs only the cases whose name contains a or b (no table check).
    let only = std::env::var("OSBUILD_RS_DIFF_ONLY").ok();
    if let Some(only) = &only {
        cases.cases.retain(|c| only.split(',').any(|o| c.name.contains(o)));
    }

    // Upstream takes most of a second per stage (its sandbox set-up), so cases share
    // pipelines: group k holds the k-th case of every stage, after one copy of `base`. Cases
    // of stages the table says differ (and those needing an empty tree) get a pipeline of
    // their own, so that their difference is seen alone. A group that differs marks every
    // stage in it as differing: isolate them (mark one `differs`) to see which.
    let table = read_table();
    let isolated: std::collections::BTreeSet<&str> =
        table.iter().filter(|(_, st, _)| st == "differs" || st == "varies").map(|(s, _, _)| s.as_str()).collect();
    let mut pipelines: Vec<(String, Vec<usize>)> = vec![];
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, case) in cases.cases.iter().enumerate() {
        // useradd and groupadd leave /etc/.pwd.lock, which a later hostname, keymap, locale or
        // timezone stage removes in osbuild-rs (as current systemd-firstboot does on Fedora) but
        // not in upstream on Debian 12 (its systemd-firstboot 252 keeps it): keep them apart.
        let leaves_lock = ["org.osbuild.users", "org.osbuild.groups"].contains(&case.stage);
        if case.empty || case.epoch.is_some() || leaves_lock || isolated.contains(case.stage) {
            pipelines.push((case.name.clone(), vec![i]));
            continue;
        }
        let k = seen.entry(case.stage).or_default();
        let name = format!("group-{k}");
        *k += 1;
        match pipelines.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(i),
            None => pipelines.push((name, vec![i])),
        }
    }
    let mut manifest_pipelines = vec![json!({"name": "base", "stages": base})];
    manifest_pipelines.extend(cases.helpers.iter().cloned());
    for (name, members) in &pipelines {
        let mut stages = vec![];
        if !cases.cases[members[0]].empty {
            stages.push(json!({"type": "org.osbuild.copy", "inputs": {"tree": tree_input("base")},
                "options": {"paths": [{"from": "input://tree/", "to": "tree:///"}]}}));
        }
        for &i in members {
            stages.extend(cases.cases[i].stages.iter().cloned());
        }
        let mut pipeline = json!({"name": name, "stages": stages});
        if let Some(epoch) = cases.cases[members[0]].epoch {
            pipeline["source-epoch"] = json!(epoch);
        }
        manifest_pipelines.push(pipeline);
    }
    let exports: Vec<String> = pipelines.iter().map(|(n, _)| n.clone()).collect();
    let manifest = env.write_manifest(
        "manifest.json",
        &json!({"version": "2", "sources": {"org.osbuild.inline": {"items": cases.items}}, "pipelines": manifest_pipelines}),
    );
    run_both(&env, &lib, &manifest, &exports);
    let built = started.elapsed();

    // stage -> (cases compared, cases equal)
    let mut measured: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut report = vec![];
    for (name, members) in &pipelines {
        let (ours, theirs) = (env.path("rs-out").join(name), env.path("up-out").join(name));
        let (a, b) = (snapshot(&ours), snapshot(&theirs));
        let names: Vec<&str> = members.iter().map(|&i| cases.cases[i].name.as_str()).collect();
        for &i in members {
            let m = measured.entry(cases.cases[i].stage).or_default();
            m.0 += 1;
            m.1 += usize::from(a == b);
        }
        if a == b {
            println!("equal    {name}: {}", names.join(" "));
        } else {
            let d = describe(&ours, &theirs, &a, &b);
            println!("differs  {name}: {}\n  {}", names.join(" "), d.join("\n  "));
            report.push(format!("{name}: {}", d.first().cloned().unwrap_or_default()));
        }
    }

    // Compare with the recorded table.
    let registry: Vec<&str> = osbuild_rs::stages::registry().iter().map(|s| s.name).collect();
    let recorded: BTreeMap<&str, (&str, &str)> =
        table.iter().map(|(s, st, r)| (s.as_str(), (st.as_str(), r.as_str()))).collect();
    let status_of = |stage: &str| match measured.get(stage) {
        None => "not-run",
        Some((n, e)) if n == e => "equal",
        Some(_) => "differs",
    };
    if std::env::var_os("OSBUILD_RS_BLESS").is_some() {
        let mut text = String::from("stage\tstatus\treason\n");
        for s in &registry {
            let reason = recorded.get(s).map(|r| r.1).unwrap_or("TODO: say why");
            let status = match recorded.get(s) {
                Some(("varies", _)) => "varies",
                _ => status_of(s),
            };
            text.push_str(&format!("{s}\t{status}\t{reason}\n"));
        }
        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLE), text).unwrap();
    }
    let mut problems = vec![];
    for s in &registry {
        let now = status_of(s);
        match recorded.get(s) {
            None => problems.push(format!("{s}: missing from {TABLE} (measured {now})")),
            Some((st, reason)) => {
                // `varies`: the result depends on the clock (a tool that records the current
                // second equals upstream's when both run within it), so either is right.
                let accepted = *st == now || (*st == "varies" && now != "not-run");
                if !accepted {
                    problems.push(format!("{s}: {TABLE} says {st}, measured {now}"));
                }
                if now != "equal" && reason.trim().is_empty() {
                    problems.push(format!("{s}: {now} needs a reason in {TABLE}"));
                }
            }
        }
    }
    for s in recorded.keys() {
        if !registry.contains(s) {
            problems.push(format!("{s}: in {TABLE} but not a built-in stage"));
        }
    }
    let compared = measured.len();
    let equal = registry.iter().filter(|s| status_of(s) == "equal").count();
    let score = format!(
        "differential score (vs upstream osbuild): {equal}/{compared} stages equal ({} cases; {} stages not run, see {TABLE}); builds {:.1}s, total {:.1}s",
        cases.cases.len(),
        registry.len() - compared,
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("\n{score}");
    // for `make test` to show (the passing test's output is captured)
    let _ = std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-score.txt"), score + "\n");
    if only.is_some() {
        return;
    }
    assert!(problems.is_empty(), "{}\ndiffering cases:\n{}", problems.join("\n"), report.join("\n"));
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
}
