//! `org.osbuild.ostree.deploy`: deploy a commit into the sysroot that is the tree
//! (`ostree admin deploy`), as upstream: with a `commits` input (an `org.osbuild.ostree`
//! input) the commit is first pulled into `/ostree/repo` of the tree (`pull-local`, under
//! `remote` when given, using the input's `ref` for it, else the commit id); without one,
//! `ref` names what to deploy. `rootfs` (uuid or label) becomes a `root=` kernel argument
//! after `kernel_opts`. Each path in `mounts` is bind-mounted onto itself for the time of the
//! deployment, so `ostree` sees it as a mount point (e.g. `/boot` on a disk mounted by the
//! engine); the mounts are undone on every path out.
//!
//! Note: `ostree admin deploy` marks the deployment directory immutable (FS_IMMUTABLE_FL), as
//! on a real system; whoever removes such a tree must clear that flag first (upstream's rmrf
//! does).

use super::ostree_util::{input_commits, ostree, repo_arg, sysroot_arg};
use super::util::tree_path;
use super::{StageArgs, StageError, StageResult};
use crate::sys::{BindFlags, MountGuard};
use crate::Stage;
use serde::Deserialize;
use std::ffi::OsString;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub osname: String,
    pub rootfs: Option<Rootfs>,
    #[serde(default)]
    pub mounts: Vec<String>,
    #[serde(default)]
    pub kernel_opts: Vec<String>,
    #[serde(default, rename = "ref")]
    pub reference: String,
    pub remote: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    pub uuid: Option<String>,
    pub label: Option<String>,
}

impl Rootfs {
    fn identifier(&self) -> Result<String, StageError> {
        if let Some(u) = self.uuid.as_deref().filter(|u| !u.is_empty()) {
            return Ok(format!("UUID={u}"));
        }
        if let Some(l) = self.label.as_deref().filter(|l| !l.is_empty()) {
            return Ok(format!("LABEL={l}"));
        }
        Err(StageError::Invalid("rootfs needs a uuid or a label".into()))
    }
}

/// Pull every commit of input `commits` from its repository into `target` (a repository),
/// under `remote` if given; returns the last ref pulled.
pub(crate) fn pull_input(
    stage: &'static str,
    args: &StageArgs,
    target: &std::path::Path,
    remote: Option<&str>,
) -> Result<String, StageError> {
    let (source, commits) = input_commits(args, "commits")?;
    let mut last = String::new();
    for c in commits {
        let reference = c.data.get("ref").and_then(|r| r.as_str()).unwrap_or(&c.commit).to_owned();
        let mut argv: Vec<OsString> = vec!["pull-local".into(), source.clone().into(), reference.clone().into()];
        if let Some(r) = remote.filter(|r| !r.is_empty()) {
            argv.push(format!("--remote={r}").into());
        }
        argv.push(repo_arg(target));
        ostree(stage, &argv.iter().map(OsString::as_os_str).collect::<Vec<_>>())?;
        last = reference;
    }
    Ok(last)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeDeploy;

impl Stage for OstreeDeploy {
    const NAME: &'static str = "org.osbuild.ostree.deploy";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        if args.inputs.len() > 1 {
            return Err(StageError::Invalid("only one input (commits) is accepted".into()));
        }
        let mut kopts = options.kernel_opts.clone();
        if let Some(rootfs) = &options.rootfs {
            kopts.push(format!("root={}", rootfs.identifier()?));
        }
        let mut guards = MountGuard::new();
        for m in &options.mounts {
            let p = tree_path(args, m, true)?;
            guards.bind(&p, &p, BindFlags::default())?;
        }
        let mut reference = options.reference.clone();
        if args.inputs.is_empty() {
            if reference.is_empty() {
                return Err(StageError::Invalid("without a commits input the ref option must be given".into()));
            }
        } else {
            if !reference.is_empty() {
                return Err(StageError::Invalid(
                    "the ref option must not be given together with a commits input".into(),
                ));
            }
            let repo = args.tree.join("ostree/repo");
            reference = pull_input(OstreeDeploy::NAME, args, &repo, options.remote.as_deref())?;
        }
        if let Some(r) = options.remote.as_deref().filter(|r| !r.is_empty()) {
            reference = format!("{r}:{reference}");
        }
        let mut argv: Vec<OsString> = vec!["admin".into(), "deploy".into(), reference.into()];
        argv.extend(kopts.iter().map(|k| OsString::from(format!("--karg-append={k}"))));
        argv.push(sysroot_arg(&args.tree));
        argv.push(format!("--os={}", options.osname).into());
        let result = ostree(OstreeDeploy::NAME, &argv.iter().map(OsString::as_os_str).collect::<Vec<_>>());
        guards.close()?;
        result?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_and_root_identifier() {
        let o: Options = serde_json::from_value(json!({
            "osname": "fedora", "remote": "osbuild", "mounts": ["/boot"], "rootfs": {"label": "root"},
            "kernel_opts": ["rw"]}))
        .unwrap();
        assert_eq!(o.rootfs.unwrap().identifier().unwrap(), "LABEL=root");
        let r = Rootfs { uuid: Some("abc".into()), label: Some("x".into()) };
        assert_eq!(r.identifier().unwrap(), "UUID=abc");
        assert!(serde_json::from_value::<Options>(json!({"osname": "x", "bogus": 1})).is_err());
    }

    #[test]
    fn ref_and_input_rules() {
        let t = tempfile::tempdir().unwrap();
        let a = crate::testutil::args(t.path(), json!({"osname": "x"}));
        assert!(OstreeDeploy::execute(&a).unwrap_err().to_string().contains("the ref option must be given"));
        let mut a = crate::testutil::args(t.path(), json!({"osname": "x", "ref": "a/b"}));
        a.inputs.insert("commits".into(), json!({"path": "/nope", "data": {"refs": {"abc": {}}}}));
        assert!(OstreeDeploy::execute(&a).unwrap_err().to_string().contains("must not be given together"));
    }
}
