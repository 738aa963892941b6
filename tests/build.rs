//! Integration tests of whole builds: real bubblewrap, real store, real HTTP on loopback.
//! They need root (CI runs as root) and fail loudly when a tool is missing.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn two_pipelines(env: &Env) -> std::path::PathBuf {
    let (sum, item) = inline_item(b"hello from an inline source\n");
    env.write_manifest(
        "two.json",
        &json!({
            "version": "2",
            "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}},
            "pipelines": [
                {"name": "tree", "stages": [
                    mkdir("/etc"),
                    {"type": "org.osbuild.copy",
                     "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
                     "options": {"paths": [{"from": format!("input://f/{sum}"), "to": "tree:///etc/greeting"}]}},
                    {"type": "org.osbuild.hostname", "options": {"hostname": "demo"}}
                ]},
                {"name": "tarball", "stages": [
                    {"type": "org.osbuild.tar", "inputs": {"tree": tree_input("tree")}, "options": {"filename": "tree.tar"}}
                ]}
            ]
        }),
    )
}

#[test]
fn exports_hold_the_pipeline_trees() {
    let env = Env::new();
    let m = two_pipelines(&env);
    let o = env.run(&m, &["--export", "tree", "--export", "tarball"]);
    ok(&o);
    assert_eq!(std::fs::read(env.out().join("tree/etc/greeting")).unwrap(), b"hello from an inline source\n");
    assert_eq!(std::fs::read_to_string(env.out().join("tree/etc/hostname")).unwrap().trim(), "demo");
    let list = std::process::Command::new("tar").arg("tf").arg(env.out().join("tarball/tree.tar")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "etc/greeting"), "{list}");
    // Exactly the pipeline's tree: nothing of ours (metadata, scratch) leaks into exports.
    let names: Vec<String> = std::fs::read_dir(env.out().join("tarball"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["tree.tar".to_string()]);
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
}

/// The id of pipeline `name` of manifest `m` (its last stage's id), from `--inspect`.
fn pipeline_id(m: &std::path::Path, name: &str) -> String {
    let o = std::process::Command::new(bin()).arg("--inspect").arg(m).output().unwrap();
    let desc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = desc["pipelines"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
    p["stages"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned()
}

/// Run a build of `m` in `env`'s store with `out` as the output directory.
fn run_into(env: &Env, m: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(bin());
    c.arg("--store").arg(env.store()).arg("--output-directory").arg(out).args(extra).arg(m);
    c.stdin(std::process::Stdio::null()).output().unwrap()
}

/// Whether `<out>/tree` of [`two_pipelines`] was moved out of the store rather than copied.
///
/// A copy is made after the whole build, by creating new files: every file of a copy has a
/// ctime (which nothing can set back, unlike mtime) from after the `tarball` pipeline wrote
/// `tree.tar` (a copy of `tree.tar` keeps that mtime, and a moved one has it anyway). A moved
/// tree is the store's very files, whose ctime is when the `tree` pipeline's copy stage made
/// them, before the `hostname` stage and the whole `tarball` pipeline ran.
fn tree_was_moved(out: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let greeting = std::fs::metadata(out.join("tree/etc/greeting")).unwrap();
    let tar = std::fs::metadata(out.join("tarball/tree.tar")).unwrap();
    (greeting.ctime(), greeting.ctime_nsec()) < (tar.mtime(), tar.mtime_nsec())
}

/// A checkpointed export is a copy (a reflink where the file system has one), never a hard link
/// into the store: changing an exported file leaves the committed object as it was. Several
/// exports run side by side; a name given twice is exported once, complete.
#[test]
fn exports_are_copies_the_user_may_change_without_touching_the_store() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let m = two_pipelines(&env);
    let o = env.run(&m, &["--checkpoint", "tree", "--export", "tree", "--export", "tarball", "--export", "tree"]);
    ok(&o);
    assert!(!tree_was_moved(&env.out()), "a checkpointed tree was moved out of the store");
    let exported = env.out().join("tree/etc/greeting");
    let objects = env.objects();
    let stored: Vec<std::path::PathBuf> = objects
        .iter()
        .map(|id| env.store().join("objects").join(id).join("tree/etc/greeting"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(stored.len(), 1, "objects: {objects:?}");
    let (a, b) = (std::fs::metadata(&exported).unwrap(), std::fs::metadata(&stored[0]).unwrap());
    assert!(a.ino() != b.ino() || a.dev() != b.dev(), "the export shares the store's inode");
    assert_eq!(b.nlink(), 1, "the store's file has another name");
    std::fs::OpenOptions::new().append(true).open(&exported).unwrap().write_all(b"changed by the user\n").unwrap();
    assert_eq!(std::fs::read(&stored[0]).unwrap(), b"hello from an inline source\n");
    assert!(env.out().join("tarball/tree.tar").is_file());
    // The changed export does not count as the store's: the next build exports the original.
    // Without --checkpoint too: an object this run found in the store (an earlier run's
    // checkpoint) is copied, never taken away.
    ok(&env.run(&m, &["--export", "tree"]));
    assert_eq!(std::fs::read(&exported).unwrap(), b"hello from an inline source\n");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), b"hello from an inline source\n");
}

/// As upstream keeps only checkpoints, a pipeline exported and not checkpointed leaves the store:
/// its tree is renamed to `<out>/<name>`, never copied, and the whole object (metadata too) is
/// gone from `objects/`.
#[test]
fn exports_not_checkpointed_are_moved_out_of_the_store() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let m = two_pipelines(&env);
    let o = env.run(&m, &["--export", "tree", "--export", "tarball"]);
    ok(&o);
    assert_eq!(std::fs::read(env.out().join("tree/etc/greeting")).unwrap(), b"hello from an inline source\n");
    assert_eq!(std::fs::read_to_string(env.out().join("tree/etc/hostname")).unwrap().trim(), "demo");
    assert!(env.out().join("tarball/tree.tar").is_file());
    assert!(tree_was_moved(&env.out()), "the tree was copied");
    let export_dev = std::fs::metadata(env.out().join("tree/etc/greeting")).unwrap().dev();
    assert_eq!(export_dev, std::fs::metadata(env.store()).unwrap().dev());
    assert_eq!(env.objects(), Vec::<String>::new(), "objects left in the store");
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
    // Only the tree itself was moved: nothing of the object (metadata) came along.
    let mut names: Vec<String> = std::fs::read_dir(env.out().join("tree"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["etc"]);
}

/// The same manifest built twice in a row without a checkpoint: the second build makes the
/// moved pipelines again (its stages run) and exports them the same way.
#[test]
fn builds_in_a_row_without_checkpoint_rebuild_what_was_moved() {
    let env = Env::new();
    let m = two_pipelines(&env);
    for out in ["out1", "out2"] {
        let o = run_into(&env, &m, &env.path(out), &["--json", "--export", "tree", "--export", "tarball"]);
        ok(&o);
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["log"]["tree"].as_array().map(Vec::len), Some(3), "{out}: {}", doc["log"]);
        assert_eq!(doc["log"]["tarball"].as_array().map(Vec::len), Some(1), "{out}: {}", doc["log"]);
        let out = env.path(out);
        assert_eq!(std::fs::read(out.join("tree/etc/greeting")).unwrap(), b"hello from an inline source\n");
        assert!(tree_was_moved(&out));
        assert!(env.objects().is_empty(), "{:?}", env.objects());
    }
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: std::path::PathBuf) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let st = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(&at).status();
        assert!(st.unwrap().success(), "mount -t tmpfs failed (the tests run as root)");
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An output directory on another file system cannot take a rename (EXDEV): the export is a
/// copy, the store keeps the object.
#[test]
fn exports_to_another_file_system_fall_back_to_a_copy() {
    let env = Env::new();
    let m = two_pipelines(&env);
    let out = Tmpfs::mount(env.path("tmpfs-out"));
    let o = run_into(&env, &m, &out.0, &["--export", "tree"]);
    ok(&o);
    assert_eq!(std::fs::read(out.0.join("tree/etc/greeting")).unwrap(), b"hello from an inline source\n");
    assert_eq!(std::fs::read_to_string(out.0.join("tree/etc/hostname")).unwrap().trim(), "demo");
    let id = pipeline_id(&m, "tree");
    assert!(env.objects().contains(&id), "the object left the store: {:?}", env.objects());
    assert!(env.store().join("objects").join(&id).join("tree/etc/greeting").is_file());
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
}

/// An earlier export left files in `<out>/<name>`: the rename cannot replace it, the export is a
/// copy into it as before (the old files stay, the tree's replace theirs) and the store keeps
/// the object. An empty directory there is no obstacle.
#[test]
fn exports_onto_an_earlier_export_fall_back_to_a_copy() {
    let env = Env::new();
    let m = two_pipelines(&env);
    std::fs::create_dir_all(env.out().join("tree/etc")).unwrap();
    std::fs::write(env.out().join("tree/etc/greeting"), "left by an earlier export\n").unwrap();
    std::fs::write(env.out().join("tree/stale"), "stale\n").unwrap();
    std::fs::create_dir_all(env.out().join("tarball")).unwrap();
    ok(&env.run(&m, &["--export", "tree", "--export", "tarball"]));
    assert_eq!(std::fs::read(env.out().join("tree/etc/greeting")).unwrap(), b"hello from an inline source\n");
    assert_eq!(std::fs::read(env.out().join("tree/stale")).unwrap(), b"stale\n");
    assert!(!tree_was_moved(&env.out()), "moved onto an earlier export");
    let objects = env.objects();
    assert!(objects.contains(&pipeline_id(&m, "tree")), "{objects:?}");
    assert!(!objects.contains(&pipeline_id(&m, "tarball")), "the empty directory kept the move away: {objects:?}");
    assert!(env.out().join("tarball/tree.tar").is_file());
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
}

/// A moved export and a copied one of the same tree look the same, down to the root directory's
/// mode, owner and times (`ls -lnR --time-style=full-iso`; `source-epoch` makes two builds'
/// mtimes equal).
#[test]
fn moved_and_copied_exports_are_alike() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests/demo.json");
    let mut listings = vec![];
    let mut roots = vec![];
    for (tag, extra) in [("copy", &["--checkpoint", "tree"][..]), ("move", &[][..])] {
        let (store, out) = (env.path(&format!("store-{tag}")), env.path(&format!("out-{tag}")));
        let o = std::process::Command::new(bin())
            .arg("--store")
            .arg(&store)
            .arg("--output-directory")
            .arg(&out)
            .args(["--export", "tree"])
            .args(extra)
            .arg(&demo)
            .output()
            .unwrap();
        ok(&o);
        let kept = std::fs::read_dir(store.join("objects")).unwrap().count();
        assert_eq!(kept, if tag == "copy" { 1 } else { 0 }, "{tag}: objects in the store");
        let ls = std::process::Command::new("ls")
            .args(["-lnR", "--time-style=full-iso"])
            .current_dir(out.join("tree"))
            .output()
            .unwrap();
        assert!(ls.status.success());
        listings.push(String::from_utf8(ls.stdout).unwrap());
        let root = std::fs::metadata(out.join("tree")).unwrap();
        roots.push((root.mode(), root.uid(), root.gid(), root.nlink(), root.mtime(), root.mtime_nsec()));
    }
    assert!(listings[0].contains("motd"), "{}", listings[0]);
    assert_eq!(listings[0], listings[1]);
    assert_eq!(roots[0], roots[1]);
}

/// What the store keeps (here: the exported pipeline, checkpointed, and the pipeline it is made
/// from, which is not exported) needs no stage work the next time.
#[test]
fn second_identical_run_does_no_stage_work() {
    let env = Env::new();
    let m = two_pipelines(&env);
    ok(&env.run(&m, &["--export", "tarball", "--checkpoint", "tarball"]));
    let o = env.run(&m, &["--export", "tarball", "--checkpoint", "tarball", "--json"]);
    ok(&o);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["success"], true);
    // No stage ran: the log has no entries for any pipeline.
    let ran: usize =
        doc["log"].as_object().map(|l| l.values().map(|v| v.as_array().map_or(0, Vec::len)).sum()).unwrap_or(0);
    assert_eq!(ran, 0, "stages ran again: {}", doc["log"]);
    assert!(env.out().join("tarball/tree.tar").is_file());
}

#[test]
fn checkpoints_keep_intermediate_stages_and_builds_resume_from_them() {
    let env = Env::new();
    let m = env.write_manifest(
        "cp.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/a"), mkdir("/b"), mkdir("/c")]}]}),
    );
    let inspect = std::process::Command::new(bin()).arg("--inspect").arg(&m).output().unwrap();
    let desc: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let ids: Vec<String> = desc["pipelines"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    // Glob over stage ids: the second stage only.
    let pattern = format!("{}*", &ids[1][..12]);
    ok(&env.run(&m, &["--checkpoint", &pattern]));
    let objects = env.objects();
    assert!(objects.contains(&ids[1]), "checkpointed stage missing: {objects:?}");
    assert!(objects.contains(&ids[2]), "pipeline tree missing: {objects:?}");
    assert!(!objects.contains(&ids[0]), "unrequested stage kept: {objects:?}");
    let tree = env.store().join("objects").join(&ids[1]).join("tree");
    assert!(tree.join("a").is_dir() && tree.join("b").is_dir() && !tree.join("c").exists());

    // A changed last stage resumes from the checkpoint: only one stage runs.
    let m2 = env.write_manifest(
        "cp2.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/a"), mkdir("/b"), mkdir("/d")]}]}),
    );
    let o = env.run(&m2, &["--json", "--checkpoint", "tree"]);
    ok(&o);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["log"]["tree"].as_array().unwrap().len(), 1, "{}", doc["log"]);

    let o = env.run(&m, &["--checkpoint", "no-such-*"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn failing_stage_reports_upstream_error_and_commits_nothing() {
    let env = Env::new();
    // mkdir without `parents` under a missing directory fails.
    let m = env.write_manifest(
        "fail.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
            mkdir("/ok"),
            {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/missing/child"}]}}
        ]}]}),
    );
    let o = env.run(&m, &["--json", "--export", "tree"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&o.stdout).expect("stdout holds only the result document");
    assert_eq!(doc["type"], "error");
    assert_eq!(doc["success"], false);
    assert_eq!(doc["error"]["type"], "org.osbuild.error.stage");
    assert_eq!(doc["error"]["details"]["stage"]["type"], "org.osbuild.mkdir");
    assert_eq!(doc["error"]["details"]["stage"]["id"].as_str().unwrap().len(), 64);
    assert!(doc["error"]["details"]["stage"]["output"].as_str().unwrap().contains("missing"), "{doc}");
    for key in ["build", "stages", "assembler"] {
        assert!(doc.get(key).is_none(), "v2 result carries top-level {key}");
    }
    assert!(env.objects().is_empty(), "something was committed: {:?}", env.objects());
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
    assert!(!env.out().join("tree").exists());
}

#[test]
fn unknown_stage_fails_before_any_work() {
    let env = Env::new();
    let m = env.write_manifest(
        "unknown.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/a"), {"type": "org.example.nothere"}]}]}),
    );
    let o = env.run(&m, &["--export", "tree"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pipelines[0].stages[1]") && err.contains("org.example.nothere") && err.contains("/stages/"),
        "{err}"
    );
    assert!(env.objects().is_empty());
}

/// A symlink in the tree pointing outside it, then a copy through it. The victims are where an
/// escape would show: `/run/osbuild/meta`, the host file the sandbox binds writable for the
/// stage's metadata (a write there becomes the stage's metadata in the result), and a host
/// file named by its host path. Both links must resolve inside the tree, and the copies land
/// there.
#[test]
fn paths_from_manifests_never_escape_the_tree() {
    let env = Env::new();
    let victim = env.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let victim_in_tree = victim.strip_prefix("/").unwrap();
    let (sum, item) = inline_item(br#"{"escaped": true}"#);
    let copy_to = |to: &str| {
        json!({"type": "org.osbuild.copy",
         "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
         "options": {"paths": [{"from": format!("input://f/{sum}"), "to": to}]}})
    };
    let m = env.write_manifest(
        "escape.json",
        &json!({"version": "2",
        "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}},
        "pipelines": [{"name": "tree", "stages": [
            mkdir("/etc"),
            mkdir("/run/osbuild"),
            mkdir(&format!("/{}", victim_in_tree.parent().unwrap().display())),
            {"type": "org.osbuild.ln", "options": {"paths": [
                {"target": "/run/osbuild/meta", "link_name": "tree:///etc/meta-link", "symbolic": true},
                {"target": victim.to_str().unwrap(), "link_name": "tree:///etc/host-link", "symbolic": true}]}},
            copy_to("tree:///etc/meta-link"),
            copy_to("tree:///etc/host-link")
        ]}]}),
    );
    let o = env.run(&m, &["--json", "--export", "tree"]);
    ok(&o);
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!result["metadata"].to_string().contains("escaped"), "wrote the stage's metadata file: {result}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let tree = env.out().join("tree");
    assert_eq!(std::fs::read_to_string(tree.join("run/osbuild/meta")).unwrap(), r#"{"escaped": true}"#);
    assert_eq!(std::fs::read_to_string(tree.join(victim_in_tree)).unwrap(), r#"{"escaped": true}"#);

    // `..` in a manifest path is refused by validation before anything runs.
    let m = env.write_manifest(
        "dotdot.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
            {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/../../../../tmp/osbuild-rs-escape", "parents": true}]}}
        ]}]}),
    );
    let o = env.run(&m, &["--export", "tree"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!std::path::Path::new("/tmp/osbuild-rs-escape").exists());
}

/// Start a build whose stage blocks (a fake `useradd` in a foreign build root sleeps),
/// wait until it is inside the stage, send `sig`, and check nothing is left behind.
fn interrupt_mid_stage(sig: i32, expect_code: Option<i32>) {
    let env = Env::new();
    // A sleep duration unique to this test run is how we find its processes.
    let marker = format!("sleep {}", 1000 + (std::process::id() % 5000) * 10 + sig as u32);
    let script = format!("#!/bin/sh\necho stage-started\n{marker}\n");
    let (build, mut items) = foreign_build_root_pipeline(&env, &[("useradd", &script)]);
    let mut stages = etc_passwd_stages(&env, &mut items);
    stages.push(json!({"type": "org.osbuild.users", "options": {"users": {"test": {}}}}));
    let users_index = stages.len() - 1;
    let m = env.write_manifest(
        "sleepy.json",
        &json!({"version": "2",
            "sources": {"org.osbuild.curl": {"items": items}},
            "pipelines": [build, {"name": "tree", "build": "name:build", "stages": stages}]}),
    );
    let mut child = env.spawn(&m, &["--export", "tree"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the stage never started");
        if let Some(st) = child.try_wait().unwrap() {
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("build ended early with {st}: {e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id() as i32;
    let sent = Instant::now();
    std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(sent.elapsed() < Duration::from_secs(2), "did not exit within 2 s of signal {sig}");
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(code) = expect_code {
        assert_eq!(status.code(), Some(code), "exit status after signal {sig}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(processes_with(&marker).is_empty(), "processes left: {:?}", processes_with(&marker));
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
    if sig != 9 {
        assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
    }
    // The tree pipeline never completed, so only the build pipeline may be in the store.
    let tree_id = {
        let o = std::process::Command::new(bin()).arg("--inspect").arg(&m).output().unwrap();
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        d["pipelines"][1]["stages"][users_index]["id"].as_str().unwrap().to_owned()
    };
    assert!(!env.objects().contains(&tree_id));

    if sig == 9 {
        // After SIGKILL the next run starts clean (stale tmp removed) and succeeds.
        let fine = env.write_manifest(
            "fine.json",
            &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x")]}]}),
        );
        ok(&env.run(&fine, &["--export", "tree"]));
        assert!(env.tmp_entries().is_empty(), "stale tmp not cleaned: {:?}", env.tmp_entries());
    }
}

#[test]
fn sigterm_mid_stage_leaves_nothing_behind() {
    interrupt_mid_stage(15, Some(130));
}

#[test]
fn sigint_mid_stage_leaves_nothing_behind() {
    interrupt_mid_stage(2, Some(130));
}

#[test]
fn sigkill_mid_stage_then_next_run_is_clean() {
    interrupt_mid_stage(9, None);
}

#[test]
fn stage_timeout_fails_the_stage() {
    let env = Env::new();
    let script = "#!/bin/sh\nexec sleep 300\n";
    let (build, mut items) = foreign_build_root_pipeline(&env, &[("useradd", script)]);
    let mut stages = etc_passwd_stages(&env, &mut items);
    stages.push(json!({"type": "org.osbuild.users", "options": {"users": {"t": {}}}}));
    let m = env.write_manifest(
        "timeout.json",
        &json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}},
            "pipelines": [build, {"name": "tree", "build": "name:build", "stages": stages}]}),
    );
    let started = Instant::now();
    let o = env.run(&m, &["--stage-timeout", "2", "--export", "tree", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(60));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["error"]["details"]["stage"]["type"], "org.osbuild.users");
}

#[test]
fn foreign_build_root_runs_stages_with_its_own_tools() {
    let env = Env::new();
    // useradd here is the build root's own (a script): proves the stage used the build
    // root's tools, and that our static binary runs in a tree with no libc at all.
    let script = "#!/bin/sh\necho \"fake useradd $*\"\nmkdir -p /run/osbuild/tree/etc\necho \"$@\" > /run/osbuild/tree/etc/useradd-args\n";
    let (build, mut items) = foreign_build_root_pipeline(&env, &[("useradd", script)]);
    let mut stages = etc_passwd_stages(&env, &mut items);
    stages.push(json!({"type": "org.osbuild.users", "options": {"users": {"alice": {}}}}));
    let m = env.write_manifest(
        "foreign.json",
        &json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}},
            "pipelines": [build, {"name": "tree", "build": "name:build", "stages": stages}]}),
    );
    let o = env.run(&m, &["--export", "tree"]);
    ok(&o);
    let args = std::fs::read_to_string(env.out().join("tree/etc/useradd-args")).unwrap();
    assert!(args.contains("alice"), "{args}");
    // The build root has no /lib or libc: our stage binary is static.
    let build_root_id = {
        let o = std::process::Command::new(bin()).arg("--inspect").arg(&m).output().unwrap();
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        d["pipelines"][1]["build"].as_str().unwrap().to_owned()
    };
    let root = env.store().join("objects").join(build_root_id).join("tree");
    assert!(!root.join("lib").exists() && !root.join("usr/lib").exists());
}

#[test]
fn two_concurrent_builds_share_one_store() {
    let env = Env::new();
    let m = two_pipelines(&env);
    let m2 = env.write_manifest(
        "other.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/x"), noop(1)]}]}),
    );
    let a = env.cmd(&m, &["--export", "tarball"]).output();
    let b = std::thread::spawn({
        let mut c = env.cmd(&m, &["--export", "tree"]);
        move || c.output().unwrap()
    });
    let c = std::thread::spawn({
        let mut c = env.cmd(&m2, &["--checkpoint", "tree"]);
        move || c.output().unwrap()
    });
    ok(&a.unwrap());
    ok(&b.join().unwrap());
    ok(&c.join().unwrap());
    assert!(env.tmp_entries().is_empty(), "tmp left: {:?}", env.tmp_entries());
}

#[test]
fn curl_sources_over_http_and_file_urls() {
    let env = Env::new();
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("a.txt"), b"over http\n").unwrap();
    std::fs::write(env.path("b.txt"), b"over file\n").unwrap();
    let server = HttpServer::start(&served);
    let (a, b) = (sha256(b"over http\n"), sha256(b"over file\n"));
    let m = env.write_manifest(
        "curl.json",
        &json!({"version": "2",
            "sources": {"org.osbuild.curl": {"items": {
                a.clone(): format!("http://127.0.0.1:{}/a.txt", server.port),
                b.clone(): {"url": format!("file://{}", env.path("b.txt").display())}
            }}},
            "pipelines": [{"name": "tree", "stages": [
                {"type": "org.osbuild.copy",
                 "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [a.clone(), b.clone()]}},
                 "options": {"paths": [{"from": format!("input://f/{a}"), "to": "tree:///a"}, {"from": format!("input://f/{b}"), "to": "tree:///b"}]}}
            ]}]}),
    );
    ok(&env.run(&m, &["--export", "tree"]));
    assert_eq!(std::fs::read(env.out().join("tree/a")).unwrap(), b"over http\n");
    assert_eq!(std::fs::read(env.out().join("tree/b")).unwrap(), b"over file\n");
    assert!(env.store().join("sources/org.osbuild.files").join(&a).is_file());
}

#[test]
fn checksum_mismatch_is_a_source_error_and_nothing_is_stored() {
    let env = Env::new();
    std::fs::write(env.path("data"), b"actual content").unwrap();
    let wrong = sha256(b"something else");
    let url = format!("file://{}", env.path("data").display());
    let m = env.write_manifest(
        "bad.json",
        &json!({"version": "2",
            "sources": {"org.osbuild.curl": {"items": {wrong.clone(): url.clone()}}},
            "pipelines": [{"name": "tree", "stages": [
                {"type": "org.osbuild.copy",
                 "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [wrong.clone()]}},
                 "options": {"paths": [{"from": format!("input://f/{wrong}"), "to": "tree:///x"}]}}
            ]}]}),
    );
    let o = env.run(&m, &["--export", "tree", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["error"]["type"], "org.osbuild.error.source", "{doc}");
    let text = doc.to_string();
    assert!(text.contains(&url) && text.contains(&wrong[7..]), "{text}");
    // The content's own hash is never shown (it would reveal the hash of any host file).
    assert!(!text.contains(&sha256(b"actual content")[7..]), "{text}");
    let stored: Vec<_> = std::fs::read_dir(env.store().join("sources/org.osbuild.files"))
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    assert!(stored.is_empty(), "something was stored: {:?}", stored.iter().map(|e| e.file_name()).collect::<Vec<_>>());
    assert!(env.objects().is_empty());
}

#[test]
fn monitor_stream_and_json_result_of_a_two_pipeline_build() {
    let env = Env::new();
    let m = two_pipelines(&env);
    let fd3 = env.path("monitor.seq");
    let cmd = format!(
        "exec 3>{fd3} && exec {bin} --store {store} --output-directory {out} --export tarball --json --monitor JSONSeqMonitor --monitor-fd 3 {m}",
        fd3 = fd3.display(), bin = bin(), store = env.store().display(), out = env.out().display(), m = m.display()
    );
    let o = std::process::Command::new("bash").arg("-c").arg(&cmd).output().unwrap();
    ok(&o);
    let doc: Value = serde_json::from_slice(&o.stdout).expect("stdout is only the result");
    assert_eq!(doc["type"], "result");
    assert_eq!(doc["success"], true);
    assert!(doc["metadata"].is_object());
    assert_eq!(doc["log"]["tree"].as_array().unwrap().len(), 3);
    assert_eq!(doc["log"]["tarball"].as_array().unwrap().len(), 1);
    for entry in doc["log"]["tree"].as_array().unwrap() {
        assert!(entry["id"].is_string() && entry["type"].is_string() && entry["output"].is_string());
    }

    let raw = std::fs::read_to_string(&fd3).unwrap();
    let mut records = vec![];
    for line in raw.split_inclusive('\n') {
        assert!(line.starts_with('\u{1e}') && line.ends_with('\n'), "bad record framing: {line:?}");
        let rec: Value = serde_json::from_str(&line[1..]).expect("each record is one line of JSON");
        assert!(rec["timestamp"].is_f64() || rec["timestamp"].is_number());
        records.push(rec);
    }
    let messages: Vec<&str> = records.iter().filter_map(|r| r["message"].as_str()).collect();
    let pos = |needle: &str| {
        messages.iter().position(|m| m.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in {messages:?}"))
    };
    assert!(pos("starting") < pos("Starting pipeline tree"));
    assert!(pos("Starting pipeline tree") < pos("Starting pipeline tarball"));
    assert!(pos("Starting module org.osbuild.tar") < pos("Finished module org.osbuild.tar"));
    assert!(pos("Finished module org.osbuild.tar") < pos("finished successfully"));
    // Stage results carry an id (callers keep only those); source results do not.
    let finished: Vec<&Value> = records
        .iter()
        .filter(|r| r["message"].as_str().is_some_and(|m| m.starts_with("Finished module")))
        .filter(|r| r["result"]["id"].as_str().is_some_and(|id| !id.is_empty()))
        .collect();
    assert_eq!(finished.len(), 4);
    for r in &finished {
        assert!(r["duration"].is_number());
        assert_eq!(r["result"]["success"], true);
        assert_eq!(r["result"]["id"].as_str().unwrap().len(), 64);
    }
    // progress: the outer counter reaches its total.
    let last_progress = records.iter().rev().find_map(|r| r.get("progress")).expect("progress records");
    assert!(last_progress["total"].as_u64().unwrap() >= 2);
}

#[test]
fn break_opens_a_shell_in_the_sandbox_when_a_terminal_is_attached() {
    let env = Env::new();
    let m = env.write_manifest(
        "break.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/made-before"), mkdir("/made-by-the-stage")]}]}),
    );
    // `script` gives the build a pseudo-terminal; the shell reads our commands from it.
    let cmd = format!(
        "{} --store {} --output-directory {} --export tree --break org.osbuild.mkdir {}",
        bin(),
        env.store().display(),
        env.out().display(),
        m.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) is needed: run `make deps`");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // One shell per mkdir stage; each lists the tree it will build into and exits.
        for _ in 0..2 {
            stdin.write_all(b"ls /run/osbuild/tree; echo shell-saw-$((6*7)); exit\n").unwrap();
            std::thread::sleep(Duration::from_millis(700));
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.matches("shell-saw-42").count() >= 2, "{text}");
    // In the second shell the first stage's directory is already in the tree.
    assert!(text.contains("made-before"), "{text}");
    assert!(env.out().join("tree/made-by-the-stage").is_dir());
}

#[test]
fn cache_max_size_evicts_least_recently_used_objects_of_other_manifests() {
    let env = Env::new();
    let first = env.write_manifest(
        "first.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/first")]}]}),
    );
    let second = env.write_manifest(
        "second.json",
        &json!({"version": "2", "pipelines": [{"name": "tree", "stages": [mkdir("/second")]}]}),
    );
    ok(&env.run(&first, &["--checkpoint", "tree", "--cache-max-size", "unlimited"]));
    let first_objects = env.objects();
    assert_eq!(first_objects.len(), 1);
    ok(&env.run(&second, &["--checkpoint", "tree", "--cache-max-size", "1"]));
    let now = env.objects();
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!now.contains(&first_objects[0]), "the older object should have been evicted");
    let o = env.run(&second, &["--checkpoint", "tree", "--cache-max-size", "lots"]);
    assert_eq!(o.status.code(), Some(2), "a bad size is a usage error");
}

#[test]
fn files_input_from_another_pipeline() {
    let env = Env::new();
    let (sum, item) = inline_item(b"made in one pipeline, read by another\n");
    let m = env.write_manifest(
        "files-from-pipeline.json",
        &json!({"version": "2",
            "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}},
            "pipelines": [
                {"name": "tree", "stages": [
                    mkdir("/etc"),
                    {"type": "org.osbuild.copy",
                     "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [sum.clone()]}},
                     "options": {"paths": [{"from": format!("input://f/{sum}"), "to": "tree:///etc/greeting"}]}}
                ]},
                {"name": "other", "stages": [
                    {"type": "org.osbuild.copy",
                     "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.pipeline",
                                      "references": {"name:tree": {"file": "/etc/greeting"}}}},
                     "options": {"paths": [{"from": "input://f/etc/greeting", "to": "tree:///greeting"}]}}
                ]}
            ]}),
    );
    ok(&env.run(&m, &["--export", "other"]));
    assert_eq!(std::fs::read(env.out().join("other/greeting")).unwrap(), b"made in one pipeline, read by another\n");

    // A file reference that climbs out of the pipeline's tree is refused.
    let mut bad: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    bad["pipelines"][1]["stages"][0]["inputs"]["f"]["references"]["name:tree"]["file"] =
        json!("/../../../../etc/passwd");
    let bad = env.write_manifest("bad-ref.json", &bad);
    let o = env.run(&bad, &["--export", "other"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!env.out().join("other/passwd").exists());
}

/// `source-epoch` beyond upstream: every mtime in the trees is clamped to the epoch, so two
/// builds of the demo at different times give the same tree metadata and the same tarball bytes.
#[test]
fn source_epoch_builds_are_bit_identical() {
    let env = Env::new();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests/demo.json");
    let mut sums = vec![];
    for i in 0..2 {
        let out = env.path(&format!("out{i}"));
        let o = std::process::Command::new(bin())
            .arg("--store")
            .arg(env.path(&format!("store{i}")))
            .arg("--output-directory")
            .arg(&out)
            .args(["--export", "tarball", "--export", "tree"])
            .arg(&demo)
            .output()
            .unwrap();
        ok(&o);
        let tar = std::fs::read(out.join("tarball/demo.tar")).unwrap();
        sums.push(sha256(&tar));
        let hostname = std::fs::symlink_metadata(out.join("tree/etc/hostname")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::mtime(&hostname), 1_700_000_000, "clamped to the source epoch");
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(sums[0], sums[1], "the demo tarball differs between two builds");
}
