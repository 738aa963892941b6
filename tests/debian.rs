//! Debian trees (issue 7, the tree half): test-manifests/debian-tree.json is filled at test
//! time by `osbuild-depsolve-apt` from the machine's apt sources and built with
//! `org.osbuild.dpkg` and the configuration stages; the failures a user meets (bad checksum,
//! missing dependency, failing maintainer script) are each a clear error naming the package.
//!
//! Downloads are cached between runs: every test store's `sources/org.osbuild.files` is a
//! symlink to /var/cache/osbuild-rs-tests/debs (the curl source keeps each file there under
//! its `sha256:` name, so a warm cache downloads nothing), and apt's package lists live in
//! /var/cache/osbuild-rs-tests/apt-state. Needs root, bwrap, apt, dpkg and network access to
//! the machine's Debian archive.

mod common;

use common::{ok, sha256, Env};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

const CACHE: &str = "/var/cache/osbuild-rs-tests";
const EPOCH: i64 = 1_700_000_000;
/// The image's packages besides the minbase set (Essential + priority required).
const IMAGE_PACKAGES: &[&str] =
    &["systemd-sysv", "fish", "linux-image-amd64", "initramfs-tools", "passwd", "login", "apt", "udev"];

/// apt's private state is shared; one depsolver run at a time.
static APT: Mutex<()> = Mutex::new(());

fn require_debian_tools() {
    for tool in ["apt-get", "dpkg", "dpkg-deb", "chroot"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "{tool} is missing: these tests need apt and dpkg (apt-get install -y apt dpkg coreutils)");
    }
}

fn depsolve(args: &[&str]) -> Value {
    require_debian_tools();
    let _g = APT.lock().unwrap_or_else(|e| e.into_inner());
    let state = Path::new(CACHE).join("apt-state");
    std::fs::create_dir_all(&state).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osbuild-depsolve-apt"))
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A test environment whose store keeps downloaded files in the shared cache.
fn env_with_deb_cache() -> Env {
    let env = Env::new();
    let cache = Path::new(CACHE).join("debs");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(env.store().join("sources")).unwrap();
    std::os::unix::fs::symlink(&cache, env.store().join("sources/org.osbuild.files")).unwrap();
    env
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A one-stage manifest installing `refs` (checksum -> url, in order) with org.osbuild.dpkg.
fn dpkg_manifest(refs: &[(String, String)]) -> Value {
    let items: serde_json::Map<String, Value> = refs.iter().map(|(c, u)| (c.clone(), json!(u))).collect();
    let order: Vec<&String> = refs.iter().map(|(c, _)| c).collect();
    json!({
        "version": "2",
        "sources": {"org.osbuild.curl": {"items": items}},
        "pipelines": [{"name": "tree", "source-epoch": EPOCH, "stages": [{
            "type": "org.osbuild.dpkg",
            "inputs": {"packages": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": order}},
            "options": {"exclude": {"docs": true, "locales": true}}
        }]}]
    })
}

/// Resolved packages as (name, checksum, url), in installation order.
fn resolved(doc: &Value) -> Vec<(String, String, String)> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["checksum"].as_str().unwrap().to_owned(),
                p["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A tiny .deb built with dpkg-deb; `postinst` is its post-installation script.
fn build_deb(dir: &Path, name: &str, postinst: Option<&str>) -> PathBuf {
    let root = dir.join(format!("{name}-root"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/osbuild-rs")).unwrap();
    std::fs::write(root.join(format!("usr/share/osbuild-rs/{name}")), "payload\n").unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: osbuild-rs tests <tests@example.com>\n\
             Description: osbuild-rs test package\n"
        ),
    )
    .unwrap();
    if let Some(script) = postinst {
        use std::os::unix::fs::PermissionsExt;
        let p = root.join("DEBIAN/postinst");
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let deb = dir.join(format!("{name}_1.0_all.deb"));
    let o = Command::new("dpkg-deb").arg("--root-owner-group").arg("--build").arg(&root).arg(&deb).output().unwrap();
    ok(&o);
    deb
}

/// The essential set plus fish, shared by the failure tests.
fn small_set() -> Vec<(String, String, String)> {
    static SMALL: Mutex<Option<Value>> = Mutex::new(None);
    let mut g = SMALL.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(depsolve(&["--no-base", "?essential", "fish"]));
    }
    resolved(g.as_ref().unwrap())
}

#[test]
fn debian_tree_manifest_builds_a_configured_tree() {
    let env = env_with_deb_cache();
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests/debian-tree.json");
    let mut args = vec!["--template", template.to_str().unwrap()];
    args.extend(IMAGE_PACKAGES);
    let m = depsolve(&args);
    let refs = m["pipelines"][0]["stages"][0]["inputs"]["packages"]["references"].as_array().unwrap().clone();
    assert!(refs.len() > 100, "the minbase closure has more than 100 packages, got {}", refs.len());
    // a second dpkg stage adds a package to the finished tree (no bootstrap), in the order
    // of its `packages` option; its postinst runs in the tree
    let mut m = m;
    let extra = build_deb(
        &env.path("debs"),
        "osbuild-rs-extra",
        Some("#!/bin/sh\nset -e\n[ \"$1\" = configure ] && command -v fish > /var/lib/osbuild-rs-extra\nexit 0\n"),
    );
    let extra_sum = sha256(&std::fs::read(&extra).unwrap());
    m["sources"]["org.osbuild.curl"]["items"][&extra_sum] = json!(format!("file://{}", extra.display()));
    let stage = json!({
        "type": "org.osbuild.dpkg",
        "inputs": {"packages": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [extra_sum]}},
        "options": {"packages": [extra_sum]}
    });
    m["pipelines"][0]["stages"].as_array_mut().unwrap().insert(1, stage);
    let manifest = env.write_manifest("debian-tree.json", &m);

    let o = env.run(&manifest, &["--export", "tree"]);
    ok(&o);
    let tree = env.out().join("tree");
    let read = |p: &str| std::fs::read_to_string(tree.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // a working dpkg database: every package of the manifest, all `ii`
    let l = Command::new("dpkg").arg("--root").arg(&tree).arg("-l").output().unwrap();
    ok(&l);
    let listing = String::from_utf8_lossy(&l.stdout).into_owned();
    let rows: Vec<&str> = listing.lines().skip_while(|l| !l.starts_with("+++-")).skip(1).collect();
    assert_eq!(rows.len(), refs.len() + 1, "{listing}");
    let bad: Vec<&&str> = rows.iter().filter(|r| !r.starts_with("ii ")).collect();
    assert!(bad.is_empty(), "packages not ii: {bad:?}");
    assert_eq!(read("var/lib/osbuild-rs-extra"), "/usr/bin/fish\n", "the postinst ran in the tree");
    assert_eq!(read("usr/share/osbuild-rs/osbuild-rs-extra"), "payload\n");
    for name in ["fish", "systemd-sysv", "passwd", "dash", "usr-is-merged", "osbuild-rs-extra"] {
        assert!(
            rows.iter().any(|r| r.split_whitespace().nth(1).map(|n| n.split(':').next()) == Some(Some(name))),
            "{name} missing"
        );
    }

    // fish runs inside the tree
    let f = Command::new("chroot").arg(&tree).args(["fish", "-c", "echo fish-ok"]).output().unwrap();
    ok(&f);
    assert_eq!(String::from_utf8_lossy(&f.stdout), "fish-ok\n");

    // kernel and an initramfs made by the kernel's postinst (initramfs-tools)
    let boot: Vec<String> = std::fs::read_dir(tree.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let kernel =
        boot.iter().find(|n| n.starts_with("vmlinuz-")).unwrap_or_else(|| panic!("no kernel in /boot: {boot:?}"));
    let version = kernel.trim_start_matches("vmlinuz-");
    let initrd = tree.join(format!("boot/initrd.img-{version}"));
    let size = std::fs::metadata(&initrd).unwrap_or_else(|e| panic!("no initramfs {}: {e}", initrd.display())).len();
    assert!(size > 1_000_000, "initramfs is only {size} bytes");
    assert!(tree.join(format!("usr/lib/modules/{version}/modules.dep")).is_file());

    // merged /usr, no leftovers of the installation
    assert_eq!(std::fs::read_link(tree.join("bin")).unwrap(), Path::new("usr/bin"));
    assert!(!tree.join("usr/sbin/policy-rc.d").exists());
    let tmp: Vec<_> = std::fs::read_dir(tree.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert_eq!(read("etc/machine-id"), "");
    assert!(!tree.join("var/log/dpkg.log").exists());
    // docs and translations left out, copyrights kept
    assert!(tree.join("usr/share/doc/bash/copyright").is_file());
    assert!(!tree.join("usr/share/man/man1/bash.1.gz").exists());
    assert!(!tree.join("usr/share/doc/bash/README.gz").exists());
    assert!(read("etc/dpkg/dpkg.cfg.d/90osbuild-path-filters").contains("path-exclude=/usr/share/doc/*\n"));
    // file times clamped to the source epoch
    use std::os::unix::fs::MetadataExt;
    for p in ["usr/bin/fish", "usr/bin/dpkg", "var/lib/dpkg/status"] {
        assert!(std::fs::symlink_metadata(tree.join(p)).unwrap().mtime() <= EPOCH, "{p} is newer than the epoch");
    }

    // the configuration stages
    let passwd = read("etc/passwd");
    let user = passwd.lines().find(|l| l.starts_with("test:")).unwrap_or_else(|| panic!("no user test in {passwd}"));
    assert!(user.contains(":1000:") && user.ends_with(":/home/test:/usr/bin/fish"), "{user}");
    assert!(read("etc/shadow").lines().any(|l| l.starts_with("test:$6$osbuildrs$lKOk")));
    assert_eq!(read("etc/hostname"), "osbuild-rs\n");
    let getty = tree.join("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service");
    let target = std::fs::read_link(&getty).unwrap_or_else(|e| panic!("{}: {e}", getty.display()));
    assert!(target.ends_with("serial-getty@.service"), "{}", target.display());
    assert!(tree.join(target.strip_prefix("/").unwrap()).is_file());
    assert!(std::fs::read_link(tree.join("etc/systemd/system/default.target")).unwrap().ends_with("multi-user.target"));
    assert_eq!(
        read("etc/apt/apt.conf.d/90osbuild-rs"),
        "APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\n"
    );
    // the machine's sources, written into the image by the dpkg stage (filled by the depsolver)
    let sources = read("etc/apt/sources.list.d/debian.sources");
    assert!(sources.starts_with("Types: deb\nURIs: ") && sources.contains("\nComponents: main"), "{sources}");
    let debconf = read("var/cache/debconf/config.dat");
    assert!(
        debconf.contains("Name: debconf/frontend\nTemplate: debconf/frontend\nValue: Noninteractive\n"),
        "{debconf}"
    );
}

#[test]
fn missing_dependency_names_the_package() {
    let env = env_with_deb_cache();
    let set = small_set();
    assert!(set.iter().any(|(n, _, _)| n == "fish-common"));
    let refs: Vec<(String, String)> =
        set.into_iter().filter(|(n, _, _)| n != "fish-common").map(|(_, c, u)| (c, u)).collect();
    let manifest = env.write_manifest("missing-dep.json", &dpkg_manifest(&refs));
    let o = env.run(&manifest, &["--export", "tree"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("org.osbuild.dpkg: configuring the packages failed")
            && t.contains("package fish: fish depends on fish-common")
            && t.contains("Package fish-common is not installed"),
        "{t}"
    );
    assert!(env.objects().is_empty(), "nothing is committed: {:?}", env.objects());
}

#[test]
fn failing_maintainer_script_names_the_package() {
    let env = env_with_deb_cache();
    let deb = build_deb(&env.path("debs"), "osbuild-rs-failing", Some("#!/bin/sh\necho postinst-fails >&2\nexit 1\n"));
    let mut refs: Vec<(String, String)> = small_set().into_iter().map(|(_, c, u)| (c, u)).collect();
    refs.push((sha256(&std::fs::read(&deb).unwrap()), format!("file://{}", deb.display())));
    let manifest = env.write_manifest("failing.json", &dpkg_manifest(&refs));
    let o = env.run(&manifest, &["--export", "tree"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("postinst-fails"), "the script's output is in the log: {t}");
    assert!(
        t.contains("package osbuild-rs-failing: installed osbuild-rs-failing package post-installation script subprocess returned error exit status 1"),
        "{t}"
    );
    assert!(env.objects().is_empty(), "nothing is committed: {:?}", env.objects());
}

#[test]
fn wrong_checksum_is_a_source_error_and_nothing_is_stored() {
    let env = env_with_deb_cache();
    let deb = build_deb(&env.path("debs"), "osbuild-rs-plain", None);
    let wrong = sha256(b"not the package");
    let refs = vec![(wrong.clone(), format!("file://{}", deb.display()))];
    let manifest = env.write_manifest("wrong.json", &dpkg_manifest(&refs));
    let o = env.run(&manifest, &["--export", "tree"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("checksum mismatch") && t.contains("osbuild-rs-plain_1.0_all.deb") && t.contains(&wrong), "{t}");
    assert!(!Path::new(CACHE).join("debs").join(&wrong).exists(), "the bad file was stored");
    assert!(env.objects().is_empty());
}
