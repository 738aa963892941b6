//! `org.osbuild.rpm`: verify and install RPM packages into the tree with the build root's `rpm`.
//!
//! The packages come from the `packages` input (`org.osbuild.files`): files named by their
//! checksum, each with optional metadata `rpm.check_gpg`. As upstream:
//!
//! 1. every key of `gpgkeys` is imported into the tree's database (`rpmkeys --import`; with
//!    `rpmkeys.ignore_import_failures` a failing import is only reported);
//! 2. every package marked `rpm.check_gpg` is checked with `rpmkeys --checksig` against the
//!    keys in the tree's database; a failure names the package;
//! 3. the build root's `/dev`, `/sys` and `/proc` are bound into the tree, a fake
//!    `/etc/machine-id` is provided when the tree has none (it is left empty afterwards),
//!    `/run/ostree-booted` is created with `ostree_booted`, and `disable_dracut` masks
//!    kernel-install's dracut plugins for the run;
//! 4. all packages are installed in one transaction: `rpm --verbose --root <tree>
//!    [--excludedocs] [--nodeps] [--define '%_install_langs a:b'] [--ignorearch] --nosignature
//!    --install <list of the input's files>`, with `generic_env` and `kernel_install_env` in the
//!    environment;
//! 5. the keys of `gpgkeys.fromtree` are imported from the tree;
//! 6. `/var/lib/systemd/random-seed` is removed, and the metadata `{"packages": [...]}` (every
//!    package in the database with name, version, release, epoch, arch, sigmd5, sha1header,
//!    sha256header, sha3_256header, sigpgp, siggpg; `null` where unset; sorted by name) is
//!    returned.
//!
//! Deviations:
//! - The database path is always passed (`--dbpath`): the `dbpath` option, else the build
//!   root's `%_dbpath` when it is a system path (`/usr/…` or `/var/…`), else an existing
//!   database in the tree, else `/usr/lib/sysimage/rpm`. Upstream relies on the build root's
//!   default, which on Debian is `~/.rpmdb` and would put the database outside the tree.
//! - `rpm.check_gpg` also refuses an unsigned package (`%_pkgverify_level all`); upstream's
//!   `rpmkeys --checksig` accepts a package with valid digests and no signature at all.
//! - When the transaction fails, the packages responsible are named: packages whose digests
//!   are bad, and packages whose scriptlet failed. A failing `%post` is, as with upstream,
//!   only a warning of `rpm`'s; we repeat it at the end of the log, naming the package.
//! - With `disable_dracut` upstream means to remove `/etc/kernel/install.d` and `/etc/kernel`
//!   again when no package owns them, but its check looks in the wrong directory and never
//!   removes anything; we keep that outcome (the directories stay).

use super::util::{scratch_dir, tree_path, truthy, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::tool::{stderr_tail, CommandRunExt, Finished};
use crate::Stage;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

const DEFAULT_DBPATH: &str = "/usr/lib/sysimage/rpm";
const OSTREE_BOOTED: &str = "/run/ostree-booted";
const FAKE_MACHINE_ID: &[u8] = b"ffffffffffffffffffffffffffffffff\n";
const DRACUT_PLUGINS: &[&str] = &["50-dracut.install", "51-dracut-rescue.install"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub dbpath: Option<String>,
    #[serde(default)]
    pub gpgkeys: Vec<String>,
    #[serde(default, rename = "gpgkeys.fromtree")]
    pub gpgkeys_fromtree: Vec<String>,
    #[serde(default)]
    pub rpmkeys: RpmKeys,
    #[serde(default)]
    pub disable_dracut: bool,
    #[serde(default)]
    pub exclude: Exclude,
    #[serde(default)]
    pub install_langs: Vec<String>,
    #[serde(default)]
    pub nodeps: bool,
    #[serde(default)]
    pub ignorearch: bool,
    #[serde(default)]
    pub ostree_booted: bool,
    #[serde(default)]
    pub generic_env: BTreeMap<String, String>,
    #[serde(default)]
    pub kernel_install_env: KernelInstallEnv,
    /// Only validated: v1 manifests list the packages here, and the loader turns them into
    /// the `packages` input the stage reads.
    #[serde(default, rename = "packages")]
    pub _packages: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpmKeys {
    #[serde(default)]
    pub bin_path: Option<String>,
    #[serde(default)]
    pub ignore_import_failures: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    #[serde(default)]
    pub docs: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInstallEnv {
    #[serde(default)]
    pub boot_root: Option<String>,
    #[serde(default)]
    pub conf_root: Option<String>,
    #[serde(default)]
    pub plugins: Option<String>,
    #[serde(default)]
    pub machine_id: Option<String>,
}

/// The environment for `rpm`: `generic_env` plus kernel-install's variables (empty values are
/// left out, as upstream does). A variable set by both is an error.
fn environment(o: &Options) -> Result<Vec<(String, String)>, StageError> {
    let k = &o.kernel_install_env;
    let kernel: Vec<(&str, &Option<String>)> = vec![
        ("BOOT_ROOT", &k.boot_root),
        ("KERNEL_INSTALL_CONF_ROOT", &k.conf_root),
        ("KERNEL_INSTALL_PLUGINS", &k.plugins),
        ("MACHINE_ID", &k.machine_id),
    ];
    let kernel: Vec<(String, String)> = kernel
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (name.to_owned(), v.clone())))
        .collect();
    let conflicts: Vec<&str> =
        kernel.iter().filter(|(n, _)| o.generic_env.contains_key(n)).map(|(n, _)| n.as_str()).collect();
    if !conflicts.is_empty() {
        return Err(StageError::Invalid(format!(
            "environment variable(s) set in both generic_env and kernel_install_env: {}",
            conflicts.join(", ")
        )));
    }
    Ok(o.generic_env.iter().map(|(k, v)| (k.clone(), v.clone())).chain(kernel).collect())
}

/// The arguments after `rpm --verbose --dbpath X --root T` and before `--nosignature --install`.
fn install_args(o: &Options) -> Vec<String> {
    let mut a = Vec::new();
    if o.exclude.docs {
        a.push("--excludedocs".to_owned());
    }
    if o.nodeps {
        a.push("--nodeps".to_owned());
    }
    if !o.install_langs.is_empty() {
        a.push("--define".to_owned());
        a.push(format!("%_install_langs {}", o.install_langs.join(":")));
    }
    if o.ignorearch {
        a.push("--ignorearch".to_owned());
    }
    a
}

/// One package of the input: its file name (a checksum) and whether its signature is checked.
#[derive(Debug, Clone, PartialEq)]
struct Package {
    file: String,
    check_gpg: bool,
}

fn packages(args: &StageArgs) -> Result<(PathBuf, Vec<Package>), StageError> {
    let (base, files) = args.input_files("packages")?;
    let mut out = Vec::new();
    for (file, meta) in files {
        out.push(Package { file: file.clone(), check_gpg: meta.get("rpm.check_gpg").is_some_and(truthy) });
    }
    Ok((base, out))
}

/// `rpm` or `rpmkeys` with the database and root in upstream's order.
fn rpm_cmd(bin: &str, dbpath: &str, tree: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--dbpath").arg(dbpath).arg("--root").arg(tree);
    c
}

/// The database path to use (see the module documentation).
fn choose_dbpath(args: &StageArgs, option: Option<&str>) -> Result<String, StageError> {
    if let Some(db) = option.filter(|d| !d.is_empty()) {
        println!("dbpath set to '{db}'");
        return Ok(db.to_owned());
    }
    // Only a hint: without a usable answer the tree decides.
    if let Ok(done) = Command::new("rpm").args(["--eval", "%{_dbpath}"]).run_unchecked(Rpm::NAME, true) {
        let db = String::from_utf8_lossy(&done.stdout).trim().to_owned();
        if done.success() && (db.starts_with("/usr/") || db.starts_with("/var/")) {
            return Ok(db);
        }
    }
    for dir in [DEFAULT_DBPATH, "/var/lib/rpm"] {
        let p = tree_path(args, dir, true)?;
        if ["rpmdb.sqlite", "Packages", "Packages.db"].iter().any(|f| p.join(f).is_file()) {
            return Ok(dir.to_owned());
        }
    }
    Ok(DEFAULT_DBPATH.to_owned())
}

fn import_keys(args: &StageArgs, o: &Options, bin: &str, dbpath: &str, scratch: &TempDir) -> Result<(), StageError> {
    for (n, key) in o.gpgkeys.iter().enumerate() {
        let file = scratch.path().join(format!("gpgkey.{n}"));
        write_file(&file, key.as_bytes(), 0o600)?;
        let mut cmd = rpm_cmd(bin, dbpath, &args.tree);
        cmd.arg("--import").arg(&file);
        let done = cmd.run_unchecked(Rpm::NAME, false)?;
        if done.success() {
            println!("all gpg keys imported successfully");
        } else if o.rpmkeys.ignore_import_failures {
            println!("failed to import gpg key {} ({}), ignoring it", n + 1, done.status);
        } else {
            return Err(failure(&done).context(format!("cannot import gpg key {} of 'gpgkeys'", n + 1)));
        }
    }
    Ok(())
}

/// `name-version-release.arch (file)` of a package file, or just the file name when its header
/// cannot be read. The header is read with the `rpm` crate: no tool, and no trust in the
/// package beyond naming it.
fn describe(pkgpath: &Path, file: &str) -> String {
    let nvra = |m: &rpm::PackageMetadata| -> Result<String, rpm::Error> {
        Ok(format!("{}-{}-{}.{}", m.get_name()?, m.get_version()?, m.get_release()?, m.get_arch()?))
    };
    match rpm::PackageMetadata::open(pkgpath.join(file)).and_then(|m| nvra(&m)) {
        Ok(name) => format!("{name} ({file})"),
        Err(_) => file.to_owned(),
    }
}

fn check_signatures(
    args: &StageArgs,
    bin: &str,
    dbpath: &str,
    pkgpath: &Path,
    pkgs: &[Package],
) -> Result<(), StageError> {
    for p in pkgs.iter().filter(|p| p.check_gpg) {
        let mut cmd = rpm_cmd(bin, dbpath, &args.tree);
        cmd.args(["--define", "_pkgverify_level all", "--checksig"]).arg(&p.file).current_dir(pkgpath);
        let done = cmd.run_unchecked(Rpm::NAME, true)?;
        if !done.success() {
            let said = String::from_utf8_lossy(&done.stdout).trim().replace(&format!("{}: ", p.file), "");
            let tail = rpm_tail(&done.stderr);
            let detail = [said, tail].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ");
            let what = format!("signature check failed on package {}", describe(pkgpath, &p.file));
            return Err(done.failure(detail).context(what));
        }
    }
    Ok(())
}

/// The tail of rpm's stderr without its chatter (usage lines, GPG_TTY warnings).
fn rpm_tail(stderr: &[u8]) -> String {
    stderr_tail(stderr, Some(|l| !l.starts_with("rpm: ") && !l.starts_with("warning: Could not set GPG_TTY")))
}

/// [`StageError::ToolFailed`] for a failed rpm run, with what rpm said that matters.
fn failure(done: &Finished) -> StageError {
    done.failure(rpm_tail(&done.stderr))
}

/// Provides `/etc/machine-id` while alive; leaves an empty one (mode 0444) behind, as upstream.
struct MachineId {
    path: PathBuf,
    done: bool,
}

impl MachineId {
    fn provide(args: &StageArgs) -> Result<Self, StageError> {
        let etc = tree_path(args, "/etc", true)?;
        if !etc.exists() {
            std::fs::create_dir(&etc).map_err(StageError::io("cannot create directory", &etc))?;
            std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755))
                .map_err(StageError::io("cannot chmod", &etc))?;
        }
        let path = etc.join("machine-id");
        if std::fs::symlink_metadata(&path).is_err() {
            write_file(&path, FAKE_MACHINE_ID, 0o444)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
                .map_err(StageError::io("cannot chmod", &path))?;
        }
        Ok(MachineId { path, done: false })
    }

    fn finish(mut self) -> Result<(), StageError> {
        self.done = true;
        let p = &self.path;
        let _ = std::fs::remove_file(p);
        write_file(p, b"", 0o444)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).map_err(StageError::io("cannot chmod", p))
    }
}

impl Drop for MachineId {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
            let _ = write_file(&self.path, b"", 0o444);
        }
    }
}

/// The build root's `/dev`, `/sys` and `/proc` in the tree, for the scriptlets (as upstream).
fn prepare_api_mounts(args: &StageArgs) -> Result<Chroot, StageError> {
    let chroot = Chroot::enter(&args.tree, ApiFs::Host)?;
    let fd = tree_path(args, "/dev/fd", false)?;
    if std::fs::symlink_metadata(&fd).is_err() {
        std::os::unix::fs::symlink("/proc/self/fd", &fd).map_err(StageError::io("cannot create symlink", &fd))?;
    }
    Ok(chroot)
}

fn mask_dracut(args: &StageArgs) -> Result<Vec<PathBuf>, StageError> {
    let dir = tree_path(args, "/etc/kernel/install.d", true)?;
    std::fs::create_dir_all(&dir).map_err(StageError::io("cannot create directory", &dir))?;
    let mut masked = Vec::new();
    for name in DRACUT_PLUGINS {
        let p = dir.join(name);
        std::os::unix::fs::symlink("/dev/null", &p).map_err(StageError::io("cannot create symlink", &p))?;
        masked.push(p);
    }
    Ok(masked)
}

/// Why the transaction failed, per package: bad digests and failed scriptlets.
fn diagnose(bin: &str, pkgpath: &Path, pkgs: &[Package], rpm_stderr: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for p in pkgs {
        // The digests are checked with the build root's rpmkeys: the `rpm` crate checks them
        // only when built with its OpenPGP back end.
        let ok = Command::new(bin)
            .args(["--nosignature", "--checksig"])
            .arg(&p.file)
            .current_dir(pkgpath)
            .stdout(Stdio::null())
            .run_unchecked(Rpm::NAME, false)
            .is_ok_and(|done| done.success());
        if !ok {
            found.push(format!("package {} is corrupt (its digests do not match)", describe(pkgpath, &p.file)));
        }
    }
    found
        .extend(failed_scriptlets(rpm_stderr).into_iter().map(|(what, pkg)| format!("{what} of package {pkg} failed")));
    found
}

/// `(scriptlet, package)` for each scriptlet failure `rpm` reported, e.g. `("%prein",
/// "foo-1-1.noarch")` from `error: %prein(foo-1-1.noarch) scriptlet failed, exit status 1` or
/// from a Lua error `[string "%prein(foo-1-1.noarch)"]:1: …`.
fn failed_scriptlets(stderr: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stderr {
        let interesting = line.contains("scriptlet failed") || line.contains("lua script failed");
        if !interesting {
            continue;
        }
        let Some(start) = line.find('%') else { continue };
        let rest = &line[start..];
        let Some(open) = rest.find('(') else { continue };
        let Some(close) = rest[open..].find(')') else { continue };
        let item = (rest[..open].to_owned(), rest[open + 1..open + close].to_owned());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn install(
    args: &StageArgs,
    o: &Options,
    bin: &str,
    dbpath: &str,
    pkgpath: &Path,
    pkgs: &[Package],
    scratch: &TempDir,
    env: &[(String, String)],
) -> Result<(), StageError> {
    let mounts = prepare_api_mounts(args)?;
    let machine_id = MachineId::provide(args)?;
    let mut ostree_booted = None;
    if o.ostree_booted {
        let run_dir = tree_path(args, "/run", true)?;
        std::fs::create_dir_all(&run_dir).map_err(StageError::io("cannot create directory", &run_dir))?;
        let marker = tree_path(args, OSTREE_BOOTED, false)?;
        write_file(&marker, b"", 0o644)?;
        ostree_booted = Some(marker);
    }
    let masked = if o.disable_dracut { mask_dracut(args)? } else { Vec::new() };

    let extra = install_args(o);
    if !o.install_langs.is_empty() {
        println!("using '%_install_langs {}'", o.install_langs.join(":"));
    }
    let list = scratch.path().join("manifest");
    let text: String = pkgs.iter().map(|p| format!("{}\n", p.file)).collect();
    write_file(&list, text.as_bytes(), 0o644)?;
    let mut cmd = Command::new("rpm");
    cmd.arg("--verbose").arg("--dbpath").arg(dbpath).arg("--root").arg(&args.tree);
    cmd.args(&extra).arg("--nosignature").arg("--install").arg(&list);
    cmd.current_dir(pkgpath).envs(env.iter().map(|(k, v)| (k, v)));
    let done = cmd.run_unchecked(Rpm::NAME, false)?;
    let stderr = done.stderr_lines();
    if !done.success() {
        let why = diagnose(bin, pkgpath, pkgs, &stderr);
        let detail = why.into_iter().chain(Some(rpm_tail(&done.stderr))).filter(|s| !s.is_empty());
        return Err(done.failure(detail.collect::<Vec<_>>().join("; ")).context("installing the packages failed"));
    }
    for (what, pkg) in failed_scriptlets(&stderr) {
        println!("warning: {what} scriptlet of package {pkg} failed (rpm carried on)");
    }

    for key in &o.gpgkeys_fromtree {
        let path = tree_path(args, key, true)?;
        let mut cmd = rpm_cmd(bin, dbpath, &args.tree);
        cmd.arg("--import").arg(&path);
        let done = cmd.run_unchecked(Rpm::NAME, false)?;
        if !done.success() {
            return Err(failure(&done).context(format!("cannot import gpg keys from '{key}'")));
        }
        println!("imported gpg keys from '{key}'");
    }

    for p in masked {
        std::fs::remove_file(&p).map_err(StageError::io("cannot remove", &p))?;
    }
    machine_id.finish()?;
    mounts.close()?;
    if let Some(marker) = ostree_booted {
        std::fs::remove_file(&marker).map_err(StageError::io("cannot remove", &marker))?;
    }
    Ok(())
}

/// Metadata keys and their rpm tags, in upstream's order; the first three are always set.
const METADATA_TAGS: &[(&str, &str)] = &[
    ("name", "NAME"),
    ("version", "VERSION"),
    ("release", "RELEASE"),
    ("epoch", "EPOCH"),
    ("arch", "ARCH"),
    ("sigmd5", "SIGMD5"),
    ("sha1header", "SHA1HEADER"),
    ("sha256header", "SHA256HEADER"),
    ("sha3_256header", "SHA3_256HEADER"),
    ("sigpgp", "SIGPGP"),
    ("siggpg", "SIGGPG"),
];

const FIELD_SEP: char = '\u{1f}';
const RECORD_SEP: char = '\u{1e}';
const NULL_MARK: &str = "\u{1a}";

/// The `--qf` format for [`METADATA_TAGS`]; tags the build root's rpm does not know are left
/// out (and reported as `null`).
fn query_format(known: &[&str]) -> String {
    let mut f = String::new();
    for (i, (_, tag)) in METADATA_TAGS.iter().enumerate() {
        if i > 0 {
            f.push(FIELD_SEP);
        }
        if i < 3 {
            f.push_str(&format!("%{{{tag}}}"));
        } else if known.contains(tag) {
            f.push_str(&format!("%|{tag}?{{%{{{tag}}}}}:{{{NULL_MARK}}}|"));
        } else {
            f.push_str(NULL_MARK);
        }
    }
    f.push(RECORD_SEP);
    f
}

fn parse_query(out: &str) -> Result<Vec<Value>, StageError> {
    let mut pkgs = Vec::new();
    for rec in out.split(RECORD_SEP).map(|r| r.trim_start_matches('\n')).filter(|r| !r.is_empty()) {
        let fields: Vec<&str> = rec.split(FIELD_SEP).collect();
        if fields.len() != METADATA_TAGS.len() {
            return Err(StageError::ToolUnexpected { tool: "rpm -qa".into(), what: format!("printed {rec:?}") });
        }
        let mut m = Map::new();
        for ((key, _), v) in METADATA_TAGS.iter().zip(fields) {
            m.insert((*key).to_owned(), if v == NULL_MARK { Value::Null } else { Value::String(v.to_owned()) });
        }
        pkgs.push(Value::Object(m));
    }
    pkgs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(pkgs)
}

fn package_metadata(args: &StageArgs, dbpath: &str) -> Result<Value, StageError> {
    let tags = Command::new("rpm").arg("--querytags").run_get_string(Rpm::NAME)?;
    let known: Vec<&str> = tags.split_whitespace().collect();
    let mut cmd = Command::new("rpm");
    cmd.arg("--dbpath").arg(dbpath).arg("-qa").arg("--root").arg(&args.tree);
    cmd.arg(format!("--qf={}", query_format(&known)));
    let out = cmd.run_get_string(Rpm::NAME).map_err(|e| e.context("cannot query the installed packages"))?;
    let mut doc = Map::new();
    doc.insert("packages".into(), Value::Array(parse_query(&out)?));
    Ok(Value::Object(doc))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Rpm;

impl Stage for Rpm {
    const NAME: &'static str = "org.osbuild.rpm";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let (pkgpath, pkgs) = packages(args)?;
        let env = environment(&o)?;
        let bin = o.rpmkeys.bin_path.clone().unwrap_or_else(|| "rpmkeys".to_owned());
        let dbpath = choose_dbpath(args, o.dbpath.as_deref())?;
        let scratch = scratch_dir("osbuild-rpm")?;

        import_keys(args, &o, &bin, &dbpath, &scratch)?;
        check_signatures(args, &bin, &dbpath, &pkgpath, &pkgs)?;
        install(args, &o, &bin, &dbpath, &pkgpath, &pkgs, &scratch, &env)?;

        let seed = tree_path(args, "/var/lib/systemd/random-seed", false)?;
        super::util::remove_if_exists(&seed)?;
        Ok(Some(package_metadata(args, &dbpath)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn options_accept_what_the_schema_accepts() {
        let o: Options = serde_json::from_value(json!({
            "dbpath": "/var/lib/rpm", "gpgkeys": ["k"], "gpgkeys.fromtree": ["/etc/pki/k"],
            "rpmkeys": {"bin_path": "/usr/bin/rpmkeys", "ignore_import_failures": true},
            "disable_dracut": true, "exclude": {"docs": true}, "install_langs": ["en_US", "de_DE"],
            "nodeps": true, "ignorearch": true, "ostree_booted": true, "generic_env": {"A": "1"},
            "kernel_install_env": {"boot_root": "/boot", "conf_root": "/etc/kernel", "plugins": "x",
                                   "machine_id": "0123456789abcdef0123456789abcdef"},
            "packages": ["sha256:00", {"checksum": "sha256:11", "check_gpg": true}]
        }))
        .unwrap();
        assert_eq!(
            install_args(&o),
            ["--excludedocs", "--nodeps", "--define", "%_install_langs en_US:de_DE", "--ignorearch"]
        );
        assert_eq!(o.gpgkeys_fromtree, ["/etc/pki/k"]);
        let env = environment(&o).unwrap();
        assert_eq!(env[0], ("A".into(), "1".into()));
        assert!(env.contains(&("BOOT_ROOT".into(), "/boot".into())));
        assert!(env.contains(&("MACHINE_ID".into(), "0123456789abcdef0123456789abcdef".into())));
        assert!(serde_json::from_value::<Options>(json!({"exclude": {"doc": true}})).is_err());
        assert!(serde_json::from_value::<Options>(json!({"nope": 1})).is_err());
    }

    #[test]
    fn generic_and_kernel_env_must_not_overlap() {
        let o: Options = serde_json::from_value(json!({
            "generic_env": {"MACHINE_ID": "x", "BOOT_ROOT": "y"},
            "kernel_install_env": {"boot_root": "/boot", "machine_id": "0123456789abcdef0123456789abcdef"}
        }))
        .unwrap();
        let e = environment(&o).unwrap_err().to_string();
        assert_eq!(e, "environment variable(s) set in both generic_env and kernel_install_env: BOOT_ROOT, MACHINE_ID");
        // empty kernel-install values are not set at all
        let o: Options =
            serde_json::from_value(json!({"generic_env": {"BOOT_ROOT": "y"}, "kernel_install_env": {"boot_root": ""}}))
                .unwrap();
        assert_eq!(environment(&o).unwrap(), [("BOOT_ROOT".to_owned(), "y".to_owned())]);
    }

    #[test]
    fn packages_come_from_the_input_in_order() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({}));
        assert_eq!(Rpm::execute(&a).unwrap_err().to_string(), "unknown input 'packages'");
        a.inputs.insert(
            "packages".into(),
            json!({"path": "/in", "data": {"files": {"sha256:bb": {}, "sha256:aa": {"rpm.check_gpg": true},
                                                      "sha256:cc": {"rpm.check_gpg": false}}}}),
        );
        let (path, pkgs) = packages(&a).unwrap();
        assert_eq!(path, Path::new("/in"));
        let got: Vec<(&str, bool)> = pkgs.iter().map(|p| (p.file.as_str(), p.check_gpg)).collect();
        assert_eq!(got, [("sha256:bb", false), ("sha256:aa", true), ("sha256:cc", false)]);
        a.inputs.insert("packages".into(), json!({"path": "/in", "data": {"files": {"../x": {}}}}));
        assert!(packages(&a).unwrap_err().to_string().contains("bad file name '../x'"));
    }

    #[test]
    fn query_output_becomes_sorted_metadata_with_nulls() {
        let known = ["NAME", "EPOCH", "SIGMD5", "SIGPGP", "SIGGPG", "SHA1HEADER", "ARCH"];
        let f = query_format(&known);
        assert!(f.contains("%|EPOCH?{%{EPOCH}}:{\u{1a}}|"));
        assert!(!f.contains("SHA3_256HEADER"), "unknown tags are not queried");
        let rec = |v: &[&str]| format!("{}\u{1e}", v.join("\u{1f}"));
        let out = rec(&["zsh", "5", "1", "\u{1a}", "x86_64", "ab", "cd", "\u{1a}", "\u{1a}", "ef", "\u{1a}"])
            + &rec(&[
                "bash", "5.2", "2.fc40", "1", "noarch", "\u{1a}", "\u{1a}", "\u{1a}", "\u{1a}", "\u{1a}", "\u{1a}",
            ]);
        let pkgs = parse_query(&out).unwrap();
        assert_eq!(
            Value::Array(pkgs.clone()),
            json!([
                {"name": "bash", "version": "5.2", "release": "2.fc40", "epoch": "1", "arch": "noarch", "sigmd5": null,
                 "sha1header": null, "sha256header": null, "sha3_256header": null, "sigpgp": null, "siggpg": null},
                {"name": "zsh", "version": "5", "release": "1", "epoch": null, "arch": "x86_64", "sigmd5": "ab",
                 "sha1header": "cd", "sha256header": null, "sha3_256header": null, "sigpgp": "ef", "siggpg": null}
            ])
        );
        let keys: Vec<&String> = pkgs[0].as_object().unwrap().keys().collect();
        assert_eq!(keys[..6], ["name", "version", "release", "epoch", "arch", "sigmd5"]);
        assert!(parse_query("a\u{1f}b\u{1e}").is_err());
    }

    #[test]
    fn scriptlet_failures_are_attributed() {
        let lines: Vec<String> = [
            "error: lua script failed: [string \"%prein(failpre-1-1.noarch)\"]:1: boom",
            "error: failpre-1-1.noarch: install failed",
            "warning: %post(fish-3.7-1.x86_64) scriptlet failed, exit status 3",
            "error: %prein(bad-1-1.noarch) scriptlet failed, exit status 1",
            "unrelated (line)",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            failed_scriptlets(&lines),
            [
                ("%prein".to_owned(), "failpre-1-1.noarch".to_owned()),
                ("%post".to_owned(), "fish-3.7-1.x86_64".to_owned()),
                ("%prein".to_owned(), "bad-1-1.noarch".to_owned()),
            ]
        );
    }

    #[test]
    fn python_truthiness() {
        for (v, t) in [(json!(true), true), (json!(1), true), (json!("x"), true), (json!(false), false)] {
            assert_eq!(truthy(&v), t, "{v}");
        }
        assert!(!truthy(&json!(0)) && !truthy(&json!("")) && !truthy(&json!(null)) && !truthy(&json!({})));
    }
}
