//! `org.osbuild.ostree`: OSTree commits pulled by checksum from a remote repository into
//! `sources/org.osbuild.ostree/repo` of the store (an `archive` repository with locking on, as
//! upstream keeps it), with the host's `ostree`.
//!
//! Each item is `COMMIT: {"remote": {"url", "contenturl"?, "gpgkeys"?, "secrets"?}}`. A commit
//! is first pulled into a fresh staging repository in this fetch's staging directory beside the
//! store's repository (`.tmp-*`, see `store::StagingDir`), where
//! `ostree pull` checks every object against its checksum and, with `gpgkeys`, the commit's
//! signature; only a complete, verified commit is then copied into the store's repository
//! (`pull-local`, which commits the objects in one transaction). On any failure the staging
//! repository is removed, so nothing of a failed item reaches the store (the store's
//! repository itself is only created by the first successful pull). Every `ostree` run is tied
//! to the build (stop signals reach it, it dies with osbuild-rs) and ends by the download
//! timeout at the latest.
//!
//! Secrets: `org.osbuild.mtls` takes the TLS files and proxy from the environment
//! (`OSBUILD_SOURCES_OSTREE_SSL_CA_CERT`, `..._SSL_CLIENT_CERT`, `..._SSL_CLIENT_KEY`,
//! `OSBUILD_SOURCES_OSTREE_PROXY`, `OSBUILD_SOURCES_OSTREE_INSECURE`), as upstream;
//! `org.osbuild.rhsm.consumer` is not supported yet and is refused with that message.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{FetchOptions, ItemResult, SourceError};
use crate::manifest;

const REMOTE: &str = "osbuild-rs-source";

/// One parsed item.
#[derive(Debug, Clone, PartialEq)]
pub struct OstreeItem {
    pub commit: String,
    pub url: String,
    pub contenturl: Option<String>,
    pub gpgkeys: Vec<String>,
    pub secrets: Option<String>,
}

impl OstreeItem {
    pub fn parse(commit: &str, desc: &Value) -> Result<OstreeItem, SourceError> {
        let invalid = |reason: &str| SourceError::InvalidItem { item: commit.to_string(), reason: reason.to_string() };
        if commit.len() != 64 || !commit.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(SourceError::InvalidChecksum {
                item: commit.to_string(),
                reason: "an ostree commit is 64 lowercase hex digits".into(),
            });
        }
        let remote = desc.get("remote").and_then(Value::as_object).ok_or_else(|| invalid("\"remote\" is missing"))?;
        let url = remote.get("url").and_then(Value::as_str).ok_or_else(|| invalid("\"remote.url\" is missing"))?;
        let contenturl = remote.get("contenturl").and_then(Value::as_str).map(str::to_owned);
        let gpgkeys = match remote.get("gpgkeys") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|k| k.as_str().map(str::to_owned).ok_or_else(|| invalid("\"gpgkeys\" must be strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("\"gpgkeys\" must be an array")),
        };
        let secrets = remote.get("secrets").and_then(|s| s.get("name")).and_then(Value::as_str).map(str::to_owned);
        Ok(OstreeItem { commit: commit.to_string(), url: url.to_string(), contenturl, gpgkeys, secrets })
    }

    /// Arguments of `ostree remote add` after the name and URL.
    fn remote_options(&self, env: impl Fn(&str) -> Option<String>) -> Result<Vec<String>, SourceError> {
        let mut args = Vec::new();
        if self.gpgkeys.is_empty() {
            args.push("--no-gpg-verify".to_owned());
        }
        if let Some(c) = &self.contenturl {
            args.push(format!("--contenturl={c}"));
        }
        match self.secrets.as_deref() {
            None => {}
            Some("org.osbuild.mtls") => {
                for (var, key) in [
                    ("OSBUILD_SOURCES_OSTREE_SSL_CA_CERT", "tls-ca-path"),
                    ("OSBUILD_SOURCES_OSTREE_SSL_CLIENT_CERT", "tls-client-cert-path"),
                    ("OSBUILD_SOURCES_OSTREE_SSL_CLIENT_KEY", "tls-client-key-path"),
                    ("OSBUILD_SOURCES_OSTREE_PROXY", "proxy"),
                ] {
                    if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                        args.push(format!("--set={key}={v}"));
                    }
                }
                if env("OSBUILD_SOURCES_OSTREE_INSECURE")
                    .is_some_and(|v| matches!(v.to_lowercase().as_str(), "true" | "yes" | "1"))
                {
                    args.push("--set=tls-permissive=true".to_owned());
                }
            }
            Some(other) => {
                return Err(SourceError::InvalidItem {
                    item: self.commit.clone(),
                    reason: format!("secrets provider {other} is not supported for ostree sources"),
                })
            }
        }
        Ok(args)
    }
}

/// `ostree ARGS --repo=REPO`, killed at `deadline`; on failure the error names the command and
/// ostree's message.
fn ostree(args: &[&str], repo: &Path, input: Option<&str>, deadline: Instant) -> Result<String, String> {
    let mut cmd = Command::new("ostree");
    cmd.args(args).arg(format!("--repo={}", repo.display()));
    let out = crate::sandbox::run_helper(&mut cmd, input.map(|i| i.as_bytes().to_vec()), Some(deadline)).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "ostree not found on the host, but the org.osbuild.ostree source needs it".into()
            }
            _ => format!("cannot run ostree: {e}"),
        },
    )?;
    let verb = args.first().copied().unwrap_or_default();
    if !out.success() {
        if out.interrupted.is_some() || out.timed_out {
            return Err(format!("ostree {verb} {}", out.describe()));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim().trim_start_matches("error: ");
        return Err(format!("ostree {verb} failed: {err}"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The deadline of quick local `ostree` commands (init, config, show).
fn local_deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

fn init_repo(repo: &Path) -> Result<(), String> {
    fs::create_dir_all(repo).map_err(|e| format!("cannot create {}: {e}", repo.display()))?;
    ostree(&["init", "--mode=archive"], repo, None, local_deadline())?;
    ostree(&["config", "set", "repo.locking", "true"], repo, None, local_deadline()).map(drop)
}

/// Whether `commit` is complete in `repo` (the commit object is there and not partial).
pub fn has_commit(repo: &Path, commit: &str) -> bool {
    if commit.len() < 3 || !repo.join("config").is_file() {
        return false;
    }
    let object = repo.join("objects").join(&commit[..2]).join(format!("{}.commit", &commit[2..]));
    let partial = repo.join("state").join(format!("{commit}.commitpartial"));
    object.is_file() && !partial.exists() && ostree(&["show", commit], repo, None, local_deadline()).is_ok()
}

/// Pull one item through a staging repository (in `staging_dir`) into `repo`.
fn fetch_one(item: &OstreeItem, repo: &Path, staging_dir: &Path, opts: &FetchOptions) -> Result<(), SourceError> {
    let fail = |message: String| SourceError::Curl(format!("ostree commit {}: {message}", item.commit));
    let remote_opts = item.remote_options(|k| std::env::var(k).ok())?;
    // Removed when dropped, whatever happens below.
    let staging = tempfile::Builder::new()
        .prefix("repo-")
        .tempdir_in(staging_dir)
        .map_err(|e| SourceError::io("create a staging repository in", staging_dir, e))?;
    let deadline = opts.deadline();
    let result = (|| -> Result<(), String> {
        init_repo(staging.path())?;
        let mut add: Vec<&str> = vec!["remote", "add", REMOTE, &item.url];
        add.extend(remote_opts.iter().map(String::as_str));
        ostree(&add, staging.path(), None, deadline)?;
        for key in &item.gpgkeys {
            ostree(&["remote", "gpg-import", "--stdin", REMOTE], staging.path(), Some(key), deadline)?;
        }
        eprintln!("pulling {} from {}", item.commit, item.url);
        ostree(&["pull", REMOTE, &item.commit], staging.path(), None, deadline)?;
        ostree(&["fsck", "--quiet"], staging.path(), None, deadline)?;
        if !repo.join("config").is_file() {
            // made on the first success only; a half-made one of a killed run is made again
            let _ = fs::remove_dir_all(repo);
            init_repo(repo)?;
        }
        let src = staging.path().to_string_lossy().into_owned();
        ostree(&["pull-local", &src, &item.commit], repo, None, deadline)?;
        Ok(())
    })();
    result.map_err(fail)
}

/// Fetch the wanted items of an `org.osbuild.ostree` source into `dest_dir/repo`.
pub fn fetch(
    source: &manifest::Source,
    wanted: Option<&BTreeSet<String>>,
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Result<Vec<ItemResult>, SourceError> {
    let parsed = super::selected_items(source, wanted)?
        .into_iter()
        .map(|(key, desc)| OstreeItem::parse(key, desc))
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Ok(Vec::new());
    }
    let staging = super::staging_in(dest_dir)?;
    let repo = dest_dir.join("repo");
    let mut results = Vec::new();
    let mut first = None;
    let mut failed = 0;
    for item in &parsed {
        let outcome = if has_commit(&repo, &item.commit) {
            Ok(true)
        } else {
            fetch_one(item, &repo, staging.path(), opts).map(|()| false)
        };
        match outcome {
            Ok(cached) => results.push(ItemResult { checksum: item.commit.clone(), cached, error: None }),
            Err(e) => {
                failed += 1;
                let msg = e.to_string();
                first.get_or_insert_with(|| msg.clone());
                results.push(ItemResult { checksum: item.commit.clone(), cached: false, error: Some(msg) });
            }
        }
    }
    match first {
        Some(first) => Err(SourceError::Failed { source_type: source.kind.clone(), first, failed, results }),
        None => Ok(results),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "d406dfb09b4d6c28ae71e27ba938d338c7bcbba9528ab263b92e7b16aff566fb";

    #[test]
    fn parses_items() {
        let item = OstreeItem::parse(C, &json!({"remote": {"url": "http://h/repo", "gpgkeys": ["K"]}})).unwrap();
        assert_eq!(item.url, "http://h/repo");
        assert_eq!(item.gpgkeys, ["K"]);
        assert!(item.remote_options(|_| None).unwrap().is_empty());
        let e = OstreeItem::parse("abc", &json!({"remote": {"url": "x"}})).unwrap_err();
        assert!(e.to_string().starts_with("invalid checksum abc"), "{e}");
        let e = OstreeItem::parse(C, &json!({})).unwrap_err();
        assert!(e.to_string().contains("\"remote\" is missing"), "{e}");
    }

    #[test]
    fn remote_options_follow_upstream() {
        let item = OstreeItem::parse(
            C,
            &json!({"remote": {"url": "u", "contenturl": "c", "secrets": {"name": "org.osbuild.mtls"}}}),
        )
        .unwrap();
        let env = |k: &str| match k {
            "OSBUILD_SOURCES_OSTREE_SSL_CLIENT_KEY" => Some("/k".to_owned()),
            "OSBUILD_SOURCES_OSTREE_INSECURE" => Some("Yes".to_owned()),
            _ => None,
        };
        assert_eq!(
            item.remote_options(env).unwrap(),
            ["--no-gpg-verify", "--contenturl=c", "--set=tls-client-key-path=/k", "--set=tls-permissive=true"]
        );
        let rhsm =
            OstreeItem::parse(C, &json!({"remote": {"url": "u", "secrets": {"name": "org.osbuild.rhsm.consumer"}}}))
                .unwrap();
        assert!(rhsm.remote_options(|_| None).unwrap_err().to_string().contains("not supported"));
    }
}
