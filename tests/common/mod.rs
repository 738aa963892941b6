//! Helpers for integration tests that run real builds (root, bubblewrap).
#![allow(dead_code)]

pub mod disk;
pub mod nginx;
pub mod ostree;
pub mod qemu;
pub mod treediff;
pub mod upstream;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_osbuild-rs")
}

/// Fail loudly (never skip) when the machine lacks what integration tests need.
pub fn require_root_and_tools() {
    assert!(nix_is_root(), "integration tests need root (CI runs as root); run `make test` as root");
    for tool in ["bwrap", "cp", "tar"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "{tool} is missing: run `make deps`");
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        require_root_and_tools();
        std::fs::create_dir_all("/var/tmp/osbuild-rs-tests").unwrap();
        Env { dir: tempfile::Builder::new().prefix("t").tempdir_in("/var/tmp/osbuild-rs-tests").unwrap() }
    }
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn write_manifest(&self, name: &str, m: &Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, serde_json::to_vec_pretty(m).unwrap()).unwrap();
        p
    }
    pub fn cmd(&self, manifest: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--store").arg(self.store()).arg("--output-directory").arg(self.out());
        c.args(extra).arg(manifest);
        c
    }
    pub fn run(&self, manifest: &Path, extra: &[&str]) -> Output {
        self.cmd(manifest, extra).stdin(Stdio::null()).output().unwrap()
    }
    pub fn spawn(&self, manifest: &Path, extra: &[&str]) -> Child {
        self.cmd(manifest, extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
    /// Entries left in the store's tmp/ (partial work of a killed or failed run).
    pub fn tmp_entries(&self) -> Vec<String> {
        match std::fs::read_dir(self.store().join("tmp")) {
            Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => vec![],
        }
    }
    pub fn objects(&self) -> Vec<String> {
        match std::fs::read_dir(self.store().join("objects")) {
            Ok(rd) => {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.len() == 64).collect()
            }
            Err(_) => vec![],
        }
    }
    /// Mounts visible on the host under this test's directory.
    pub fn mounts(&self) -> Vec<String> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Env {
    /// `ostree admin deploy` makes deployments immutable; clear that so the directory can go.
    fn drop(&mut self) {
        let _ = Command::new("chattr").args(["-R", "-f", "-i"]).arg(self.dir.path()).stderr(Stdio::null()).status();
    }
}

pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An inline source item holding `data`, and its checksum.
pub fn inline_item(data: &[u8]) -> (String, Value) {
    use base64::Engine;
    (sha256(data), json!({"encoding": "base64", "data": base64::engine::general_purpose::STANDARD.encode(data)}))
}

pub fn noop(n: u64) -> Value {
    json!({"type": "org.osbuild.noop", "options": {"n": n}})
}

pub fn mkdir(path: &str) -> Value {
    json!({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": path, "parents": true}]}})
}

pub fn tree_input(pipeline: &str) -> Value {
    json!({"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": [format!("name:{pipeline}")]})
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// A build root that is not the host's distribution: only busybox (static), our fake tools.
/// Built by a `build` pipeline from file:// sources, as users would ship one.
pub fn foreign_build_root_pipeline(env: &Env, fake_tools: &[(&str, &str)]) -> (Value, serde_json::Map<String, Value>) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is missing: run `make deps`");
    let data = std::fs::read(busybox).unwrap();
    let mut items = serde_json::Map::new();
    let bb = sha256(&data);
    items.insert(bb.clone(), json!({"url": format!("file://{busybox}")}));
    let mut stages = vec![
        json!({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/usr/bin", "parents": true}, {"path": "/tmp"}]}}),
        json!({"type": "org.osbuild.copy",
               "inputs": {"bb": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {bb.clone(): {}}}},
               "options": {"paths": [{"from": format!("input://bb/{bb}"), "to": "tree:///usr/bin/busybox"}]}}),
    ];
    let mut links = vec![];
    for tool in ["sh", "sleep", "cat", "echo", "ls", "true", "false", "cp", "chmod", "mkdir", "rm", "ln", "mv"] {
        links.push(json!({"target": "busybox", "link_name": format!("tree:///usr/bin/{tool}"), "symbolic": true}));
    }
    stages.push(json!({"type": "org.osbuild.ln", "options": {"paths": links}}));
    for (name, script) in fake_tools {
        let path = env.path(&format!("tool-{name}"));
        std::fs::write(&path, script).unwrap();
        let sum = sha256(script.as_bytes());
        items.insert(sum.clone(), json!({"url": format!("file://{}", path.display())}));
        stages.push(json!({"type": "org.osbuild.copy",
            "inputs": {"t": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
            "options": {"paths": [{"from": format!("input://t/{sum}"), "to": format!("tree:///usr/bin/{name}")}]}}));
        stages.push(
            json!({"type": "org.osbuild.chmod", "options": {"items": {format!("/usr/bin/{name}"): {"mode": "0755"}}}}),
        );
    }
    stages.push(json!({"type": "org.osbuild.chmod", "options": {"items": {"/usr/bin/busybox": {"mode": "0755"}}}}));
    (json!({"name": "build", "stages": stages}), items)
}

/// Stages that give a tree a minimal /etc/passwd and /etc/group (the users stage reads
/// them), with their file:// source items added to `items`.
pub fn etc_passwd_stages(env: &Env, items: &mut serde_json::Map<String, Value>) -> Vec<Value> {
    let mut stages = vec![mkdir("/etc")];
    for (name, content) in [("passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("group", "root:x:0:\n")] {
        let path = env.path(&format!("etc-{name}"));
        std::fs::write(&path, content).unwrap();
        let sum = sha256(content.as_bytes());
        items.insert(sum.clone(), json!({"url": format!("file://{}", path.display())}));
        stages.push(json!({"type": "org.osbuild.copy",
            "inputs": {"f": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {sum.clone(): {}}}},
            "options": {"paths": [{"from": format!("input://f/{sum}"), "to": format!("tree:///etc/{name}")}]}}));
    }
    stages
}

/// A real HTTP server on loopback serving `dir`; killed on drop.
pub struct HttpServer {
    child: std::process::Child,
    pub port: u16,
}

impl HttpServer {
    pub fn start(dir: &std::path::Path) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is needed for the HTTP server: run `make deps`");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "HTTP server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
