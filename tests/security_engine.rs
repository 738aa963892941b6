//! Adversarial manifests against what the engine does on the host, outside any sandbox:
//! inputs, devices, mounts and exports. Each test puts a victim where an escape would be
//! visible (a directory, a copy of /etc, an ostree repository, a loop device made by the test,
//! all on the host, reachable from where the engine works), runs the attack, and asserts the
//! build's result and that the victim is untouched.
//!
//! `OSBUILD_RS_BIN=/path/to/osbuild-rs` runs the same attacks against another build of
//! osbuild-rs (how the "before" column of the issue's table was measured).

mod common;

use common::disk::{loops_backed_under, read_at};
use common::{inline_item, mkdir, sha256, Env};
use serde_json::{json, Map, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> String {
    std::env::var("OSBUILD_RS_BIN").unwrap_or_else(|_| common::bin().to_owned())
}

fn command(env: &Env, store: &Path, name: &str, m: &Value, extra: &[&str]) -> Command {
    let manifest = env.write_manifest(name, m);
    let mut c = Command::new(bin());
    c.arg("--store").arg(store).arg("--output-directory").arg(env.out()).args(extra).arg(manifest);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn build(env: &Env, name: &str, m: &Value, extra: &[&str]) -> Output {
    command(env, &env.store(), name, m, extra).output().unwrap()
}

/// Run a build that must end on its own within `limit`; a build still running then is killed
/// and the test fails (what a blocking read of a FIFO did).
fn build_within(env: &Env, name: &str, m: &Value, extra: &[&str], limit: Duration) -> Output {
    let mut child = command(env, &env.store(), name, m, extra).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the build still ran after {limit:?} (killed): {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn failed_with(o: &Output, parts: &[&str]) {
    let t = text(o);
    eprintln!("{}", t.lines().filter(|l| l.contains("error")).collect::<Vec<_>>().join("\n"));
    assert!(!o.status.success(), "the build must fail: {t}");
    for p in parts {
        assert!(t.contains(p), "{p:?} missing in: {t}");
    }
}

fn sh(script: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// `dir` packed as a tar (device nodes, FIFOs and symlinks kept), as a curl source item and
/// the files input of `org.osbuild.untar`.
fn tar_input(env: &Env, name: &str, dir: &Path) -> (Map<String, Value>, Value) {
    let tar = env.path(&format!("{name}.tar"));
    sh(&format!("tar -C '{}' -cf '{}' .", dir.display(), tar.display()));
    let sum = sha256(&std::fs::read(&tar).unwrap());
    let mut items = Map::new();
    items.insert(sum.clone(), json!({"url": format!("file://{}", tar.display())}));
    (items, json!({"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum: {}}}))
}

fn untar(input: Value) -> Value {
    json!({"type": "org.osbuild.untar", "inputs": {"file": input}})
}

fn ln(target: &str, link: &str) -> Value {
    json!({"type": "org.osbuild.ln", "options": {"paths": [{"target": target, "link_name": format!("tree://{link}"), "symbolic": true}]}})
}

fn victim_dir(env: &Env, name: &str) -> PathBuf {
    let d = env.path(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("keep"), "victim").unwrap();
    d
}

fn untouched(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["keep"], "something was written into the victim {}", dir.display());
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "victim");
}

/// A tree laid out as an ostree sysroot with one deployment of `osname`, its ref in the repo.
fn sysroot_stages(commit: &str, osname: &str, ref_item: &str) -> Vec<Value> {
    let dep = format!("/ostree/deploy/{osname}/deploy/{commit}.0");
    vec![
        json!({"type": "org.osbuild.mkdir", "options": {"paths": [
            {"path": "/ostree/repo/refs/heads", "parents": true},
            {"path": format!("{dep}/sysroot"), "parents": true},
            {"path": format!("{dep}/var")}, {"path": format!("{dep}/boot")}, {"path": format!("{dep}/etc")}]}}),
        json!({"type": "org.osbuild.copy",
         "inputs": {"r": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {ref_item: {}}}},
         "options": {"paths": [{"from": format!("input://r/{ref_item}"), "to": "tree:///ostree/repo/refs/heads/os"}]}}),
    ]
}

/// issue 11: a tree whose `/boot`, or whose stateroot's `var`, is a symlink to a host
/// directory got that directory bound writable into the stage.
#[test]
fn deployment_mount_binds_no_host_directory_through_boot_or_var() {
    let env = Env::new();
    let commit = "c".repeat(64);
    let (ref_sum, ref_item) = inline_item(format!("{commit}\n").as_bytes());
    for (what, link, write) in [("boot", "/boot", "/boot/escaped"), ("var", "/ostree/deploy/iot/var", "/var/escaped")] {
        let victim = victim_dir(&env, &format!("victim-{what}"));
        let mut stages = sysroot_stages(&commit, "iot", &ref_sum);
        if what == "var" {
            stages.push(mkdir("/boot"));
        } else {
            stages.push(mkdir("/ostree/deploy/iot/var"));
        }
        stages.push(ln(victim.to_str().unwrap(), link));
        stages.push(json!({"type": "org.osbuild.mkdir",
            "mounts": [{"name": "ostree.deployment", "type": "org.osbuild.ostree.deployment",
                        "options": {"deployment": {"osname": "iot", "ref": "os"}}}],
            "options": {"paths": [{"path": write}]}}));
        let m = json!({"version": "2",
            "sources": {"org.osbuild.inline": {"items": {ref_sum.clone(): ref_item.clone()}}},
            "pipelines": [{"name": "image", "stages": stages}]});
        let o = build(&env, &format!("deploy-{what}.json"), &m, &["--export", "image"]);
        // The link is followed inside the tree, where the victim's path does not exist.
        failed_with(
            &o,
            &["pipelines[0].stages[4].mounts.ostree.deployment: cannot mount", "No such file or directory"],
        );
        untouched(&victim);
    }
    assert!(common::disk::host_mounts_with(&env.dir.path().to_string_lossy()).is_empty());
}

/// issue 11: `file: "/hostetc/shadow"` with `hostetc -> /etc` in the pipeline's tree
/// hard-linked the host's shadow into the stage input and the export.
#[test]
fn files_input_from_a_pipeline_reads_no_host_file_through_a_symlink() {
    let env = Env::new();
    let etc = env.path("etc-copy");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("shadow"), "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let m = json!({"version": "2", "pipelines": [
        {"name": "a", "stages": [ln(etc.to_str().unwrap(), "/hostetc")]},
        {"name": "b", "stages": [{"type": "org.osbuild.copy",
            "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.pipeline",
                             "references": {"name:a": {"file": "/hostetc/shadow"}}}},
            "options": {"paths": [{"from": "input://f/hostetc/shadow", "to": "tree:///leak"}]}}]}
    ]});
    let o = build(&env, "leak.json", &m, &["--export", "b"]);
    failed_with(
        &o,
        &["pipelines[1].stages[0].inputs.f: cannot prepare the input", "hostetc/shadow", "No such file or directory"],
    );
    assert!(!env.out().join("b/leak").exists());
    let md = std::fs::metadata(etc.join("shadow")).unwrap();
    assert_eq!(md.nlink(), 1, "the host file was hard-linked somewhere");
}

/// An ostree repository made by the test stands for one on the host; the tree names it by a
/// symlink, at its top (`repo -> /host/repo`) or deeper (`repo/objects/xx -> ...`).
#[test]
fn ostree_input_reads_no_host_repository_through_the_tree() {
    let env = Env::new();
    let host_repo = env.path("host-repo");
    sh(&format!("ostree init --repo='{}' --mode=archive", host_repo.display()));
    let content = env.path("host-content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("secret"), "host secret\n").unwrap();
    let commit =
        sh(&format!("ostree commit --repo='{}' --branch=host --tree=dir='{}'", host_repo.display(), content.display()));
    let cases = [
        ("top", "ln -s '{host}' '{dir}/repo'"),
        // Every object directory but the commit's own links to the host repository's.
        (
            "objects",
            "cp -a '{host}' '{dir}/repo' && for d in '{dir}'/repo/objects/*; do n=$(basename $d); \
             [ $n = {xx} ] || { rm -rf $d; ln -s '{host}'/objects/$n $d; }; done",
        ),
    ];
    for (case, make) in cases {
        let dir = env.path(&format!("tree-{case}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.json"), json!({"ostree-commit": commit}).to_string()).unwrap();
        sh(&make
            .replace("{host}", host_repo.to_str().unwrap())
            .replace("{dir}", dir.to_str().unwrap())
            .replace("{xx}", &commit[..2]));
        let (items, input) = tar_input(&env, &format!("tree-{case}"), &dir);
        let m = json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}}, "pipelines": [
            {"name": "commit", "stages": [untar(input)]},
            {"name": "checkout", "stages": [{"type": "org.osbuild.copy",
                "inputs": {"c": {"type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.pipeline", "references": ["name:commit"]}},
                "options": {"paths": [{"from": format!("input://c/{commit}/secret"), "to": "tree:///leak"}]}}]}
        ]});
        let o = build(&env, &format!("repo-{case}.json"), &m, &["--export", "checkout"]);
        failed_with(&o, &["pipelines[1].stages[0].inputs.c: cannot prepare the input"]);
        assert!(!env.out().join("checkout/leak").exists(), "{case}: the host repository's file leaked");
    }
}

/// issue 11: a FIFO where the engine reads tree content (an ostree input's compose.json)
/// hung the build forever, out of reach of --stage-timeout.
#[test]
fn ostree_input_compose_json_fifo_fails_at_once() {
    let env = Env::new();
    let dir = env.path("fifo-tree");
    std::fs::create_dir_all(dir.join("repo")).unwrap();
    sh(&format!("mkfifo '{}/compose.json'", dir.display()));
    let (items, input) = tar_input(&env, "fifo-tree", &dir);
    let m = json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}}, "pipelines": [
        {"name": "commit", "stages": [untar(input)]},
        {"name": "deploy", "stages": [{"type": "org.osbuild.noop",
            "inputs": {"c": {"type": "org.osbuild.ostree", "origin": "org.osbuild.pipeline", "references": ["name:commit"]}}}]}
    ]});
    let o = build_within(&env, "fifo.json", &m, &["--export", "deploy"], Duration::from_secs(60));
    failed_with(&o, &["pipelines[1].stages[0].inputs.c", "compose.json", "not a regular file"]);
}

/// issue 11: a loopback `start` of 2^55 sectors (2^64 bytes) wrapped to offset 0, so mkfs
/// wrote over the start of the image; a start past the end of the image was accepted.
#[test]
fn loopback_ranges_that_wrap_or_leave_the_image_are_errors() {
    let env = Env::new();
    let dir = env.path("img-tree");
    std::fs::create_dir_all(&dir).unwrap();
    let mut img = vec![0u8; 4 << 20];
    img[..16].copy_from_slice(b"MARKER-AT-ZERO!!");
    std::fs::write(dir.join("disk.img"), &img).unwrap();
    let (items, input) = tar_input(&env, "img-tree", &dir);
    for (start, expect) in
        [(json!(36028797018963968u64), "beyond the largest offset"), (json!(1u64 << 20), "past the end of the image")]
    {
        let m = json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items.clone()}}, "pipelines": [
            {"name": "image", "stages": [untar(input.clone()),
                {"type": "org.osbuild.mkfs.ext4", "options": {"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"},
                 "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img", "start": start}}}}]}
        ]});
        let o = build(&env, "wrap.json", &m, &["--export", "image"]);
        failed_with(&o, &["pipelines[0].stages[1].devices.device.options.start: cannot attach the device", expect]);
        if env.out().join("image/disk.img").exists() {
            assert_eq!(read_at(&env.out().join("image/disk.img"), 0, 16), b"MARKER-AT-ZERO!!");
        }
    }
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// A tree may hold device nodes (stages keep CAP_MKNOD, as upstream): a loopback `filename`
/// naming a block device node of the host's (here a loop device the test made over a victim
/// image) must not be opened, or mkfs formats the host's device.
#[test]
fn loopback_refuses_a_device_node_in_the_tree() {
    let env = Env::new();
    let victim = env.path("victim.img");
    let mut img = vec![0u8; 8 << 20];
    img[..16].copy_from_slice(b"VICTIM-DISK-DATA");
    std::fs::write(&victim, &img).unwrap();
    let dev = sh(&format!("losetup --find --show '{}'", victim.display()));
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _detach = Detach(dev.clone());
    let rdev = std::fs::metadata(&dev).unwrap().rdev();
    let (major, minor) = (major_of(rdev), minor_of(rdev));
    let dir = env.path("node-tree");
    std::fs::create_dir_all(&dir).unwrap();
    sh(&format!("mknod '{}/disk.img' b {major} {minor}", dir.display()));
    let (items, input) = tar_input(&env, "node-tree", &dir);
    let m = json!({"version": "2", "sources": {"org.osbuild.curl": {"items": items}}, "pipelines": [
        {"name": "image", "stages": [untar(input),
            {"type": "org.osbuild.mkfs.ext4", "options": {"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"},
             "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}}}}]}
    ]});
    let o = build(&env, "node.json", &m, &["--export", "image"]);
    failed_with(&o, &["pipelines[0].stages[1].devices.device.options.filename", "not a regular file"]);
    drop(_detach);
    assert_eq!(read_at(&victim, 0, 16), b"VICTIM-DISK-DATA");
    assert_eq!(read_at(&victim, 1024 + 56, 2), [0, 0], "no ext4 superblock magic on the victim");
}

fn major_of(rdev: u64) -> u64 {
    ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)
}

fn minor_of(rdev: u64) -> u64 {
    ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)
}

/// issue 11: pipelines named `../x` or an absolute path were exported there, and a symlink at
/// `<out>/<name>` was followed; and (found here) a symlink left in `<out>/<name>` by one
/// export made the next export write through it.
#[test]
fn exports_never_leave_the_output_directory() {
    let env = Env::new();
    let tree = |name: &str, stages: Value| json!({"version": "2", "pipelines": [{"name": name, "stages": stages}]});

    let escape = env.path("escaped-export");
    for name in ["../escaped-export".to_owned(), escape.display().to_string()] {
        let o = build(&env, "name.json", &tree(&name, json!([mkdir("/x")])), &["--export", &name]);
        assert!(!o.status.success(), "{name}: {}", text(&o));
        assert!(!escape.exists(), "{name}: exported outside the output directory");
    }

    // A symlink standing at <out>/<name> is refused, never followed.
    let victim = victim_dir(&env, "victim-export");
    std::fs::create_dir_all(env.out()).unwrap();
    std::os::unix::fs::symlink(&victim, env.out().join("linked")).unwrap();
    let o = build(&env, "linked.json", &tree("linked", json!([mkdir("/x")])), &["--export", "linked"]);
    failed_with(&o, &["cannot export 'linked'", "is not a directory"]);
    untouched(&victim);

    // An earlier export left `f -> victim`; the next one of a regular `f` replaces the link.
    let victim_file = env.path("victim-file");
    std::fs::write(&victim_file, "victim").unwrap();
    let first = tree("twice", json!([ln(victim_file.to_str().unwrap(), "/f")]));
    common::ok(&build(&env, "first.json", &first, &["--export", "twice"]));
    assert!(std::fs::symlink_metadata(env.out().join("twice/f")).unwrap().file_type().is_symlink());
    let (sum, item) = inline_item(b"overwritten");
    let second = json!({"version": "2", "sources": {"org.osbuild.inline": {"items": {sum.clone(): item}}},
        "pipelines": [{"name": "twice", "stages": [{"type": "org.osbuild.copy",
            "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [sum.clone()]}},
            "options": {"paths": [{"from": format!("input://f/{sum}"), "to": "tree:///f"}]}}]}]});
    common::ok(&build(&env, "second.json", &second, &["--export", "twice"]));
    assert_eq!(std::fs::read_to_string(&victim_file).unwrap(), "victim", "the export wrote through the symlink");
    assert_eq!(std::fs::read_to_string(env.out().join("twice/f")).unwrap(), "overwritten");
}

/// Errors keep their cause down to the errno, and the CLI prints the whole chain.
#[test]
fn failing_mounts_show_the_errno_at_the_cli() {
    let env = Env::new();
    let m = json!({"version": "2", "pipelines": [{"name": "image", "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "blank.img", "size": "33554432"}},
        {"type": "org.osbuild.noop",
         "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "blank.img"}}},
         "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "device", "target": "/"}]}
    ]}]});
    let o = build(&env, "blank.json", &m, &["--export", "image"]);
    // No file system on the device: the kernel's EINVAL reaches the user.
    failed_with(&o, &["pipelines[0].stages[1].mounts.root: cannot mount", "(ext4)", "Invalid argument"]);

    let mut fat = m.clone();
    fat["pipelines"][0]["stages"][1]["mounts"][0]["type"] = json!("org.osbuild.fat");
    let o = build(&env, "fat.json", &fat, &["--export", "image"]);
    let kernel_can = std::fs::read_to_string("/proc/filesystems").unwrap().contains("vfat")
        || Command::new("modprobe").arg("vfat").status().map(|s| s.success()).unwrap_or(false);
    if kernel_can {
        failed_with(&o, &["pipelines[0].stages[1].mounts.root: cannot mount", "Invalid argument"]);
    } else {
        failed_with(&o, &["pipelines[0].stages[1].mounts.root: cannot mount", "cannot mount vfat", "No such device"]);
    }
    assert!(loops_backed_under(&env.store()).is_empty());
}

/// A tmpfs of a fixed size mounted by the test; unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(dir: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&dir).unwrap();
        sh(&format!("mount -t tmpfs -o size={size} tmpfs '{}'", dir.display()));
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// issue 11: a store too full for what a stage wrote through a loop device lost the writes
/// (the kernel logged them) and the build reported success. The sync before the unmount now
/// fails the stage.
#[test]
fn a_failed_sync_of_a_mounted_image_fails_the_stage() {
    let env = Env::new();
    let small = SmallFs::new(env.path("small"), "96m");
    let store = small.0.join("store");
    // 24 MiB of data nobody can compress, as a file:// source (stored in the small store too).
    let data = env.path("data.bin");
    sh(&format!("head -c 25165824 /dev/urandom > '{}'", data.display()));
    let sum = sha256(&std::fs::read(&data).unwrap());
    let to = |n: u32| json!({"from": format!("input://d/{sum}"), "to": format!("mount://root/copy{n}")});
    let m = json!({"version": "2",
    "sources": {"org.osbuild.curl": {"items": {sum.clone(): {"url": format!("file://{}", data.display())}}}},
    "pipelines": [{"name": "image", "stages": [
        {"type": "org.osbuild.truncate", "options": {"filename": "disk.img", "size": "536870912"}},
        {"type": "org.osbuild.mkfs.ext4", "options": {"uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"},
         "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}}}},
        {"type": "org.osbuild.copy",
         "inputs": {"d": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [sum.clone()]}},
         "devices": {"device": {"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}}},
         "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "device", "target": "/"}],
         "options": {"paths": [to(1), to(2), to(3), to(4)]}}
    ]}]});
    let o = command(&env, &store, "full.json", &m, &["--export", "image", "--json"]).output().unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "96 MiB cannot hold 24 MiB of source and 96 MiB written into the image: {t}");
    let result: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {t}"));
    let failed = result.to_string();
    eprintln!("{}", result["error"]);
    assert!(
        failed.contains("releasing devices and mounts failed") && failed.contains("cannot sync the file system"),
        "{failed}"
    );
    assert!(loops_backed_under(&store).is_empty());
    drop(small);
}
