//! Stage sessions (src/sandbox/session.rs): consecutive native stages without inputs, devices
//! or mounts share one bubblewrap, and each still finds the sandbox a stage of its own would.
//!
//! The stages here are `org.osbuild.users` in a foreign build root whose `useradd` is a script:
//! it is how a test runs its own commands inside a stage's sandbox. A `bwrap` wrapper first in
//! `PATH` logs every sandbox started, so the tests can count them.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A `bwrap` that logs its arguments, one sandbox a line, then runs the real one.
fn bwrap_logger(env: &Env, tag: &str) -> (PathBuf, PathBuf) {
    let real = ["/usr/bin/bwrap", "/bin/bwrap"].into_iter().find(|p| Path::new(p).is_file()).expect("bwrap");
    let dir = env.path(&format!("wrap-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = env.path(&format!("bwrap-{tag}.log"));
    let script = format!("#!/bin/sh\necho \"$*\" >> {}\nexec {real} \"$@\"\n", log.display());
    std::fs::write(dir.join("bwrap"), script).unwrap();
    Command::new("chmod").arg("755").arg(dir.join("bwrap")).status().unwrap();
    (dir, log)
}

fn run_with(env: &Env, manifest: &Path, wrap: &Path, sessions: bool, extra: &[&str]) -> Output {
    let path = format!("{}:{}", wrap.display(), std::env::var("PATH").unwrap());
    let mut cmd = env.cmd(manifest, extra);
    cmd.env("PATH", path).stdin(Stdio::null());
    if !sessions {
        cmd.env("OSBUILD_RS_STAGE_SESSIONS", "0");
    }
    cmd.output().unwrap()
}

/// A manifest whose tree pipeline runs `org.osbuild.users` once per name, in a build root whose
/// `useradd` is `script` (it gets the user name as its last argument).
fn users_manifest(env: &Env, script: &str, names: &[&str]) -> PathBuf {
    let (build, mut items) = foreign_build_root_pipeline(env, &[("useradd", script)]);
    let mut stages = etc_passwd_stages(env, &mut items);
    for name in names {
        stages.push(json!({"type": "org.osbuild.users", "options": {"users": {*name: {}}}}));
    }
    env.write_manifest(
        "users.json",
        &json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}},
            "pipelines": [build, {"name": "tree", "build": "name:build", "stages": stages}]}),
    )
}

/// What each `useradd` saw of its sandbox before it left its own traces in it: files in
/// `/tmp`, `/var/tmp`, `/run`, `/run/osbuild`, `/dev`, `/dev/shm`, and the host name. Then it
/// litters all of them, renames the host and leaves a process running.
fn littering_useradd(marker: &str) -> String {
    format!(
        r#"#!/bin/sh
for last; do :; done
rec=/run/osbuild/tree/seen-$last
for d in /tmp /var/tmp /run /run/osbuild /dev /dev/shm; do echo "$d: $(ls -A $d)"; done > $rec
echo "hostname: $(cat /proc/sys/kernel/hostname)" >> $rec
cat /proc/[0-9]*/cmdline > /run/osbuild/tree/procs-$last 2>/dev/null
for f in /tmp /var/tmp /run /run/osbuild /dev /dev/shm; do echo x > $f/left-$last; done
mkdir /run/left-dir-$last && echo x > /run/left-dir-$last/f
echo renamed-by-$last > /proc/sys/kernel/hostname
sleep {marker} >/dev/null 2>&1 &
exit 0
"#
    )
}

#[test]
fn consecutive_stages_share_one_bubblewrap_and_nothing_else() {
    let env = Env::new();
    let (wrap, log) = bwrap_logger(&env, "sessions");
    let marker = format!("{}", 2000 + std::process::id() % 5000);
    let m = users_manifest(&env, &littering_useradd(&marker), &["a", "b", "c"]);
    let o = run_with(&env, &m, &wrap, true, &["--export", "tree"]);
    ok(&o);

    // The build pipeline's mkdir/ln/chmod stages share one session, the tree pipeline's mkdir
    // and three users stages another; the copy stages (they have inputs) get their own.
    let lines = std::fs::read_to_string(&log).unwrap();
    let sessions = lines.lines().filter(|l| l.ends_with("__stage-session")).count();
    let users_alone = lines.lines().filter(|l| l.ends_with("__stage org.osbuild.users")).count();
    let copies = lines.lines().filter(|l| l.ends_with("__stage org.osbuild.copy")).count();
    assert_eq!((sessions, users_alone), (2, 0), "{lines}");
    assert!(copies >= 3, "{lines}");

    // b and c saw none of what a and b left: each found the sandbox as the first one did.
    let tree = env.out().join("tree");
    let seen = |name: &str| std::fs::read_to_string(tree.join(format!("seen-{name}"))).unwrap();
    assert_eq!(seen("b"), seen("a"));
    assert_eq!(seen("c"), seen("a"));
    assert!(!seen("a").contains("left-"), "{}", seen("a"));
    assert!(!seen("a").contains("renamed-by"), "{}", seen("a"));
    for name in ["b", "c"] {
        let procs = std::fs::read(tree.join(format!("procs-{name}"))).unwrap();
        let procs = String::from_utf8_lossy(&procs).replace('\0', " ");
        assert!(!procs.contains(&marker), "{name} saw an earlier stage's process: {procs}");
    }
    // Nothing outlives the build either.
    assert!(processes_with(&format!("sleep {marker}")).is_empty());
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    assert!(env.tmp_entries().is_empty(), "{:?}", env.tmp_entries());

    // And that is what one bubblewrap per stage gives (sessions off): the same view, file for
    // file, with one sandbox per stage.
    let first = seen("a");
    let (wrap, log) = bwrap_logger(&env, "alone");
    std::fs::remove_dir_all(env.store()).unwrap();
    std::fs::remove_dir_all(env.out()).unwrap();
    ok(&run_with(&env, &m, &wrap, false, &["--export", "tree"]));
    let alone = std::fs::read_to_string(&log).unwrap();
    assert_eq!(alone.lines().filter(|l| l.ends_with("__stage-session")).count(), 0, "{alone}");
    assert_eq!(alone.lines().filter(|l| l.ends_with("__stage org.osbuild.users")).count(), 3, "{alone}");
    for name in ["a", "b", "c"] {
        assert_eq!(seen(name), first, "stage {name}: a session's sandbox differs from a stage's own");
    }
}

#[test]
fn a_failing_stage_in_a_session_fails_the_build_as_it_would_alone() {
    let script = "#!/bin/sh\nfor last; do :; done\nif [ \"$last\" = b ]; then echo \"useradd: cannot add $last\" >&2; exit 3; fi\necho \"added $last\"\n";
    let mut results = vec![];
    for sessions in [true, false] {
        let env = Env::new();
        let (wrap, log) = bwrap_logger(&env, "log");
        let m = users_manifest(&env, script, &["a", "b", "c"]);
        let o = run_with(&env, &m, &wrap, sessions, &["--export", "tree", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        let lines = std::fs::read_to_string(&log).unwrap();
        assert!(env.tmp_entries().is_empty(), "{:?}", env.tmp_entries());
        assert_eq!(lines.lines().filter(|l| l.ends_with("__stage-session")).count(), if sessions { 2 } else { 0 });
        results.push(doc);
    }
    let (with, without) = (&results[0], &results[1]);
    assert_eq!(with["success"], false);
    assert_eq!(with["error"]["details"]["stage"]["type"], "org.osbuild.users");
    // The result document is the same with and without sessions: the same stages, the same
    // outputs (a's "added a", b's error), the same error.
    assert_eq!(with, without);
    let text = with.to_string();
    assert!(text.contains("added a") && text.contains("useradd: cannot add b"), "{text}");
    assert!(!text.contains("added c"), "{text}");
}
