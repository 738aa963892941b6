//! Issue acceptance (OSTree): test-manifests/ostree-commit.json turns a tree made of RPMs
//! built at test time into an OSTree commit (ref `osbuild-rs/x86_64/iot`), exported as a
//! repository and as a tarball; nginx serves the repository on 127.0.0.1 and
//! test-manifests/ostree-deploy.json pulls the commit through the `org.osbuild.ostree` source
//! and deploys it. Also: parents, reproducible commits, and source failures that leave the
//! store untouched. The manifests in the repository carry everything but what exists only at
//! test time (package checksums, the commit id, the server's port).

mod common;
#[path = "common/rpmfix.rs"]
mod rpmfix;

use common::nginx::Nginx;
use common::{ok, sha256, Env};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const REF: &str = "osbuild-rs/x86_64/iot";

fn need_ostree() {
    let found = Command::new("ostree").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "ostree is missing: apt-get install -y ostree");
}

fn template(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `ostree ARGS --repo=REPO`, stdout; panics with stderr on failure.
fn ostree(repo: &Path, args: &[&str]) -> String {
    let o = Command::new("ostree").args(args).arg(format!("--repo={}", repo.display())).output().unwrap();
    assert!(o.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ostree admin deploy` marks each deployment directory immutable (FS_IMMUTABLE_FL), which
/// blocks removing it, as upstream's store knows (its rmrf clears the flag). Clear it below
/// `dir` so a test's temp dir can go.
fn unfreeze(dir: &Path) {
    let _ = Command::new("find")
        .arg(dir)
        .args([
            "-type",
            "d",
            "-path",
            "*/ostree/deploy/*/deploy/*.[0-9]*",
            "-prune",
            "-exec",
            "chattr",
            "-i",
            "{}",
            "+",
        ])
        .status();
}

/// RPM fixtures (standard set) built once per test and served by nginx at `/rpms/`.
struct Fixture {
    env: Env,
    server: Nginx,
    www: PathBuf,
    fx: rpmfix::Fixtures,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unfreeze(self.env.dir.path());
    }
}

impl Fixture {
    fn new() -> Fixture {
        need_ostree();
        let env = Env::new();
        let fx = rpmfix::build(&env.path("fixtures"), &rpmfix::standard());
        let www = env.path("www");
        std::fs::create_dir_all(www.join("rpms")).unwrap();
        let server = Nginx::start(&env.path("nginx"), &www);
        Fixture { env, server, www, fx }
    }

    /// test-manifests/ostree-commit.json with the packages filled in.
    fn commit_manifest(&self) -> Value {
        let mut m = template("ostree-commit.json");
        let mut items = Map::new();
        let mut refs = Map::new();
        for name in ["fixture-setup", "fixture-lib", "fish", "kernel-core"] {
            let path = self.fx.rpm(name);
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(path, self.www.join("rpms").join(&file)).unwrap();
            let sum = sha256(&std::fs::read(path).unwrap());
            items.insert(sum.clone(), json!(self.server.url(&format!("rpms/{file}"))));
            refs.insert(sum, json!({}));
        }
        m["sources"]["org.osbuild.curl"] = json!({ "items": items });
        let rpm = &mut m["pipelines"][0]["stages"][2];
        assert_eq!(rpm["type"], "org.osbuild.rpm");
        rpm["inputs"]["packages"]["references"] = Value::Object(refs);
        rpm["options"]["gpgkeys"] = json!([self.fx.public_key]);
        m
    }

    /// Build `m` into `store`, exporting `exports`; returns the output directory.
    fn build(&self, m: &Value, tag: &str, store: &Path, exports: &[&str]) -> PathBuf {
        let manifest = self.env.write_manifest(&format!("{tag}.json"), m);
        let out = self.env.path(&format!("out-{tag}"));
        let mut c = Command::new(common::bin());
        c.arg("--store").arg(store).arg("--output-directory").arg(&out);
        for e in exports {
            c.args(["--export", e]);
        }
        ok(&c.arg(&manifest).stdin(std::process::Stdio::null()).output().unwrap());
        out
    }

    /// Publish an exported repository under `/name/` of the server; returns its URL.
    fn publish(&self, repo: &Path, name: &str) -> String {
        let dest = self.www.join(name);
        let s = Command::new("cp").arg("-a").arg(repo).arg(&dest).status().unwrap();
        assert!(s.success());
        self.server.url(name)
    }

    fn deploy_manifest(&self, url: &str, commit: &str) -> Value {
        let mut m = template("ostree-deploy.json");
        m["sources"]["org.osbuild.ostree"]["items"] = json!({ commit: {"remote": {"url": url}} });
        let stages = m["pipelines"][0]["stages"].as_array_mut().unwrap();
        let remotes = stages.iter_mut().find(|s| s["type"] == "org.osbuild.ostree.remotes").unwrap();
        remotes["options"]["remotes"][0]["url"] = json!(url);
        let deploy = stages.iter_mut().find(|s| s["type"] == "org.osbuild.ostree.deploy").unwrap();
        deploy["inputs"]["commits"]["references"] = json!({ commit: {"ref": REF} });
        m
    }
}

fn compose(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("ostree-commit/compose.json")).unwrap()).unwrap()
}

#[test]
fn commit_is_exported_served_pulled_and_deployed() {
    let f = Fixture::new();
    let out = f.build(&f.commit_manifest(), "commit", &f.env.store(), &["ostree-commit", "commit-archive"]);
    let repo = out.join("ostree-commit/repo");

    // the commit: ref, version, metadata, files
    let compose = compose(&out);
    let commit = compose["ostree-commit"].as_str().unwrap().to_owned();
    assert_eq!(compose["ref"], REF);
    assert_eq!(compose["ostree-version"], "1.0");
    assert_eq!(compose["ostree-timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(ostree(&repo, &["rev-parse", REF]).trim(), commit);
    let log = ostree(&repo, &["log", REF]);
    assert!(log.contains(&format!("commit {commit}")) && log.contains("Version: 1.0"), "{log}");
    assert_eq!(log.matches("\ncommit ").count() + usize::from(log.starts_with("commit ")), 1, "{log}");
    let show = ostree(&repo, &["show", REF, "--print-metadata-key=rpmostree.inputhash"]);
    assert_eq!(show.trim().trim_matches('\''), compose["rpm-ostree-inputhash"].as_str().unwrap());
    assert_eq!(ostree(&repo, &["show", REF, "--print-metadata-key=ostree.linux"]).trim(), "'6.1.0-fix'");
    let ls = ostree(&repo, &["ls", REF, "/usr/bin/fish", "/usr/lib/modules/6.1.0-fix/vmlinuz"]);
    assert!(ls.contains("/usr/bin/fish") && ls.contains("vmlinuz"), "{ls}");
    let top = ostree(&repo, &["ls", REF, "/"]);
    for entry in ["/usr", "/sysroot", "/ostree -> sysroot/ostree", "/home -> var/home", "/lib -> usr/lib"] {
        assert!(top.contains(entry), "{entry} missing at the top of the commit:\n{top}");
    }
    assert!(!top.contains(" /etc"), "/etc must be /usr/etc in a commit:\n{top}");
    let passwd = ostree(&repo, &["cat", REF, "/usr/etc/passwd"]);
    let user = passwd.lines().find(|l| l.starts_with("test:")).unwrap_or_else(|| panic!("no user test in {passwd}"));
    assert!(user.contains(":1000:") && user.ends_with(":/home/test:/usr/bin/fish"), "{user}");
    // the fixtures ship no /etc/shadow, so useradd keeps the hash in passwd
    assert!(user.starts_with("test:$6$osbuildrs$lKOk"), "{user}");
    let autovar = ostree(&repo, &["cat", REF, "/usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf"]);
    assert!(autovar.contains("d /var/lib/fish 0755 root root - -"), "{autovar}");
    assert!(ostree(&repo, &["ls", "-R", REF, "/var"]).lines().count() == 1, "/var must be empty in the commit");

    // the stage metadata in the result document, as callers of upstream read it
    let manifest = f.env.path("commit.json");
    let o = Command::new(common::bin())
        .arg("--store")
        .arg(f.env.store())
        .args(["--json", "--checkpoint", "ostree-commit"])
        .arg(&manifest)
        .output()
        .unwrap();
    ok(&o);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let meta = &doc["metadata"]["ostree-commit"]["org.osbuild.ostree.commit"]["compose"];
    assert_eq!(meta["ostree-commit"], commit.as_str(), "{doc}");
    assert_eq!(meta["ref"], REF);

    // signed (ed25519) with the key the pipeline generated
    let sig = ostree(&repo, &["show", REF, "--print-detached-metadata-key=ostree.sign.ed25519"]);
    assert_eq!(printed_byte_arrays(&sig), vec![64], "one 64-byte signature: {sig}");
    assert!(out.join("ostree-commit/keys/ostree.pub").is_file());

    // the tarball holds the same repository
    let tar = out.join("commit-archive/commit.tar");
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "compose.json"), "{list}");
    assert!(list.lines().any(|l| l.trim_start_matches("./") == format!("repo/refs/heads/{REF}")), "{list}");

    // served by nginx, pulled by the ostree source, deployed
    let url = f.publish(&repo, "repo");
    let dout = f.build(&f.deploy_manifest(&url, &commit), "deploy", &f.env.store(), &["deployed"]);
    assert!(
        f.server.access_log().contains(&format!("GET /repo/objects/{}/", &commit[..2])),
        "{}",
        f.server.access_log()
    );
    assert!(f.env.mounts().is_empty(), "mounts left behind: {:?}", f.env.mounts());
    let sysroot = dout.join("deployed");
    let dep = sysroot.join(format!("ostree/deploy/osbuild-rs/deploy/{commit}.0"));
    assert!(dep.is_dir(), "no deployment {}", dep.display());
    let read = |p: &str| std::fs::read_to_string(dep.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("usr/bin/fish"), "#!/bin/sh\necho fish\n");
    assert!(read("etc/passwd").lines().any(|l| l.starts_with("test:$6$osbuildrs$")), "{}", read("etc/passwd"));
    assert_eq!(read("etc/hostname"), "osbuild-rs-iot\n", "/etc is merged from /usr/etc");
    let origin =
        std::fs::read_to_string(sysroot.join(format!("ostree/deploy/osbuild-rs/deploy/{commit}.0.origin"))).unwrap();
    assert!(origin.lines().any(|l| l == format!("refspec=osbuild-rs:{REF}")), "{origin}");
    let entries: Vec<_> =
        std::fs::read_dir(sysroot.join("boot/loader/entries")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(entry.contains("rw console=ttyS0 root=LABEL=root") && entry.contains("ostree=/ostree/boot."), "{entry}");
    let config = std::fs::read_to_string(sysroot.join("ostree/repo/config")).unwrap();
    assert!(config.contains("[remote \"osbuild-rs\"]") && config.contains(&url), "{config}");
    // fillvar made /var from the commit's tmpfiles.d, in the stateroot
    let var = sysroot.join("ostree/deploy/osbuild-rs/var");
    assert!(var.join("roothome").is_dir() && var.join("usrlocal/bin").is_dir(), "{}", var.display());
    assert!(var.join("home/test").is_dir());
    assert_eq!(std::fs::read_link(var.join("lib/rpm")).unwrap(), Path::new("../../usr/lib/sysimage/rpm"));
    // aleph
    let aleph: Value = serde_json::from_slice(&std::fs::read(sysroot.join(".aleph-version.json")).unwrap()).unwrap();
    assert_eq!(aleph["ostree-commit"], commit.as_str());
    assert_eq!(aleph["version"], "1.0");
    // the source's repository in the store has the commit
    let store_repo = f.env.store().join("sources/org.osbuild.ostree/repo");
    assert!(ostree(&store_repo, &["show", &commit]).contains("Version: 1.0"));
}

#[test]
fn parent_history_reproducible_commit_checkout_and_pipeline_input() {
    let f = Fixture::new();
    let m = f.commit_manifest();
    let out1 = f.build(&m, "first", &f.env.path("store-a"), &["ostree-commit"]);
    let out2 = f.build(&m, "again", &f.env.path("store-b"), &["ostree-commit"]);
    let first = compose(&out1)["ostree-commit"].as_str().unwrap().to_owned();
    assert_eq!(compose(&out2)["ostree-commit"], first.as_str(), "same manifest, same source-epoch, same commit");

    // a second commit on top of the first (pulled from the server into /repo first)
    let url = f.publish(&out1.join("ostree-commit/repo"), "repo1");
    let mut m2 = m.clone();
    m2["sources"]["org.osbuild.ostree"] = json!({"items": { &first: {"remote": {"url": url}} }});
    let commit_pipeline = &mut m2["pipelines"][1];
    let stages = commit_pipeline["stages"].as_array_mut().unwrap();
    stages.insert(
        1,
        json!({"type": "org.osbuild.ostree.pull", "options": {"repo": "/repo"},
               "inputs": {"commits": {"type": "org.osbuild.ostree", "origin": "org.osbuild.source",
                                      "references": { &first: {"ref": REF} }}}}),
    );
    assert_eq!(stages[2]["type"], "org.osbuild.ostree.commit");
    stages[2]["options"]["parent"] = json!(first);
    stages[2]["options"]["os_version"] = json!("2.0");
    // and a pipeline that reads the first commit back: ostree.checkout input + ostree.passwd
    m2["pipelines"].as_array_mut().unwrap().push(json!({
        "name": "ids",
        "stages": [{"type": "org.osbuild.ostree.passwd",
                    "inputs": {"commits": {"type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.source",
                                           "references": [&first]}}}]
    }));
    // and one that deploys the new commit straight from its pipeline (org.osbuild.ostree input)
    m2["pipelines"].as_array_mut().unwrap().push(json!({
        "name": "local-deploy",
        "stages": [
            {"type": "org.osbuild.ostree.init-fs"},
            {"type": "org.osbuild.ostree.os-init", "options": {"osname": "iot"}},
            {"type": "org.osbuild.ostree.deploy", "options": {"osname": "iot"},
             "inputs": {"commits": {"type": "org.osbuild.ostree", "origin": "org.osbuild.pipeline",
                                    "references": {"name:ostree-commit": {"ref": REF}}}}}
        ]
    }));
    let out3 = f.build(&m2, "second", &f.env.path("store-a"), &["ostree-commit", "ids", "local-deploy"]);
    let ids = std::fs::read_to_string(out3.join("ids/etc/passwd")).unwrap();
    assert!(ids.lines().any(|l| l.starts_with("test:") && l.contains(":1000:")), "{ids}");
    assert!(ids.lines().any(|l| l.starts_with("fixuser:x:1234:")), "{ids}");
    let second = compose(&out3)["ostree-commit"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let repo = out3.join("ostree-commit/repo");
    let log = ostree(&repo, &["log", REF]);
    assert_eq!(log.lines().filter(|l| l.starts_with("commit ")).count(), 2, "{log}");
    assert!(log.find(&second).unwrap() < log.find(&first).unwrap(), "{log}");
    assert!(log.contains("Version: 2.0") && log.contains("Version: 1.0"), "{log}");
    let deployed = out3.join(format!("local-deploy/ostree/deploy/iot/deploy/{second}.0"));
    assert!(deployed.join("usr/bin/fish").is_file(), "{}", deployed.display());
    let origin = std::fs::read_to_string(deployed.with_extension("0.origin")).unwrap();
    assert!(origin.contains(&format!("refspec={REF}")), "{origin}");
}

/// Everything in the store besides what `before` listed (objects, sources, refs).
fn store_entries(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["objects", "refs", "sources"] {
        let d = store.join(sub);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

fn commit_objects(store: &Path) -> Vec<String> {
    let objects = store.join("sources/org.osbuild.ostree/repo/objects");
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&objects) {
        for d in rd.flatten() {
            if let Ok(inner) = std::fs::read_dir(d.path()) {
                out.extend(inner.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    out
}

/// A fresh GnuPG home with one signing key: (home, fingerprint, armored public key).
fn gpg_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    use std::os::unix::fs::PermissionsExt;
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .arg("--batch")
            .args(args)
            .output()
            .expect("gpg is missing: apt-get install -y gnupg");
        assert!(o.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    gpg(&["--passphrase", "", "--quick-gen-key", &format!("{name} <{name}@example.com>"), "ed25519", "sign", "never"]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_owned()))
        .unwrap();
    let armored = gpg(&["--armor", "--export", &fpr]);
    (home, fpr, armored)
}

#[test]
fn source_failures_are_clear_and_store_nothing() {
    need_ostree();
    let env = Env::new();
    // a real repository with one commit, served by nginx
    let www = env.path("www");
    let content = env.path("content");
    std::fs::create_dir_all(content.join("usr/etc")).unwrap();
    std::fs::write(content.join("usr/etc/os-release"), "ID=test\n").unwrap();
    std::fs::create_dir_all(www.join("repo")).unwrap();
    ostree(&www.join("repo"), &["init", "--mode=archive"]);
    let out = ostree(&www.join("repo"), &["commit", "-b", REF, &format!("--tree=dir={}", content.display())]);
    let commit = out.trim().to_owned();
    let (home, fpr, trusted) = gpg_key(&env.path("keys"), "signer");
    let (_, _, untrusted) = gpg_key(&env.path("keys"), "stranger");
    ostree(&www.join("repo"), &["gpg-sign", &format!("--gpg-homedir={}", home.display()), &commit, &fpr]);
    let server = Nginx::start(&env.path("nginx"), &www);

    let manifest_with = |url: &str, checksum: &str, keys: &[&str]| {
        let mut m = template("ostree-deploy.json");
        let mut remote = json!({"url": url});
        if !keys.is_empty() {
            remote["gpgkeys"] = json!(keys);
        }
        m["sources"]["org.osbuild.ostree"]["items"] = json!({ checksum: {"remote": remote} });
        m["pipelines"][0]["stages"] = json!([
            {"type": "org.osbuild.ostree.init-fs"},
            {"type": "org.osbuild.ostree.pull", "options": {"repo": "/ostree/repo"},
             "inputs": {"commits": {"type": "org.osbuild.ostree", "origin": "org.osbuild.source",
                                    "references": { checksum: {"ref": REF} }}}}
        ]);
        m
    };
    let manifest = |url: &str, checksum: &str| manifest_with(url, checksum, &[]);
    let wrong = format!("{}{}", &commit[..60], if &commit[60..] == "0000" { "1111" } else { "0000" });
    let cases = [
        ("wrong checksum", manifest(&server.url("repo"), &wrong), wrong.clone(), "404"),
        ("unreachable url", manifest("http://127.0.0.1:9/repo", &commit), commit.clone(), "127.0.0.1"),
        ("missing repository", manifest(&server.url("nothing-here"), &commit), commit.clone(), "404"),
        (
            "untrusted signature",
            manifest_with(&server.url("repo"), &commit, &[&untrusted]),
            commit.clone(),
            "signature",
        ),
    ];
    for (what, m, item, needle) in cases {
        let before = store_entries(&env.store());
        let objects_before = commit_objects(&env.store());
        let o = env.run(&env.write_manifest("fail.json", &m), &["--export", "deployed"]);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "{what}: the build must fail");
        assert!(
            stderr.contains(&format!("ostree commit {item}")) && stderr.contains(needle),
            "{what}: unclear error:\n{stderr}"
        );
        assert_eq!(commit_objects(&env.store()), objects_before, "{what}: objects were added to the source repo");
        let after: Vec<String> = store_entries(&env.store())
            .into_iter()
            .filter(|e| !before.contains(e))
            .filter(|e| e != "sources/org.osbuild.ostree")
            .collect();
        assert!(after.is_empty(), "{what}: the store gained {after:?}");
        assert!(!env.out().join("deployed").exists(), "{what}: something was exported");
        let left: Vec<_> = std::fs::read_dir(env.store().join("sources/org.osbuild.ostree"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{what}: the source directory holds {left:?}");
    }

    // the right key verifies: the commit is stored, and a second build finds it cached
    let o = env.run(
        &env.write_manifest("signed.json", &manifest_with(&server.url("repo"), &commit, &[&trusted])),
        &["--export", "deployed"],
    );
    ok(&o);
    assert!(ostree(&env.store().join("sources/org.osbuild.ostree/repo"), &["show", &commit]).contains(&commit));
    assert_eq!(ostree(&env.out().join("deployed/ostree/repo"), &["rev-parse", REF]).trim(), commit);
    std::fs::remove_dir_all(env.out()).unwrap();

    // a deploy of a ref that the sysroot's repository does not have
    let mut m = template("ostree-deploy.json");
    m["sources"] = json!({});
    m["pipelines"][0]["stages"] = json!([
        {"type": "org.osbuild.ostree.init-fs"},
        {"type": "org.osbuild.ostree.os-init", "options": {"osname": "x"}},
        {"type": "org.osbuild.ostree.deploy", "options": {"osname": "x", "ref": "no/such/ref"}}
    ]);
    let before = store_entries(&env.store());
    let o = env.run(&env.write_manifest("noref.json", &m), &["--export", "deployed"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(text.contains("no/such/ref"), "{text}");
    assert_eq!(store_entries(&env.store()), before);
}

/// The legacy v1 `org.osbuild.ostree.commit` assembler: the tree committed into a fresh archive
/// repository with the layout and metadata of the stage; with `tar`, repo and compose.json are
/// packed into the tarball instead.
#[test]
fn v1_ostree_commit_assembler() {
    need_ostree();
    let env = Env::new();
    let tree_stages = json!([
        {"name": "org.osbuild.mkdir", "options": {"paths": [
            {"path": "/usr/etc", "parents": true}, {"path": "/usr/bin"}, {"path": "/boot"}, {"path": "/var/lib", "parents": true}]}},
        {"name": "org.osbuild.ln", "options": {"paths": [{"target": "usr/bin", "link_name": "tree:///bin", "symbolic": true}]}}
    ]);
    let manifest = |tar: bool| {
        let mut options = json!({"ref": REF, "os_version": "7.1"});
        if tar {
            options["tar"] = json!({"filename": "commit.tar"});
        }
        json!({"pipeline": {"stages": tree_stages, "assembler": {"name": "org.osbuild.ostree.commit", "options": options}}})
    };
    ok(&env.run(&env.write_manifest("plain.json", &manifest(false)), &["--export", "assembler"]));
    let out = env.out().join("assembler");
    let repo = out.join("repo");
    let compose: Value = serde_json::from_slice(&std::fs::read(out.join("compose.json")).unwrap()).unwrap();
    let commit = compose["ostree-commit"].as_str().unwrap();
    assert_eq!(ostree(&repo, &["rev-parse", REF]).trim(), commit);
    assert!(ostree(&repo, &["log", REF]).contains("Version: 7.1"));
    let top = ostree(&repo, &["ls", REF, "/"]);
    for entry in [
        "/usr",
        "/sysroot",
        "/ostree -> sysroot/ostree",
        "/home -> var/home",
        "/root -> var/roothome",
        "/bin -> usr/bin",
        "/tmp",
    ] {
        assert!(top.contains(entry), "{entry} missing:\n{top}");
    }
    assert!(!out.join(".osbuild-ostree-root").exists(), "scratch root removed");

    std::fs::remove_dir_all(&out).unwrap();
    ok(&env.run(&env.write_manifest("tar.json", &manifest(true)), &["--export", "assembler"]));
    let list = Command::new("tar").arg("-tf").arg(out.join("commit.tar")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines().any(|l| l == "compose.json") && list.lines().any(|l| l == format!("repo/refs/heads/{REF}")),
        "{list}"
    );
    assert!(!out.join("repo").exists() && !out.join("compose.json").exists(), "packed, not left beside the tarball");
}

/// Issue 13: `ostree.deploy` with `"remote": "osbuild-rs"` leaves the ref under
/// `refs/remotes/osbuild-rs/` of the sysroot's repository, and osbuild/images' manifests name
/// it in later stages (`ostree.fillvar`) and deployment mounts without the remote; libostree
/// finds it under the remote, and so must they (the mount said "ref 'osbuild-rs/x86_64/iot' not
/// found"). `remote:ref` and the commit checksum name the same deployment.
#[test]
fn deployment_mount_finds_the_ref_as_libostree_does() {
    need_ostree();
    let env = Env::new();
    let (repo, commit) = common::ostree::bootable_commit(&env, REF, &[]);
    let url = format!("file://{}", repo.display());
    let manifest = |mount_ref: &str, marker: &str| {
        json!({"version": "2",
        "sources": {"org.osbuild.ostree": {"items": {&commit: {"remote": {"url": &url}}}}},
        "pipelines": [{"name": "deployed", "stages": [
            {"type": "org.osbuild.ostree.init-fs"},
            {"type": "org.osbuild.ostree.os-init", "options": {"osname": "iot"}},
            {"type": "org.osbuild.ostree.config", "options": {"repo": "/ostree/repo", "config": {"sysroot": {"readonly": true, "bootloader": "none"}}}},
            {"type": "org.osbuild.ostree.remotes", "options": {"repo": "/ostree/repo", "remotes": [{"name": "osbuild-rs", "url": &url}]}},
            {"type": "org.osbuild.ostree.deploy",
             "inputs": {"commits": {"type": "org.osbuild.ostree", "origin": "org.osbuild.source", "references": {&commit: {"ref": REF}}}},
             "options": {"osname": "iot", "remote": "osbuild-rs", "kernel_opts": ["rw"]}},
            {"type": "org.osbuild.ostree.fillvar", "options": {"deployment": {"osname": "iot", "ref": mount_ref}}},
            {"type": "org.osbuild.mkdir",
             "mounts": [{"name": "ostree.deployment", "type": "org.osbuild.ostree.deployment",
                         "options": {"deployment": {"osname": "iot", "ref": mount_ref}}}],
             "options": {"paths": [{"path": format!("/etc/{marker}")}, {"path": format!("/var/{marker}")}]}}
        ]}]})
    };
    let remote_ref = format!("osbuild-rs:{REF}");
    for (mount_ref, marker) in
        [(REF, "by-ref"), (remote_ref.as_str(), "by-remote-ref"), (commit.as_str(), "by-checksum")]
    {
        let o = env.run(
            &env.write_manifest(&format!("{marker}.json"), &manifest(mount_ref, marker)),
            &["--export", "deployed"],
        );
        ok(&o);
        let root = env.out().join("deployed");
        let sysroot_repo = root.join("ostree/repo");
        assert!(sysroot_repo.join(format!("refs/remotes/osbuild-rs/{REF}")).is_file(), "the ref is a remote ref");
        assert!(!sysroot_repo.join(format!("refs/heads/{REF}")).exists(), "and not a local branch");
        let dep = root.join(format!("ostree/deploy/iot/deploy/{commit}.0"));
        assert!(dep.join("etc").join(marker).is_dir(), "{mount_ref}: /etc of the deployment");
        assert!(root.join("ostree/deploy/iot/var").join(marker).is_dir(), "{mount_ref}: the stateroot's var");
        assert!(root.join("ostree/deploy/iot/var/log").is_dir(), "{mount_ref}: fillvar (a stage) found the deployment");
        std::fs::remove_dir_all(&root).unwrap();
    }
    assert!(env.mounts().is_empty(), "mounts left behind: {:?}", env.mounts());
}

/// The lengths of the byte arrays in GLib's text form of an `aay`. GLib prints an array as
/// `[byte 0x.., ...]`, or as `b'...'` (C escapes, octal `\ooo`) when its only NUL byte is the
/// last one, which is then left out. Which form a signature gets depends on its random bytes.
fn printed_byte_arrays(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'b' if chars.peek() == Some(&'\'') => {
                chars.next();
                let mut n = 1; // the NUL GLib leaves out
                while let Some(c) = chars.next() {
                    match c {
                        '\'' => break,
                        '\\' => {
                            // one escape is one byte: \ooo (1-3 octal digits) or \x
                            if chars.next().is_some_and(|d| d.is_digit(8)) {
                                for _ in 0..2 {
                                    if chars.peek().is_some_and(|d| d.is_digit(8)) {
                                        chars.next();
                                    }
                                }
                            }
                            n += 1;
                        }
                        c => n += c.len_utf8(),
                    }
                }
                out.push(n);
            }
            // an inner array starts with its first element; the outer one with `[` or `b'`
            '[' if {
                let rest: String = chars.clone().skip_while(|c| c.is_whitespace()).take(4).collect();
                rest.starts_with("byte") || rest.starts_with("0x")
            } =>
            {
                let mut n = 0;
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if prev == '0' && c == 'x' {
                        n += 1;
                    }
                    prev = c;
                }
                out.push(n);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn printed_byte_arrays_reads_both_forms() {
    assert_eq!(printed_byte_arrays("[[byte 0x01, 0x00, 0xff]]"), vec![3]);
    assert_eq!(printed_byte_arrays("[b'ab\\001\\\\c']"), vec![5 + 1]);
    assert_eq!(printed_byte_arrays("[b'\\364\\'x']"), vec![3 + 1]);
}
