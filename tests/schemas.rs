//! Our schemas against upstream osbuild itself (`../shared/upstream/osbuild`, as in CI, or
//! `OSBUILD_UPSTREAM`): every upstream module has a schema of ours, and small manifests
//! built from option samples get the same `--inspect` verdict and error list from both.

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use osbuild_rs::schema::{module_schema, ModuleKind};
use std::path::{Path, PathBuf};

fn upstream() -> PathBuf {
    upstream::dir()
}

/// Module names in one of upstream's runtime directories (the executables, not the
/// `.meta.json` files beside them).
fn upstream_modules(kind: ModuleKind) -> Vec<String> {
    let dir = upstream().join(kind.dir());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("org.osbuild.") && !n.ends_with(".meta.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_upstream_module_has_a_schema() {
    let mut missing = Vec::new();
    let mut n = 0;
    for kind in ModuleKind::ALL {
        for name in upstream_modules(kind) {
            n += 1;
            if module_schema(kind, &name).is_none() {
                missing.push(format!("{}/{name}", kind.dir()));
            }
        }
    }
    assert!(n > 200, "only {n} upstream modules found");
    assert!(missing.is_empty(), "no schema in schemas/ for:\n{}", missing.join("\n"));
}

// ---------------------------------------------------------------- differential test

use serde_json::{json, Map, Value};
use std::process::Command;

fn schema_of(kind: ModuleKind, name: &str) -> Value {
    serde_json::from_str(module_schema(kind, name).unwrap()).unwrap()
}

/// Follow a `#/definitions/...` reference inside `root`.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => root.pointer(r.trim_start_matches('#')).unwrap_or(s),
        None => s,
    }
}

/// A value of the shape `s` asks for, with its required keys filled in (it need not pass
/// patterns or every branch: any sample is fine for a differential test).
fn minimal(root: &Value, s: &Value, depth: usize) -> Value {
    let s = resolve(root, s);
    if let Some(e) = s.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
        return e.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            if s.get("type").is_none() || first.get("type").is_some() {
                return minimal(root, first, depth);
            }
        }
    }
    let ty = match s.get("type") {
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or("string"),
        Some(Value::String(t)) => t.as_str(),
        _ if s.get("properties").is_some() || s.get("required").is_some() => "object",
        _ => "string",
    };
    match ty {
        "string" => json!("x"),
        "integer" | "number" => s.get("minimum").cloned().unwrap_or(json!(1)),
        "boolean" => json!(true),
        "null" => Value::Null,
        "array" => match (s.get("minItems").and_then(Value::as_u64), s.get("items")) {
            (Some(n), Some(items)) if n > 0 && depth < 6 && items.is_object() => {
                Value::Array(vec![minimal(root, items, depth + 1); n as usize])
            }
            _ => json!([]),
        },
        _ => {
            let mut o = Map::new();
            let props = s.get("properties").cloned().unwrap_or(json!({}));
            for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                let r = r.as_str().unwrap();
                let sub = props.get(r).cloned().unwrap_or(json!({}));
                o.insert(r.to_owned(), if depth < 6 { minimal(root, &sub, depth + 1) } else { json!({}) });
            }
            Value::Object(o)
        }
    }
}

/// A value of some other JSON type than `s` wants.
fn wrong_type(root: &Value, s: &Value) -> Value {
    match resolve(root, s).get("type").and_then(Value::as_str) {
        Some("string") => json!(7),
        Some("integer") => json!(1.5),
        Some("number") => json!("7"),
        Some("boolean") => json!("yes"),
        Some("array") => json!({"a": 1}),
        Some("object") => json!(["x", true, null]),
        _ => json!(null),
    }
}

/// Samples for one schema: empty, minimal, an unknown key, and per property a wrong
/// type, a minimal value, an unknown enum value, a string no pattern wants and an
/// unknown nested key.
fn samples(root: &Value) -> Vec<Value> {
    let base = minimal(root, root, 0);
    let mut out = vec![json!({}), base.clone()];
    if !base.is_object() {
        return out;
    }
    let mut extra = base.clone();
    extra["zz-unknown"] = json!(true);
    out.push(extra);
    let props = root.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    for (k, p) in &props {
        let p = resolve(root, p);
        let mut with = |v: Value| {
            let mut s = base.clone();
            s[k.as_str()] = v;
            out.push(s);
        };
        with(wrong_type(root, p));
        with(minimal(root, p, 1));
        if p.get("enum").is_some() {
            with(json!("no-such-value"));
        }
        if p.get("pattern").is_some() || p.get("oneOf").is_some() {
            with(json!("../a b\n"));
        }
        if p.get("type").and_then(Value::as_str) == Some("object") {
            let mut inner = minimal(root, p, 1);
            inner["zz-unknown"] = json!({"deep": [1.0, "it's"]});
            with(inner);
        }
        if p.get("type").and_then(Value::as_str) == Some("array") {
            if let Some(items) = p.get("items").filter(|i| i.is_object()) {
                with(json!([minimal(root, items, 2), wrong_type(root, items)]));
            }
        }
    }
    out
}

/// Valid options written by hand for the modules added with this test, so that the
/// "accepted" path (same stage ids) is covered for them too.
fn valid_stage_samples() -> Vec<Value> {
    let tree = json!({"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:build"]});
    let dev = json!({"type": "org.osbuild.loopback", "options": {"filename": "disk.img"}});
    vec![
        json!({"type": "org.osbuild.authselect", "options": {"profile": "sssd", "features": ["with-mkhomedir"]}}),
        json!({"type": "org.osbuild.bfb", "options": {"filename": "x.bfb", "kernel_args": ["console=hvc0"]},
               "inputs": {"kernel": tree, "initramfs": tree}}),
        json!({"type": "org.osbuild.bootc.install.config", "options": {"filename": "00.toml",
               "config": {"install": {"filesystem": {"root": {"type": "xfs"}}, "kargs": ["quiet"], "block": ["direct"]}}}}),
        json!({"type": "org.osbuild.bootctl.install.root", "options": {"root": "mount://root/", "entry-token": "os-id"}}),
        json!({"type": "org.osbuild.bootiso.mono", "options": {"product": {"name": "F", "version": "41"}, "kernel": "k",
               "isolabel": "L", "rootfs": {"compression": {"method": "xz", "options": {"bcj": "x86"}}, "size": 4}},
               "inputs": {"rootfs": tree}}),
        json!({"type": "org.osbuild.clevis.luks-bind", "options": {"passphrase": "p", "pin": "tpm2", "policy": "{}"},
               "devices": {"device": dev}}),
        json!({"type": "org.osbuild.containers.unit.create", "options": {"filename": "a.container", "config": {
               "Unit": {"Description": "d"}, "Container": {"Image": "i", "Environment": [{"key": "A", "value": "b"}]},
               "Install": {"WantedBy": ["default.target"]}}}}),
        json!({"type": "org.osbuild.containers.unit.create", "options": {"filename": "v.volume", "unit-path": "etc",
               "config": {"Volume": {"VolumeName": "v"}}}}),
        json!({"type": "org.osbuild.crypttab", "options": {"volumes": [{"volume": "luks", "uuid": "u", "keyfile": "none"}]}}),
        json!({"type": "org.osbuild.dd", "options": {"src": "input://tree/x", "dst": "y", "count": 1, "src_offset": 0},
               "inputs": {"tree": tree}}),
        json!({"type": "org.osbuild.debug-shell", "options": {"tty": "/dev/tty2"}}),
        json!({"type": "org.osbuild.dnf.module-config", "options": {"conf": {"name": "n", "stream": "s", "profiles": []}}}),
        json!({"type": "org.osbuild.dnf4.versionlock", "options": {"add": []}}),
        json!({"type": "org.osbuild.error", "options": {"returncode": 2.5}}),
        json!({"type": "org.osbuild.experimental.ostree.config", "options": {"repo": "/r",
               "config": {"integrity": {"composefs": "maybe"}}}}),
        json!({"type": "org.osbuild.firewall", "options": {"ports": ["22:tcp", "1-2:udp"], "default_zone": "z",
               "zones": [{"name": "trusted", "sources": ["10.0.0.0/8"]}]}}),
        json!({"type": "org.osbuild.flatpak.build-import-bundle.oci", "options": {"repository": "tree:///r"},
               "inputs": {"containers": tree}}),
        json!({"type": "org.osbuild.gcp.guest-agent.conf", "options": {"config_scope": "instance",
               "config": {"Accounts": {"groups": ["a"]}, "Daemons": {"network_daemon": false}}}}),
        json!({"type": "org.osbuild.grub2.d", "options": {"path": "tree:///etc/default/grub.d/x.cfg",
               "config": {"terminal_input": ["serial"], "serial": "serial"}}}),
        json!({"type": "org.osbuild.grub2.iso.legacy", "options": {"product": {"name": "F", "version": "1"},
               "kernel": {"dir": "/images", "opts": ["a"], "other": 1}, "isolabel": "L", "platform": "powerpc-ieee1275",
               "custom": [{"name": "n", "linux": "l", "initrd": "i"}], "config": {"timeout": 0}}}),
        json!({"type": "org.osbuild.hmac", "options": {"paths": ["boot/vmlinuz"], "algorithm": "sha512"}}),
        json!({"type": "org.osbuild.idmap", "options": {"items": {"/home": ["u:0:100000:65536"],
               "/srv": {"user": "u", "group": "g"}}}}),
        json!({"type": "org.osbuild.insights-client.config", "options": {"config": {"proxy": "http://p"}}}),
        json!({"type": "org.osbuild.kernel-cmdline.bls-append", "options": {"kernel_opts": ["a=b"], "bootpath": "mount:///"}}),
        json!({"type": "org.osbuild.livesys", "options": {"livesys_session": "kde"}}),
        json!({"type": "org.osbuild.luks2.remove-key", "options": {"passphrase": "p"}, "devices": {"device": dev}}),
        json!({"type": "org.osbuild.mks390image", "options": {"kernel": "a", "initrd": "/b", "config": "c", "image": "d"}}),
        json!({"type": "org.osbuild.nginx.conf", "options": {"path": "/etc/n.conf", "config": {"daemon": false, "x": 1}}}),
        json!({"type": "org.osbuild.ostree", "options": {"osname": "f", "rootfs": {"label": "root"},
               "remotes": [{"name": "r", "url": "u", "x": 1}], "mounts": [{"path": "/boot"}]}, "inputs": {"commit": tree}}),
        json!({"type": "org.osbuild.ostree.grub2", "options": {"filename": "f", "source": "mount://x"},
               "inputs": {"tree": tree}}),
        json!({"type": "org.osbuild.ostree.post-copy", "options": {"sysroot": "/sysroot"}}),
        json!({"type": "org.osbuild.pki.update-ca-trust"}),
        json!({"type": "org.osbuild.rpm-ostree", "options": {"etc_group_members": ["wheel"]}}),
        json!({"type": "org.osbuild.shell.init", "options": {"files": {"a.sh": {"env": [{"key": "A_B", "value": "v"}]}}}}),
        json!({"type": "org.osbuild.systemd-repart.create", "options": {"path": "d.img", "size": "auto", "split": true},
               "inputs": {"root-tree": tree}}),
        json!({"type": "org.osbuild.vagrant", "options": {"provider": "virtualbox",
               "virtualbox": {"mac_address": "0123456789ab"}, "synced_folders": {"/vagrant": {"type": "rsync"}}},
               "inputs": {"image": tree}}),
        json!({"type": "org.osbuild.write-device", "options": {"from": "input://tree/disk.img"},
               "devices": {"device": dev}, "inputs": {"tree": tree}}),
        json!({"type": "org.osbuild.wsl-distribution.conf", "options": {"oobe": {"default_uid": 1000},
               "shortcut": {"enabled": true}}}),
        json!({"type": "org.osbuild.wsl.conf", "options": {"boot": {"systemd": true}}}),
        json!({"type": "org.osbuild.yum.config", "options": {"config": {"http_caching": "lazy:packages"},
               "plugins": {"langpacks": {"locales": ["en_US"]}}}}),
        json!({"type": "org.osbuild.zip", "options": {"filename": "a.zip", "level": 9}, "inputs": {"tree": tree}}),
        json!({"type": "org.osbuild.zipl.inst", "options": {"kernel": "k", "location": 2048},
               "devices": {"disk": dev}, "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "disk",
               "target": "/"}]}),
        json!({"type": "org.osbuild.noop", "devices": {"d": dev}, "inputs": {"i": {"type": "org.osbuild.noop", "origin": "org.osbuild.pipeline",
               "references": ["name:build"], "options": {"anything": 1}}},
               "mounts": [{"name": "a", "type": "org.osbuild.ddi", "source": "d", "target": "/",
                           "options": {"discard": "all", "growfs": false}},
                          {"name": "b", "type": "org.osbuild.erofs", "source": "d", "target": "/b"},
                          {"name": "c", "type": "org.osbuild.squashfs", "source": "d", "target": "/c", "options": {}},
                          {"name": "e", "type": "org.osbuild.noop", "source": "d", "target": "/e", "partition": 2,
                           "options": {"x": 1}}]}),
    ]
}

fn manifest(stages: Vec<Value>, sources: Value) -> Value {
    json!({"version": "2", "sources": sources, "pipelines": [
        {"name": "build", "stages": [{"type": "org.osbuild.noop"}]},
        {"name": "os", "build": "name:build", "stages": stages}]})
}

/// Every stage and module sample, in a few manifests (upstream starts slowly).
fn differential_manifests() -> Vec<(String, Value)> {
    let mut stages = Vec::new();
    for name in upstream_modules(ModuleKind::Stage) {
        let root = schema_of(ModuleKind::Stage, &name);
        for options in samples(&root) {
            stages.push(json!({"type": name, "options": options}));
        }
        // the stage-level keys: inputs (allowed? which names?), devices, mounts
        stages.push(json!({"type": name}));
        stages.push(json!({"type": name, "inputs": {}, "devices": {}, "mounts": []}));
        let tree = json!({"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:build"]});
        stages.push(json!({"type": name, "inputs": {"zz": tree}, "devices": {"zz": {"type": "org.osbuild.loopback"}}}));
    }
    let mut out = vec![("stage options".to_owned(), manifest(stages, json!({})))];

    // inputs, devices and mounts hang off noop stages, which take any of them
    let mut holders = Vec::new();
    for (kind, group) in [(ModuleKind::Input, "inputs"), (ModuleKind::Device, "devices"), (ModuleKind::Mount, "mounts")]
    {
        for name in upstream_modules(kind) {
            let root = schema_of(kind, &name);
            for mut s in samples(&root).into_iter().skip(1) {
                s["type"] = json!(name);
                let item = match kind {
                    ModuleKind::Mount => {
                        // upstream indexes mounts by name (and fails without one)
                        s["name"] = json!("m");
                        json!([s])
                    }
                    _ => json!({ "x": s }),
                };
                holders.push(json!({"type": "org.osbuild.noop", group: item}));
            }
        }
    }
    // input names must start with a letter
    let tree = json!({"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:build"]});
    holders.push(json!({"type": "org.osbuild.noop", "inputs": {"1x": tree, "_y": tree, "a-1.b_c": tree}}));
    holders.push(json!({"type": "org.osbuild.noop", "inputs": {"-z": tree}}));
    out.push(("inputs, devices, mounts".to_owned(), manifest(holders, json!({}))));

    // one source of each type per manifest
    let per_source: Vec<(String, Vec<Value>)> = upstream_modules(ModuleKind::Source)
        .into_iter()
        .map(|n| (n.clone(), samples(&schema_of(ModuleKind::Source, &n))))
        .collect();
    let rounds = per_source.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    for i in 0..rounds {
        let mut sources = Map::new();
        for (name, v) in &per_source {
            if let Some(s) = v.get(i) {
                sources.insert(name.clone(), s.clone());
            }
        }
        out.push((
            format!("sources #{i}"),
            manifest(vec![json!({"type": "org.osbuild.noop"})], Value::Object(sources)),
        ));
    }
    // the manifest's own metadata
    for metadata in [
        json!({"exports": [{"name": "os"}], "generators": [{"name": "g", "version": "1"}]}),
        json!({"zz-unknown": 1, "exports": [{"name": 1, "x": 2}, {}], "generators": [{"version": 3}, "g"]}),
        json!({"exports": {"name": "os"}, "generators": null}),
        json!([]),
    ] {
        let mut m = manifest(vec![json!({"type": "org.osbuild.noop"})], json!({}));
        m["metadata"] = metadata.clone();
        out.push((format!("metadata {metadata}"), m));
    }
    out.push(("valid samples".to_owned(), manifest(valid_stage_samples(), json!({}))));
    out
}

/// Differences known and not yet fixed, none in a module added with this test:
/// (module the error is in, a part of the message or path, why). They are printed, not fatal.
const KNOWN: &[(&str, &str, &str)] = &[];

/// Modules added with this test, which must agree with upstream exactly.
const NEW: &[&str] = &[
    "org.osbuild.authselect",
    "org.osbuild.bfb",
    "org.osbuild.bootc.install.config",
    "org.osbuild.bootctl.install.root",
    "org.osbuild.bootiso.mono",
    "org.osbuild.clevis.luks-bind",
    "org.osbuild.containers.unit.create",
    "org.osbuild.crypttab",
    "org.osbuild.dd",
    "org.osbuild.debug-shell",
    "org.osbuild.dnf.module-config",
    "org.osbuild.dnf4.versionlock",
    "org.osbuild.error",
    "org.osbuild.experimental.ostree.config",
    "org.osbuild.firewall",
    "org.osbuild.flatpak.build-import-bundle.oci",
    "org.osbuild.gcp.guest-agent.conf",
    "org.osbuild.grub2.d",
    "org.osbuild.grub2.iso.legacy",
    "org.osbuild.hmac",
    "org.osbuild.idmap",
    "org.osbuild.insights-client.config",
    "org.osbuild.kernel-cmdline.bls-append",
    "org.osbuild.livesys",
    "org.osbuild.luks2.remove-key",
    "org.osbuild.mks390image",
    "org.osbuild.nginx.conf",
    "org.osbuild.ostree",
    "org.osbuild.ostree.grub2",
    "org.osbuild.ostree.post-copy",
    "org.osbuild.pki.update-ca-trust",
    "org.osbuild.rpm-ostree",
    "org.osbuild.shell.init",
    "org.osbuild.systemd-repart.create",
    "org.osbuild.vagrant",
    "org.osbuild.write-device",
    "org.osbuild.wsl-distribution.conf",
    "org.osbuild.wsl.conf",
    "org.osbuild.yum.config",
    "org.osbuild.zip",
    "org.osbuild.zipl.inst",
    "org.osbuild.librepo",
    "org.osbuild.noop",
    "org.osbuild.ddi",
    "org.osbuild.erofs",
    "org.osbuild.squashfs",
];

/// Whether a difference is a known one (see [`KNOWN`]); never for the new modules, except
/// where the cause is the manifest schema (v2.json), not theirs.
fn known(subject: &str, path: &str, message: &str) -> bool {
    let text = format!("{path} {message}\u{0}");
    KNOWN.iter().any(|(module, needle, why)| {
        let by_manifest = why.starts_with("v2.json");
        let module_ok = if by_manifest { subject.starts_with(module) } else { subject == *module };
        module_ok && text.contains(needle) && (by_manifest || !NEW.contains(&subject))
    })
}

/// Exit status and output of `--inspect` for each manifest, ours and upstream's.
fn inspect_all(dir: &Path, files: &[PathBuf], upstream: bool) -> Vec<(Option<i32>, Value)> {
    files
        .iter()
        .map(|f| {
            let out = if upstream {
                let up = super_upstream();
                Command::new("python3")
                    .args(["-m", "osbuild", "--libdir"])
                    .arg(&up)
                    .arg("--inspect")
                    .arg(f)
                    .current_dir(&up)
                    .output()
                    .unwrap()
            } else {
                Command::new(env!("CARGO_BIN_EXE_osbuild-rs"))
                    .arg("--inspect")
                    .arg(f)
                    .current_dir(dir)
                    .output()
                    .unwrap()
            };
            let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "{} ({}): no JSON on stdout ({e}); stderr: {}",
                    f.display(),
                    if upstream { "upstream" } else { "ours" },
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            (out.status.code(), v)
        })
        .collect()
}

fn super_upstream() -> PathBuf {
    upstream()
}

/// The module an error path points into: the stage's type, or the type of the input,
/// device, mount or source below it.
fn subject(manifest: &Value, path: &str) -> String {
    let path: Vec<Value> = serde_json::from_str(path).unwrap_or_default();
    let mut cur = manifest;
    let mut found = "manifest".to_owned();
    for seg in &path {
        cur = match seg {
            Value::Number(n) => &cur[n.as_u64().unwrap() as usize],
            Value::String(k) => match cur.get(k.as_str()) {
                Some(v) => v,
                // mounts are reported by name
                None => match cur.as_array().and_then(|a| a.iter().find(|m| m["name"] == json!(k))) {
                    Some(v) => v,
                    None => break,
                },
            },
            _ => break,
        };
        if let Some(t) = cur.get("type").and_then(Value::as_str) {
            found = t.to_owned();
        }
        if let (Value::String(k), true) = (seg, path.first() == Some(&json!("sources"))) {
            if k.starts_with("org.osbuild.") {
                found = k.clone();
            }
        }
    }
    found
}

/// An error list as a sorted list of (path, message): upstream keeps errors in a set, so
/// the order of errors at the same path varies from run to run.
fn error_set(v: &Value) -> Vec<(String, String)> {
    let mut errs: Vec<(String, String)> = v["errors"]
        .as_array()
        .map(|a| {
            a.iter().map(|e| (e["path"].to_string(), e["message"].as_str().unwrap_or_default().to_owned())).collect()
        })
        .unwrap_or_default();
    errs.sort();
    errs
}

#[test]
fn inspect_agrees_with_upstream_on_module_samples() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let manifests = differential_manifests();
    let mut files = Vec::new();
    for (i, (_, m)) in manifests.iter().enumerate() {
        let f = dir.path().join(format!("m{i}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(m).unwrap()).unwrap();
        files.push(f);
    }
    let ours = inspect_all(dir.path(), &files, false);
    let theirs = inspect_all(dir.path(), &files, true);
    let mut failures = Vec::new();
    let mut n_errors = 0;
    let mut known_diffs = Vec::new();
    for (((what, m), (oc, ov)), (uc, uv)) in manifests.iter().zip(&ours).zip(&theirs) {
        if oc != uc {
            failures.push(format!("{what}: exit {oc:?}, upstream {uc:?}"));
        }
        if uv.get("success") == Some(&Value::Bool(false)) {
            let (a, b) = (error_set(ov), error_set(uv));
            n_errors += b.len();
            for (side, x, y) in [("upstream", &b, &a), ("ours", &a, &b)] {
                for e in x.iter().filter(|e| !y.contains(e)) {
                    let who = subject(m, &e.0);
                    let line = format!("{what}: {who}: only {side}: {} {}", e.0, e.1);
                    if known(&who, &e.0, &e.1) {
                        known_diffs.push(line);
                    } else {
                        failures.push(line);
                    }
                }
            }
        } else if ov != uv {
            failures.push(format!("{what}: accepted, but the descriptions differ"));
        }
    }
    // the hand-written samples are valid for both
    assert_eq!(theirs.last().unwrap().0, Some(0), "upstream refused the valid samples: {}", theirs.last().unwrap().1);
    let n_stages: usize = manifests.iter().map(|(_, m)| m["pipelines"][1]["stages"].as_array().unwrap().len()).sum();
    println!(
        "{} manifests, {n_stages} stages, {n_errors} upstream errors compared in {:.1}s",
        manifests.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{} known differences (not in the new modules):\n{}", known_diffs.len(), known_diffs.join("\n"));
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}
