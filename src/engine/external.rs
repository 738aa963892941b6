//! External stages: modules osbuild-rs does not implement (or is told not to use), run from
//! `--libdir` through upstream's stage interface.
//!
//! An upstream-style module directory holds `stages/<name>` (an executable, usually Python),
//! `stages/<name>.meta.json` (its schema and capabilities), `runners/<distro><version>` and the
//! `osbuild` Python package the modules import. A stage runs in the same bubblewrap sandbox as a
//! native one, over the same tree, inputs, devices and mounts, with what upstream adds for it:
//! the module directory read-only at `/run/osbuild/lib` (`PYTHONPATH`), the stage at
//! `/run/osbuild/bin/<name>`, the runner at `/run/osbuild/runner/<runner>` as the command that
//! starts it, a fresh writable `/etc`, and the API socket at `/run/osbuild/api/osbuild` through
//! which a failing stage reports its exception (see [`super::api_socket`]).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use crate::manifest::Stage;

/// Stage types (comma-separated, or `*`) to run from `--libdir` even where osbuild-rs has a
/// native implementation.
pub const ENV_EXTERNAL_STAGES: &str = "OSBUILD_RS_EXTERNAL_STAGES";

/// Inside the sandbox.
pub const LIB_DIR: &str = "/run/osbuild/lib";
pub const RUNNER_DIR: &str = "/run/osbuild/runner";
pub const API_SOCKET: &str = "/run/osbuild/api/osbuild";

/// One external stage, located and ready to run.
#[derive(Debug, Clone)]
pub struct ExternalStage {
    pub name: String,
    /// `<libdir>/stages/<name>` (or `assemblers/`).
    pub program: PathBuf,
    pub libdir: PathBuf,
    /// Capabilities the module declares in its `.meta.json`, beyond upstream's default set.
    pub capabilities: Vec<String>,
}

impl ExternalStage {
    /// Where the program appears inside the sandbox.
    pub fn sandbox_program(&self) -> String {
        format!("{}/{}", crate::sandbox::BIN_DIR, self.name)
    }
}

/// The module directory's top-level entries as host paths with symlinks resolved, to bind one by
/// one at `/run/osbuild/lib/<name>`: a site directory often links upstream's `osbuild` package
/// or `runners/` in by absolute path, which would dangle inside the sandbox.
pub fn lib_entries(libdir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(libdir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else { continue };
        // A dangling link is left out, as a missing entry would be.
        if let Ok(resolved) = std::fs::canonicalize(e.path()) {
            entries.push((name, resolved));
        }
    }
    entries.sort();
    Ok(entries)
}

/// Whether `OSBUILD_RS_EXTERNAL_STAGES` asks for the external module of `name`.
pub fn forced(name: &str) -> bool {
    std::env::var(ENV_EXTERNAL_STAGES).is_ok_and(|v| v.split(',').map(str::trim).any(|s| s == "*" || s == name))
}

fn module_dir(assembler: bool) -> &'static str {
    if assembler {
        "assemblers"
    } else {
        "stages"
    }
}

/// A plain module name: never a path, so it cannot name anything outside the module directory.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// The external module for `stage`, when `libdir` has one.
pub fn locate(libdir: &Path, stage: &Stage) -> Option<ExternalStage> {
    if !plain(&stage.kind) {
        return None;
    }
    let dir = libdir.join(module_dir(stage.assembler));
    let program = dir.join(&stage.kind);
    if !program.is_file() {
        return None;
    }
    let capabilities = meta_json(&dir, &stage.kind)
        .and_then(|m| m.get("capabilities").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    Some(ExternalStage { name: stage.kind.clone(), program, libdir: libdir.to_owned(), capabilities })
}

fn meta_json(dir: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read(dir.join(format!("{name}.meta.json"))).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The schema a stage's (or assembler's) `options` must satisfy, from the module's `.meta.json`
/// in `libdir`: its `schema_2.options` for manifest v2 when it has one, else its v1 `schema`
/// (the body of the options object). `definitions` beside `options` move into it: the options
/// schema is the root that `$ref`s resolve against.
/// `None` when the module or its meta file is missing or unreadable.
pub fn options_schema(libdir: &Path, assembler: bool, name: &str, v2: bool) -> Option<Value> {
    if !plain(name) {
        return None;
    }
    let meta = meta_json(&libdir.join(module_dir(assembler)), name)?;
    let nonempty = |v: &Value| v.as_object().is_some_and(|o| !o.is_empty());
    let (mut schema, definitions) = match meta.get("schema_2").filter(|s| v2 && nonempty(s)) {
        Some(s2) => (s2.get("options").cloned().unwrap_or_else(|| json!({})), s2.get("definitions").cloned()),
        None => (meta.get("schema").cloned().unwrap_or_else(|| json!({})), None),
    };
    let obj = schema.as_object_mut()?;
    obj.insert("type".into(), json!("object"));
    if let Some(d) = definitions {
        obj.entry("definitions").or_insert(d);
    }
    Some(schema)
}

/// The runner for a pipeline whose build root declares `name` (e.g. `org.osbuild.fedora38`):
/// among `libdir/runners/`, the same distribution with the highest version not above the
/// requested one, as upstream picks.
pub fn runner(libdir: &Path, name: &str) -> Option<PathBuf> {
    let dir = libdir.join("runners");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let chosen = crate::runner::detect_among(name, names.iter().map(String::as_str))?;
    Some(follow_flattened_links(&dir, chosen))
}

/// Upstream ships most runners as symlinks to another runner in the same directory; a copy made
/// without symlink support (git with `core.symlinks=false`, some archivers) turns each into a
/// small non-executable text file holding the target's name. Follow those, a few hops at most.
fn follow_flattened_links(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut path = dir.join(name);
    for _ in 0..4 {
        let Ok(md) = std::fs::metadata(&path) else { break };
        if md.permissions().mode() & 0o111 != 0 || md.len() > 255 {
            break;
        }
        let Ok(target) = std::fs::read_to_string(&path) else { break };
        let target = target.trim();
        if !plain(target) || !dir.join(target).is_file() {
            break;
        }
        path = dir.join(target);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_never_leave_the_directory() {
        for bad in ["", ".", "..", "../stages/x", "a/b", "x\0"] {
            assert!(!plain(bad), "{bad:?}");
            assert!(options_schema(Path::new("/"), false, bad, true).is_none());
        }
        assert!(plain("org.osbuild.zip"));
    }

    #[test]
    fn runners_are_picked_as_upstream_does_and_flattened_links_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let runners = dir.path().join("runners");
        std::fs::create_dir(&runners).unwrap();
        for (name, content, mode) in [
            ("org.osbuild.fedora30", "#!/usr/bin/python3\n", 0o755),
            ("org.osbuild.fedora38", "#!/usr/bin/python3\n", 0o755),
            ("org.osbuild.ubuntu1804", "#!/usr/bin/python3\n", 0o755),
            ("org.osbuild.debian", "org.osbuild.ubuntu1804", 0o644),
            ("org.osbuild.loop", "org.osbuild.loop", 0o644),
        ] {
            let p = runners.join(name);
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert_eq!(runner(dir.path(), "org.osbuild.fedora41").unwrap(), runners.join("org.osbuild.fedora38"));
        assert_eq!(runner(dir.path(), "org.osbuild.fedora37").unwrap(), runners.join("org.osbuild.fedora30"));
        assert_eq!(runner(dir.path(), "org.osbuild.debian12").unwrap(), runners.join("org.osbuild.ubuntu1804"));
        assert_eq!(runner(dir.path(), "org.osbuild.loop").unwrap(), runners.join("org.osbuild.loop"));
        assert!(runner(dir.path(), "org.osbuild.fedora29").is_none());
    }

    #[test]
    fn options_schema_prefers_schema_2() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("stages")).unwrap();
        let meta = json!({
            "schema": {"properties": {"old": {"type": "string"}}},
            "schema_2": {
                "options": {"additionalProperties": false, "properties": {"new": {"$ref": "#/definitions/n"}}},
                "definitions": {"n": {"type": "integer"}},
            },
            "capabilities": ["CAP_MAC_ADMIN"],
        });
        std::fs::write(dir.path().join("stages/x.meta.json"), meta.to_string()).unwrap();
        let v2 = options_schema(dir.path(), false, "x", true).unwrap();
        assert_eq!(v2["definitions"]["n"]["type"], "integer");
        assert_eq!(v2["type"], "object");
        let v1 = options_schema(dir.path(), false, "x", false).unwrap();
        assert_eq!(v1["properties"]["old"]["type"], "string");
        assert!(options_schema(dir.path(), false, "missing", true).is_none());
    }
}
