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
use super::util::{create_parents, remove_if_exists, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

fn yes() -> bool {
    true
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

fn tool_missing(tool: &str) -> StageError {
    StageError::ToolMissing { tool: tool.to_owned(), stage: Dpkg::NAME, place: "in the build root" }
}

fn read_control(dir: &Path, file: &str) -> Result<Deb, StageError> {
    let out =
        Command::new("dpkg-deb").arg("--field").arg(dir.join(file)).stdin(Stdio::null()).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                tool_missing("dpkg-deb")
            } else {
                StageError::ToolSpawn { tool: "dpkg-deb".into(), source: e }
            }
        })?;
    if !out.status.success() {
        return Err(StageError::Invalid(format!(
            "package {file} is not a valid .deb: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let p = parse_paragraph(&String::from_utf8_lossy(&out.stdout));
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
    let out = Command::new("dpkg").arg("--print-architecture").stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            tool_missing("dpkg")
        } else {
            StageError::ToolSpawn { tool: "dpkg".into(), source: e }
        }
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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

/// Bind mounts and the scratch directory, undone when dropped (in reverse order).
#[derive(Default)]
struct Guard {
    mounts: Vec<PathBuf>,
    remove: Vec<PathBuf>,
}

impl Guard {
    fn bind(&mut self, src: &Path, target: &Path, readonly: bool) -> Result<(), StageError> {
        let err = |e: nix::Error| StageError::Io { op: "cannot mount", path: target.to_owned(), source: e.into() };
        mount(Some(src), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(err)?;
        self.mounts.push(target.to_owned());
        mount(None::<&str>, target, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(err)?;
        if readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(err)?;
        }
        Ok(())
    }

    fn release(&mut self) -> Result<(), StageError> {
        let mut first_err = None;
        while let Some(p) = self.mounts.pop() {
            if let Err(e) = umount2(&p, MntFlags::MNT_DETACH) {
                eprintln!("cannot unmount {}: {e}", p.display());
                first_err.get_or_insert(StageError::Io { op: "cannot unmount", path: p, source: e.into() });
            }
        }
        while let Some(p) = self.remove.pop() {
            let r = if p.is_dir() { std::fs::remove_dir(&p) } else { std::fs::remove_file(&p) };
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::NotFound {
                    first_err.get_or_insert(StageError::Io { op: "cannot remove", path: p, source: e });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// What a finished dpkg run left: whether it succeeded and its stderr lines.
struct Ran {
    ok: bool,
    status: String,
    stderr: Vec<String>,
}

/// Run `cmd`, passing its stdout through and streaming and keeping its stderr.
fn exec(cmd: &mut Command) -> Result<Ran, StageError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            tool_missing(&tool)
        } else {
            StageError::ToolSpawn { tool: tool.clone(), source: e }
        }
    })?;
    let mut stderr = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
            let _ = std::io::stderr().write_all(&line);
            let _ = std::io::stderr().write_all(b"\n");
            if stderr.len() < 20_000 {
                stderr.push(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
    let status = child.wait().map_err(|source| StageError::ToolSpawn { tool, source })?;
    Ok(Ran { ok: status.success(), status: status.to_string(), stderr })
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
fn dpkg(tree: &Path, epoch: Option<&str>) -> Command {
    in_tree(tree, "dpkg", epoch)
}

/// `program` of the tree, chrooted, with a clean environment.
pub(super) fn in_tree(tree: &Path, program: &str, epoch: Option<&str>) -> Command {
    let mut c = Command::new("chroot");
    c.arg(tree).arg(program);
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

fn run_dpkg(what: &str, cmd: &mut Command, files: &HashMap<String, String>) -> Result<(), StageError> {
    let ran = exec(cmd)?;
    if ran.ok {
        return Ok(());
    }
    let why = explain(&ran.stderr, files);
    let tail: Vec<&String> = ran
        .stderr
        .iter()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let detail =
        if why.is_empty() { tail.iter().map(|s| s.trim()).collect::<Vec<_>>().join(" / ") } else { why.join("; ") };
    Err(StageError::Invalid(format!("{what} failed (dpkg: {}): {detail}", ran.status)))
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
    let mut dd = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(dir.join(&deb.file))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                tool_missing("dpkg-deb")
            } else {
                StageError::ToolSpawn { tool: "dpkg-deb".into(), source: e }
            }
        })?;
    let out = Command::new("tar")
        .args(["-x", "-v", "-p", "--numeric-owner", "--keep-directory-symlink", "-f", "-", "-C"])
        .arg(tree)
        .stdin(dd.stdout.take().expect("piped"))
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                tool_missing("tar")
            } else {
                StageError::ToolSpawn { tool: "tar".into(), source: e }
            }
        })?;
    let dd_status = dd.wait().map_err(|source| StageError::ToolSpawn { tool: "dpkg-deb".into(), source })?;
    if !dd_status.success() || !out.status.success() {
        return Err(StageError::Invalid(format!(
            "cannot extract package {}: {}",
            deb.label(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
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

/// Set the times of every file newer than `epoch` to `epoch` (symlinks themselves).
fn clamp_mtimes(root: &Path, epoch: i64) -> Result<(), StageError> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::MetadataExt;
    let t = TimeSpec::new(epoch, 0);
    let dev = std::fs::symlink_metadata(root).map_err(StageError::io("cannot stat", root))?.dev();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(StageError::io("cannot read directory", &dir))?;
        for e in rd {
            let e = e.map_err(StageError::io("cannot read directory", &dir))?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).map_err(StageError::io("cannot stat", &p))?;
            if m.is_dir() && m.dev() == dev {
                stack.push(p.clone());
            }
            if m.mtime() > epoch {
                utimensat(nix::fcntl::AT_FDCWD, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| StageError::Io { op: "cannot set the times of", path: p.clone(), source: e.into() })?;
            }
        }
    }
    let m = std::fs::symlink_metadata(root).map_err(StageError::io("cannot stat", root))?;
    if m.mtime() > epoch {
        utimensat(nix::fcntl::AT_FDCWD, root, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(|e| StageError::Io {
            op: "cannot set the times of",
            path: root.to_owned(),
            source: e.into(),
        })?;
    }
    Ok(())
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
            std::os::unix::fs::symlink("/etc/machine-id", &dbus)
                .map_err(|e| StageError::Invalid(format!("cannot link {}: {e}", dbus.display())))?;
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
    let mut guard = Guard::default();
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

    for src in ["/dev", "/sys", "/proc"] {
        let target = tree_path(args, src, true)?;
        mkdir_p(&target, 0o755)?;
        guard.bind(Path::new(src), &target, false)?;
    }
    let scratch_rel = format!("/tmp/osbuild-dpkg.{}", std::process::id());
    let scratch = tree_path(args, &scratch_rel, false)?;
    mkdir_p(&tree_path(args, "/tmp", true)?, 0o1777)?;
    std::fs::create_dir(&scratch).map_err(StageError::io("cannot create directory", &scratch))?;
    guard.remove.push(scratch.clone());
    guard.bind(dir, &scratch, true)?;
    let policy = tree_path(args, POLICY_RC_D, false)?;
    if std::fs::symlink_metadata(&policy).is_err() {
        create_parents(&policy)?;
        write_file(&policy, b"#!/bin/sh\n# written by org.osbuild.dpkg for the installation\nexit 101\n", 0o755)?;
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755))
            .map_err(StageError::io("cannot chmod", &policy))?;
        guard.remove.insert(0, policy.clone());
    }

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
        let mut c = dpkg(tree, epoch);
        c.args(["--force-depends", "--force-unsafe-io"]).args(&filter_args);
        c.arg("--install").args(ess.iter().map(in_chroot));
        run_dpkg("installing the essential set", &mut c, &labels)?;
    }
    if !o.debconf.is_empty() {
        set_debconf_selections(tree, &o.debconf, epoch)?;
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
        let mut c = dpkg(tree, epoch);
        c.args(["--force-unsafe-io", "--no-triggers"]).args(&filter_args);
        c.arg("--unpack").args(b.iter().map(in_chroot));
        run_dpkg("unpacking the packages", &mut c, &labels)?;
        // triggers (initramfs, man-db, ldconfig) wait for the last run, so they run once
        let mut c = dpkg(tree, epoch);
        c.args(["--force-unsafe-io", "--no-triggers", "--configure", "--pending"]);
        if i + 1 < n {
            // packages waiting for a later batch fail to configure here; the last run decides
            let _ = exec(&mut c)?;
        } else {
            run_dpkg("configuring the packages", &mut c, &labels)?;
        }
    }
    // the deferred triggers
    let mut c = dpkg(tree, epoch);
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
    guard.release()?;
    prune_excluded(tree, filters, &extracted);
    Ok(())
}

pub(super) fn set_debconf_selections(
    tree: &Path,
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
    let mut c = in_tree(tree, "debconf-set-selections", epoch);
    c.stdin(Stdio::piped()).stderr(Stdio::piped()).stdout(Stdio::inherit());
    let mut child = c.spawn().map_err(|e| StageError::ToolSpawn { tool: "chroot".into(), source: e })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|e| StageError::ToolSpawn { tool: "debconf-set-selections".into(), source: e })?;
    let out = child
        .wait_with_output()
        .map_err(|e| StageError::ToolSpawn { tool: "debconf-set-selections".into(), source: e })?;
    if !out.status.success() {
        return Err(StageError::Invalid(format!(
            "debconf-set-selections in the tree failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
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

    #[test]
    fn mtimes_are_clamped() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), "x").unwrap();
        symlink("/nonexistent", t.path().join("l")).unwrap();
        clamp_mtimes(t.path(), 1_000_000).unwrap();
        use std::os::unix::fs::MetadataExt;
        for p in ["", "d", "d/f", "l"] {
            assert_eq!(std::fs::symlink_metadata(t.path().join(p)).unwrap().mtime(), 1_000_000, "{p}");
        }
    }
}
