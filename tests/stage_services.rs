//! Tree-difference tests (recorded in tests/data/stages/) for the configuration stages of
//! RPM-based OS trees. Where upstream's own stage test (`test/data/stages/<name>/b.json`)
//! is in the shared compat set, its options are loaded from there and run on a tree holding
//! the stock file the stage edits.

mod common;
#[path = "common/compat.rs"]
mod compat;

use common::treediff::check_stage;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn write(tree: &Path, rel: &str, content: &str, mode: u32) {
    let p = tree.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn read(tree: &Path, rel: &str) -> String {
    fs::read_to_string(tree.join(rel)).unwrap()
}

fn mode(tree: &Path, rel: &str) -> u32 {
    fs::metadata(tree.join(rel)).unwrap().permissions().mode() & 0o7777
}

/// Whether `options` pass our embedded schema for `stage`.
fn schema_errors(stage: &str, options: &Value) -> Vec<String> {
    let text = osbuild_rs::schema::module_schema(osbuild_rs::schema::ModuleKind::Stage, stage)
        .unwrap_or_else(|| panic!("no schema for {stage}"));
    osbuild_rs::schema::validate_against(&format!("stages/{stage}"), text, options)
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// [`check_stage`] for options that must also pass the stage's schema.
fn check(
    stage: &str,
    case: &str,
    prepare: impl FnOnce(&Path),
    options: Value,
    inputs: Value,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let errors = schema_errors(stage, &options);
    assert!(errors.is_empty(), "{stage} case {case}: schema rejects the options: {errors:?}");
    check_stage(stage, case, prepare, options, inputs)
}

/// Run `stage` with bad options through the stage entry point: it must fail.
fn rejects(stage: &str, options: Value, want: &str) {
    assert!(!schema_errors(stage, &options).is_empty(), "{stage}: schema accepts {options}");
    let info = osbuild_rs::stages::find(stage).unwrap();
    let e = osbuild_rs::stages::error_chain(&info.check_options(&options).unwrap_err());
    assert!(e.contains(want), "{stage}: {e}");
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("tree")).unwrap();
    let args = json!({"tree": dir.path().join("tree"), "options": options});
    let args_path = dir.path().join("arguments.json");
    fs::write(&args_path, serde_json::to_vec(&args).unwrap()).unwrap();
    assert_eq!(osbuild_rs::stages::run_stage_from_file(stage, &args_path, &dir.path().join("meta")), 1);
}

// ---- org.osbuild.resolv-conf

#[test]
fn resolv_conf_upstream_case() {
    let opts = compat::stage_test_options("resolv-conf");
    let (_d, tree) = check("org.osbuild.resolv-conf", "upstream", |_| {}, opts[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "etc/resolv.conf"),
        "# This file was created by osbuild\nsearch osbuild.org\nnameserver 1.2.3.4\n"
    );
    assert_eq!(mode(&tree, "etc/resolv.conf"), 0o644);
}

#[test]
fn resolv_conf_replaces_symlink() {
    let prepare = |t: &Path| {
        fs::create_dir(t.join("etc")).unwrap();
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", t.join("etc/resolv.conf")).unwrap();
    };
    let opts = json!({"nameserver": ["8.8.8.8", "2001:4860:4860::8888"]});
    let (_d, tree) = check("org.osbuild.resolv-conf", "replace-symlink", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/resolv.conf"),
        "# This file was created by osbuild\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n"
    );
}

// ---- org.osbuild.pam.limits.conf

#[test]
fn pam_limits_conf_sap() {
    let prepare = |t: &Path| fs::create_dir_all(t.join("etc/security/limits.d")).unwrap();
    // upstream's test/data/stages/pam.limits.conf/b.json
    let mut config = vec![];
    for item in ["nofile", "nproc"] {
        for domain in ["@sapsys", "@dba"] {
            for ty in ["hard", "soft"] {
                let value = if item == "nofile" { json!(65536) } else { json!("unlimited") };
                config.push(json!({"domain": domain, "type": ty, "item": item, "value": value}));
            }
        }
    }
    let opts = json!({"filename": "99-sap.conf", "config": config});
    let (_d, tree) = check("org.osbuild.pam.limits.conf", "sap", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/security/limits.d/99-sap.conf"),
        "@sapsys hard nofile 65536\n@sapsys soft nofile 65536\n@dba hard nofile 65536\n@dba soft nofile 65536\n\
         @sapsys hard nproc unlimited\n@sapsys soft nproc unlimited\n@dba hard nproc unlimited\n@dba soft nproc unlimited\n"
    );
    assert_eq!(mode(&tree, "etc/security/limits.d/99-sap.conf"), 0o644);
}

// ---- org.osbuild.pwquality.conf

/// The stock file as libpwquality ships it (settings commented out), abridged.
const PWQUALITY_CONF: &str = "# Configuration for systemwide password quality limits\n\
# Defaults:\n\
#\n\
# Minimum acceptable size for the new password (plus one if\n\
# credits are not disabled which is the default). (See pam_cracklib manual.)\n\
# Cannot be set to lower value than 6.\n\
# minlen = 8\n\
#\n\
# The maximum credit for having digits in the new password. If less than 0\n\
# it is the minimum number of digits in the new password.\n\
# dcredit = 0\n\
#\n\
# The minimum number of required classes of characters for the new\n\
# password (digits, uppercase, lowercase, others).\n\
# minclass = 0\n\
#\n\
# Whether the check is enforced for root.\n\
# enforce_for_root\n";

#[test]
fn pwquality_conf_upstream_case() {
    let opts = compat::stage_test_options("pwquality.conf");
    let prepare = |t: &Path| write(t, "etc/security/pwquality.conf", PWQUALITY_CONF, 0o644);
    let (_d, tree) = check("org.osbuild.pwquality.conf", "upstream-first", prepare, opts[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "etc/security/pwquality.conf"),
        format!("{PWQUALITY_CONF}minlen = 9\nminclass = 0\ndcredit = 1\n")
    );
}

#[test]
fn pwquality_conf_upstream_twice() {
    // upstream's b.json runs the stage twice: the second run rewrites the lines in place
    let opts = compat::stage_test_options("pwquality.conf");
    let first = format!("{PWQUALITY_CONF}minlen = 9\nminclass = 0\ndcredit = 1\n");
    let prepare = |t: &Path| write(t, "etc/security/pwquality.conf", &first, 0o644);
    let (_d, tree) = check("org.osbuild.pwquality.conf", "upstream-second", prepare, opts[1].clone(), json!({}));
    assert_eq!(
        read(&tree, "etc/security/pwquality.conf"),
        format!("{PWQUALITY_CONF}minlen = 6\nminclass = 3\ndcredit = 0\n")
    );
}

// ---- org.osbuild.sshd.config

/// The settings part of a stock Fedora sshd_config, abridged.
const SSHD_CONFIG: &str = "#\t$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $\n\
\n\
Include /etc/ssh/sshd_config.d/*.conf\n\
\n\
#PermitRootLogin prohibit-password\n\
#PasswordAuthentication yes\n\
#KbdInteractiveAuthentication yes\n\
#ClientAliveInterval 0\n\
\n\
Subsystem\tsftp\t/usr/libexec/openssh/sftp-server\n";

#[test]
fn sshd_config_upstream_case() {
    // upstream's test/data/stages/sshd.config/b.json: two runs; here each on its own tree
    let prepare = |t: &Path| write(t, "etc/ssh/sshd_config", SSHD_CONFIG, 0o600);
    let opts = json!({"config": {"PasswordAuthentication": false, "ChallengeResponseAuthentication": false,
                                  "ClientAliveInterval": 180, "PermitRootLogin": "forced-commands-only"}});
    let (_d, tree) = check("org.osbuild.sshd.config", "append", prepare, opts, json!({}));
    let first = format!(
        "{SSHD_CONFIG}PasswordAuthentication no\nChallengeResponseAuthentication no\nClientAliveInterval 180\n\
         PermitRootLogin forced-commands-only\n"
    );
    assert_eq!(read(&tree, "etc/ssh/sshd_config"), first);
    assert_eq!(mode(&tree, "etc/ssh/sshd_config"), 0o600);

    let prepare = |t: &Path| write(t, "etc/ssh/sshd_config", &first, 0o600);
    let opts = json!({"config": {"PasswordAuthentication": false, "ChallengeResponseAuthentication": true,
                                  "ClientAliveInterval": 200, "PermitRootLogin": false}});
    let (_d, tree) = check("org.osbuild.sshd.config", "replace", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/ssh/sshd_config"),
        format!(
            "{SSHD_CONFIG}PasswordAuthentication no\nChallengeResponseAuthentication yes\nClientAliveInterval 200\n\
             PermitRootLogin no\n"
        )
    );
}

// ---- org.osbuild.cron.script

#[test]
fn cron_script_daily() {
    let prepare = |t: &Path| fs::create_dir_all(t.join("etc/cron.daily")).unwrap();
    // upstream's test/data/stages/cron.script/b.json
    let opts = json!({"filename": "osbuild", "interval": "daily",
                      "simple": {"comment": ["Created by osbuild", "and very awesome"], "command": "osbuild --help"}});
    let (_d, tree) = check("org.osbuild.cron.script", "daily", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/cron.daily/osbuild"),
        "!/bin/bash\n# Created by osbuild\n# and very awesome\nosbuild --help\n"
    );
    assert_eq!(mode(&tree, "etc/cron.daily/osbuild"), 0o755);
}

// ---- bad options

#[test]
fn bad_options_are_rejected_clearly() {
    rejects("org.osbuild.resolv-conf", json!({"nameserver": "1.1.1.1"}), "invalid options: invalid type: string");
    rejects("org.osbuild.pam.limits.conf", json!({"filename": "x.conf"}), "invalid options: missing field `config`");
    rejects("org.osbuild.pwquality.conf", json!({"config": {"maxlen": 3}}), "unknown setting `maxlen`");
    rejects("org.osbuild.sshd.config", json!({"config": {"PermitRootLogin": "sometimes"}}), "invalid options");
    rejects(
        "org.osbuild.cron.script",
        json!({"interval": "yearly", "filename": "x", "simple": {"command": "true"}}),
        "unknown variant `yearly`",
    );
}

// ---- org.osbuild.nm.conn

#[test]
fn nm_conn_filename_and_path() {
    // upstream's test/data/stages/nm.conn/b.json
    let settings = |ifname: &str, uuid: &str, addr: &str| {
        json!({"connection": {"type": "ethernet", "id": "static-conn", "uuid": uuid, "interface-name": ifname,
                              "autoconnect-priority": 0, "autoconnect": true},
               "ipv4": {"method": "manual", "address": [addr]}, "ipv6": {"method": "ignore"}})
    };
    let opts = json!({"filename": "osbuild.nmconnection",
                      "settings": settings("eth0", "5fb8f75a-7fde-4906-a51e-a70e56c58742", "10.23.0.3/24")});
    let (_d, tree) = check("org.osbuild.nm.conn", "filename", |_| {}, opts, json!({}));
    let file = "usr/lib/NetworkManager/system-connections/osbuild.nmconnection";
    assert_eq!(
        read(&tree, file),
        "[connection]\ntype=ethernet\nid=static-conn\nuuid=5fb8f75a-7fde-4906-a51e-a70e56c58742\n\
         interface-name=eth0\nautoconnect-priority=0\nautoconnect=true\n\n\
         [ipv4]\nmethod=manual\naddress=10.23.0.3/24\n\n[ipv6]\nmethod=ignore\n\n"
    );
    assert_eq!(mode(&tree, file), 0o600);

    let opts = json!({"path": "/etc/NetworkManager/system-connections/test.conf",
                      "settings": settings("eth1", "6fb8f75a-7fde-4906-a51e-a70e56c58742", "10.24.0.5/24")});
    let (_d, tree) = check("org.osbuild.nm.conn", "path", |_| {}, opts, json!({}));
    let file = "etc/NetworkManager/system-connections/test.conf";
    assert!(read(&tree, file).contains("\ninterface-name=eth1\n"));
    assert_eq!(mode(&tree, file), 0o600);
}

// ---- org.osbuild.nm.conf

#[test]
fn nm_conf_upstream_cases() {
    let opts = compat::stage_test_options("nm.conf");
    let (_d, tree) = check("org.osbuild.nm.conf", "main", |_| {}, opts[0].clone(), json!({}));
    assert_eq!(
        read(&tree, "etc/NetworkManager/NetworkManager.conf"),
        "[main]\nplugins=keyfile\nno-auto-default=*\n\n[global-dns-domain-*]\nservers=8.8.8.8\n\n\
         [device]\nwifi.scan-rand-mac-address=false\n\n"
    );
    assert_eq!(mode(&tree, "etc/NetworkManager/NetworkManager.conf"), 0o600);
    let (_d, tree) = check("org.osbuild.nm.conf", "drop-in", |_| {}, opts[1].clone(), json!({}));
    assert_eq!(
        read(&tree, "etc/NetworkManager/conf.d/99-unmanaged-devices.conf"),
        "[keyfile]\nunmanaged-devices=interface-name:veth*,interface-name:starfish0\n\n"
    );
}

#[test]
fn bad_nm_options_are_rejected_clearly() {
    rejects("org.osbuild.nm.conn", json!({"filename": "x.nmconnection", "settings": {}}), "missing field `connection`");
    rejects("org.osbuild.nm.conf", json!({"path": "/x", "settings": {"logging": {}}}), "unknown field `logging`");
}

// ---- org.osbuild.chrony

/// Fedora's stock chrony.conf, abridged.
const CHRONY_CONF: &str = "# Use public servers from the pool.ntp.org project.\n\
# Please consider joining the pool (https://www.pool.ntp.org/join.html).\n\
pool 2.fedora.pool.ntp.org iburst\n\
\n\
# Use NTP servers from DHCP.\n\
sourcedir /run/chrony-dhcp\n\
\n\
# Record the rate at which the system clock gains/losses time.\n\
driftfile /var/lib/chrony/drift\n\
\n\
# Allow the system clock to be stepped in the first three updates\n\
# if its offset is larger than 1 second.\n\
makestep 1.0 3\n\
\n\
# Enable kernel synchronization of the real-time clock (RTC).\n\
rtcsync\n\
\n\
# Get TAI-UTC offset and leap seconds from the system tz database.\n\
leapsectz right/UTC\n\
\n\
# Specify directory for log files.\n\
logdir /var/log/chrony\n";

#[test]
fn chrony_upstream_case() {
    let opts = compat::stage_test_options("chrony");
    let prepare = |t: &Path| write(t, "etc/chrony.conf", CHRONY_CONF, 0o644);
    let (_d, tree) = check("org.osbuild.chrony", "upstream", prepare, opts[0].clone(), json!({}));
    let stock_without_pool = CHRONY_CONF.replace("pool 2.fedora.pool.ntp.org iburst\n", "");
    assert_eq!(
        read(&tree, "etc/chrony.conf"),
        format!(
            "refclock PPS /dev/pps42:clear poll 1 dpoll 2 offset 0.3\n\
             refclock SHM 42:perm=0660 poll 1 dpoll 2 offset 0.3\n\
             refclock SOCK /run/time/thingie.socket poll 1 dpoll 2 offset 0.3\n\
             refclock PHC /dev/ptp11:nocrossts,extpps,pin=3,channel=4,clear poll 1 dpoll 2 offset 0.3\n\
             server ntp.example.com iburst\nserver ntp2.example.com iburst\n{stock_without_pool}"
        )
    );
    assert_eq!(mode(&tree, "etc/chrony.conf"), 0o644);
}

#[test]
fn chrony_servers_and_leapsectz() {
    let prepare = |t: &Path| write(t, "etc/chrony.conf", CHRONY_CONF, 0o640);
    let opts = json!({"servers": [{"hostname": "127.0.0.1", "minpoll": 0, "maxpoll": 4, "prefer": true},
                                  {"hostname": "ntp.local", "iburst": false}],
                      "leapsectz": ""});
    let (_d, tree) = check("org.osbuild.chrony", "servers", prepare, opts, json!({}));
    let conf = read(&tree, "etc/chrony.conf");
    assert!(conf.starts_with("server 127.0.0.1 prefer iburst minpoll 0 maxpoll 4\nserver ntp.local\n# Use public"));
    assert!(!conf.lines().any(|l| l.starts_with("leapsectz ") || l.starts_with("pool ")), "{conf}");
    assert_eq!(mode(&tree, "etc/chrony.conf"), 0o640);
}

#[test]
fn bad_chrony_options_are_rejected_clearly() {
    rejects("org.osbuild.chrony", json!({}), "at least one of timeservers, servers, leapsectz or refclocks");
    rejects("org.osbuild.chrony", json!({"refclocks": [{"driver": {"name": "GPS"}}]}), "unknown variant `GPS`");
}

// ---- org.osbuild.cloud-init

#[test]
fn cloud_init_upstream_cases() {
    let opts = compat::stage_test_options("cloud-init");
    let want = [
        ("00-default_user.cfg", "ssh_pwauth: false\nsystem_info:\n  default_user:\n    name: ec2-user\n"),
        ("10-azure-kfp.cfg", "reporting:\n  logging:\n    type: log\n  telemetry:\n    type: hyperv\n"),
        (
            "91-azure_datasource.cfg",
            "datasource:\n  Azure:\n    apply_network_config: false\ndatasource_list: [Azure]\n",
        ),
        ("06_logging_override.cfg", "output:\n  all: '>> /var/log/cloud-init-all.log'\n"),
    ];
    assert_eq!(opts.len(), want.len());
    for (o, (file, content)) in opts.into_iter().zip(want) {
        assert_eq!(o["filename"], file);
        let prepare = |t: &Path| fs::create_dir_all(t.join("etc/cloud/cloud.cfg.d")).unwrap();
        let case = file.trim_end_matches(".cfg");
        let (_d, tree) = check("org.osbuild.cloud-init", case, prepare, o, json!({}));
        let rel = format!("etc/cloud/cloud.cfg.d/{file}");
        assert_eq!(read(&tree, &rel), content, "{file}");
        assert_eq!(mode(&tree, &rel), 0o644);
    }
}

#[test]
fn bad_cloud_init_options_are_rejected_clearly() {
    rejects("org.osbuild.cloud-init", json!({"filename": "x.cfg", "config": {"users": []}}), "unknown field `users`");
    rejects("org.osbuild.cloud-init", json!({"filename": "x.cfg", "config": {}}), "config must not be empty");
}

// ---- org.osbuild.containers.storage.conf

const STORAGE_CONF_HEADER: &str = "# This file is the configuration file for all tools that\n\
# use the containers/storage library.\n\
# See 'man 5 containers-storage.conf' for more information.\n\
# This file was created by osbuild.\n\
# \n\n";

#[test]
fn containers_storage_conf_upstream_case() {
    // upstream's test/data/stages/containers.storage.conf/b.json
    let prepare = |t: &Path| fs::create_dir_all(t.join("etc/containers")).unwrap();
    let opts = json!({
        "comment": ["Allow extra containers at '/usr/share/containers/storage'",
                    "Use 'nodev' for security and 'metacopy' to allow better", "pagecache sharing of base-layers"],
        "config": {"storage": {"options": {"additionalimagestores": ["/usr/share/container/storage"],
                                           "overlay": {"mountopt": "nodev,metacopy=on"}}}}});
    let (_d, tree) = check("org.osbuild.containers.storage.conf", "upstream", prepare, opts, json!({}));
    assert_eq!(
        read(&tree, "etc/containers/storage.conf"),
        format!(
            "{STORAGE_CONF_HEADER}\
             # Allow extra containers at '/usr/share/containers/storage'\n\
             # Use 'nodev' for security and 'metacopy' to allow better\n\
             # pagecache sharing of base-layers\n\n\
             [storage.options]\nadditionalimagestores = [\n    \"/usr/share/container/storage\",\n]\n\n\
             [storage.options.overlay]\nmountopt = \"nodev,metacopy=on\"\n"
        )
    );
    assert_eq!(mode(&tree, "etc/containers/storage.conf"), 0o644);
}

#[test]
fn containers_storage_conf_merges_existing_file() {
    let prepare = |t: &Path| {
        write(
            t,
            "usr/share/containers/storage.conf",
            "[storage]\ndriver = \"overlay\"\nrunroot = \"/run/containers/storage\"\n\n[storage.options]\n\
             pull_options = {enable_partial_images = \"false\"}\n\n[other]\nx = 1\n",
            0o644,
        )
    };
    let opts = json!({"filename": "/usr/share/containers/storage.conf",
                      "config": {"storage": {"driver": "vfs", "options": {"overlay": {"mountopt": "nodev"}}}}});
    let (_d, tree) = check("org.osbuild.containers.storage.conf", "merge", prepare, opts, json!({}));
    // only the existing `storage` table is kept, as upstream does
    assert_eq!(
        read(&tree, "usr/share/containers/storage.conf"),
        format!(
            "{STORAGE_CONF_HEADER}\n[storage]\ndriver = \"vfs\"\nrunroot = \"/run/containers/storage\"\n\n\
             [storage.options.pull_options]\nenable_partial_images = \"false\"\n\n\
             [storage.options.overlay]\nmountopt = \"nodev\"\n"
        )
    );
}

#[test]
fn bad_containers_storage_options_are_rejected_clearly() {
    rejects(
        "org.osbuild.containers.storage.conf",
        json!({"config": {"storage": {"driver": "ext4"}}}),
        "unknown variant `ext4`",
    );
}

/// Options upstream's interface allows that the cases above do not use: both our schema
/// and the typed options must take them.
#[test]
fn schemas_and_types_accept_what_upstream_accepts() {
    let conn = json!({"id": "a", "uuid": "u", "type": "802-3-ethernet"});
    let accepted = [
        ("org.osbuild.resolv-conf", json!({})),
        ("org.osbuild.pwquality.conf", json!({"config": {}})),
        ("org.osbuild.sshd.config", json!({"config": {"PermitRootLogin": true, "ClientAliveInterval": 0}})),
        ("org.osbuild.cron.script", json!({"interval": "hourly", "filename": "x", "simple": {"command": "c", "x": 1}})),
        (
            "org.osbuild.pam.limits.conf",
            json!({"filename": "a.conf", "config": [{"domain": "*", "type": "-", "item": "as", "value": "infinity"}]}),
        ),
        (
            "org.osbuild.nm.conn",
            json!({"path": "/x", "settings": {"connection": conn, "ipv4": {"method": "auto", "dns-search": "d"},
                                                                  "ethernet": {"mac-address": "m", "mtu": 1500}}}),
        ),
        ("org.osbuild.nm.conf", json!({"path": "/x", "settings": {}})),
        ("org.osbuild.chrony", json!({"leapsectz": ""})),
        (
            "org.osbuild.chrony",
            json!({"refclocks": [{"driver": {"name": "SHM", "segment": 1, "perm": "0644"}, "offset": 1}]}),
        ),
        (
            "org.osbuild.cloud-init",
            json!({"filename": "a.cfg", "config": {"datasource": {"Ec2": {"x": 1}}, "output": {"foo": "bar"}}}),
        ),
        ("org.osbuild.cloud-init", json!({"filename": "a.cfg", "config": {"network": {"config": "disabled"}}})),
        (
            "org.osbuild.containers.storage.conf",
            json!({"filename": "/usr/share/containers/storage.conf", "filebase": "/x",
            "config": {"storage": {"transient_store": true, "options": {"pull_options": {"use_hard_links": "true"}}}}}),
        ),
    ];
    for (stage, options) in accepted {
        let errors = schema_errors(stage, &options);
        assert!(errors.is_empty(), "{stage}: schema refuses {options}: {errors:?}");
        let info = osbuild_rs::stages::find(stage).unwrap();
        info.check_options(&options)
            .unwrap_or_else(|e| panic!("{stage}: {options}: {}", osbuild_rs::stages::error_chain(&e)));
    }
}
