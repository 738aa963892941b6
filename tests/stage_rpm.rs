//! `org.osbuild.rpm` through real builds: packages made at test time with rpmbuild (see
//! common/rpmfix.rs), fetched with `org.osbuild.curl` from file:// URLs, installed by the
//! osbuild-rs binary into a tree with the host's `rpm` as the build root's.
//!
//! Needs root, bubblewrap and the Debian packages `rpm` and `gnupg`; a missing tool fails loudly.

mod common;
#[path = "common/rpmfix.rs"]
mod rpmfix;

use common::{ok, sha256, Env};
use rpmfix::{Fixtures, Spec};
use serde_json::{json, Map, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn fixtures(env: &Env, specs: Vec<Spec>) -> Fixtures {
    let dir = env.path("fixtures");
    rpmfix::build(&dir, &specs)
}

/// A v2 manifest with one `tree` pipeline holding one rpm stage that installs `files`
/// (path, check_gpg), with `options`.
fn manifest(env: &Env, files: &[(&Path, bool)], options: Value) -> std::path::PathBuf {
    let mut items = Map::new();
    let mut refs = Map::new();
    for (path, check) in files {
        let sum = sha256(&std::fs::read(path).unwrap());
        items.insert(sum.clone(), json!({"url": format!("file://{}", path.display())}));
        let opts = if *check { json!({"metadata": {"rpm.check_gpg": true}}) } else { json!({}) };
        refs.insert(sum, opts);
    }
    env.write_manifest(
        "rpm.json",
        &json!({"version": "2",
        "sources": {"org.osbuild.curl": {"items": items}},
        "pipelines": [{"name": "tree", "stages": [{
            "type": "org.osbuild.rpm",
            "inputs": {"packages": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": refs}},
            "options": options
        }]}]}),
    )
}

fn build(env: &Env, m: &Path) -> (std::process::Output, Value) {
    let o = env.run(m, &["--export", "tree", "--json"]);
    let doc: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no result document ({e}): {}", String::from_utf8_lossy(&o.stderr)));
    (o, doc)
}

/// The failed stage's output, after checking that the build failed in the rpm stage and left
/// nothing behind.
fn failure(env: &Env, o: &std::process::Output, doc: &Value) -> String {
    assert_eq!(o.status.code(), Some(1), "{doc}");
    assert_eq!(doc["success"], false);
    assert_eq!(doc["error"]["details"]["stage"]["type"], "org.osbuild.rpm", "{doc}");
    assert!(env.objects().is_empty(), "something was committed: {:?}", env.objects());
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
    assert!(!env.out().join("tree").exists());
    doc["error"]["details"]["stage"]["output"].as_str().unwrap().to_owned()
}

fn packages_meta(doc: &Value) -> Vec<Value> {
    doc["metadata"]["tree"]["org.osbuild.rpm"]["packages"].as_array().unwrap_or_else(|| panic!("{doc}")).clone()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

#[test]
fn installs_signed_and_unsigned_packages_and_reports_them() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let files = [
        (fx.rpm("fish"), true),
        (fx.rpm("kernel-core"), false),
        (fx.rpm("fixture-lib"), true),
        (fx.rpm("fixture-setup"), false),
    ];
    let m = manifest(&env, &files, json!({"gpgkeys": [fx.public_key]}));
    let (o, doc) = build(&env, &m);
    ok(&o);
    let tree = env.out().join("tree");

    // files, modes, symlinks, owners, capabilities
    assert_eq!(std::fs::read_to_string(tree.join("usr/bin/fish")).unwrap(), "#!/bin/sh\necho fish\n");
    assert_eq!(mode(&tree.join("usr/bin/fish")), 0o755);
    assert_eq!(std::fs::read_link(tree.join("usr/bin/fish-link")).unwrap(), Path::new("fish"));
    assert_eq!(mode(&tree.join("usr/bin/fish-ping")), 0o711);
    let cap = xattr::get(tree.join("usr/bin/fish-ping"), "security.capability").unwrap();
    assert!(cap.is_some_and(|c| !c.is_empty()), "fish-ping lost its file capability");
    let share = std::fs::metadata(tree.join("usr/share/fish")).unwrap();
    assert_eq!((share.uid(), share.gid(), share.permissions().mode() & 0o7777), (1234, 1234, 0o750));
    let owned = std::fs::metadata(tree.join("usr/share/fish/owned.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid(), owned.permissions().mode() & 0o7777), (1234, 1234, 0o640));
    assert_eq!(std::fs::read_to_string(tree.join("etc/fish/config.fish")).unwrap(), "set -g x 1\n");
    assert!(!tree.join("var/log/fish.log").exists(), "a %ghost file was created");
    assert_eq!(std::fs::read_to_string(tree.join("usr/lib/fixture/data.txt")).unwrap(), "fixture data\n");
    assert!(tree.join("usr/share/doc/fish/README").is_file());
    assert!(tree.join("usr/share/locale/de/fish.mo").is_file() && tree.join("usr/share/locale/fr/fish.mo").is_file());
    assert!(tree.join("lib/modules/6.1.0-fix/vmlinuz").is_file());
    // the %post scriptlet ran inside the tree
    assert_eq!(std::fs::read_to_string(tree.join("var/lib/fish/post-ran")).unwrap(), "post of fish ran\n");
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/fixture-env")).unwrap(),
        format!("nil nil false {}\n", "f".repeat(32))
    );
    // the database is in the tree, where upstream's default puts it
    assert!(std::fs::read_dir(tree.join("usr/lib/sysimage/rpm")).unwrap().next().is_some());
    // an empty machine-id is left, as upstream; the API file systems were only mounted
    assert_eq!(std::fs::read(tree.join("etc/machine-id")).unwrap(), b"");
    assert_eq!(mode(&tree.join("etc/machine-id")), 0o444);
    for d in ["dev", "proc", "sys"] {
        assert_eq!(std::fs::read_dir(tree.join(d)).unwrap().count(), 0, "/{d} is not empty");
    }
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());

    // metadata: every package of the database, sorted by name, upstream's keys
    let pkgs = packages_meta(&doc);
    let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fish", "fixture-lib", "fixture-setup", "gpg-pubkey", "kernel-core"]);
    let by = |n: &str| pkgs.iter().find(|p| p["name"] == n).unwrap().clone();
    let fish = by("fish");
    assert_eq!(
        fish.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "name",
            "version",
            "release",
            "epoch",
            "arch",
            "sigmd5",
            "sha1header",
            "sha256header",
            "sha3_256header",
            "sigpgp",
            "siggpg"
        ]
    );
    assert_eq!((&fish["version"], &fish["release"], &fish["epoch"]), (&json!("3.7.1"), &json!("1.fix"), &json!("2")));
    assert_eq!(fish["arch"], "noarch");
    let hex = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(hex(&fish["sigmd5"]) && fish["sigmd5"].as_str().unwrap().len() == 32, "{fish}");
    assert!(hex(&fish["sigpgp"]), "signed package without sigpgp: {fish}");
    assert!(hex(&by("fixture-lib")["sigpgp"]));
    let kernel = by("kernel-core");
    assert_eq!(kernel["epoch"], Value::Null);
    assert_eq!(kernel["arch"], rpmfix::host_arch().as_str());
    assert_eq!((&kernel["sigpgp"], &kernel["siggpg"]), (&Value::Null, &Value::Null));
    assert_eq!(by("fixture-setup")["version"], "1.0");
}

#[test]
fn check_gpg_without_the_key_fails_naming_the_package() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let m = manifest(&env, &[(fx.rpm("fixture-setup"), false), (fx.rpm("fixture-lib"), true)], json!({}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(out.contains("signature check failed on package fixture-lib-2.5-3.fix.noarch"), "{out}");
}

#[test]
fn check_gpg_refuses_an_unsigned_package_even_with_a_key() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let m = manifest(&env, &[(fx.rpm("kernel-core"), true)], json!({"gpgkeys": [fx.public_key]}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(
        out.contains(&format!("signature check failed on package kernel-core-6.1.0-1.fix.{}", rpmfix::host_arch())),
        "{out}"
    );
}

#[test]
fn corrupt_package_fails_naming_the_package() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let mut data = std::fs::read(fx.rpm("fixture-lib")).unwrap();
    // flip bytes in the payload (the end of the file), leaving the header readable
    let n = data.len();
    for b in &mut data[n - 40..n - 20] {
        *b ^= 0xff;
    }
    let corrupt = env.path("fixture-lib-corrupt.rpm");
    std::fs::write(&corrupt, &data).unwrap();
    let m = manifest(&env, &[(fx.rpm("fixture-setup"), false), (&corrupt, false)], json!({}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(out.contains("package fixture-lib-2.5-3.fix.noarch"), "{out}");
    assert!(out.contains("is corrupt"), "{out}");
}

#[test]
fn failing_pre_scriptlet_fails_naming_the_package() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::failing_scriptlets());
    let m = manifest(&env, &[(fx.rpm("failing-pre"), false)], json!({}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(out.contains("%prein of package failing-pre-1.0-1.noarch failed"), "{out}");
}

#[test]
fn failing_post_scriptlet_is_a_warning_naming_the_package_as_with_rpm() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::failing_scriptlets());
    let m = manifest(&env, &[(fx.rpm("failing-post"), false)], json!({}));
    let (o, doc) = build(&env, &m);
    ok(&o);
    assert!(env.out().join("tree/usr/share/failing-post/file").is_file());
    let log = doc["log"]["tree"][0]["output"].as_str().unwrap();
    assert!(log.contains("warning: %post scriptlet of package failing-post-1.0-1.noarch failed"), "{log}");
}

#[test]
fn exclude_docs_ostree_booted_disable_dracut_dbpath_env_and_keys_from_the_tree() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let files = [
        (fx.rpm("fish"), false),
        (fx.rpm("fixture-lib"), false),
        (fx.rpm("fixture-setup"), false),
        (fx.rpm("kernel-core"), false),
    ];
    let options = json!({"exclude": {"docs": true}, "ostree_booted": true, "disable_dracut": true,
                         "dbpath": "/var/lib/rpm", "install_langs": ["de"], "generic_env": {"FISH_TEST": "1"},
                         "kernel_install_env": {"boot_root": "/boot"},
                         "gpgkeys.fromtree": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-fixtures"]});
    let m = manifest(&env, &files, options);
    let (o, doc) = build(&env, &m);
    ok(&o);
    let tree = env.out().join("tree");
    assert!(tree.join("usr/bin/fish").is_file());
    assert!(!tree.join("usr/share/doc/fish/README").exists(), "docs were installed");
    assert!(!tree.join("usr/share/doc/fixture-lib/README").exists(), "docs were installed");
    assert!(tree.join("usr/share/locale/de/fish.mo").is_file());
    assert!(!tree.join("usr/share/locale/fr/fish.mo").exists(), "install_langs was ignored");
    assert!(!tree.join("run/ostree-booted").exists(), "the ostree-booted marker was left");
    assert!(tree.join("run").is_dir());
    // the dracut plugins were masked only for the run
    assert_eq!(std::fs::read_dir(tree.join("etc/kernel/install.d")).unwrap().count(), 0);
    assert!(std::fs::read_dir(tree.join("var/lib/rpm")).unwrap().next().is_some());
    assert!(!tree.join("usr/lib/sysimage/rpm").exists());
    let names: Vec<String> = packages_meta(&doc).iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    // the key shipped by fixture-setup was imported after the installation
    assert_eq!(names, ["fish", "fixture-lib", "fixture-setup", "gpg-pubkey", "kernel-core"]);
    // scriptlets saw generic_env, kernel_install_env, the ostree-booted marker, a machine-id
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/fixture-env")).unwrap(),
        format!("1 /boot true {}\n", "f".repeat(32))
    );
}

#[test]
fn v1_manifest_lists_packages_in_options() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let mut urls = Map::new();
    let mut packages = vec![];
    for (name, check) in [("fixture-setup", false), ("fixture-lib", true)] {
        let sum = sha256(&std::fs::read(fx.rpm(name)).unwrap());
        urls.insert(sum.clone(), json!(format!("file://{}", fx.rpm(name).display())));
        packages.push(if check { json!({"checksum": sum, "check_gpg": true}) } else { json!(sum) });
    }
    let m = env.write_manifest(
        "v1.json",
        &json!({"sources": {"org.osbuild.files": {"urls": urls}},
                "pipeline": {"stages": [{"name": "org.osbuild.rpm",
                                         "options": {"gpgkeys": [fx.public_key], "packages": packages}}]}}),
    );
    let o = env.run(&m, &["--export", "tree", "--json"]);
    ok(&o);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tree = env.out().join("tree");
    assert_eq!(std::fs::read_to_string(tree.join("usr/lib/fixture/data.txt")).unwrap(), "fixture data\n");
    // v1 results carry the stage metadata under `stages`
    let stage = doc["stages"].as_array().and_then(|s| s.first()).unwrap_or_else(|| panic!("{doc}"));
    let names: Vec<&str> =
        stage["metadata"]["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fixture-lib", "fixture-setup", "gpg-pubkey"], "{doc}");
}

#[test]
fn missing_dependency_fails_naming_both_packages_unless_nodeps() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let files = [(fx.rpm("fish"), false), (fx.rpm("fixture-setup"), false)];
    let m = manifest(&env, &files, json!({}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(out.contains("fixture-lib >= 2.5 is needed by fish-2:3.7.1-1.fix.noarch"), "{out}");

    let m = manifest(&env, &files, json!({"nodeps": true}));
    let (o, _) = build(&env, &m);
    ok(&o);
    assert!(env.out().join("tree/usr/bin/fish").is_file());
}

#[test]
fn a_key_rpm_cannot_import_fails_unless_ignored() {
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let files = [(fx.rpm("fixture-setup"), false)];
    let m = manifest(&env, &files, json!({"gpgkeys": ["this is not a key"]}));
    let (o, doc) = build(&env, &m);
    let out = failure(&env, &o, &doc);
    assert!(out.contains("cannot import gpg key 1 of 'gpgkeys'"), "{out}");

    let m = manifest(
        &env,
        &files,
        json!({"gpgkeys": ["this is not a key", fx.public_key], "rpmkeys": {"ignore_import_failures": true}}),
    );
    let (o, doc) = build(&env, &m);
    ok(&o);
    let names: Vec<String> = packages_meta(&doc).iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["fixture-setup", "gpg-pubkey"]);
}

/// The tree difference of an install, recorded like every other stage's (the rpm database's
/// bytes differ on every run, so its files are recorded as "changed, not pinned").
#[test]
fn install_tree_difference_is_recorded() {
    use common::treediff::{assert_expected, diff, snapshot};
    let env = Env::new();
    let fx = fixtures(&env, rpmfix::standard());
    let input = env.path("packages");
    std::fs::create_dir_all(&input).unwrap();
    let mut files = Map::new();
    for name in ["fixture-setup", "fixture-lib"] {
        let sum = sha256(&std::fs::read(fx.rpm(name)).unwrap());
        std::fs::copy(fx.rpm(name), input.join(&sum)).unwrap();
        files.insert(sum, json!({}));
    }
    let tree = env.path("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let before = snapshot(&tree);
    let args = json!({
        "tree": tree, "options": {"exclude": {"docs": true}},
        "inputs": {"packages": {"path": input, "data": {"files": files}}},
        "devices": {}, "mounts": {}, "meta": {"id": "0".repeat(64)}, "paths": {},
    });
    let args_path = env.path("arguments.json");
    std::fs::write(&args_path, serde_json::to_vec(&args).unwrap()).unwrap();
    assert_eq!(osbuild_rs::stages::run_stage_from_file("org.osbuild.rpm", &args_path, &env.path("meta.json")), 0);
    let mut d = diff(&before, &snapshot(&tree));
    // Unpin what changes from run to run: the database and the packages' build-time keys.
    if let Some(changed) = d["differences"].as_object_mut() {
        for (path, fields) in changed.iter_mut() {
            if path.starts_with("/usr/lib/sysimage/rpm") {
                for v in fields.as_object_mut().unwrap().values_mut() {
                    *v = Value::Null;
                }
            }
        }
    }
    let added: Vec<Value> = d["added_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p.as_str().unwrap().starts_with("/usr/lib/sysimage/rpm/"))
        .cloned()
        .collect();
    d["added_files"] = Value::Array(added);
    assert_expected("org.osbuild.rpm", "two-packages", &d);
    assert_eq!(std::fs::read_to_string(tree.join("usr/lib/fixture/data.txt")).unwrap(), "fixture data\n");
}
