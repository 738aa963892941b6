//! `org.osbuild.dpkg`: install Debian packages (`.deb` files) into the tree, offline.
//!
//! Upstream osbuild has no Debian stage; this one is osbuild-rs' own. The packages come from
//! the `packages` input (`org.osbuild.files`, usually fed by `org.osbuild.curl` sources, so
//! every file was checked against its `sha256:` checksum before the stage runs). The stage
//! installs them the way debootstrap and mmdebstrap bootstrap a system:
//!
//! 1. the control fields of every package are read with the build root's `dpkg-deb`; a
//!    package for another architecture than `architecture` (default: the build root's) is an
//!    error naming it;
//! 2. when the tree has no dpkg database yet (a bootstrap): the merged-`/usr` symlinks are
//!    created (`merged_usr`, default on), an empty database is set up, and the *essential
//!    set* — the packages marked `Essential: yes` plus everything they (pre-)depend on within
//!    the list — is extracted with `dpkg-deb --fsys-tarfile | tar -x`, so that a shell and
//!    dpkg itself exist in the tree; `/bin/sh` is pointed at `dash` if no package made it;
//! 3. `/dev`, `/sys` and `/proc` are bound into the tree, the input's directory is bound
//!    read-only at a scratch directory below the tree's `/tmp`, and `/usr/sbin/policy-rc.d`
//!    (exit 101) stops services from starting;
//! 4. the tree's own dpkg installs the packages in a chroot (so maintainer scripts run inside
//!    the tree): `dpkg --install --force-depends` of the essential set (that is how the
//!    essential set is made consistent, as the bootstrappers do), then the others with
//!    `dpkg --unpack` in batches — a package is unpacked only once its `Pre-Depends` are
//!    installed — and `dpkg --configure --pending` after each batch, all with `--no-triggers`;
//!    the last configure run is the one that decides: a missing dependency or a failing
//!    maintainer script fails the stage with an error naming the package and what dpkg said
//!    about it; a final `dpkg --configure --pending` runs the deferred triggers (ldconfig,
//!    update-initramfs, man-db) once;
//! 5. every package must end up `install ok installed` (`dpkg -l` shows `ii`);
//! 6. the mounts, the scratch directory and policy-rc.d are removed again (also when the
//!    stage fails), files of the essential set that the path filters exclude are removed
//!    (tar extracted them; dpkg did not), an `/etc/machine-id` made during the installation
//!    (systemd's postinst writes one) is left empty and dbus's own random id becomes a link to
//!    it, and apt's binary
//!    caches are removed. With `SOURCE_DATE_EPOCH` in the environment (the pipeline's
//!    `source-epoch`) logs, `-old` backups, ldconfig's aux-cache and systemd's random seed are
//!    removed too, and no file in the tree is left newer than that time.
//!
//! On a tree that already has packages (a second `org.osbuild.dpkg` stage), there is no
//! bootstrap: step 2 and the essential install are skipped and every package is unpacked and
//! configured as in step 4.
//!
//! Packages are given in the order of the input's references, or in the order of the
//! `packages` option (checksums; it must name every file of the input exactly once).
//!
//! `exclude.docs` and `exclude.locales` and the raw `path_exclude` / `path_include`
//! patterns become dpkg path filters (`/etc/dpkg/dpkg.cfg.d/90osbuild-path-filters` in the
//! tree, so later package installs in the image keep them). `apt_sources` writes deb822
//! entries to `/etc/apt/sources.list.d/debian.sources` (see `org.osbuild.apt.sources`), and
//! `debconf` selections are loaded with the tree's `debconf-set-selections` once the essential
//! set is in place, before the other packages are installed.
//!
//! The stage returns the metadata `{"packages": [{"name", "version", "architecture"}…]}`
//! (sorted by name).

use super::deb_util::{check_pattern, parse_paragraph, parse_relations, path_is_excluded, PathFilter, SourceEntry};
use super::util::{clamp_mtimes, create_parents, remove_if_exists, tree_path, write_file, yes};
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::sys::BindFlags;
use crate::tool::{pipe_into, CommandRunExt};
use crate::Stage;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const FILTERS_FILE: &str = "/etc/dpkg/dpkg.cfg.d/90osbuild-path-filters";
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Checksums of the input's files, in the order to install them.
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default = "yes")]
    pub merged_usr: bool,
    #[serde(default)]
    pub exclude: Exclude,
    #[serde(default)]
    pub path_exclude: Vec<String>,
    #[serde(default)]
    pub path_include: Vec<String>,
    #[serde(default)]
    pub apt_sources: Vec<SourceEntry>,
    #[serde(default)]
    pub debconf: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    /// Documentation, man and info pages (copyright files are kept).
    #[serde(default)]
    pub docs: bool,
    /// Translations (`/usr/share/locale`, except `locale.alias`).
    #[serde(default)]
    pub locales: bool,
}

/// The path filters the options ask for, in dpkg's order.
fn filters(o: &Options) -> Result<Vec<PathFilter>, StageError> {
    let mut f = Vec::new();
    if o.exclude.docs {
        for p in ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/lintian/*"] {
            f.push(PathFilter::Exclude(p.to_owned()));
        }
        f.push(PathFilter::Include("/usr/share/doc/*/copyright".to_owned()));
    }
    if o.exclude.locales {
        f.push(PathFilter::Exclude("/usr/share/locale/*".to_owned()));
        f.push(PathFilter::Include("/usr/share/locale/locale.alias".to_owned()));
    }
    for p in &o.path_exclude {
        check_pattern(p)?;
        f.push(PathFilter::Exclude(p.clone()));
    }
    for p in &o.path_include {
        check_pattern(p)?;
        f.push(PathFilter::Include(p.clone()));
    }
    Ok(f)
}

/// One package of the input.
#[derive(Debug, Clone)]
struct Deb {
    /// The input's file name, `sha256:<hex>`.
    file: String,
    name: String,
    version: String,
    arch: String,
    essential: bool,
    depends: Vec<Vec<String>>,
    pre_depends: Vec<Vec<String>>,
    provides: Vec<String>,
}

impl Deb {
    fn label(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.file)
    }
}

/// The input's files, in installation order.
fn input_files(args: &StageArgs, o: &Options) -> Result<(PathBuf, Vec<String>), StageError> {
    let (base, files) = args.input_files("packages")?;
    let order: Vec<String> = match &o.packages {
        None => files.keys().cloned().collect(),
        Some(list) => {
            let mut seen = HashSet::new();
            for c in list {
                if !files.contains_key(c) {
                    return Err(StageError::Invalid(format!(
                        "package {c} of option 'packages' is not in input 'packages'"
                    )));
                }
                if !seen.insert(c) {
                    return Err(StageError::Invalid(format!("package {c} is listed twice in option 'packages'")));
                }
            }
            if let Some(missing) = files.keys().find(|f| !seen.contains(f)) {
                return Err(StageError::Invalid(format!(
                    "file {missing} of input 'packages' is missing from option 'packages'"
                )));
            }
            list.clone()
        }
    };
    Ok((base, order))
}

fn read_control(dir: &Path, file: &str) -> Result<Deb, StageError> {
    let fields = Command::new("dpkg-deb").arg("--field").arg(dir.join(file)).run_get_string(Dpkg::NAME).map_err(
        |e| match e {
            StageError::ToolFailed { .. } => e.context(format!("package {file} is not a valid .deb")),
            other => other,
        },
    )?;
    let p = parse_paragraph(&fields);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let name = get("Package");
    if name.is_empty() {
        return Err(StageError::Invalid(format!("package {file} has no Package field")));
    }
    Ok(Deb {
        file: file.to_owned(),
        version: get("Version"),
        arch: get("Architecture"),
        essential: get("Essential") == "yes",
        depends: parse_relations(&get("Depends")),
        pre_depends: parse_relations(&get("Pre-Depends")),
        provides: parse_relations(&get("Provides")).into_iter().flatten().collect(),
        name,
    })
}

/// The build root's dpkg architecture.
fn host_arch() -> Result<String, StageError> {
    Ok(Command::new("dpkg").arg("--print-architecture").run_get_string(Dpkg::NAME)?.trim().to_owned())
}

/// Names (and provided names) of a set of packages.
fn names<'a>(debs: impl Iterator<Item = &'a Deb>) -> HashSet<String> {
    let mut s = HashSet::new();
    for d in debs {
        s.insert(d.name.clone());
        s.extend(d.provides.iter().cloned());
    }
    s
}

/// Indexes of the essential set: `Essential: yes` packages and what they (pre-)depend on
/// within the list (every alternative that is in the list).
fn essential_closure(debs: &[Deb]) -> BTreeSet<usize> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, d) in debs.iter().enumerate() {
        by_name.entry(d.name.as_str()).or_default().push(i);
        for p in &d.provides {
            by_name.entry(p.as_str()).or_default().push(i);
        }
    }
    let mut set = BTreeSet::new();
    let mut todo: Vec<usize> = (0..debs.len()).filter(|&i| debs[i].essential).collect();
    while let Some(i) = todo.pop() {
        if !set.insert(i) {
            continue;
        }
        for group in debs[i].depends.iter().chain(&debs[i].pre_depends) {
            for alt in group {
                for &j in by_name.get(alt.as_str()).into_iter().flatten() {
                    if !set.contains(&j) {
                        todo.push(j);
                    }
                }
            }
        }
    }
    set
}

/// Split `rest` into unpack batches: a package goes into a batch once each of its
/// `Pre-Depends` groups names a package installed before (when nothing is ready, all that
/// is left goes, and dpkg reports the problem).
fn batches(installed: &HashSet<String>, rest: &[Deb]) -> Vec<Vec<Deb>> {
    let mut have = installed.clone();
    let mut left: Vec<Deb> = rest.to_vec();
    let mut out = Vec::new();
    while !left.is_empty() {
        let (ready, wait): (Vec<Deb>, Vec<Deb>) =
            left.into_iter().partition(|d| d.pre_depends.iter().all(|g| g.iter().any(|a| have.contains(a))));
        if ready.is_empty() {
            out.push(wait);
            break;
        }
        have.extend(names(ready.iter()));
        out.push(ready);
        left = wait;
    }
    out
}

/// `/usr/sbin/policy-rc.d` while the packages are installed: removed again when dropped (also
/// when the stage fails), unless the tree had one of its own.
struct PolicyRcD(Option<PathBuf>);

impl PolicyRcD {
    fn install(args: &StageArgs) -> Result<PolicyRcD, StageError> {
        let policy = tree_path(args, POLICY_RC_D, false)?;
        if std::fs::symlink_metadata(&policy).is_ok() {
            return Ok(PolicyRcD(None));
        }
        create_parents(&policy)?;
        write_file(&policy, b"#!/bin/sh\n# written by org.osbuild.dpkg for the installation\nexit 101\n", 0o755)?;
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755))
            .map_err(StageError::io("cannot chmod", &policy))?;
        Ok(PolicyRcD(Some(policy)))
    }

    fn remove(mut self) -> Result<(), StageError> {
        match self.0.take() {
            Some(p) => remove_if_exists(&p).map(drop),
            None => Ok(()),
        }
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = remove_if_exists(&p) {
                eprintln!("{}", crate::error_chain(&e));
            }
        }
    }
}

/// What dpkg said went wrong, per package: `package X: reason`. `files` maps the paths dpkg
/// was given (inside the chroot) to package labels.
fn explain(stderr: &[String], files: &HashMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < stderr.len() {
        let line = stderr[i].trim_end();
        let subject = if let Some(rest) = line.strip_prefix("dpkg: dependency problems prevent configuration of ") {
            Some(rest.trim_end_matches(':').to_owned())
        } else if let Some(rest) = line.strip_prefix("dpkg: error processing package ") {
            Some(rest.split(" (").next().unwrap_or(rest).to_owned())
        } else if let Some(rest) = line.strip_prefix("dpkg: error processing archive ") {
            let f = rest.split(" (").next().unwrap_or(rest);
            Some(files.get(f).cloned().unwrap_or_else(|| f.to_owned()))
        } else if let Some(rest) = line.strip_prefix("dpkg: regarding ") {
            let f = rest.split(" containing ").next().unwrap_or(rest);
            let what = rest.split(" containing ").nth(1).unwrap_or("").trim_end_matches(':');
            Some(files.get(f).cloned().map(|l| format!("{l} [{what}]")).unwrap_or_else(|| what.to_owned()))
        } else {
            None
        };
        i += 1;
        let Some(subject) = subject else { continue };
        let mut why = Vec::new();
        while i < stderr.len() && stderr[i].starts_with(' ') {
            why.push(stderr[i].trim().to_owned());
            i += 1;
        }
        let msg = format!("package {subject}: {}", why.join(" "));
        if !out.contains(&msg) {
            out.push(msg);
        }
    }
    out
}

/// `dpkg` in the tree, chrooted, with a clean environment.
fn dpkg(chroot: &Chroot, epoch: Option<&str>) -> Command {
    in_tree(chroot, "dpkg", epoch)
}

/// `program` of the tree, chrooted, with a clean environment.
fn in_tree(chroot: &Chroot, program: &str, epoch: Option<&str>) -> Command {
    let mut c = chroot.command(program);
    c.env_clear();
    c.env("PATH", PATH_ENV)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
        .env("LC_ALL", "C")
        .env("HOME", "/root");
    if let Some(e) = epoch {
        c.env("SOURCE_DATE_EPOCH", e);
    }
    c
}

/// Run dpkg; when it fails, say per package what went wrong (see [`explain`]), else what it
/// said last.
fn run_dpkg(what: &str, cmd: &mut Command, files: &HashMap<String, String>) -> Result<(), StageError> {
    let done = cmd.run_unchecked(Dpkg::NAME, false)?;
    if done.success() {
        return Ok(());
    }
    let why = explain(&done.stderr_lines(), files);
    let detail = if why.is_empty() { crate::tool::stderr_tail(&done.stderr, None) } else { why.join("; ") };
    Err(done.failure(detail).context(format!("{what} failed")))
}

fn mkdir_p(p: &Path, mode: u32) -> Result<(), StageError> {
    if !p.is_dir() {
        std::fs::create_dir_all(p).map_err(StageError::io("cannot create directory", p))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(StageError::io("cannot chmod", p))?;
    }
    Ok(())
}

/// The lib directories that merged-/usr links for an architecture.
fn merged_dirs(arch: &str) -> Vec<&'static str> {
    let mut v = vec!["bin", "sbin", "lib"];
    match arch {
        "amd64" | "ppc64el" | "s390x" | "loong64" => v.push("lib64"),
        "mips64el" => v.extend(["lib32", "lib64"]),
        _ => {}
    }
    v
}

/// An empty dpkg database (and the merged-/usr links) in a fresh tree.
fn prepare_tree(args: &StageArgs, o: &Options, arch: &str) -> Result<(), StageError> {
    let usr = tree_path(args, "/usr", true)?;
    mkdir_p(&usr, 0o755)?;
    if o.merged_usr {
        for d in merged_dirs(arch) {
            let link = tree_path(args, format!("/{d}"), false)?;
            if std::fs::symlink_metadata(&link).is_err() {
                mkdir_p(&usr.join(d), 0o755)?;
                symlink(format!("usr/{d}"), &link).map_err(StageError::io("cannot create symlink", &link))?;
            }
        }
    }
    for (d, mode) in
        [("/etc", 0o755), ("/tmp", 0o1777), ("/var/lib/dpkg/info", 0o755), ("/var/lib/dpkg/updates", 0o755)]
    {
        mkdir_p(&tree_path(args, d, true)?, mode)?;
    }
    for f in ["status", "available"] {
        let p = tree_path(args, format!("/var/lib/dpkg/{f}"), false)?;
        if !p.exists() {
            write_file(&p, b"", 0o644)?;
        }
    }
    let p = tree_path(args, "/var/lib/dpkg/arch", false)?;
    write_file(&p, format!("{arch}\n").as_bytes(), 0o644)?;
    Ok(())
}

/// Extract `deb` into the tree with `dpkg-deb --fsys-tarfile | tar -x`; returns the paths it
/// extracted (absolute, as in the package).
fn extract(tree: &Path, dir: &Path, deb: &Deb) -> Result<Vec<String>, StageError> {
    let listing = pipe_into(
        Dpkg::NAME,
        Command::new("dpkg-deb").arg("--fsys-tarfile").arg(dir.join(&deb.file)),
        Command::new("tar")
            .args(["-x", "-v", "-p", "--numeric-owner", "--keep-directory-symlink", "-f", "-", "-C"])
            .arg(tree),
    )
    .map_err(|e| e.context(format!("cannot extract package {}", deb.label())))?;
    Ok(String::from_utf8_lossy(&listing)
        .lines()
        .map(|l| format!("/{}", l.trim_start_matches("./").trim_end_matches('/')))
        .filter(|l| l != "/")
        .collect())
}

/// Remove what tar extracted but dpkg's path filters exclude (deepest first; directories only
/// when empty).
fn prune_excluded(tree: &Path, filters: &[PathFilter], extracted: &[String]) {
    if filters.is_empty() {
        return;
    }
    let mut paths: Vec<&String> = extracted.iter().filter(|p| path_is_excluded(filters, p)).collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    paths.dedup();
    for p in paths {
        let host = tree.join(p.trim_start_matches('/'));
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&host);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&host);
            }
            Err(_) => {}
        }
    }
}

/// Packages in the tree's database: name -> (status, version, architecture).
fn database(args: &StageArgs) -> Result<BTreeMap<String, (String, String, String)>, StageError> {
    let p = tree_path(args, "/var/lib/dpkg/status", true)?;
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StageError::Io { op: "cannot read", path: p, source: e }),
    };
    let mut out = BTreeMap::new();
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let f = parse_paragraph(para);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let key = if get("Architecture") == "all" || get("Multi-Arch") != "same" {
            get("Package")
        } else {
            format!("{}:{}", get("Package"), get("Architecture"))
        };
        out.insert(key, (get("Status"), get("Version"), get("Architecture")));
    }
    Ok(out)
}

fn epoch_from_env() -> Option<(String, i64)> {
    let s = std::env::var("SOURCE_DATE_EPOCH").ok()?;
    let n = s.trim().parse::<i64>().ok()?;
    Some((s.trim().to_owned(), n))
}

/// Files that differ from build to build or only describe the build.
/// `had_machine_id`: the tree had `/etc/machine-id` before the stage (then it is left alone).
fn clean_up(args: &StageArgs, reproducible: bool, had_machine_id: bool) -> Result<(), StageError> {
    let mut remove: Vec<String> = vec!["/var/cache/apt/pkgcache.bin".into(), "/var/cache/apt/srcpkgcache.bin".into()];
    if reproducible {
        remove.extend(
            [
                "/var/log/dpkg.log",
                "/var/log/alternatives.log",
                "/var/log/bootstrap.log",
                "/var/cache/ldconfig/aux-cache",
                "/var/lib/systemd/random-seed",
                "/var/lib/dpkg/status-old",
                "/var/lib/dpkg/diversions-old",
                "/var/lib/dpkg/statoverride-old",
                "/var/cache/debconf/config.dat-old",
                "/var/cache/debconf/templates.dat-old",
                "/var/cache/debconf/passwords.dat-old",
            ]
            .map(String::from),
        );
    }
    for p in remove {
        remove_if_exists(&tree_path(args, &p, false)?)?;
    }
    let mid = tree_path(args, "/etc/machine-id", false)?;
    if !had_machine_id && std::fs::symlink_metadata(&mid).is_ok_and(|m| m.is_file()) {
        write_file(&mid, b"", 0o444)?;
        // dbus's postinst made its own random id; every machine from this image would share it.
        // Point it at /etc/machine-id, which systemd fills on first boot (what Debian's
        // images do).
        let dbus = tree_path(args, "/var/lib/dbus/machine-id", false)?;
        if std::fs::symlink_metadata(&dbus).is_ok_and(|m| m.is_file()) {
            remove_if_exists(&dbus)?;
            symlink("/etc/machine-id", &dbus).map_err(StageError::io("cannot create symlink", &dbus))?;
        }
    }
    Ok(())
}

fn write_filters(args: &StageArgs, filters: &[PathFilter]) -> Result<(), StageError> {
    if filters.is_empty() {
        return Ok(());
    }
    let p = tree_path(args, FILTERS_FILE, false)?;
    create_parents(&p)?;
    let mut text = String::from("# path filters of the osbuild org.osbuild.dpkg stage\n");
    for f in filters {
        text.push_str(&f.config_line());
        text.push('\n');
    }
    write_file(&p, text.as_bytes(), 0o644)
}

fn install(
    args: &StageArgs,
    o: &Options,
    dir: &Path,
    debs: &[Deb],
    filters: &[PathFilter],
    bootstrap: bool,
    epoch: Option<&str>,
) -> Result<(), StageError> {
    let tree = &args.tree;
    let mut extracted = Vec::new();
    let (ess, rest): (Vec<Deb>, Vec<Deb>) = if bootstrap {
        let set = essential_closure(debs);
        let pick = |want: bool| -> Vec<Deb> {
            debs.iter().enumerate().filter(|(i, _)| set.contains(i) == want).map(|(_, d)| d.clone()).collect()
        };
        (pick(true), pick(false))
    } else {
        (Vec::new(), debs.to_vec())
    };
    if bootstrap {
        if ess.is_empty() {
            return Err(StageError::Invalid(
                "the tree has no dpkg database yet and no package is marked Essential: nothing to bootstrap with"
                    .into(),
            ));
        }
        println!("extracting the essential set ({} packages)", ess.len());
        for d in &ess {
            extracted.extend(extract(tree, dir, d)?);
        }
        let sh = tree_path(args, "/bin/sh", false)?;
        if std::fs::symlink_metadata(&sh).is_err() && tree_path(args, "/bin/dash", true)?.exists() {
            symlink("dash", &sh).map_err(StageError::io("cannot create symlink", &sh))?;
        }
    }
    write_filters(args, filters)?;

    // The packages, read-only in a scratch directory of the tree's /tmp. Declared before the
    // chroot, so it is removed only after the mounts are gone.
    let tmp = tree_path(args, "/tmp", true)?;
    mkdir_p(&tmp, 0o1777)?;
    let scratch = tempfile::Builder::new()
        .prefix("osbuild-dpkg.")
        .tempdir_in(&tmp)
        .map_err(StageError::io("cannot create a scratch directory in", &tmp))?;
    let scratch_rel = format!("/tmp/{}", scratch.path().file_name().expect("a name").to_string_lossy());
    let mut chroot = Chroot::enter(tree, ApiFs::Host)?;
    chroot.bind(dir, &scratch_rel, BindFlags { recursive: true, readonly: true, private: true })?;
    let policy = PolicyRcD::install(args)?;

    let in_chroot = |d: &Deb| format!("{scratch_rel}/{}", d.file);
    let labels: HashMap<String, String> = debs.iter().map(|d| (in_chroot(d), d.label())).collect();
    let filter_args: Vec<String> = filters
        .iter()
        .map(|f| match f {
            PathFilter::Exclude(p) => format!("--path-exclude={p}"),
            PathFilter::Include(p) => format!("--path-include={p}"),
        })
        .collect();

    if !ess.is_empty() {
        let mut c = dpkg(&chroot, epoch);
        c.args(["--force-depends", "--force-unsafe-io"]).args(&filter_args);
        c.arg("--install").args(ess.iter().map(in_chroot));
        run_dpkg("installing the essential set", &mut c, &labels)?;
    }
    if !o.debconf.is_empty() {
        set_debconf_selections(&chroot, &o.debconf, epoch)?;
    }
    let installed: HashSet<String> = database(args)?
        .into_iter()
        .filter(|(_, (s, _, _))| s.ends_with(" installed"))
        .map(|(n, _)| n.split(':').next().unwrap_or(&n).to_owned())
        .chain(names(ess.iter()))
        .collect();
    let batches = batches(&installed, &rest);
    let n = batches.len();
    for (i, b) in batches.iter().enumerate() {
        let mut c = dpkg(&chroot, epoch);
        c.args(["--force-unsafe-io", "--no-triggers"]).args(&filter_args);
        c.arg("--unpack").args(b.iter().map(in_chroot));
        run_dpkg("unpacking the packages", &mut c, &labels)?;
        // triggers (initramfs, man-db, ldconfig) wait for the last run, so they run once
        let mut c = dpkg(&chroot, epoch);
        c.args(["--force-unsafe-io", "--no-triggers", "--configure", "--pending"]);
        if i + 1 < n {
            // packages waiting for a later batch fail to configure here; the last run decides
            let _ = c.run_unchecked(Dpkg::NAME, false)?;
        } else {
            run_dpkg("configuring the packages", &mut c, &labels)?;
        }
    }
    // the deferred triggers
    let mut c = dpkg(&chroot, epoch);
    c.args(["--force-unsafe-io", "--configure", "--pending"]);
    run_dpkg("processing triggers", &mut c, &labels)?;

    let db = database(args)?;
    let bad: Vec<String> = db
        .iter()
        .filter(|(_, (s, _, _))| s != "install ok installed")
        .map(|(n, (s, _, _))| format!("{n} ({s})"))
        .collect();
    if !bad.is_empty() {
        return Err(StageError::Invalid(format!("packages not fully installed: {}", bad.join(", "))));
    }
    let missing: Vec<String> = debs
        .iter()
        .filter(|d| !db.contains_key(&d.name) && !db.contains_key(&format!("{}:{}", d.name, d.arch)))
        .map(Deb::label)
        .collect();
    if !missing.is_empty() {
        return Err(StageError::Invalid(format!("packages missing from the dpkg database: {}", missing.join(", "))));
    }
    policy.remove()?;
    chroot.close()?;
    drop(scratch);
    prune_excluded(tree, filters, &extracted);
    Ok(())
}

/// Load debconf `selections` into the database of the tree `chroot` is made for, with the
/// tree's own `debconf-set-selections`.
pub(super) fn set_debconf_selections(
    chroot: &Chroot,
    selections: &[String],
    epoch: Option<&str>,
) -> Result<(), StageError> {
    let mut text = String::new();
    for s in selections {
        if s.contains('\n') {
            return Err(StageError::Invalid(format!("debconf selection {s:?} must be one line")));
        }
        text.push_str(s);
        text.push('\n');
    }
    in_tree(chroot, "debconf-set-selections", epoch).run_with_input(Dpkg::NAME, text.as_bytes())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Dpkg;

impl Stage for Dpkg {
    const NAME: &'static str = "org.osbuild.dpkg";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        let filters = filters(&o)?;
        let (dir, order) = input_files(args, &o)?;
        let arch = match &o.architecture {
            Some(a) => a.clone(),
            None => host_arch()?,
        };
        let mut debs = Vec::new();
        for f in &order {
            let d = read_control(&dir, f)?;
            if d.arch != "all" && d.arch != arch {
                return Err(StageError::Invalid(format!(
                    "package {} is built for architecture {}, not {arch}",
                    d.label(),
                    d.arch
                )));
            }
            debs.push(d);
        }
        let epoch = epoch_from_env();
        let status = tree_path(args, "/var/lib/dpkg/status", true)?;
        let bootstrap = std::fs::metadata(&status).map(|m| m.len() == 0).unwrap_or(true);
        let had_machine_id = std::fs::symlink_metadata(tree_path(args, "/etc/machine-id", false)?).is_ok();
        if bootstrap {
            prepare_tree(args, &o, &arch)?;
        }
        install(args, &o, &dir, &debs, &filters, bootstrap, epoch.as_ref().map(|e| e.0.as_str()))?;
        if !o.apt_sources.is_empty() {
            super::apt_sources::write(args, "debian.sources", &o.apt_sources)?;
        }
        clean_up(args, epoch.is_some(), had_machine_id)?;
        if let Some((_, e)) = &epoch {
            clamp_mtimes(&args.tree, *e)?;
        }
        let packages: Vec<Value> = database(args)?
            .into_iter()
            .map(|(n, (_, v, a))| json!({"name": n.split(':').next().unwrap_or(&n), "version": v, "architecture": a}))
            .collect();
        Ok(Some(json!({ "packages": packages })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;

    fn deb(name: &str, essential: bool, depends: &str, pre: &str) -> Deb {
        Deb {
            file: format!("sha256:{name}"),
            name: name.into(),
            version: "1".into(),
            arch: "amd64".into(),
            essential,
            depends: parse_relations(depends),
            pre_depends: parse_relations(pre),
            provides: vec![],
        }
    }

    #[test]
    fn options_and_filters() {
        let o: Options = serde_json::from_value(json!({
            "packages": ["sha256:aa"], "architecture": "amd64", "merged_usr": false,
            "exclude": {"docs": true, "locales": true}, "path_exclude": ["/usr/share/zoneinfo/right/*"],
            "path_include": ["/usr/share/man/man1/fish*"],
            "apt_sources": [{"uris": ["http://mirror.example/debian"], "suites": ["bookworm"], "components": ["main"]}],
            "debconf": ["tzdata tzdata/Areas select Europe"]
        }))
        .unwrap();
        assert!(!o.merged_usr);
        let f = filters(&o).unwrap();
        assert!(path_is_excluded(&f, "/usr/share/doc/fish/README"));
        assert!(!path_is_excluded(&f, "/usr/share/doc/fish/copyright"));
        assert!(path_is_excluded(&f, "/usr/share/man/man8/dpkg.8.gz"));
        assert!(!path_is_excluded(&f, "/usr/share/man/man1/fish.1.gz"));
        assert!(path_is_excluded(&f, "/usr/share/locale/de/LC_MESSAGES/dpkg.mo"));
        assert!(!path_is_excluded(&f, "/usr/share/locale/locale.alias"));
        assert!(path_is_excluded(&f, "/usr/share/zoneinfo/right/UTC"));
        assert!(serde_json::from_value::<Options>(json!({"exclude": {"doc": true}})).is_err());
        let o: Options = serde_json::from_value(json!({"path_exclude": ["usr/share"]})).unwrap();
        assert!(filters(&o).unwrap_err().to_string().contains("must be an absolute path"));
        let o: Options = serde_json::from_value(json!({})).unwrap();
        assert!(o.merged_usr);
    }

    #[test]
    fn essential_set_is_closed_over_dependencies() {
        let debs = vec![
            deb("base-files", true, "", ""),
            deb("libc6", false, "libgcc-s1", ""),
            deb("libgcc-s1", false, "gcc-12-base", ""),
            deb("gcc-12-base", false, "", ""),
            deb("dash", true, "libc6 (>= 2.34), debianutils | foo", ""),
            deb("debianutils", false, "", ""),
            deb("fish", false, "libc6", ""),
        ];
        let set: Vec<&str> = essential_closure(&debs).into_iter().map(|i| debs[i].name.as_str()).collect();
        assert_eq!(set, ["base-files", "libc6", "libgcc-s1", "gcc-12-base", "dash", "debianutils"]);
    }

    #[test]
    fn pre_depends_split_batches() {
        let installed: HashSet<String> = ["libc6".to_owned()].into();
        let rest = vec![
            deb("systemd", false, "libsystemd-shared", "libsystemd-shared"),
            deb("libsystemd-shared", false, "", "libc6"),
            deb("fish", false, "", ""),
            deb("odd", false, "", "not-there"),
        ];
        let got = batches(&installed, &rest);
        let b: Vec<Vec<&str>> = got.iter().map(|b| b.iter().map(|d| d.name.as_str()).collect()).collect();
        assert_eq!(b, vec![vec!["libsystemd-shared", "fish"], vec!["systemd"], vec!["odd"]]);
    }

    #[test]
    fn dpkg_errors_name_the_package() {
        let lines: Vec<String> = [
            "dpkg: dependency problems prevent configuration of fish:",
            " fish depends on fish-common (= 3.6.0-3.1+deb12u1); however:",
            "  Package fish-common is not installed.",
            "",
            "dpkg: error processing package fish (--configure):",
            " dependency problems - leaving unconfigured",
            "Setting up failing (1.0) ...",
            "dpkg: error processing package failing (--configure):",
            " installed failing package post-installation script subprocess returned error exit status 1",
            "dpkg: error processing archive /tmp/osbuild-dpkg.1/sha256:ab (--unpack):",
            " new x package pre-installation script subprocess returned error exit status 2",
            "Errors were encountered while processing:",
            " fish",
        ]
        .map(String::from)
        .to_vec();
        let files: HashMap<String, String> =
            [("/tmp/osbuild-dpkg.1/sha256:ab".to_owned(), "x 1 (sha256:ab)".to_owned())].into();
        assert_eq!(
            explain(&lines, &files),
            [
                "package fish: fish depends on fish-common (= 3.6.0-3.1+deb12u1); however: Package fish-common is not installed.",
                "package fish: dependency problems - leaving unconfigured",
                "package failing: installed failing package post-installation script subprocess returned error exit status 1",
                "package x 1 (sha256:ab): new x package pre-installation script subprocess returned error exit status 2",
            ]
        );
    }

    #[test]
    fn input_order_and_packages_option() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), json!({}));
        a.inputs
            .insert("packages".into(), json!({"path": "/in", "data": {"files": {"sha256:bb": {}, "sha256:aa": {}}}}));
        let o: Options = serde_json::from_value(json!({})).unwrap();
        assert_eq!(input_files(&a, &o).unwrap().1, ["sha256:bb", "sha256:aa"]);
        let o: Options = serde_json::from_value(json!({"packages": ["sha256:aa", "sha256:bb"]})).unwrap();
        assert_eq!(input_files(&a, &o).unwrap().1, ["sha256:aa", "sha256:bb"]);
        let o: Options = serde_json::from_value(json!({"packages": ["sha256:aa"]})).unwrap();
        assert!(input_files(&a, &o).unwrap_err().to_string().contains("sha256:bb of input 'packages' is missing"));
        let o: Options = serde_json::from_value(json!({"packages": ["sha256:aa", "sha256:cc", "sha256:bb"]})).unwrap();
        assert!(input_files(&a, &o)
            .unwrap_err()
            .to_string()
            .contains("sha256:cc of option 'packages' is not in input"));
    }
}
