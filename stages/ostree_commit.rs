//! `org.osbuild.ostree.commit`: commit the `tree` input (already in OSTree layout, see
//! `org.osbuild.ostree.preptree`) to the repository `/repo` of this pipeline's tree under
//! `ref`, and write `/compose.json` with the commit's facts; the same document is the stage's
//! metadata as `{"compose": ...}`.
//!
//! Upstream copies the whole input tree and runs `rpm-ostree compose commit` on the copy. We
//! run the build root's `ostree commit` on the input tree directly (read-only, nothing is
//! copied), with the metadata rpm-ostree writes: `version` (from `os_version`),
//! `rpmostree.inputhash` (the stage id), the ref binding, and `ostree.bootable` /
//! `ostree.linux` when the tree has a kernel in `/usr/lib/modules`. With a `source-epoch`
//! the commit timestamp is that epoch, so the same manifest gives the same commit checksum.
//! `compose.json` has rpm-ostree's keys: `ref`, `ostree-commit`, `ostree-content-checksum`,
//! `ostree-timestamp`, `ostree-version` (when set), `rpm-ostree-inputhash` and the write
//! statistics (`ostree-n-metadata-total`, ...).
//!
//! Deviations: rpm-ostree's package list (`rpmostree.rpmdb.pkglist`) is not written;
//! `selinux-label-version` is accepted and recorded as `rpmostree.selinux-label-version`
//! (labels already on the files, e.g. from `org.osbuild.selinux`, are committed as they are).

use super::ostree_util::{ostree_output, repo_arg};
use super::util::write_file;
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(rename = "ref")]
    pub reference: String,
    pub os_version: Option<String>,
    pub parent: Option<String>,
    #[serde(default, rename = "selinux-label-version")]
    pub selinux_label_version: i64,
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The single kernel version in `<tree>/usr/lib/modules/*/vmlinuz`, if any.
fn kernel_version(tree: &Path) -> Option<String> {
    let mut found: Vec<String> = std::fs::read_dir(tree.join("usr/lib/modules"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("vmlinuz").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found.into_iter().next()
}

fn stat_value(table: &str, key: &str) -> Option<u64> {
    table.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeCommit;

impl Stage for OstreeCommit {
    const NAME: &'static str = "org.osbuild.ostree.commit";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let input = args.input_path("tree")?;
        let repo = args.tree.join("repo");
        if !repo.join("config").is_file() {
            return Err(StageError::Invalid(
                "no ostree repository at /repo of the tree (create it with org.osbuild.ostree.init)".into(),
            ));
        }
        if !input.join("usr/etc").is_dir() {
            return Err(StageError::Invalid(
                "the tree input is not in ostree layout (no /usr/etc): run org.osbuild.ostree.preptree first".into(),
            ));
        }
        let inputhash = args.meta.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let timestamp = args.source_epoch().unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
        });

        let mut argv: Vec<OsString> = vec!["commit".into(), repo_arg(&repo), "--table-output".into()];
        argv.push(format!("--branch={}", options.reference).into());
        argv.push(format!("--bind-ref={}", options.reference).into());
        argv.push(format!("--timestamp=@{timestamp}").into());
        if let Some(parent) = &options.parent {
            argv.push(format!("--parent={parent}").into());
        }
        if let Some(v) = &options.os_version {
            argv.push(format!("--add-metadata-string=version={v}").into());
        }
        argv.push(format!("--add-metadata-string=rpmostree.inputhash={inputhash}").into());
        if options.selinux_label_version != 0 {
            argv.push(
                format!("--add-metadata-string=rpmostree.selinux-label-version={}", options.selinux_label_version)
                    .into(),
            );
        }
        if let Some(kver) = kernel_version(&input) {
            println!("ostree: bootable commit, kernel {kver}");
            argv.push("--bootable".into());
        }
        let mut tree_arg = OsString::from("--tree=dir=");
        tree_arg.push(&input);
        argv.push(tree_arg);
        let refs: Vec<&std::ffi::OsStr> = argv.iter().map(OsString::as_os_str).collect();
        eprintln!("ostree {}", argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        let table = ostree_output(OstreeCommit::NAME, &refs)?;
        eprint!("{table}");
        let commit =
            table.lines().find_map(|l| l.strip_prefix("Commit:")).map(|s| s.trim().to_owned()).ok_or_else(|| {
                StageError::ToolUnexpected {
                    tool: "ostree commit".into(),
                    what: format!("printed no commit id: {table}"),
                }
            })?;
        let show = ostree_output(OstreeCommit::NAME, &[repo_arg(&repo).as_os_str(), "show".as_ref(), commit.as_ref()])?;
        let content = show.lines().find_map(|l| l.strip_prefix("ContentChecksum:")).map(|s| s.trim().to_owned());

        let mut compose = Map::new();
        compose.insert("ref".into(), json!(options.reference));
        compose.insert("ostree-commit".into(), json!(commit));
        if let Some(c) = content {
            compose.insert("ostree-content-checksum".into(), json!(c));
        }
        compose.insert("ostree-timestamp".into(), json!(iso8601(timestamp)));
        if let Some(v) = &options.os_version {
            compose.insert("ostree-version".into(), json!(v));
        }
        compose.insert("rpm-ostree-inputhash".into(), json!(inputhash));
        for (key, label) in [
            ("ostree-n-metadata-total", "Metadata Total"),
            ("ostree-n-metadata-written", "Metadata Written"),
            ("ostree-n-content-total", "Content Total"),
            ("ostree-n-content-written", "Content Written"),
            ("ostree-n-cache-hits", "Content Cache Hits"),
            ("ostree-content-bytes-written", "Content Bytes Written"),
        ] {
            if let Some(n) = stat_value(&table, label) {
                compose.insert(key.into(), json!(n));
            }
        }
        let compose = Value::Object(compose);
        let text = serde_json::to_vec_pretty(&compose).expect("JSON");
        write_file(&args.tree.join("compose.json"), &text, 0o644)?;
        Ok(Some(json!({ "compose": compose })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use std::process::Command;

    #[test]
    fn dates_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    fn init_archive_repo(repo: &Path) {
        let ok =
            Command::new("ostree").args(["init", "--mode=archive"]).arg(repo_arg(repo)).status().unwrap().success();
        assert!(ok, "ostree init failed for {}", repo.display());
    }

    fn layout(root: &Path) {
        for d in ["usr/etc", "usr/bin", "usr/lib/modules/6.1.0", "var", "boot"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("usr/bin/fish"), "fish\n").unwrap();
        std::fs::write(root.join("usr/etc/passwd"), "test:x:1000:1000::/:/usr/bin/fish\n").unwrap();
        std::fs::write(root.join("usr/lib/modules/6.1.0/vmlinuz"), "kernel").unwrap();
    }

    #[test]
    fn commits_the_input_with_rpm_ostree_metadata() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        let input = t.path().join("input");
        layout(&input);
        std::fs::create_dir_all(&tree).unwrap();
        init_archive_repo(&tree.join("repo"));
        let mut a = args(&tree, json!({"ref": "test/x86_64/iot", "os_version": "42.1"}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        a.meta.insert("source-epoch".into(), json!(1_700_000_000));
        let meta = OstreeCommit::execute(&a).unwrap().unwrap();
        let compose = &meta["compose"];
        let commit = compose["ostree-commit"].as_str().unwrap().to_owned();
        assert_eq!(commit.len(), 64);
        assert_eq!(compose["ref"], "test/x86_64/iot");
        assert_eq!(compose["ostree-version"], "42.1");
        assert_eq!(compose["rpm-ostree-inputhash"], "test");
        assert_eq!(compose["ostree-timestamp"], "2023-11-14T22:13:20Z");
        assert!(compose["ostree-n-content-total"].as_u64().unwrap() >= 3, "{compose}");
        assert_eq!(compose["ostree-content-checksum"].as_str().unwrap().len(), 64);
        let on_disk: Value = serde_json::from_slice(&std::fs::read(tree.join("compose.json")).unwrap()).unwrap();
        assert_eq!(&on_disk, compose);
        let key = |k: &str| {
            let o = Command::new("ostree")
                .arg(repo_arg(&tree.join("repo")))
                .args(["show", &format!("--print-metadata-key={k}"), &commit])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        };
        assert_eq!(key("version"), "'42.1'");
        assert_eq!(key("rpmostree.inputhash"), "'test'");
        assert_eq!(key("ostree.linux"), "'6.1.0'");
        // same input, same epoch, fresh repository: same commit
        std::fs::remove_dir_all(tree.join("repo")).unwrap();
        init_archive_repo(&tree.join("repo"));
        let again = OstreeCommit::execute(&a).unwrap().unwrap();
        assert_eq!(again["compose"]["ostree-commit"], commit.as_str());
    }

    #[test]
    fn refuses_a_tree_not_in_ostree_layout_or_a_missing_repo() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(t.path().join("input/etc")).unwrap();
        std::fs::create_dir_all(&tree).unwrap();
        let mut a = args(&tree, json!({"ref": "x"}));
        a.inputs.insert("tree".into(), json!({"path": t.path().join("input")}));
        assert!(OstreeCommit::execute(&a).unwrap_err().to_string().contains("no ostree repository at /repo"));
        init_archive_repo(&tree.join("repo"));
        assert!(OstreeCommit::execute(&a).unwrap_err().to_string().contains("not in ostree layout"));
    }
}
