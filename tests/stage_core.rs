//! Tree-difference tests (recorded in tests/data/stages/) for the first stages.

mod common;

use common::treediff::check_stage;
use serde_json::json;
use std::fs;

fn etc(tree: &std::path::Path) {
    fs::create_dir_all(tree.join("etc")).unwrap();
}

#[test]
fn hostname_writes_etc_hostname() {
    let (_d, tree) = check_stage("org.osbuild.hostname", "basic", etc, json!({"hostname": "osbuild-rs"}), json!({}));
    assert_eq!(fs::read_to_string(tree.join("etc/hostname")).unwrap(), "osbuild-rs\n");
}

#[test]
fn timezone_links_localtime() {
    let (_d, tree) = check_stage("org.osbuild.timezone", "berlin", etc, json!({"zone": "Europe/Berlin"}), json!({}));
    assert_eq!(
        fs::read_link(tree.join("etc/localtime")).unwrap().to_str().unwrap(),
        "../usr/share/zoneinfo/Europe/Berlin"
    );
}

#[test]
fn mkdir_modes_and_parents() {
    check_stage(
        "org.osbuild.mkdir",
        "parents",
        |_| {},
        json!({"paths": [{"path": "/a/b/c", "parents": true, "mode": 448}, {"path": "/d"}]}),
        json!({}),
    );
}

#[test]
fn machine_id_first_boot_modes() {
    let (_d, tree) = check_stage("org.osbuild.machine-id", "yes", etc, json!({"first-boot": "yes"}), json!({}));
    assert_eq!(fs::read_to_string(tree.join("etc/machine-id")).unwrap(), "uninitialized\n");
    let (_d, tree) = check_stage("org.osbuild.machine-id", "no", etc, json!({"first-boot": "no"}), json!({}));
    assert_eq!(fs::read_to_string(tree.join("etc/machine-id")).unwrap(), "");
    let existing = |t: &std::path::Path| {
        etc(t);
        fs::write(t.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
    };
    let (_d, tree) =
        check_stage("org.osbuild.machine-id", "preserve", existing, json!({"first-boot": "preserve"}), json!({}));
    assert_eq!(fs::read_to_string(tree.join("etc/machine-id")).unwrap(), "0123456789abcdef0123456789abcdef\n");
}
