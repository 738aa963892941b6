//! `org.osbuild.fstab`: write `/etc/fstab` (or the one of an ostree deployment).
//!
//! One tab-separated line per filesystem, `<spec>\t<path>\t<vfs_type>\t<options>\t<freq>\t<passno>`,
//! the spec being the first non-empty of `UUID=`, `LABEL=`, `PARTLABEL=` or the device, as
//! upstream does. Like upstream, `/etc` must already exist. For an ostree deployment given by
//! `osname`/`ref`, the ref is resolved with the build root's `ostree rev-parse` (as upstream);
//! a full commit checksum and the `default` deployment need no tool.

use super::ostree_util::repo_arg;
use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::Number;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filesystems: Vec<Filesystem>,
    #[serde(default)]
    pub ostree: Option<Ostree>,
}

/// Upstream does not restrict the keys of a filesystem entry.
#[derive(Debug, Deserialize)]
pub struct Filesystem {
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partlabel: Option<String>,
    pub device: Option<String>,
    pub path: String,
    pub vfs_type: Option<String>,
    pub options: Option<String>,
    pub freq: Option<Number>,
    pub passno: Option<Number>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ostree {
    pub deployment: Deployment,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub osname: Option<String>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub serial: Option<Number>,
    #[serde(default)]
    pub default: bool,
}

/// A JSON number as Python prints it after `json.load` (`1` stays `1`, `1.0` is `1.0`).
pub(crate) fn py_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Fstab;

impl Stage for Fstab {
    const NAME: &'static str = "org.osbuild.fstab";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let mut text = String::new();
        for fs in &options.filesystems {
            let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
            let spec = if let Some(u) = nonempty(&fs.uuid) {
                format!("UUID={u}")
            } else if let Some(l) = nonempty(&fs.label) {
                format!("LABEL={l}")
            } else if let Some(p) = nonempty(&fs.partlabel) {
                format!("PARTLABEL={p}")
            } else if let Some(d) = nonempty(&fs.device) {
                d
            } else {
                return Err(StageError::Invalid("Need 'uuid' or 'label'".into()));
            };
            let num = |n: &Option<Number>| n.as_ref().map(py_number).unwrap_or_else(|| "0".into());
            text.push_str(&format!(
                "{spec}\t{}\t{}\t{}\t{}\t{}\n",
                fs.path,
                fs.vfs_type.as_deref().unwrap_or("none"),
                fs.options.as_deref().unwrap_or("defaults"),
                num(&fs.freq),
                num(&fs.passno)
            ));
        }
        let root = match &options.ostree {
            Some(o) => {
                let root = deployment_root(args, &o.deployment)?;
                println!("ostree support active: {}", args.tree.join(&root).display());
                format!("/{root}")
            }
            None => String::new(),
        };
        let path = tree_path(args, format!("{root}/etc/fstab"), true)?;
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

/// The deployment's directory relative to the tree, `ostree/deploy/<os>/deploy/<commit>.<serial>`.
fn deployment_root(args: &StageArgs, d: &Deployment) -> Result<String, StageError> {
    let (osname, commit, serial) = if d.default {
        let pattern = format!("{}/ostree/deploy/*/deploy/*.0", glob::Pattern::escape(&args.tree.to_string_lossy()));
        let found: Vec<_> = glob::glob(&pattern)
            .map_err(|e| StageError::Invalid(e.to_string()))?
            .filter_map(Result::ok)
            .filter(|p| p.exists())
            .collect();
        if found.is_empty() {
            return Err(StageError::Invalid("Could not find deployment".into()));
        }
        if found.len() > 1 {
            return Err(StageError::Invalid(format!("More than one deployment found: {found:?}")));
        }
        let rel = found[0].strip_prefix(&args.tree).expect("below the tree");
        let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let name = &parts[4];
        // the directory name is already the commit checksum; rev-parse would return it unchanged
        (parts[2].clone(), name[..name.len() - 2].to_owned(), "0".to_owned())
    } else {
        let (Some(osname), Some(reference)) = (&d.osname, &d.reference) else {
            return Err(StageError::Invalid("the ostree deployment needs 'osname' and 'ref'".into()));
        };
        let serial = d.serial.as_ref().map(py_number).unwrap_or_else(|| "0".into());
        (osname.clone(), rev_parse(args, reference)?, serial)
    };
    Ok(format!("ostree/deploy/{osname}/deploy/{commit}.{serial}"))
}

fn rev_parse(args: &StageArgs, reference: &str) -> Result<String, StageError> {
    if reference.len() == 64 && reference.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Ok(reference.to_owned());
    }
    let repo = tree_path(args, "/ostree/repo", true)?;
    let repo = repo_arg(&repo);
    let out =
        super::ostree_util::ostree_output(Fstab::NAME, &["rev-parse".as_ref(), reference.as_ref(), repo.as_os_str()])?;
    Ok(out.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_fstab_lines() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        let opts = json!({"filesystems": [
            {"uuid": "u", "label": "ignored", "vfs_type": "ext4", "path": "/", "freq": 1, "passno": 1},
            {"uuid": "", "label": "L", "path": "/l"},
            {"partlabel": "P", "path": "/p", "options": "ro", "passno": 2.0},
            {"device": "/dev/root", "path": "/sysroot", "extra": "ignored"}]});
        Fstab::execute(&args(t.path(), opts)).unwrap();
        let got = std::fs::read_to_string(t.path().join("etc/fstab")).unwrap();
        assert_eq!(
            got,
            "UUID=u\t/\text4\tdefaults\t1\t1\nLABEL=L\t/l\tnone\tdefaults\t0\t0\n\
             PARTLABEL=P\t/p\tnone\tro\t0\t2.0\n/dev/root\t/sysroot\tnone\tdefaults\t0\t0\n"
        );
    }

    #[test]
    fn needs_a_spec_and_etc() {
        let t = tempfile::tempdir().unwrap();
        let e = Fstab::execute(&args(t.path(), json!({"filesystems": [{"path": "/"}]}))).unwrap_err();
        assert_eq!(e.to_string(), "Need 'uuid' or 'label'");
        let e = Fstab::execute(&args(t.path(), json!({"filesystems": [{"uuid": "x", "path": "/"}]}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot write"), "{e}");
    }

    #[test]
    fn default_ostree_deployment() {
        let t = tempfile::tempdir().unwrap();
        let c = "a".repeat(64);
        let dep = t.path().join(format!("ostree/deploy/fedora/deploy/{c}.0"));
        std::fs::create_dir_all(dep.join("etc")).unwrap();
        let opts = json!({"filesystems": [{"uuid": "u", "path": "/"}], "ostree": {"deployment": {"default": true}}});
        Fstab::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(std::fs::read_to_string(dep.join("etc/fstab")).unwrap(), "UUID=u\t/\tnone\tdefaults\t0\t0\n");
        let opts = json!({"filesystems": [{"uuid": "v", "path": "/"}],
                          "ostree": {"deployment": {"osname": "fedora", "ref": c, "serial": 0}}});
        Fstab::execute(&args(t.path(), opts)).unwrap();
        assert_eq!(std::fs::read_to_string(dep.join("etc/fstab")).unwrap(), "UUID=v\t/\tnone\tdefaults\t0\t0\n");
        // a symbolic ref needs the build root's ostree (missing here, or no repo in the tree)
        let opts = json!({"filesystems": [{"uuid": "v", "path": "/"}],
                          "ostree": {"deployment": {"osname": "fedora", "ref": "fedora/x86_64/coreos"}}});
        let e = Fstab::execute(&args(t.path(), opts)).unwrap_err().to_string();
        assert!(
            e == "ostree not found in the build root, but org.osbuild.fstab needs it"
                || e.starts_with("`ostree rev-parse fedora/x86_64/coreos --repo="),
            "{e}"
        );
    }
}
