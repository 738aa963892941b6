//! Helpers shared by the `org.osbuild.ostree.*` stages: running the build root's `ostree`,
//! reading the commits an `org.osbuild.ostree` / `org.osbuild.ostree.checkout` input hands
//! over, and finding a deployment in a sysroot.

use super::util::tree_path;
use super::{StageArgs, StageError};
use crate::ostree_ref::{self, Lookup};
use crate::sys::Root;
use crate::tool::CommandRunExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The top-level directories of an OSTree commit's root (0755, empty).
pub const TOPLEVEL_DIRS: &[&str] = &["dev", "proc", "run", "sys", "sysroot", "var"];

/// The top-level symlinks of an OSTree commit's root (name, target).
pub const TOPLEVEL_LINKS: &[(&str, &str)] = &[
    ("home", "var/home"),
    ("media", "run/media"),
    ("mnt", "var/mnt"),
    ("opt", "var/opt"),
    ("ostree", "sysroot/ostree"),
    ("root", "var/roothome"),
    ("srv", "var/srv"),
];

/// `ostree ARGS...`, its stdout sent to our stderr (the build log), as upstream does.
pub fn ostree(stage: &'static str, args: &[&OsStr]) -> Result<(), StageError> {
    eprintln!("ostree {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    Command::new("ostree").args(args).stdout(Stdio::from(std::io::stderr())).run(stage)
}

/// `ostree ARGS...` with `input` on stdin; stdout to the build log.
pub fn ostree_stdin(stage: &'static str, args: &[&OsStr], input: &str) -> Result<(), StageError> {
    Command::new("ostree").args(args).stdout(Stdio::from(std::io::stderr())).run_with_input(stage, input.as_bytes())
}

/// `ostree ARGS...`, returning its stdout.
pub fn ostree_output(stage: &'static str, args: &[&OsStr]) -> Result<String, StageError> {
    Command::new("ostree").args(args).run_get_string(stage)
}

/// `--repo=PATH` as one argument.
pub fn repo_arg(repo: &Path) -> std::ffi::OsString {
    let mut a = std::ffi::OsString::from("--repo=");
    a.push(repo);
    a
}

/// `--sysroot=PATH` as one argument.
pub fn sysroot_arg(root: &Path) -> std::ffi::OsString {
    let mut a = std::ffi::OsString::from("--sysroot=");
    a.push(root);
    a
}

/// The repository path named by a manifest (`/repo`, `/ostree/repo`) inside the tree.
pub fn repo_in_tree(args: &StageArgs, repo: &str) -> Result<PathBuf, StageError> {
    tree_path(args, repo, true)
}

/// One commit handed over by an ostree input: its checksum and the input's options for it
/// (`ref` for `org.osbuild.ostree`, `path` for `org.osbuild.ostree.checkout`).
#[derive(Debug, Clone)]
pub struct InputCommit {
    pub commit: String,
    pub data: Map<String, Value>,
}

/// The repository (or checkout directory) and the commits of input `name`, in the shape
/// upstream's ostree inputs reply with: `{"path": .., "data": {"refs": {COMMIT: {..}}}}`.
pub fn input_commits(args: &StageArgs, name: &str) -> Result<(PathBuf, Vec<InputCommit>), StageError> {
    let path = args.input_path(name)?;
    let refs = args
        .inputs
        .get(name)
        .and_then(|i| i.get("data"))
        .and_then(|d| d.get("refs"))
        .and_then(Value::as_object)
        .ok_or_else(|| StageError::BadInput {
            name: name.to_owned(),
            problem: "carries no commits (data.refs)".into(),
        })?;
    if refs.is_empty() {
        return Err(StageError::BadInput { name: name.to_owned(), problem: "needs at least one commit".into() });
    }
    let commits = refs
        .iter()
        .map(|(commit, data)| InputCommit {
            commit: commit.clone(),
            data: data.as_object().cloned().unwrap_or_default(),
        })
        .collect();
    Ok((path, commits))
}

/// Which deployment a stage acts on (upstream's `deployment` option).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentOption {
    pub osname: Option<String>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub serial: Option<serde_json::Number>,
    #[serde(default)]
    pub default: bool,
}

/// A resolved deployment: stateroot name, commit and serial, and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub osname: String,
    pub commit: String,
    pub serial: u64,
    /// `<root>/ostree/deploy/<osname>/deploy/<commit>.<serial>`
    pub path: PathBuf,
}

impl Deployment {
    /// `<root>/ostree/deploy/<osname>` (holds `var`).
    pub fn stateroot(&self, root: &Path) -> PathBuf {
        root.join("ostree/deploy").join(&self.osname)
    }
}

/// Find the deployment `opt` names below `root` (a sysroot): either the only deployment with
/// serial 0 (`default`), or the one for `osname`/`ref`/`serial`, the ref resolved in
/// `<root>/ostree/repo`.
pub fn find_deployment(root: &Path, opt: &DeploymentOption) -> Result<Deployment, StageError> {
    if opt.default {
        let base = root.join("ostree/deploy");
        let mut found = Vec::new();
        for os in read_dir_names(&base)? {
            for d in read_dir_names(&base.join(&os).join("deploy"))? {
                if let Some((commit, serial)) = d.rsplit_once('.') {
                    if serial == "0" && !d.ends_with(".origin") && base.join(&os).join("deploy").join(&d).is_dir() {
                        found.push((os.clone(), commit.to_owned()));
                    }
                }
            }
        }
        return match found.as_slice() {
            [] => Err(StageError::Invalid(format!("no ostree deployment found in {}", base.display()))),
            [(osname, commit)] => Ok(Deployment {
                osname: osname.clone(),
                commit: commit.clone(),
                serial: 0,
                path: base.join(osname).join("deploy").join(format!("{commit}.0")),
            }),
            _ => Err(StageError::Invalid(format!("more than one ostree deployment found in {}", base.display()))),
        };
    }
    let osname = opt.osname.clone().ok_or_else(|| StageError::Invalid("deployment needs an osname".into()))?;
    let reference = opt.reference.clone().ok_or_else(|| StageError::Invalid("deployment needs a ref".into()))?;
    let serial = match &opt.serial {
        None => 0,
        Some(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| StageError::Invalid(format!("invalid deployment serial {n}")))?,
    };
    // The same resolution as the engine's deployment mount (heads, then any remote), so a
    // stage and a mount given the same ref find the same deployment.
    let repo = Root::open(root.join("ostree/repo"))?;
    let commit = ostree_ref::resolve_rev(&repo, &reference, Lookup::WithRemotes)?;
    let path = root.join("ostree/deploy").join(&osname).join("deploy").join(format!("{commit}.{serial}"));
    if !path.is_dir() {
        return Err(StageError::Invalid(format!(
            "no deployment of {reference} ({commit}.{serial}) for os {osname} in {}",
            root.display()
        )));
    }
    Ok(Deployment { osname, commit, serial, path })
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, StageError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StageError::Io { op: "cannot read directory", path: dir.to_owned(), source: e }),
    };
    for e in rd {
        let e = e.map_err(StageError::io("cannot read directory", dir))?;
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn input_commits_follow_upstreams_reply() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({}));
        a.inputs.insert(
            "commits".into(),
            json!({"path": "/run/osbuild/inputs/commits", "data": {"refs": {"abc": {"ref": "os/x86_64/iot"}}}}),
        );
        let (path, commits) = input_commits(&a, "commits").unwrap();
        assert_eq!(path, Path::new("/run/osbuild/inputs/commits"));
        assert_eq!(commits[0].commit, "abc");
        assert_eq!(commits[0].data["ref"], "os/x86_64/iot");
        a.inputs.insert("empty".into(), json!({"path": "/x", "data": {"refs": {}}}));
        assert!(input_commits(&a, "empty").unwrap_err().to_string().contains("at least one commit"));
        assert!(input_commits(&a, "nope").unwrap_err().to_string().contains("unknown input 'nope'"));
    }

    #[test]
    fn default_deployment_is_found_on_disk() {
        let t = tempfile::tempdir().unwrap();
        let dep = t.path().join("ostree/deploy/fedora/deploy/abc123.0");
        std::fs::create_dir_all(&dep).unwrap();
        std::fs::write(t.path().join("ostree/deploy/fedora/deploy/abc123.0.origin"), "").unwrap();
        let opt = DeploymentOption { osname: None, reference: None, serial: None, default: true };
        let d = find_deployment(t.path(), &opt).unwrap();
        assert_eq!((d.osname.as_str(), d.commit.as_str(), d.serial), ("fedora", "abc123", 0));
        assert_eq!(d.path, dep);
        std::fs::create_dir_all(t.path().join("ostree/deploy/other/deploy/def.0")).unwrap();
        let e = find_deployment(t.path(), &opt).unwrap_err();
        assert!(e.to_string().contains("more than one ostree deployment"), "{e}");
    }

    #[test]
    fn a_ref_pulled_under_a_remote_names_its_deployment_with_or_without_the_remote() {
        let t = tempfile::tempdir().unwrap();
        let commit = "ab".repeat(32);
        let refs = t.path().join("ostree/repo/refs/remotes/osbuild-rs/osbuild-rs/x86_64");
        std::fs::create_dir_all(&refs).unwrap();
        std::fs::create_dir_all(t.path().join("ostree/repo/refs/heads")).unwrap();
        std::fs::write(refs.join("iot"), format!("{commit}\n")).unwrap();
        let dep = t.path().join(format!("ostree/deploy/debian/deploy/{commit}.0"));
        std::fs::create_dir_all(&dep).unwrap();
        for name in ["osbuild-rs/x86_64/iot", "osbuild-rs:osbuild-rs/x86_64/iot", commit.as_str()] {
            let opt = DeploymentOption {
                osname: Some("debian".into()),
                reference: Some(name.into()),
                serial: None,
                default: false,
            };
            let d = find_deployment(t.path(), &opt).unwrap();
            assert_eq!((d.commit.as_str(), d.path.as_path()), (commit.as_str(), dep.as_path()), "{name}");
        }
        let opt = DeploymentOption {
            osname: Some("debian".into()),
            reference: Some("other/ref".into()),
            serial: None,
            default: false,
        };
        let e = find_deployment(t.path(), &opt).unwrap_err();
        assert!(e.to_string().contains("ref 'other/ref' not found"), "{e}");
    }
}
