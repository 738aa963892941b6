//! Stage tests through the sandbox entry point: each stage is run by
//! `run_stage_from_file` with an upstream-shaped arguments file on a temporary tree, plus the
//! registry/schema consistency checks and the compat-manifest option checks.
//!
//! Tests that need the exit code and the stderr line of a failing stage re-run this test
//! binary as a child process (see `child_runner`), so they can also change `PATH`.

#[path = "common/compat.rs"]
mod compat;
#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use osbuild_rs::schema::{module_schema, validate_against, ModuleKind};
use osbuild_rs::stages::{find, registry, run_stage_from_file};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Upstream osbuild's runtime (`stages/*.meta.json`), found as every test finds it.
fn upstream() -> Option<PathBuf> {
    Some(upstream::dir())
}

/// A temporary directory with `tree/` and the arguments/metadata files of one run.
struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tree")).unwrap();
        Run { dir }
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Upstream's arguments document for `options` and `inputs`.
    fn write_args(&self, options: Value, inputs: Value) -> PathBuf {
        let args = json!({
            "tree": self.tree(),
            "options": options,
            "inputs": inputs,
            "devices": {},
            "mounts": {},
            "meta": {"id": "0".repeat(64)},
            "paths": {"mounts": self.path("mounts")},
        });
        let p = self.path("arguments.json");
        fs::write(&p, serde_json::to_vec(&args).unwrap()).unwrap();
        p
    }

    /// Run `stage` in-process; returns the exit code.
    fn stage(&self, stage: &str, options: Value, inputs: Value) -> i32 {
        let args = self.write_args(options, inputs);
        run_stage_from_file(stage, &args, &self.path("meta.json"))
    }

    /// Run `stage` in a child process (optionally with another `PATH`); returns the exit code
    /// and stderr.
    fn stage_in_child(&self, stage: &str, options: Value, inputs: Value, path_env: Option<&str>) -> (i32, String) {
        let args = self.write_args(options, inputs);
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_runner", "--nocapture", "--test-threads=1"])
            .env("OSBUILD_RS_TEST_CHILD_STAGE", stage)
            .env("OSBUILD_RS_TEST_CHILD_ARGS", &args)
            .env("OSBUILD_RS_TEST_CHILD_META", self.path("meta.json"));
        if let Some(p) = path_env {
            cmd.env("PATH", p);
        }
        let out = cmd.output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Not a test of its own: when the parent sets the variables, run one stage and exit with
/// its exit code.
#[test]
fn child_runner() {
    let Ok(stage) = std::env::var("OSBUILD_RS_TEST_CHILD_STAGE") else { return };
    let args = std::env::var("OSBUILD_RS_TEST_CHILD_ARGS").unwrap();
    let meta = std::env::var("OSBUILD_RS_TEST_CHILD_META").unwrap();
    std::process::exit(run_stage_from_file(&stage, Path::new(&args), Path::new(&meta)));
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------- registry and schemas

/// What a schema's `x-capabilities` must say, derived from the stage's `CAPABILITIES` (the
/// one place they are written in code): nothing when the stage needs none.
fn schema_capabilities(capabilities: &[&str]) -> Option<Value> {
    (!capabilities.is_empty()).then(|| json!(capabilities))
}

#[test]
fn every_stage_has_a_valid_schema_with_its_capabilities() {
    assert_eq!(registry().len(), 113);
    let assemblers = osbuild_rs::stages::assemblers::registry();
    let all =
        registry().iter().map(|s| (ModuleKind::Stage, s)).chain(assemblers.iter().map(|a| (ModuleKind::Assembler, a)));
    for (kind, stage) in all {
        let text = module_schema(kind, stage.name).unwrap_or_else(|| panic!("no schema for {}", stage.name));
        let schema: Value = serde_json::from_str(text).unwrap();
        // compiles (panics otherwise) and accepts what the stage's defaults would need
        let _ = validate_against(&format!("{}/{}", kind.dir(), stage.name), text, &json!({}));
        assert_eq!(schema.get("x-capabilities").cloned(), schema_capabilities(stage.capabilities), "{}", stage.name);
    }
    for stage in registry() {
        assert_eq!(find(stage.name).unwrap().name, stage.name);
    }
    assert!(find("org.osbuild.no-such-stage").is_none());
    let names: Vec<_> = registry().iter().map(|s| s.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

/// Every stage of ours used in a compat manifest (v1 or v2): both the schema and the typed
/// options must accept its options.
#[test]
fn compat_manifest_options_pass_schema_and_types() {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut files: Vec<_> = fs::read_dir(compat::manifests_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    // and, given a checkout, upstream's own stage test manifests for our stages
    for stage in registry().iter().filter(|_| upstream().is_some()) {
        let dir = upstream().unwrap().join("test/data/stages").join(stage.name.trim_start_matches("org.osbuild."));
        if let Ok(rd) = fs::read_dir(dir) {
            files.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")));
        }
    }
    files.sort();
    // Manifests upstream itself refuses (cases.tsv: validation-error) are not samples of valid options.
    let cases = fs::read_to_string(compat::manifests_dir().parent().unwrap().join("cases.tsv")).unwrap_or_default();
    let refused: Vec<&str> =
        cases.lines().filter(|l| l.ends_with("\tvalidation-error")).filter_map(|l| l.split('\t').next()).collect();
    for file in files {
        let base = file.file_name().unwrap().to_string_lossy().into_owned();
        if refused.contains(&base.as_str()) {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&fs::read_to_string(&file).unwrap()) else { continue };
        let mut stages = Vec::new();
        collect_stages(&doc, &mut stages);
        for st in stages {
            let name = st.get("type").or_else(|| st.get("name")).and_then(Value::as_str).unwrap_or_default();
            let Some(info) = find(name) else { continue };
            let options = st.get("options").cloned().unwrap_or(json!({}));
            let text = module_schema(ModuleKind::Stage, name).unwrap();
            let errors = validate_against(&format!("stages/{name}"), text, &options);
            assert!(errors.is_empty(), "{}: {name}: {errors:?}", file.display());
            info.check_options(&options).unwrap_or_else(|e| panic!("{}: {name}: {e:?}", file.display()));
            *seen.entry(info.name).or_default() += 1;
        }
    }
    for name in
        ["noop", "mkdir", "copy", "chmod", "truncate", "hostname", "timezone", "locale", "users", "groups", "tar"]
    {
        assert!(seen.contains_key(format!("org.osbuild.{name}").as_str()), "no compat use of {name}: {seen:?}");
    }
}

fn collect_stages<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    // v2: pipelines[].stages[]; v1: pipeline{build{pipeline}, stages[]}
    if let Some(ps) = v.get("pipelines").and_then(Value::as_array) {
        for p in ps {
            out.extend(p.get("stages").and_then(Value::as_array).into_iter().flatten());
        }
    }
    if let Some(p) = v.get("pipeline") {
        out.extend(p.get("stages").and_then(Value::as_array).into_iter().flatten());
        if let Some(b) = p.get("build") {
            collect_stages(b, out);
        }
    }
}

/// Options each schema must refuse (as upstream's does).
fn rejected_options() -> Vec<(&'static str, Value)> {
    vec![
        ("org.osbuild.mkdir", json!({"paths": [{"path": "/x", "bogus": 1}]})),
        ("org.osbuild.rpm", json!({"exclude": {"doc": true}})),
        ("org.osbuild.rpm", json!({"install_langs": []})),
        ("org.osbuild.rpm", json!({"kernel_install_env": {"machine_id": "xyz"}})),
        ("org.osbuild.rpm", json!({"kernel_install_env": {"boot_root": "../boot"}})),
        ("org.osbuild.rpm", json!({"generic_env": {"A": 1}})),
        ("org.osbuild.rpm", json!({"rpmkeys": {"path": "/x"}})),
        ("org.osbuild.mkdir", json!({"paths": [{"path": "../x"}]})),
        ("org.osbuild.copy", json!({"paths": []})),
        ("org.osbuild.copy", json!({"paths": [{"from": "/x", "to": "tree:///y"}]})),
        ("org.osbuild.chmod", json!({"items": {"relative": {"mode": "0755"}}})),
        ("org.osbuild.chown", json!({"items": {"/x": {"recursive": true}}})),
        ("org.osbuild.ln", json!({"paths": [{"target": "x"}]})),
        ("org.osbuild.truncate", json!({"filename": "x"})),
        ("org.osbuild.hostname", json!({})),
        ("org.osbuild.timezone", json!({"zone": 1})),
        ("org.osbuild.locale", json!({"language": "C", "extra": true})),
        ("org.osbuild.machine-id", json!({"first-boot": "maybe"})),
        ("org.osbuild.users", json!({"users": {"bad name": {}}})),
        ("org.osbuild.groups", json!({"groups": {"g": {"gid": "x"}}})),
        ("org.osbuild.tar", json!({"filename": "x.tar", "paths": ["a"], "root-node": "omit"})),
        ("org.osbuild.tar", json!({"filename": "x.tar", "compression": "bzip2"})),
        ("org.osbuild.untar", json!({"prefix": 1})),
        ("org.osbuild.kernel-cmdline", json!({"root_fs_uuid": "not-a-uuid"})),
        ("org.osbuild.kernel-cmdline", json!({"kernel_cmdline_size": 100})),
        ("org.osbuild.fstab", json!({"filesystems": [{"path": "/"}]})),
        ("org.osbuild.fstab", json!({"filesystems": [], "ostree": {"deployment": {"default": true, "osname": "x"}}})),
        ("org.osbuild.fix-bls", json!({"prefix": "/boot", "extra": 1})),
        ("org.osbuild.dracut.conf", json!({"filename": "x.conf", "config": {}})),
        ("org.osbuild.dracut.conf", json!({"filename": "../x.conf", "config": {"compress": "xz"}})),
        ("org.osbuild.dracut.conf", json!({"filename": "x.conf", "config": {"hostonly": true}})),
        (
            "org.osbuild.modprobe",
            json!({"filename": "x.conf", "commands": [{"command": "install", "modulename": "m"}]}),
        ),
        (
            "org.osbuild.udev.rules",
            json!({"filename": "/etc/x.rules", "rules": [[{"key": "BOGUS", "op": "==", "val": "x"}]]}),
        ),
        (
            "org.osbuild.udev.rules",
            json!({"filename": "/etc/x.rules", "rules": [[{"key": "ENV", "op": "+=", "val": "x"}]]}),
        ),
        ("org.osbuild.sysctld", json!({"filename": "x.conf", "config": []})),
        ("org.osbuild.sysctld", json!({"filename": "x.conf", "config": [{"key": "no.dash"}]})),
        ("org.osbuild.keymap", json!({"keymap": "us", "x11-keymap": {"layouts": []}})),
        ("org.osbuild.sysconfig", json!({"network-scripts": {"ifcfg": {".eth0": {}}}})),
        ("org.osbuild.sysconfig", json!({"desktop": {}})),
        ("org.osbuild.selinux.config", json!({"state": "on"})),
        ("org.osbuild.selinux", json!({"force_autorelabel": true})),
        ("org.osbuild.selinux", json!({"labels": {}, "target": "/x"})),
        ("org.osbuild.dracut", json!({"compress": "xz"})),
    ]
}

/// Options each schema must accept, beyond those in the compat manifests.
fn accepted_options() -> Vec<(&'static str, Value)> {
    vec![
        ("org.osbuild.noop", json!({"anything": {"goes": [1]}})),
        ("org.osbuild.mkdir", json!({})),
        ("org.osbuild.rpm", json!({})),
        (
            "org.osbuild.rpm",
            json!({"dbpath": "/var/lib/rpm", "gpgkeys": ["k"], "gpgkeys.fromtree": ["/k"], "disable_dracut": true,
                   "exclude": {"docs": true}, "install_langs": ["en_US"], "nodeps": false, "ignorearch": true,
                   "ostree_booted": true, "generic_env": {"A": "1"},
                   "rpmkeys": {"bin_path": "/usr/bin/rpmkeys", "ignore_import_failures": true},
                   "kernel_install_env": {"boot_root": "/boot", "conf_root": "/etc/kernel", "plugins": "p",
                                          "machine_id": "0123456789abcdef0123456789abcdef"}}),
        ),
        (
            "org.osbuild.mkdir",
            json!({"paths": [{"path": "tree:///a", "mode": 420, "parents": true, "exist_ok": true}]}),
        ),
        (
            "org.osbuild.copy",
            json!({"paths": [{"from": "mount://m/x", "to": "mount://n/y", "remove_destination": true}]}),
        ),
        ("org.osbuild.chmod", json!({"items": {"/x": {"mode": "u+s", "recursive": true, "other": 1}}})),
        ("org.osbuild.chown", json!({"items": {"/x": {"user": 0}, "/y": {"group": "wheel", "recursive": true}}})),
        ("org.osbuild.ln", json!({"paths": [{"target": "/t", "link_name": "mount://root/l", "symbolic": true}]})),
        ("org.osbuild.machine-id", json!({"first-boot": "preserve"})),
        ("org.osbuild.users", json!({"users": {"a.b-c_d": {"expiredate": 12345, "force_password_reset": true}}})),
        ("org.osbuild.groups", json!({"force": false, "groups": {"g": {"gid": 0}}})),
        ("org.osbuild.tar", json!({"filename": "x", "paths": ["a", "b"], "sparse": true, "numeric-owner": true})),
        ("org.osbuild.tar", json!({"filename": "x", "root-node": "include", "transform": "s/a/b/", "format": "v7"})),
        ("org.osbuild.untar", json!({})),
        ("org.osbuild.kernel-cmdline", json!({"root_fs_uuid": "6699-AFB5", "kernel_cmdline_size": 4096})),
        (
            "org.osbuild.fstab",
            json!({"filesystems": [{"device": "/dev/sda1", "path": "/", "other": 1, "freq": 1.5}],
                                     "ostree": {"deployment": {"osname": "f", "ref": "r", "serial": 1}}}),
        ),
        ("org.osbuild.fix-bls", json!({"prefix": "", "require_boot_prefix": false})),
        (
            "org.osbuild.dracut.conf",
            json!({"filename": "a_b-c.conf", "config": {"reproducible": false, "drivers": []}}),
        ),
        (
            "org.osbuild.udev.rules",
            json!({"filename": "/etc/x.rules", "rules": [{"comment": []},
            [{"key": {"name": "ATTRS", "arg": "a"}, "op": "!=", "val": "x"}, {"key": "TAG", "op": "+=", "val": "y"}]]}),
        ),
        (
            "org.osbuild.udev.rules",
            json!({"filename": "/etc/x.rules", "rules": [[{"key": {"name": "RUN", "arg": "program"}, "op": ":=", "val": "y"}]]}),
        ),
        ("org.osbuild.sysctld", json!({"filename": "x.conf", "config": [{"key": "-a.b"}, {"key": "-c", "value": ""}]})),
        ("org.osbuild.keymap", json!({"keymap": "us", "font": ""})),
        ("org.osbuild.sysconfig", json!({})),
        (
            "org.osbuild.sysconfig",
            json!({"network-scripts": {"ifcfg": {"e.0": {}}}, "desktop": {"displaymanager": "x"}}),
        ),
        ("org.osbuild.selinux.config", json!({})),
        ("org.osbuild.selinux", json!({"labels": {"/x": "l"}, "target": "mount://root/"})),
        ("org.osbuild.selinux", json!({"file_contexts": "input://i/f", "exclude_paths": ["/sysroot"]})),
        ("org.osbuild.dracut", json!({"kernel": [], "include": [{"/a": "/b"}], "anything": 1})),
    ]
}

#[test]
fn schemas_reject_what_upstream_rejects() {
    for (name, options) in rejected_options() {
        let text = module_schema(ModuleKind::Stage, name).unwrap();
        let errors = validate_against(&format!("stages/{name}"), text, &options);
        assert!(!errors.is_empty(), "{name} accepted {options}");
    }
    for (name, options) in accepted_options() {
        let text = module_schema(ModuleKind::Stage, name).unwrap();
        let errors = validate_against(&format!("stages/{name}"), text, &options);
        assert!(errors.is_empty(), "{name} refused {options}: {errors:?}");
        find(name).unwrap().check_options(&options).unwrap_or_else(|e| panic!("{name}: {options}: {e:?}"));
    }
}

/// Our schemas and upstream's (from its `.meta.json`, as upstream wraps them) give the same
/// verdict on every sample above. Uses upstream beside the repository, or `OSBUILD_UPSTREAM`.
#[test]
fn schemas_agree_with_upstream_meta_json() {
    let upstream = upstream().expect("upstream osbuild at ../shared/upstream/osbuild or in OSBUILD_UPSTREAM");
    for stage in registry() {
        let meta = upstream.join("stages").join(format!("{}.meta.json", stage.name));
        // our own stages (the Debian ones) have no upstream counterpart
        let Ok(meta) = fs::read_to_string(&meta) else { continue };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        let mut upstream = match meta.get("schema_2").filter(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
            Some(s2) => {
                let mut o = s2.get("options").cloned().unwrap_or(json!({}));
                // upstream keeps `definitions` beside `options`; `$ref`s resolve at the top
                if let Some(d) = s2.get("definitions") {
                    o.as_object_mut().unwrap().insert("definitions".into(), d.clone());
                }
                o
            }
            None => meta.get("schema").cloned().unwrap_or(json!({})),
        };
        // the manifest schema already makes options an object
        upstream.as_object_mut().unwrap().insert("type".into(), json!("object"));
        let upstream_text: &'static str = Box::leak(upstream.to_string().into_boxed_str());
        let ours = module_schema(ModuleKind::Stage, stage.name).unwrap();
        let samples = rejected_options().into_iter().chain(accepted_options()).filter(|(n, _)| *n == stage.name);
        for (_, options) in samples {
            let a = validate_against(&format!("stages/{}", stage.name), ours, &options).is_empty();
            let b = validate_against(&format!("upstream/{}", stage.name), upstream_text, &options).is_empty();
            assert_eq!(a, b, "{}: {options}: ours {a}, upstream {b}", stage.name);
        }
    }
}

// ---------------------------------------------------------------- stage runs

#[test]
fn noop_runs() {
    let r = Run::new();
    assert_eq!(r.stage("org.osbuild.noop", json!({"x": 1}), json!({})), 0);
    assert!(!r.path("meta.json").exists());
}

#[test]
fn mkdir_chmod_truncate_ln() {
    let r = Run::new();
    let tree = r.tree();
    let opts = json!({"paths": [
        {"path": "/boot/efi", "parents": true, "mode": 0o700},
        {"path": "images"},
        {"path": "tree:///images/pxeboot", "exist_ok": true},
    ]});
    assert_eq!(r.stage("org.osbuild.mkdir", opts, json!({})), 0);
    assert_eq!(mode(&tree.join("boot/efi")), 0o700);
    assert!(tree.join("images/pxeboot").is_dir());

    let opts = json!({"filename": "/images/disk.img", "size": "10737418240"});
    assert_eq!(r.stage("org.osbuild.truncate", opts, json!({})), 0);
    assert_eq!(fs::metadata(tree.join("images/disk.img")).unwrap().len(), 10737418240);

    let opts = json!({"items": {"/images/disk.img": {"mode": "0600"}, "/boot": {"mode": "go-rwx", "recursive": true}}});
    assert_eq!(r.stage("org.osbuild.chmod", opts, json!({})), 0);
    assert_eq!(mode(&tree.join("images/disk.img")), 0o600);
    assert_eq!(mode(&tree.join("boot")), 0o700);

    let opts = json!({"paths": [
        {"target": "disk.img", "link_name": "tree:///images/link.img", "symbolic": true},
        {"target": "/images/disk.img", "link_name": "tree:///images/hard.img"},
    ]});
    assert_eq!(r.stage("org.osbuild.ln", opts, json!({})), 0);
    assert_eq!(fs::read_link(tree.join("images/link.img")).unwrap(), Path::new("disk.img"));
    assert_eq!(fs::metadata(tree.join("images/disk.img")).unwrap().nlink(), 2);
}

/// The options of upstream's mkdir test (`test/data/stages/mkdir`), on a tree that already
/// has what its "a" manifest creates; the added paths are those of its diff.
#[test]
fn mkdir_like_upstream_test() {
    let r = Run::new();
    let tree = r.tree();
    let before = json!({"paths": [{"path": "/a"}, {"path": "/c/d", "parents": true}]});
    assert_eq!(r.stage("org.osbuild.mkdir", before, json!({})), 0);
    let opts = json!({"paths": [
        {"path": "/a"}, {"path": "/c/d", "parents": true}, {"path": "/a/b", "mode": 448},
        {"path": "/b/c/d", "parents": true}, {"path": "/c", "mode": 448, "exist_ok": true}, {"path": "i_am_relative"},
    ]});
    // `/a` exists and has no exist_ok: upstream fails here too
    let (code, stderr) = r.stage_in_child("org.osbuild.mkdir", opts.clone(), json!({}), None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("org.osbuild.mkdir: cannot create directory"), "{stderr}");
    let fresh = Run::new();
    assert_eq!(fresh.stage("org.osbuild.mkdir", opts, json!({})), 0);
    let t = fresh.tree();
    for p in ["a/b", "b", "b/c", "b/c/d", "i_am_relative", "c/d"] {
        assert!(t.join(p).is_dir(), "{p}");
    }
    assert_eq!(mode(&t.join("a/b")), 0o700);
    assert!(tree.join("c/d").is_dir());
}

#[test]
fn copy_from_files_input() {
    let r = Run::new();
    let input = r.path("inputs/inlinefile");
    fs::create_dir_all(&input).unwrap();
    let sum = "sha256:0e55092af0746630c98d1b2e0d960617c33f8ea7b55739fd18cb7cd5342a28ca";
    fs::write(input.join(sum), "42\n").unwrap();
    fs::create_dir_all(r.tree().join("etc")).unwrap();
    fs::write(r.tree().join("etc/system-release"), "old").unwrap();
    let inputs = json!({"inlinefile": {"path": input, "data": {"files": {sum: {}}}}});
    let opts = json!({"paths": [
        {"from": format!("input://inlinefile/{sum}"), "to": "tree:///testfile1"},
        {"from": format!("input://inlinefile/{sum}"), "to": "tree:///etc/system-release", "remove_destination": true},
    ]});
    assert_eq!(r.stage("org.osbuild.copy", opts, inputs), 0);
    assert_eq!(fs::read_to_string(r.tree().join("testfile1")).unwrap(), "42\n");
    assert_eq!(fs::read_to_string(r.tree().join("etc/system-release")).unwrap(), "42\n");
}

#[test]
fn chown_by_tree_names() {
    let r = Run::new();
    let tree = r.tree();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nsvc:x:901:902::/:/sbin/nologin\n").unwrap();
    fs::write(tree.join("etc/group"), "root:x:0:\nsvc:x:902:\n").unwrap();
    fs::create_dir_all(tree.join("srv/data")).unwrap();
    fs::write(tree.join("srv/data/f"), "").unwrap();
    let opts = json!({"items": {"/srv": {"user": "svc", "group": "svc", "recursive": true}}});
    assert_eq!(r.stage("org.osbuild.chown", opts, json!({})), 0);
    let m = fs::metadata(tree.join("srv/data/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (901, 902));
}

#[test]
fn hostname_timezone_locale_machine_id() {
    let r = Run::new();
    let tree = r.tree();
    let zoneinfo = tree.join("usr/share/zoneinfo");
    fs::create_dir_all(&zoneinfo).unwrap();
    fs::write(zoneinfo.join("UTC"), "TZif2").unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/.pwd.lock"), "").unwrap();
    assert_eq!(r.stage("org.osbuild.hostname", json!({"hostname": "testing.hostname.local"}), json!({})), 0);
    assert!(!tree.join("etc/.pwd.lock").exists(), "as with current systemd-firstboot");
    assert_eq!(r.stage("org.osbuild.timezone", json!({"zone": "UTC"}), json!({})), 0);
    assert_eq!(r.stage("org.osbuild.locale", json!({"language": "en_US.UTF-8"}), json!({})), 0);
    assert_eq!(r.stage("org.osbuild.machine-id", json!({"first-boot": "yes"}), json!({})), 0);
    assert_eq!(fs::read_to_string(tree.join("etc/hostname")).unwrap(), "testing.hostname.local\n");
    assert_eq!(fs::read_link(tree.join("etc/localtime")).unwrap(), Path::new("../usr/share/zoneinfo/UTC"));
    assert_eq!(fs::read_to_string(tree.join("etc/locale.conf")).unwrap(), "LANG=en_US.UTF-8\n");
    assert_eq!(fs::read_to_string(tree.join("etc/machine-id")).unwrap(), "uninitialized\n");
    for f in ["etc/hostname", "etc/locale.conf", "etc/machine-id"] {
        assert_eq!(mode(&tree.join(f)), 0o644, "{f}");
    }
    assert_eq!(mode(&tree.join("etc")), 0o755);
}

#[test]
fn hostile_symlinks_never_reach_the_host() {
    let host = tempfile::tempdir().unwrap();
    let victim = host.path().join("passwd");
    fs::write(&victim, "host\n").unwrap();
    let r = Run::new();
    let tree = r.tree();
    fs::create_dir_all(tree.join("etc")).unwrap();
    // an absolute link straight at the host file, and a relative one climbing out
    std::os::unix::fs::symlink(&victim, tree.join("etc/machine-id")).unwrap();
    let up = format!("../../../../../../../../../..{}", host.path().display());
    std::os::unix::fs::symlink(&up, tree.join("up")).unwrap();
    let inner = tree.join(host.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&inner).unwrap();
    assert_eq!(r.stage("org.osbuild.machine-id", json!({"first-boot": "yes"}), json!({})), 0);
    assert_eq!(r.stage("org.osbuild.truncate", json!({"filename": "/up/passwd", "size": "1M"}), json!({})), 0);
    let opts = json!({"paths": [{"path": "/up/newdir"}]});
    assert_eq!(r.stage("org.osbuild.mkdir", opts, json!({})), 0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host\n");
    assert!(!host.path().join("newdir").exists());
    assert_eq!(fs::metadata(inner.join("passwd")).unwrap().len(), 1 << 20);
    assert!(inner.join("newdir").is_dir());
}

fn etc_tree(tree: &Path) {
    let etc = tree.join("etc");
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(tree.join("root")).unwrap();
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    fs::write(etc.join("group"), "root:x:0:\nwheel:x:10:\n").unwrap();
    fs::write(etc.join("shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    fs::write(etc.join("gshadow"), "root:*::\nwheel:!::\n").unwrap();
    fs::write(etc.join("login.defs"), "USERGROUPS_ENAB yes\n").unwrap();
}

#[test]
fn users_and_groups_with_shadow_tools() {
    let r = Run::new();
    let tree = r.tree();
    etc_tree(&tree);
    let opts = json!({"force": true, "groups": {"testgroup": {"gid": 1010}, "newgroup": {}}});
    assert_eq!(r.stage("org.osbuild.groups", opts, json!({})), 0);
    let opts = json!({"users": {
        "root": {"password": ""},
        "nohome": {"home": "", "uid": 1337},
        "arch": {"password": "$6$x$y", "home": "/home/arch", "groups": ["testgroup", "wheel"], "uid": 1200,
                 "keys": ["ssh-ed25519 AAAA test"]},
    }});
    assert_eq!(r.stage("org.osbuild.users", opts, json!({})), 0);
    let group = fs::read_to_string(tree.join("etc/group")).unwrap();
    assert!(group.contains("testgroup:x:1010:arch"), "{group}");
    assert!(group.lines().any(|l| l.starts_with("newgroup:x:")), "{group}");
    let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert!(passwd.contains("arch:x:1200:1200::/home/arch:"), "{passwd}");
    assert!(passwd.contains("nohome:x:1337:1337::/home/nohome:"), "{passwd}");
    assert!(!tree.join("home/nohome").exists());
    let shadow = fs::read_to_string(tree.join("etc/shadow")).unwrap();
    assert!(shadow.starts_with("root::"), "{shadow}");
    assert!(shadow.contains("arch:$6$x$y:"), "{shadow}");
    let ak = tree.join("home/arch/.ssh/authorized_keys");
    assert_eq!(fs::read_to_string(&ak).unwrap(), "ssh-ed25519 AAAA test\n");
    assert_eq!(fs::metadata(&ak).unwrap().uid(), 1200);
}

#[test]
fn tar_untar_round_trip() {
    for name in ["out.tar", "out.tar.gz", "out.tar.xz", "out.tar.zst"] {
        let src = Run::new();
        let t = src.tree();
        fs::create_dir_all(t.join("usr/bin")).unwrap();
        fs::write(t.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(t.join("usr/bin/tool"), fs::Permissions::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
        std::os::unix::fs::chown(t.join("usr/bin/tool"), Some(1234), Some(4321)).unwrap();

        // org.osbuild.tar: input `tree` = src's tree, output in `out`'s tree
        let out = Run::new();
        let inputs = json!({"tree": {"path": src.tree(), "data": {}}});
        let opts = json!({"filename": name, "selinux": false});
        assert_eq!(out.stage("org.osbuild.tar", opts, inputs), 0, "{name}");
        let archive = out.tree().join(name);
        let head = fs::read(&archive).unwrap();
        match name {
            "out.tar.gz" => assert_eq!(&head[..2], b"\x1f\x8b"),
            "out.tar.xz" => assert_eq!(&head[..6], b"\xfd7zXZ\0"),
            "out.tar.zst" => assert_eq!(&head[..4], b"\x28\xb5\x2f\xfd"),
            _ => assert_eq!(&head[257..262], b"ustar"),
        }

        // org.osbuild.untar: a files input holding the archive
        let sum = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let dst = Run::new();
        let input = dst.path("inputs/file");
        fs::create_dir_all(&input).unwrap();
        fs::copy(&archive, input.join(sum)).unwrap();
        fs::create_dir_all(dst.tree().join("sysroot")).unwrap();
        let inputs = json!({"file": {"path": input, "data": {"files": {sum: {}}}}});
        assert_eq!(dst.stage("org.osbuild.untar", json!({"prefix": "/sysroot"}), inputs), 0, "{name}");
        let back = dst.tree().join("sysroot");
        assert_eq!(fs::read_to_string(back.join("usr/bin/tool")).unwrap(), "#!/bin/sh\n");
        assert_eq!(mode(&back.join("usr/bin/tool")), 0o751);
        let m = fs::metadata(back.join("usr/bin/tool")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
        assert_eq!(fs::read_link(back.join("bin")).unwrap(), Path::new("usr/bin"));
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn missing_tool_names_tool_and_stage() {
    let r = Run::new();
    etc_tree(&r.tree());
    let empty = r.path("empty-path");
    fs::create_dir(&empty).unwrap();
    let opts = json!({"groups": {"g": {}}});
    let (code, stderr) = r.stage_in_child("org.osbuild.groups", opts, json!({}), Some(empty.to_str().unwrap()));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("org.osbuild.groups: groupadd not found in the build root, but org.osbuild.groups needs it"),
        "{stderr}"
    );
    let (code, stderr) =
        r.stage_in_child("org.osbuild.users", json!({"users": {"u": {}}}), json!({}), Some(empty.to_str().unwrap()));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("useradd not found in the build root, but org.osbuild.users needs it"), "{stderr}");
}

#[test]
fn bad_options_give_one_clear_line() {
    let r = Run::new();
    let (code, stderr) =
        r.stage_in_child("org.osbuild.mkdir", json!({"paths": [{"path": "/x", "bogus": 1}]}), json!({}), None);
    assert_eq!(code, 1);
    let line = stderr.lines().find(|l| l.starts_with("org.osbuild.mkdir:")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("org.osbuild.mkdir: invalid options: unknown field `bogus`"), "{line}");

    let (code, stderr) = r.stage_in_child("org.osbuild.hostname", json!({}), json!({}), None);
    assert_eq!(code, 1);
    assert!(stderr.contains("org.osbuild.hostname: invalid options: missing field `hostname`"), "{stderr}");

    let (code, stderr) = r.stage_in_child("org.osbuild.tar", json!({"filename": "x.tar"}), json!({}), None);
    assert_eq!(code, 1);
    assert!(stderr.contains("org.osbuild.tar: unknown input 'tree'"), "{stderr}");

    let (code, stderr) = r.stage_in_child("org.osbuild.nope", json!({}), json!({}), None);
    assert_eq!(code, 1);
    assert!(stderr.contains("org.osbuild.nope: unknown stage org.osbuild.nope"), "{stderr}");

    // a tool's failure: argv and the tail of its stderr
    let (code, stderr) =
        r.stage_in_child("org.osbuild.chmod", json!({"items": {"/": {"mode": "bogus"}}}), json!({}), None);
    assert_eq!(code, 1);
    assert!(stderr.contains("org.osbuild.chmod: `chmod bogus --"), "{stderr}");
    assert!(stderr.contains("failed (exit status: 1): chmod: invalid mode"), "{stderr}");

    // a missing arguments file
    let code = run_stage_from_file("org.osbuild.noop", &r.path("missing.json"), &r.path("meta.json"));
    assert_eq!(code, 1);
}

/// Our direct writes give what `systemd-firstboot --root` (which upstream runs) gives for
/// the host name and the time zone. (Debian's firstboot writes the locale elsewhere, so the
/// locale is compared with upstream's documented result in `hostname_timezone_locale_machine_id`.)
#[test]
fn hostname_and_timezone_match_systemd_firstboot() {
    let ours = Run::new();
    assert_eq!(ours.stage("org.osbuild.hostname", json!({"hostname": "testing.hostname.local"}), json!({})), 0);
    assert_eq!(ours.stage("org.osbuild.timezone", json!({"zone": "Europe/Prague"}), json!({})), 0);
    let theirs = Run::new();
    let status = Command::new("systemd-firstboot")
        .arg(format!("--root={}", theirs.tree().display()))
        .args(["--hostname=testing.hostname.local", "--timezone=Europe/Prague"])
        .status()
        .expect("systemd-firstboot is needed for this comparison test");
    assert!(status.success());
    let (a, b) = (ours.tree(), theirs.tree());
    assert_eq!(fs::read(a.join("etc/hostname")).unwrap(), fs::read(b.join("etc/hostname")).unwrap());
    assert_eq!(mode(&a.join("etc/hostname")), mode(&b.join("etc/hostname")));
    assert_eq!(mode(&a.join("etc")), mode(&b.join("etc")));
    assert_eq!(fs::read_link(a.join("etc/localtime")).unwrap(), fs::read_link(b.join("etc/localtime")).unwrap());
}
