//! `org.osbuild.systemd`: enable, disable and mask units, mask generators and set the
//! default target.
//!
//! Upstream runs `systemctl --root <tree> enable|disable|mask|set-default` for each item, in
//! that order (enable all, disable all, mask all, generators, default target). We change the
//! tree the way `systemctl` does, directly, so no systemd is needed in the build root:
//!
//! - a unit name without a type suffix gets `.service` (`.target` for the default target);
//! - a unit file is looked up in the system unit directories (`/etc/systemd/system`,
//!   `/run/systemd/system`, `/usr/local/lib/systemd/system`, `/usr/lib/systemd/system`,
//!   `/lib/systemd/system`); an instance `a@b.service` falls back to its template
//!   `a@.service`; an alias symlink is followed to the unit it names (but enabling through
//!   an alias in `/etc` or `/run` is refused, as systemctl does); a symlink of the same name
//!   ("linked" unit) stands for the file it points to;
//! - enable: from the unit's `[Install]` section, `WantedBy=`/`RequiredBy=`/`UpheldBy=` give
//!   `/etc/systemd/system/<target>.{wants,requires,upholds}/<unit>` and `Alias=` gives
//!   `/etc/systemd/system/<alias>`, all symlinks to the unit file's absolute path in the tree;
//!   `Also=` units are enabled too; a template is enabled with its `DefaultInstance=`, if any.
//!   An existing link to the same file is kept, anything else there is an error;
//! - disable: every symlink below `/etc/systemd/system` named like the unit (or its `Also=`
//!   units) or pointing to it is removed, and a directory this empties is removed too;
//! - mask: `/etc/systemd/system/<unit>` becomes a symlink to `/dev/null`;
//! - generators: `/etc/systemd/system-generators/<name>` → `/dev/null` (an existing one is an
//!   error, as upstream's `os.symlink`);
//! - default target: `/etc/systemd/system/default.target` → the target's unit file, replacing
//!   an existing link.
//!
//! A unit that does not exist is an error for enable and set-default; for disable it is
//! reported, links named like it are still removed, and the stage goes on, as `systemctl`
//! 252 does (it exits 0). Disabling a masked unit leaves it alone, likewise. Specifiers in `[Install]` are expanded for `%n %N %p %i %j %%`; others are
//! an error rather than a guess.

use super::util::{create_parents, remove_if_exists, resolve_in_root, tree_path, walk_error};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CONFIG_DIR: &str = "/etc/systemd/system";
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/etc/systemd/system.attached",
    "/run/systemd/system.attached",
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
const SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub enabled_services: Vec<String>,
    #[serde(default)]
    pub disabled_services: Vec<String>,
    #[serde(default)]
    pub masked_services: Vec<String>,
    #[serde(default)]
    pub masked_generators: Vec<String>,
    pub default_target: Option<String>,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Systemd;

impl Stage for Systemd {
    const NAME: &'static str = "org.osbuild.systemd";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        for unit in &options.enabled_services {
            let mut seen = BTreeSet::new();
            enable(args, &mangle(unit, ".service")?, &mut seen)?;
        }
        for unit in &options.disabled_services {
            disable(args, &mangle(unit, ".service")?)?;
        }
        for unit in &options.masked_services {
            let name = mangle(unit, ".service")?;
            let link = tree_path(args, format!("{CONFIG_DIR}/{name}"), false)?;
            link_to(&link, &format!("{CONFIG_DIR}/{name}"), "/dev/null", args, false)?;
        }
        if !options.masked_generators.is_empty() {
            for generator in &options.masked_generators {
                check_name("generator", generator)?;
                let rel = format!("/etc/systemd/system-generators/{generator}");
                let link = tree_path(args, &rel, false)?;
                create_parents(&link)?;
                std::os::unix::fs::symlink("/dev/null", &link)
                    .map_err(StageError::io("cannot create symlink", &link))?;
                println!("Created symlink {rel} → /dev/null.");
            }
        }
        if let Some(target) = &options.default_target {
            let name = mangle(target, ".target")?;
            if name == "default.target" {
                return Err(StageError::Invalid("default.target cannot be the default target".into()));
            }
            let unit = find_unit(args, &name)?;
            let rel = format!("{CONFIG_DIR}/default.target");
            let link = tree_path(args, &rel, false)?;
            link_to(&link, &rel, &unit.path, args, true)?;
        }
        Ok(None)
    }
}

/// systemctl's name mangling for the simple cases: add `suffix` when the name has no unit
/// type suffix. Paths and names with characters systemctl would escape are refused.
fn mangle(name: &str, suffix: &str) -> Result<String, StageError> {
    check_name("unit name", name)?;
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '?' || c == '[') {
        return Err(StageError::Invalid(format!("unit name {name:?} is not supported")));
    }
    if SUFFIXES.iter().any(|s| name.len() > s.len() && name.ends_with(s)) {
        Ok(name.to_owned())
    } else {
        Ok(format!("{name}{suffix}"))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), StageError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(StageError::Invalid(format!("{what} {name:?} is not valid")));
    }
    Ok(())
}

/// A unit file found in the tree: the unit's name, the file's absolute path in the tree and
/// the file on the host.
#[derive(Debug)]
struct Unit {
    name: String,
    path: String,
    host: PathBuf,
    /// Found through a symlink in `/etc` or `/run` naming another unit, which `systemctl
    /// enable` refuses ("linked unit file").
    via_config_alias: Option<String>,
}

fn split_instance(name: &str) -> Option<(&str, &str, &str)> {
    let (prefix, rest) = name.split_once('@')?;
    let dot = rest.rfind('.')?;
    Some((prefix, &rest[..dot], &rest[dot..]))
}

/// Look up `name` in the unit directories, following alias symlinks to the unit they name.
fn find_unit(args: &StageArgs, name: &str) -> Result<Unit, StageError> {
    let mut name = name.to_owned();
    let mut via_config_alias = None;
    for _ in 0..32 {
        let mut found = lookup(args, &name)?;
        if found.is_none() {
            if let Some((prefix, instance, suffix)) = split_instance(&name) {
                if !instance.is_empty() {
                    found = lookup(args, &format!("{prefix}@{suffix}"))?;
                }
            }
        }
        let Some((path, host)) = found else {
            return Err(StageError::Invalid(format!("unit file {name} does not exist")));
        };
        let meta = std::fs::symlink_metadata(&host).map_err(StageError::io("cannot inspect", &host))?;
        if !meta.file_type().is_symlink() {
            return Ok(Unit { name, path, host, via_config_alias });
        }
        let target = std::fs::read_link(&host).map_err(StageError::io("cannot read link", &host))?;
        if target == Path::new("/dev/null") {
            return Err(StageError::Invalid(format!("unit file {name} is masked")));
        }
        let target_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target_base = target_name.split_once('@').map(|(p, _)| p).unwrap_or(&target_name);
        let name_base = name.split_once('@').map(|(p, _)| p).unwrap_or(&name);
        if target_name == name || (target_base == name_base && name.contains('@')) {
            // a link to the same unit elsewhere ("linked" unit): use the file it points to
            let resolved = resolve_in_root(&args.tree, host.strip_prefix(&args.tree).unwrap_or(&host), true)?;
            if !resolved.is_file() {
                return Err(StageError::Invalid(format!("unit file {name} is a dangling link")));
            }
            let rel = format!("/{}", resolved.strip_prefix(&args.tree).unwrap_or(&resolved).display());
            return Ok(Unit { name, path: rel, host: resolved, via_config_alias });
        }
        // an alias: continue with the unit it names (an instance keeps its instance)
        if (path.starts_with("/etc/") || path.starts_with("/run/")) && via_config_alias.is_none() {
            via_config_alias = Some(name.clone());
        }
        name = match (split_instance(&name), split_instance(&target_name)) {
            (Some((_, instance, _)), Some((p, "", s))) if !instance.is_empty() => format!("{p}@{instance}{s}"),
            _ => target_name,
        };
    }
    Err(StageError::Invalid(format!("too many levels of aliases resolving unit {name}")))
}

fn lookup(args: &StageArgs, name: &str) -> Result<Option<(String, PathBuf)>, StageError> {
    for dir in UNIT_DIRS {
        let rel = format!("{dir}/{name}");
        let host = tree_path(args, &rel, false)?;
        if std::fs::symlink_metadata(&host).is_ok() {
            return Ok(Some((rel, host)));
        }
    }
    Ok(None)
}

/// The `[Install]` section of a unit file.
#[derive(Debug, Default)]
struct Install {
    wanted_by: Vec<String>,
    required_by: Vec<String>,
    upheld_by: Vec<String>,
    also: Vec<String>,
    alias: Vec<String>,
    default_instance: Option<String>,
}

fn parse_install(text: &str) -> Install {
    let mut install = Install::default();
    let mut in_install = false;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        let list = match key.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "UpheldBy" => &mut install.upheld_by,
            "Also" => &mut install.also,
            "Alias" => &mut install.alias,
            "DefaultInstance" => {
                install.default_instance = (!value.is_empty()).then(|| value.to_owned());
                continue;
            }
            _ => continue,
        };
        if value.is_empty() {
            list.clear();
        } else {
            list.extend(words(value));
        }
    }
    install
}

/// Whitespace-separated words, with double or single quotes grouping.
fn words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Expand the specifiers systemctl resolves in `[Install]` for unit `name`.
fn expand(spec: &str, name: &str) -> Result<String, StageError> {
    let stem = SUFFIXES.iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, i),
        None => (stem, ""),
    };
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('n') => out.push_str(name),
            Some('N') => out.push_str(stem),
            Some('p') => out.push_str(prefix),
            Some('i') => out.push_str(instance),
            Some('j') => out.push_str(prefix.rsplit('-').next().unwrap_or(prefix)),
            Some(other) => {
                return Err(StageError::Invalid(format!("specifier %{other} in [Install] of {name} is not supported")))
            }
            None => return Err(StageError::Invalid(format!("incomplete specifier in [Install] of {name}"))),
        }
    }
    Ok(out)
}

fn enable(args: &StageArgs, name: &str, seen: &mut BTreeSet<String>) -> Result<(), StageError> {
    if !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let unit = find_unit(args, name)?;
    if let Some(alias) = &unit.via_config_alias {
        return Err(StageError::Invalid(format!("refusing to operate on linked unit file {alias}")));
    }
    let text = std::fs::read(&unit.host).map_err(StageError::io("cannot read", &unit.host))?;
    let install = parse_install(&String::from_utf8_lossy(&text));
    // the name the links get: an instance keeps its own, a template needs a default instance
    let link_name = match split_instance(&unit.name) {
        Some((prefix, "", suffix)) => install.default_instance.as_ref().map(|i| format!("{prefix}@{i}{suffix}")),
        _ => Some(unit.name.clone()),
    };
    let mut created = false;
    if let Some(link_name) = &link_name {
        for (targets, kind) in
            [(&install.wanted_by, "wants"), (&install.required_by, "requires"), (&install.upheld_by, "upholds")]
        {
            for target in targets {
                let target = expand(target, link_name)?;
                check_name("target", &target)?;
                let rel = format!("{CONFIG_DIR}/{target}.{kind}/{link_name}");
                let link = tree_path(args, &rel, false)?;
                link_to(&link, &rel, &unit.path, args, false)?;
                created = true;
            }
        }
    } else if !install.wanted_by.is_empty() || !install.required_by.is_empty() || !install.upheld_by.is_empty() {
        println!("{} is a template without DefaultInstance=; no instance enabled.", unit.name);
    }
    for alias in &install.alias {
        let alias = expand(alias, link_name.as_deref().unwrap_or(&unit.name))?;
        check_name("alias", &alias)?;
        let rel = format!("{CONFIG_DIR}/{alias}");
        let link = tree_path(args, &rel, false)?;
        link_to(&link, &rel, &unit.path, args, false)?;
        created = true;
    }
    for also in &install.also {
        let also = expand(also, link_name.as_deref().unwrap_or(&unit.name))?;
        enable(args, &mangle(&also, ".service")?, seen)?;
        created = true;
    }
    if !created {
        println!("The unit {} has no installation config ([Install] section); nothing to enable.", unit.name);
    }
    Ok(())
}

/// Make `link` (host path; `rel` in the tree) a symlink to `target`. An existing link to
/// the same file is kept; with `force` anything else is replaced, without it that is an error.
fn link_to(link: &Path, rel: &str, target: &str, args: &StageArgs, force: bool) -> Result<(), StageError> {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if meta.file_type().is_symlink() {
            let old = std::fs::read_link(link).map_err(StageError::io("cannot read link", link))?;
            if old == Path::new(target) || same_file(args, link, target)? {
                return Ok(());
            }
            if !force {
                return Err(StageError::Invalid(format!(
                    "{rel} already exists and is a symlink to {}, not {target}",
                    old.display()
                )));
            }
        } else if !force || meta.is_dir() {
            return Err(StageError::Invalid(format!("{rel} already exists and is not a symlink")));
        }
        remove_if_exists(link)?;
        println!("Removed '{rel}'.");
    }
    create_parents(link)?;
    std::os::unix::fs::symlink(target, link).map_err(StageError::io("cannot create symlink", link))?;
    println!("Created symlink '{rel}' → '{target}'.");
    Ok(())
}

/// Whether the link at `link` and the tree path `target` lead to the same file in the tree.
fn same_file(args: &StageArgs, link: &Path, target: &str) -> Result<bool, StageError> {
    use std::os::unix::fs::MetadataExt;
    if target == "/dev/null" {
        return Ok(false);
    }
    let a = resolve_in_root(&args.tree, link.strip_prefix(&args.tree).unwrap_or(link), true)?;
    let b = tree_path(args, target, true)?;
    Ok(match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    })
}

fn disable(args: &StageArgs, name: &str) -> Result<(), StageError> {
    let mut marks = BTreeSet::new();
    let mut seen = BTreeSet::new();
    mark(args, name, &mut marks, &mut seen)?;
    let root = tree_path(args, CONFIG_DIR, true)?;
    if !root.is_dir() {
        return Ok(());
    }
    // removing a link named like a unit marks that name too (aliases of aliases)
    loop {
        let before = marks.len();
        let mut removed = Vec::new();
        remove_marked(&root, &marks, &mut removed)?;
        for (host, name) in removed {
            let rel = format!("/{}", host.strip_prefix(&args.tree).unwrap_or(&host).display());
            println!("Removed '{rel}'.");
            if SUFFIXES.iter().any(|s| name.ends_with(s)) {
                marks.insert(name);
            }
        }
        if marks.len() == before {
            return Ok(());
        }
    }
}

fn mark(
    args: &StageArgs,
    name: &str,
    marks: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> Result<(), StageError> {
    if !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let unit = match find_unit(args, name) {
        Ok(unit) => unit,
        // systemctl (252) reports these but goes on, and exits 0; links named like a missing
        // unit are still removed, a masked one is left alone
        Err(e) if e.to_string().ends_with("does not exist") => {
            println!("Failed to disable unit, unit {name} does not exist.");
            marks.insert(name.to_owned());
            return Ok(());
        }
        Err(e) if e.to_string().ends_with("is masked") => {
            println!("Unit {name} is masked, ignoring.");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    marks.insert(name.to_owned());
    marks.insert(unit.name.clone());
    marks.insert(unit.path.clone());
    let text = std::fs::read(&unit.host).map_err(StageError::io("cannot read", &unit.host))?;
    let install = parse_install(&String::from_utf8_lossy(&text));
    for also in &install.also {
        let also = expand(also, &unit.name)?;
        mark(args, &mangle(&also, ".service")?, marks, seen)?;
    }
    Ok(())
}

/// Remove the links below `dir` that name a marked unit, in name order. Like systemctl, a
/// directory emptied by the removal goes too (but not `dir` itself).
fn remove_marked(dir: &Path, marks: &BTreeSet<String>, removed: &mut Vec<(PathBuf, String)>) -> Result<(), StageError> {
    // directories below which something was removed; each is seen after its contents
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name().contents_first(true) {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        let path = entry.path();
        if entry.file_type().is_dir() {
            if touched.contains(path) && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(path).map_err(StageError::io("cannot remove directory", path))?;
            }
        } else if entry.file_type().is_symlink() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dest = std::fs::read_link(path).map_err(StageError::io("cannot read link", path))?;
            let dest_name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if marks.contains(&name) || marks.contains(&*dest.to_string_lossy()) || marks.contains(&dest_name) {
                remove_if_exists(path)?;
                touched.extend(path.ancestors().skip(1).take_while(|a| *a != dir).map(Path::to_path_buf));
                removed.push((path.to_owned(), name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;

    fn unit(tree: &Path, path: &str, text: &str) {
        let p = tree.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn link(tree: &Path, path: &str) -> String {
        fs::read_link(tree.join(path.trim_start_matches('/'))).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn enable_follows_install_section() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        unit(tree, "/usr/lib/systemd/system/a.service", "[Unit]\n[Install]\nWantedBy=multi-user.target \\\n  b.target\nRequiredBy=c.target\nAlias=x.service\nAlso=s.socket\n");
        unit(tree, "/usr/lib/systemd/system/s.socket", "[Install]\nWantedBy=sockets.target\n");
        unit(tree, "/usr/lib/systemd/system/g@.service", "[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n");
        Systemd::execute(&args(tree, json!({"enabled_services": ["a", "g@.service", "g@tty2.service"]}))).unwrap();
        let p = "/usr/lib/systemd/system/a.service";
        assert_eq!(link(tree, "/etc/systemd/system/multi-user.target.wants/a.service"), p);
        assert_eq!(link(tree, "/etc/systemd/system/b.target.wants/a.service"), p);
        assert_eq!(link(tree, "/etc/systemd/system/c.target.requires/a.service"), p);
        assert_eq!(link(tree, "/etc/systemd/system/x.service"), p);
        assert_eq!(link(tree, "/etc/systemd/system/sockets.target.wants/s.socket"), "/usr/lib/systemd/system/s.socket");
        assert_eq!(
            link(tree, "/etc/systemd/system/getty.target.wants/g@tty1.service"),
            "/usr/lib/systemd/system/g@.service"
        );
        assert_eq!(
            link(tree, "/etc/systemd/system/getty.target.wants/g@tty2.service"),
            "/usr/lib/systemd/system/g@.service"
        );
        // enabling again is fine
        Systemd::execute(&args(tree, json!({"enabled_services": ["a.service"]}))).unwrap();

        Systemd::execute(&args(tree, json!({"disabled_services": ["a"]}))).unwrap();
        for gone in [
            "multi-user.target.wants/a.service",
            "c.target.requires/a.service",
            "x.service",
            "sockets.target.wants/s.socket",
        ] {
            assert!(fs::symlink_metadata(tree.join("etc/systemd/system").join(gone)).is_err(), "{gone}");
        }
        assert!(!tree.join("etc/systemd/system/multi-user.target.wants").exists());
        assert!(tree.join("etc/systemd/system/getty.target.wants").is_dir());
    }

    #[test]
    fn mask_generators_default_target() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        unit(tree, "/usr/lib/systemd/system/multi-user.target", "[Unit]\n");
        fs::create_dir_all(tree.join("etc/systemd/system")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/graphical.target",
            tree.join("etc/systemd/system/default.target"),
        )
        .unwrap();
        let opts = json!({"masked_services": ["ldconfig", "a.socket"], "masked_generators": ["g"], "default_target": "multi-user"});
        Systemd::execute(&args(tree, opts)).unwrap();
        assert_eq!(link(tree, "/etc/systemd/system/ldconfig.service"), "/dev/null");
        assert_eq!(link(tree, "/etc/systemd/system/a.socket"), "/dev/null");
        assert_eq!(link(tree, "/etc/systemd/system-generators/g"), "/dev/null");
        assert_eq!(link(tree, "/etc/systemd/system/default.target"), "/usr/lib/systemd/system/multi-user.target");
        let e = Systemd::execute(&args(tree, json!({"masked_generators": ["g"]}))).unwrap_err();
        assert!(e.to_string().starts_with("cannot create symlink"), "{e}");
    }

    #[test]
    fn missing_and_masked_units_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        let e = Systemd::execute(&args(tree, json!({"enabled_services": ["nope"]}))).unwrap_err();
        assert_eq!(e.to_string(), "unit file nope.service does not exist");
        Systemd::execute(&args(tree, json!({"disabled_services": ["nope.socket"]}))).unwrap();
        unit(tree, "/usr/lib/systemd/system/m.service", "[Install]\nWantedBy=a.target\n");
        Systemd::execute(&args(tree, json!({"masked_services": ["m"]}))).unwrap();
        let e = Systemd::execute(&args(tree, json!({"enabled_services": ["m"]}))).unwrap_err();
        assert_eq!(e.to_string(), "unit file m.service is masked");
        let e = Systemd::execute(&args(tree, json!({"enabled_services": ["../x"]}))).unwrap_err();
        assert_eq!(e.to_string(), "unit name \"../x\" is not valid");
    }

    #[test]
    fn specifiers() {
        assert_eq!(expand("%p-%i@%n.%N%%", "a-b@c.service").unwrap(), "a-b-c@a-b@c.service.a-b@c%");
        assert_eq!(expand("%j", "a-b@c.service").unwrap(), "b");
        assert!(expand("%H", "a.service").is_err());
        assert_eq!(words("a \"b c\" d"), ["a", "b c", "d"]);
    }
}
