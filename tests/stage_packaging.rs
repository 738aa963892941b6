//! Tree-difference tests (recorded in tests/data/stages/) for the RPM-based OS tree
//! configuration stages: dnf.config, yum.repos, dnf-automatic.config, rhsm, rhsm.facts,
//! greenboot, ignition, update-crypto-policies, tuned, rpm.macros, rpmkeys.import.
//!
//! Where upstream's test manifest exists in shared/compat, its options are one of the cases.
//! The update-crypto-policies and rpmkeys.import tests need `busybox-static` and `rpm`.

mod common;
#[path = "common/compat.rs"]
mod compat;

use common::treediff::check_stage;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// [`compat::stage_test_options`], `{}` for a stage without options.
fn compat_options(stage: &str) -> Vec<Value> {
    compat::stage_test_options(stage).into_iter().map(|o| if o.is_null() { json!({}) } else { o }).collect()
}

fn file(tree: &Path, path: &str, text: &str) {
    let p = tree.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn read(tree: &Path, path: &str) -> String {
    fs::read_to_string(tree.join(path)).unwrap()
}

/// `invalid options: …` for `options`, as the engine reports it before running anything.
fn options_error(stage: &str, options: Value) -> String {
    let info = osbuild_rs::stages::find(stage).unwrap_or_else(|| panic!("{stage} is not registered"));
    osbuild_rs::stages::error_chain(&info.check_options(&options).unwrap_err())
}

/// A tool the test cannot do without: fail loudly, naming the Debian package.
fn need_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .chain([PathBuf::from("/bin").join(tool)])
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{tool} is missing: install {package} (apt-get install {package})"))
}

const DNF_CONF: &str = "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\nskip_if_unavailable=False\n";

#[test]
fn dnf_config_sets_variables_and_merges_dnf_conf() {
    // upstream's test/data/stages/dnf.config/b.json options
    let options = json!({"variables": [{"name": "releasever", "value": "8.4"}],
                         "config": {"main": {"ip_resolve": "4", "tsflags": ["nodocs"]}}});
    let (_d, tree) = check_stage(
        "org.osbuild.dnf.config",
        "releasever",
        |t| {
            file(t, "etc/dnf/dnf.conf", DNF_CONF);
            fs::create_dir_all(t.join("etc/dnf/vars")).unwrap();
        },
        options,
        json!({}),
    );
    assert_eq!(read(&tree, "etc/dnf/vars/releasever"), "8.4\n");
    assert_eq!(read(&tree, "etc/dnf/dnf.conf"), format!("{DNF_CONF}ip_resolve = 4\ntsflags = nodocs\n"));
    let e = options_error("org.osbuild.dnf.config", json!({"config": {"main": {"tsflags": ["nodoc"]}}}));
    assert!(e.starts_with("invalid options: unknown variant `nodoc`"), "{e}");
}

#[test]
fn yum_repos_writes_repo_files() {
    let cases = compat_options("yum.repos");
    assert_eq!(cases.len(), 2);
    let (_d, tree) = check_stage("org.osbuild.yum.repos", "google-cloud", |_| {}, cases[0].clone(), json!({}));
    let text = read(&tree, "etc/yum.repos.d/google-cloud.repo");
    // digest of what Python's configparser writes for these options (checked with upstream's code)
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(text.as_bytes())),
        "0992b6e69ba9dc7a7c236af380493e86ae258cf5f86b06c9e9816d2ac22a8534"
    );
    // The key URLs come from the compat manifest (a list joined with a space).
    let keys =
        cases[0]["repos"][0]["gpgkey"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect::<Vec<_>>();
    assert!(text.starts_with(&format!(
        "[google-compute-engine]\nname=Google Compute Engine\nbaseurl=https://www.example.org/google-compute-engine\n\
         enabled=1\ngpgcheck=1\nrepo_gpgcheck=0\ngpgkey={}\n\n[google-cloud-sdk]\n",
        keys.join(" ")
    )));
    let (_d, tree) = check_stage(
        "org.osbuild.yum.repos",
        "my-cool-repo",
        |t| fs::create_dir_all(t.join("etc/yum.repos.d")).unwrap(),
        cases[1].clone(),
        json!({}),
    );
    assert_eq!(
        read(&tree, "etc/yum.repos.d/my-cool-repo.repo"),
        "[cOOlest.id-ever_invented:42]\nmetalink=https://www.example.org/cool-repo\n\n\
         [cOOlest.id-ever_invented:43]\nname=Very cool repo\nmirrorlist=https://www.example.org/cool-repo\n\
         enabled=0\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=secretkey\ncost=123\nmodule_hotfixes=1\npriority=42\n\
         sslverify=1\n\n"
    );
    let e = options_error("org.osbuild.yum.repos", json!({"filename": "x.repo", "repos": [{"id": "x"}]}));
    assert!(e.contains("needs exactly one of baseurl, metalink, mirrorlist"), "{e}");
}

#[test]
fn dnf_automatic_config_creates_automatic_conf() {
    let options = compat_options("dnf-automatic.config").remove(0);
    let (_d, tree) = check_stage(
        "org.osbuild.dnf-automatic.config",
        "security",
        |t| fs::create_dir_all(t.join("etc/dnf")).unwrap(),
        options,
        json!({}),
    );
    assert_eq!(read(&tree, "etc/dnf/automatic.conf"), "[commands]\napply_updates = yes\nupgrade_type = security");
    let e = options_error("org.osbuild.dnf-automatic.config", json!({"config": {"emitters": {}}}));
    assert!(e.starts_with("invalid options: unknown field `emitters`"), "{e}");
}

#[test]
fn dnf_automatic_config_edits_shipped_file() {
    let (_d, tree) = check_stage(
        "org.osbuild.dnf-automatic.config",
        "edit",
        |t| {
            file(
                t,
                "etc/dnf/automatic.conf",
                "[commands]\n# comment\nupgrade_type = default\napply_updates = no\n\n[emitters]\nemit_via = stdio\n",
            )
        },
        json!({"config": {"commands": {"apply_updates": true, "upgrade_type": "security"}}}),
        json!({}),
    );
    assert_eq!(
        read(&tree, "etc/dnf/automatic.conf"),
        "[commands]\n# comment\nupgrade_type = security\napply_updates = yes\n\n[emitters]\nemit_via = stdio\n"
    );
}

#[test]
fn rhsm_configures_plugins_and_rhsm_conf() {
    // upstream's test/data/stages/rhsm/b.json options
    let options = json!({
        "dnf-plugins": {"product-id": {"enabled": false}, "subscription-manager": {"enabled": false}},
        "subscription-manager": {"rhsm": {"manage_repos": false, "auto_enable_yum_plugins": false},
                                 "rhsmcertd": {"auto_registration": true}}
    });
    let (_d, tree) = check_stage(
        "org.osbuild.rhsm",
        "disable-plugins",
        |t| {
            file(t, "etc/dnf/plugins/product-id.conf", "[main]\nenabled=1\n");
            file(
                t,
                "etc/dnf/plugins/subscription-manager.conf",
                "[main]\nenabled=1\n\n# disable system notifications\ndisable_system_repos=0\n",
            );
            file(t, "etc/rhsm/rhsm.conf", "# Red Hat Subscription Manager Configuration File:\n\n[server]\nhostname = subscription.rhsm.redhat.com\n\n[rhsm]\n# Manage generation of yum repositories:\nmanage_repos = 1\n\n[rhsmcertd]\ncertCheckInterval = 240\n");
        },
        options,
        json!({}),
    );
    assert_eq!(read(&tree, "etc/dnf/plugins/product-id.conf"), "[main]\nenabled=0\n");
    assert_eq!(
        read(&tree, "etc/rhsm/rhsm.conf"),
        "# Red Hat Subscription Manager Configuration File:\n\n[server]\nhostname = subscription.rhsm.redhat.com\n\n\
         [rhsm]\n# Manage generation of yum repositories:\nmanage_repos = 0\nauto_enable_yum_plugins = 0\n\n\
         [rhsmcertd]\ncertCheckInterval = 240\nauto_registration = 1\n"
    );
    let e = options_error("org.osbuild.rhsm", json!({"dnf-plugins": {"product-id": {"enabled": "no"}}}));
    assert!(e.starts_with("invalid options: invalid type: string \"no\", expected a boolean"), "{e}");
}

#[test]
fn rhsm_facts_writes_osbuild_facts() {
    let options = compat_options("rhsm.facts").remove(0);
    let (_d, tree) = check_stage("org.osbuild.rhsm.facts", "foo-bar", |_| {}, options, json!({}));
    assert_eq!(read(&tree, "etc/rhsm/facts/osbuild.facts"), r#"{"foo": "bar", "bar": "foo"}"#);
    let e = options_error("org.osbuild.rhsm.facts", json!({"facts": []}));
    assert!(e.starts_with("invalid options: invalid type: sequence, expected a map"), "{e}");
}

#[test]
fn greenboot_adds_monitored_services() {
    let (_d, tree) = check_stage(
        "org.osbuild.greenboot",
        "monitor-services",
        |t| {
            file(t, "etc/greenboot/greenboot.conf", "# GREENBOOT_MONITOR_SERVICES=\"x\"\nGREENBOOT_MAX_BOOT_ATTEMPTS=3\nGREENBOOT_MONITOR_SERVICES=\"sshd\"\n")
        },
        json!({"config": {"monitor_services": ["sshd", "NetworkManager"]}}),
        json!({}),
    );
    assert_eq!(
        read(&tree, "etc/greenboot/greenboot.conf"),
        "# GREENBOOT_MONITOR_SERVICES=\"x\"\nGREENBOOT_MAX_BOOT_ATTEMPTS=3\nGREENBOOT_MONITOR_SERVICES=\"NetworkManager sshd\"\n"
    );
    let e = options_error("org.osbuild.greenboot", json!({}));
    assert!(e.starts_with("invalid options: missing field `config`"), "{e}");
}

#[test]
fn ignition_writes_firstboot_file() {
    let (_d, tree) = check_stage(
        "org.osbuild.ignition",
        "network",
        |t| fs::create_dir_all(t.join("boot")).unwrap(),
        json!({"network": ["rd.neednet=1", "ip=dhcp"]}),
        json!({}),
    );
    assert_eq!(read(&tree, "boot/ignition.firstboot"), "set ignition_network_kcmdline='rd.neednet=1 ip=dhcp'");
    let e = options_error("org.osbuild.ignition", json!({"network": "ip=dhcp"}));
    assert!(e.starts_with("invalid options: invalid type: string \"ip=dhcp\", expected a sequence"), "{e}");
}

#[test]
fn tuned_sets_active_profile() {
    // upstream's test/data/stages/tuned/b.json options
    let (_d, tree) = check_stage(
        "org.osbuild.tuned",
        "sap-hana",
        |t| {
            file(t, "usr/lib/tuned/sap-hana/tuned.conf", "[main]\n");
            file(t, "usr/lib/tuned/balanced/tuned.conf", "[main]\n");
            file(t, "etc/tuned/active_profile", "");
            file(t, "etc/tuned/profile_mode", "");
        },
        json!({"profiles": ["sap-hana"]}),
        json!({}),
    );
    assert_eq!(read(&tree, "etc/tuned/active_profile"), "sap-hana\n");
    assert_eq!(read(&tree, "etc/tuned/profile_mode"), "manual\n");
    let e = options_error("org.osbuild.tuned", json!({"profile": "x"}));
    assert!(e.starts_with("invalid options: unknown field `profile`"), "{e}");
}

#[test]
fn rpm_macros_writes_macros_file() {
    // upstream's test/data/stages/rpm.macros/b.json options
    let options = json!({"filename": "/etc/rpm/macros.image-language-conf", "macros": {"_install_langs": ["en_US"]}});
    let (_d, tree) = check_stage("org.osbuild.rpm.macros", "install-langs", |_| {}, options, json!({}));
    let p = tree.join("etc/rpm/macros.image-language-conf");
    assert_eq!(fs::read_to_string(&p).unwrap(), "%_install_langs en_US\n");
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    let e = options_error("org.osbuild.rpm.macros", json!({"filename": "/x", "macros": {"_prefix": "/usr"}}));
    assert!(e.contains("unknown field `_prefix`"), "{e}");
}

#[test]
fn update_crypto_policies_runs_the_trees_tool_chrooted() {
    let busybox = need_tool("busybox", "busybox-static");
    let options = compat_options("update-crypto-policies").remove(0);
    assert_eq!(options, json!({"policy": "FIPS"}));
    let (_d, tree) = check_stage(
        "org.osbuild.update-crypto-policies",
        "fips",
        |t| {
            fs::create_dir_all(t.join("bin")).unwrap();
            fs::copy(&busybox, t.join("bin/busybox")).unwrap();
            std::os::unix::fs::symlink("busybox", t.join("bin/sh")).unwrap();
            // a stand-in for the real script: it needs /proc mounted, as the real one does for FIPS
            file(
                t,
                "usr/bin/update-crypto-policies",
                "#!/bin/sh\nset -e\ntest \"$1\" = --set\n/bin/busybox grep -q ' /proc ' /proc/self/mountinfo\n\
                 /bin/busybox test -c /dev/null\n/bin/busybox test -d /sys/kernel\n\
                 echo \"$2\" > /etc/crypto-policies/config\n\
                 /bin/busybox ln -sfn /usr/share/crypto-policies/$2/bind.txt /etc/crypto-policies/back-ends/bind.config\n",
            );
            fs::set_permissions(t.join("usr/bin/update-crypto-policies"), fs::Permissions::from_mode(0o755)).unwrap();
            file(t, "etc/crypto-policies/config", "DEFAULT\n");
            fs::create_dir_all(t.join("etc/crypto-policies/back-ends")).unwrap();
            std::os::unix::fs::symlink(
                "/usr/share/crypto-policies/DEFAULT/bind.txt",
                t.join("etc/crypto-policies/back-ends/bind.config"),
            )
            .unwrap();
        },
        options,
        json!({}),
    );
    assert_eq!(read(&tree, "etc/crypto-policies/config"), "FIPS\n");
    assert!(fs::read_dir(tree.join("proc")).unwrap().next().is_none(), "/proc must be unmounted again");
    let e = options_error("org.osbuild.update-crypto-policies", json!({}));
    assert!(e.starts_with("invalid options: missing field `policy`"), "{e}");
}

#[test]
fn rpmkeys_import_imports_the_key_input() {
    let rpmdb = need_tool("rpmdb", "rpm");
    need_tool("rpmkeys", "rpm");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/compat/manifests/test__data__stages__rpmkeys.import__b.json");
    let manifest: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let items = manifest["sources"]["org.osbuild.inline"]["items"].as_object().unwrap();
    assert_eq!(compat_options("rpmkeys.import"), vec![json!({})]);
    let input = tempfile::tempdir().unwrap();
    let mut files = serde_json::Map::new();
    for (id, item) in items {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.decode(item["data"].as_str().unwrap()).unwrap();
        fs::write(input.path().join(id), data).unwrap();
        files.insert(id.clone(), json!({}));
    }
    let inputs = json!({"keys": {"path": input.path(), "data": {"files": files}}});
    let (_d, tree) = check_stage(
        "org.osbuild.rpmkeys.import",
        "key",
        |t| {
            let ok = Command::new(&rpmdb)
                .arg("--root")
                .arg(t)
                .args(["--dbpath", "/usr/lib/sysimage/rpm", "--initdb"])
                .status()
                .unwrap();
            assert!(ok.success(), "rpmdb --initdb failed");
        },
        json!({}),
        inputs,
    );
    let out = Command::new("rpm")
        .arg("--root")
        .arg(&tree)
        .args(["--dbpath", "/usr/lib/sysimage/rpm", "-q", "gpg-pubkey"])
        .output()
        .unwrap();
    assert!(out.status.success(), "key not imported: {}", String::from_utf8_lossy(&out.stderr));
    let e = options_error("org.osbuild.rpmkeys.import", json!({"keys": []}));
    assert!(e.starts_with("invalid options: unknown field `keys`"), "{e}");
}
