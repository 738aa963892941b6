//! `org.osbuild.ostree.aleph`: write `/.aleph-version.json` at the sysroot (`sysroot_path`,
//! default `tree:///`) describing what was deployed: for a deployment of an OSTree commit
//! (origin `refspec=`) its `ref`, `ostree-commit`, `version` (commit metadata) and
//! `osbuild-version`; `coreos_compat` adds the `.coreos-aleph-version.json` link. Keys sorted,
//! 4-space indent and a final newline, as upstream writes it.
//!
//! Deviation: deployments of container images (origin `container-image-reference=`) need
//! `ostree container`, which Debian's ostree lacks; they are refused with that message.

use super::ostree_util::{find_deployment, ostree_output, repo_arg, DeploymentOption};
use super::util::{location, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;

const ALEPH: &str = ".aleph-version.json";
const COREOS_ALEPH: &str = ".coreos-aleph-version.json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub coreos_compat: bool,
    #[serde(default = "default_sysroot")]
    pub sysroot_path: String,
    pub deployment: DeploymentOption,
}

fn default_sysroot() -> String {
    "tree:///".into()
}

/// `(kind, imgref)` from an origin file: `refspec=` or `container-image-reference=`.
fn parse_origin(text: &str) -> Result<(&'static str, String), StageError> {
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let kind = match key {
            "container-image-reference" => "container",
            "refspec" => "ostree_commit",
            _ => continue,
        };
        let value = value.trim_end();
        if value.is_empty() {
            return Err(StageError::Invalid("the origin file names no image or ref".into()));
        }
        return Ok((kind, value.to_owned()));
    }
    Err(StageError::Invalid("no 'container-image-reference' or 'refspec' in the origin file".into()))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeAleph;

impl Stage for OstreeAleph {
    const NAME: &'static str = "org.osbuild.ostree.aleph";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let sysroot = location(&options.sysroot_path, args, true)?;
        let dep = find_deployment(&sysroot, &options.deployment)?;
        let origin_path = dep.path.with_file_name(format!("{}.{}.origin", dep.commit, dep.serial));
        let origin = std::fs::read_to_string(&origin_path).map_err(StageError::io("cannot read", &origin_path))?;
        let (kind, imgref) = parse_origin(&origin)?;
        if kind == "container" {
            return Err(StageError::Invalid(format!(
                "container deployments ({imgref}) are not supported: they need `ostree container`"
            )));
        }
        let data = aleph_commit(&sysroot, &imgref)?;
        let mut text = reindent(&serde_json::to_string_pretty(&data).expect("JSON"));
        text.push('\n');
        write_file(&sysroot.join(ALEPH), text.as_bytes(), 0o644)?;
        if options.coreos_compat {
            std::os::unix::fs::symlink(ALEPH, sysroot.join(COREOS_ALEPH))
                .map_err(StageError::io("cannot create link", sysroot.join(COREOS_ALEPH)))?;
        }
        Ok(None)
    }
}

/// serde_json's pretty printer indents by 2; upstream's `json.dump(indent=4)` by 4.
fn reindent(text: &str) -> String {
    text.lines()
        .map(|l| {
            let n = l.len() - l.trim_start_matches(' ').len();
            format!("{}{}", " ".repeat(n * 2), &l[n..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn aleph_commit(sysroot: &Path, imgref: &str) -> Result<Value, StageError> {
    let repo = sysroot.join("ostree/repo");
    let version = ostree_output(
        OstreeAleph::NAME,
        &[repo_arg(&repo).as_os_str(), "show".as_ref(), imgref.as_ref(), "--print-metadata-key=version".as_ref()],
    )?;
    let commit =
        ostree_output(OstreeAleph::NAME, &[repo_arg(&repo).as_os_str(), "rev-parse".as_ref(), imgref.as_ref()])?;
    // BTreeMap order = sorted keys
    let data: std::collections::BTreeMap<&str, Value> = [
        ("osbuild-version", json!(crate::UPSTREAM_VERSION)),
        ("version", json!(version.trim_end().trim_matches('\''))),
        ("ref", json!(imgref)),
        ("ostree-commit", json!(commit.trim())),
    ]
    .into_iter()
    .collect();
    Ok(serde_json::to_value(data).expect("JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_indent() {
        assert_eq!(parse_origin("[origin]\nrefspec=os:a/b\n").unwrap(), ("ostree_commit", "os:a/b".into()));
        assert_eq!(
            parse_origin("[origin]\ncontainer-image-reference=ostree-unverified-registry:q/x:1\n").unwrap().0,
            "container"
        );
        assert!(parse_origin("[origin]\n").unwrap_err().to_string().contains("no 'container-image-reference'"));
        assert_eq!(reindent("{\n  \"a\": {\n    \"b\": 1\n  }\n}"), "{\n    \"a\": {\n        \"b\": 1\n    }\n}");
    }
}
