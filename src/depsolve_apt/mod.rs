//! The Debian depsolver behind `osbuild-depsolve-apt`, the counterpart of upstream's
//! `osbuild-depsolve-dnf`: package names in, the full closure out, as manifest source items
//! (`org.osbuild.curl`, `sha256:<hex>` -> URL) and the ordered package list for the
//! `org.osbuild.dpkg` stage.
//!
//! All resolution is done by apt itself (`apt-get`), run against a private state directory:
//! an empty dpkg status (so everything is resolved as for a new system), the package lists
//! fetched by `apt-get update` into that directory, and the sources of the machine's
//! `/etc/apt` (or the ones given). The closure is what `apt-get install -s
//! --no-install-recommends` would install, in the order apt would install it; the URLs and
//! SHA-256 checksums come from `apt-get install --print-uris`. As debootstrap's minbase
//! variant does, the request includes the Essential set and every package of priority
//! `required` (apt's `?essential` and `?priority(required)` patterns) unless told not to.

use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to resolve and where from.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub packages: Vec<String>,
    pub exclude: Vec<String>,
    pub arch: String,
    /// Leave out the Essential set and `Priority: required`.
    pub no_base: bool,
    /// Add `usr-is-merged` when the archive has it (the dpkg stage merges /usr itself).
    pub merged_usr: bool,
    pub recommends: bool,
    /// Source files (one-line `.list` or deb822 `.sources`) to use; empty: the machine's.
    pub sources: Vec<PathBuf>,
    /// Instead of any source files: `deb <mirror> <suite> <components>` (+ `-updates`).
    pub mirror: Option<String>,
    /// With `mirror`: the suite; without: rename the machine's release in its sources.
    pub suite: Option<String>,
    pub components: Vec<String>,
    /// Keep apt's private state (package lists) here; a temporary directory when unset.
    pub state_dir: Option<PathBuf>,
}

/// One resolved package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub url: String,
    pub size: u64,
    pub checksum: String,
}

/// `Inst` lines of `apt-get -s install`: (name, version, arch) in apt's installation order.
pub fn parse_simulation(out: &str) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for l in out.lines() {
        let Some(rest) = l.strip_prefix("Inst ") else { continue };
        let mut it = rest.splitn(2, ' ');
        let name = it.next().unwrap_or("").to_owned();
        let tail = it.next().unwrap_or("");
        // "(1.2-3 Debian:12.5/stable [amd64])", possibly after "[old version] "
        let Some(open) = tail.find('(') else { continue };
        let inner = &tail[open + 1..];
        let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
        let version = inner.split_whitespace().next().unwrap_or("").to_owned();
        let arch = inner.rsplit('[').next().and_then(|a| a.split(']').next()).unwrap_or("").to_owned();
        v.push((name, version, arch));
    }
    v
}

/// `'URL' FILE SIZE SHA256:HEX` lines of `apt-get --print-uris install`:
/// (url, file name, size, `sha256:hex`).
pub fn parse_uris(out: &str) -> Result<Vec<(String, String, u64, String)>, String> {
    let mut v = Vec::new();
    for l in out.lines().filter(|l| l.starts_with('\'')) {
        let Some(end) = l[1..].find('\'') else { return Err(format!("unexpected apt-get output: {l}")) };
        let url = l[1..end + 1].to_owned();
        let f: Vec<&str> = l[end + 2..].split_whitespace().collect();
        if f.len() < 3 {
            return Err(format!("unexpected apt-get output: {l}"));
        }
        let hash = f[2]
            .strip_prefix("SHA256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("apt-get gave no SHA256 checksum for {url}: {}", f[2]))?;
        let size = f[1].parse().map_err(|_| format!("unexpected size in apt-get output: {l}"))?;
        v.push((url, f[0].to_owned(), size, format!("sha256:{}", hash.to_ascii_lowercase())));
    }
    Ok(v)
}

/// Join the simulation's order with the download list (by package name).
pub fn join(
    order: &[(String, String, String)],
    uris: &[(String, String, u64, String)],
) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (name, version, arch) in order {
        let prefix = format!("{name}_");
        let (url, _, size, checksum) = uris
            .iter()
            .find(|(_, file, _, _)| file.starts_with(&prefix))
            .ok_or_else(|| format!("apt-get gave no download for package {name} {version}"))?;
        out.push(Package {
            name: name.clone(),
            version: version.clone(),
            arch: arch.clone(),
            url: url.clone(),
            size: *size,
            checksum: checksum.clone(),
        });
    }
    Ok(out)
}

/// The package sources apt used, as `org.osbuild.dpkg` / `org.osbuild.apt.sources` entries:
/// one per repository URI with its suites and components, from `apt-get indextargets` lines
/// `CREATED_BY\tREPO_URI\tRELEASE\tCOMPONENT`.
pub fn parse_index_targets(out: &str) -> Vec<Value> {
    let mut repos: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != 4 || f[0] != "Packages" || f[2].is_empty() {
            continue;
        }
        let uri = f[1].trim_end_matches('/').to_owned();
        let i = match repos.iter().position(|r| r.0 == uri) {
            Some(i) => i,
            None => {
                repos.push((uri, Vec::new(), Vec::new()));
                repos.len() - 1
            }
        };
        let (_, suites, comps) = &mut repos[i];
        if !suites.iter().any(|s| s == f[2]) {
            suites.push(f[2].to_owned());
        }
        if !f[3].is_empty() && !comps.iter().any(|c| c == f[3]) {
            comps.push(f[3].to_owned());
        }
    }
    repos.into_iter().map(|(u, s, c)| json!({"uris": [u], "suites": s, "components": c})).collect()
}

/// The JSON document the tool prints.
pub fn result_json(pkgs: &[Package], apt_sources: &[Value]) -> Value {
    let mut items = Map::new();
    for p in pkgs {
        items.insert(p.checksum.clone(), json!(p.url));
    }
    json!({
        "sources": {"org.osbuild.curl": {"items": items}},
        "checksums": pkgs.iter().map(|p| p.checksum.clone()).collect::<Vec<_>>(),
        "apt_sources": apt_sources,
        "packages": pkgs.iter().map(|p| json!({
            "name": p.name, "version": p.version, "architecture": p.arch,
            "checksum": p.checksum, "url": p.url, "size": p.size,
        })).collect::<Vec<_>>(),
    })
}

/// Why a template cannot be filled.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the {0} is not an object")]
    NotAnObject(&'static str),
    #[error("the template has no pipelines")]
    NoPipelines,
    #[error(
        "the template has {filled} org.osbuild.dpkg stages with an empty 'packages' input for {layers} package layers"
    )]
    LayerCount { filled: usize, layers: usize },
    #[error("package layer {layer} changes what the layers before it install: {packages} would not be installed")]
    LayerChangesBase { layer: usize, packages: String },
}

/// Fill a manifest template: add the source items to `sources.org.osbuild.curl.items` and
/// set the `packages` input of every `org.osbuild.dpkg` stage whose references are empty to
/// the packages in installation order, and its `apt_sources` option, when present and empty,
/// to `apt_sources`. It is an error if no stage took the packages.
pub fn fill_template(template: &mut Value, pkgs: &[Package], apt_sources: &[Value]) -> Result<(), String> {
    let filled = fill(template, pkgs, apt_sources, |_| Some(pkgs)).map_err(|e| e.to_string())?;
    if filled == 0 {
        return Err("the template has no org.osbuild.dpkg stage with an empty 'packages' input to fill".into());
    }
    Ok(())
}

/// Fill a template whose packages are installed in layers, one `org.osbuild.dpkg` stage per
/// layer: the empty dpkg stages, in manifest order, get `layers[0]`, `layers[1]`, ... (see
/// [`increments`]); the sources get every package. The number of empty dpkg stages must be
/// the number of layers.
pub fn fill_template_layers(
    template: &mut Value,
    layers: &[Vec<Package>],
    apt_sources: &[Value],
) -> Result<(), TemplateError> {
    let all: Vec<Package> = layers.iter().flatten().cloned().collect();
    let filled = fill(template, &all, apt_sources, |i| layers.get(i).map(Vec::as_slice))?;
    if filled != layers.len() {
        return Err(TemplateError::LayerCount { filled, layers: layers.len() });
    }
    Ok(())
}

/// What each of successive resolutions adds to the one before: `full[0]`, then
/// `full[k]` without the packages of `full[k-1]` (in `full[k]`'s installation order). An
/// error when a later resolution drops or changes a package of an earlier one: the earlier
/// stage would then install something the later closure does not want.
pub fn increments(full: &[Vec<Package>]) -> Result<Vec<Vec<Package>>, TemplateError> {
    let mut out = Vec::new();
    for (k, pkgs) in full.iter().enumerate() {
        let Some(before) = k.checked_sub(1).map(|j| &full[j]) else {
            out.push(pkgs.clone());
            continue;
        };
        let have: std::collections::HashSet<&str> = pkgs.iter().map(|p| p.checksum.as_str()).collect();
        let changed: Vec<String> = before
            .iter()
            .filter(|p| !have.contains(p.checksum.as_str()))
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        if !changed.is_empty() {
            return Err(TemplateError::LayerChangesBase { layer: k, packages: changed.join(", ") });
        }
        let old: std::collections::HashSet<&str> = before.iter().map(|p| p.checksum.as_str()).collect();
        out.push(pkgs.iter().filter(|p| !old.contains(p.checksum.as_str())).cloned().collect());
    }
    Ok(out)
}

/// Add `pkgs` to the curl source items and give the `i`-th empty `org.osbuild.dpkg` stage
/// `refs(i)` (left empty when `None`); returns how many stages were filled.
fn fill<'a>(
    template: &mut Value,
    pkgs: &[Package],
    apt_sources: &[Value],
    refs: impl Fn(usize) -> Option<&'a [Package]>,
) -> Result<usize, TemplateError> {
    let doc = template.as_object_mut().ok_or(TemplateError::NotAnObject("template"))?;
    let sources = doc.entry("sources").or_insert_with(|| json!({}));
    let curl = sources
        .as_object_mut()
        .ok_or(TemplateError::NotAnObject("template's sources"))?
        .entry("org.osbuild.curl")
        .or_insert_with(|| json!({"items": {}}));
    let items = curl
        .as_object_mut()
        .ok_or(TemplateError::NotAnObject("template's org.osbuild.curl source"))?
        .entry("items")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or(TemplateError::NotAnObject("template's org.osbuild.curl items"))?;
    for p in pkgs {
        items.insert(p.checksum.clone(), json!(p.url));
    }
    let mut filled = 0;
    let pipelines = doc.get_mut("pipelines").and_then(Value::as_array_mut).ok_or(TemplateError::NoPipelines)?;
    for pl in pipelines {
        for st in pl.get_mut("stages").and_then(Value::as_array_mut).into_iter().flatten() {
            if st.get("type").and_then(Value::as_str) != Some("org.osbuild.dpkg") {
                continue;
            }
            if let Some(Value::Array(a)) = st.pointer_mut("/options/apt_sources") {
                if a.is_empty() {
                    a.extend(apt_sources.iter().cloned());
                }
            }
            let Some(input) = st.pointer_mut("/inputs/packages") else { continue };
            let empty = match input.get("references") {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(_) => false,
            };
            if empty {
                if let Some(layer) = refs(filled) {
                    input["references"] = layer.iter().map(|p| json!(p.checksum)).collect();
                }
                filled += 1;
            }
        }
    }
    Ok(filled)
}

/// Rename release `from` to `to` in the suites of a sources file (one-line or deb822):
/// `from`, `from-updates`, `from-security`, `from/updates` …
pub fn rename_suite(text: &str, from: &str, to: &str) -> String {
    let map = |t: &str| -> String {
        if t == from {
            to.to_owned()
        } else if let Some(rest) = t.strip_prefix(from).filter(|r| r.starts_with('-') || r.starts_with('/')) {
            format!("{to}{rest}")
        } else {
            t.to_owned()
        }
    };
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(v) = trimmed.strip_prefix("Suites:") {
            out.push_str(&format!("Suites: {}", v.split_whitespace().map(map).collect::<Vec<_>>().join(" ")));
        } else if trimmed.starts_with("deb ") || trimmed.starts_with("deb-src ") {
            // deb [opts] uri suite comps…
            let mut words: Vec<String> = Vec::new();
            let mut in_opts = false;
            let mut seen_uri = false;
            let mut done = false;
            for w in trimmed.split_whitespace() {
                if words.is_empty() {
                    words.push(w.to_owned());
                    continue;
                }
                if !seen_uri && (w.starts_with('[') || in_opts) {
                    in_opts = !w.ends_with(']');
                    words.push(w.to_owned());
                    continue;
                }
                if !seen_uri {
                    seen_uri = true;
                    words.push(w.to_owned());
                } else if !done {
                    done = true;
                    words.push(map(w));
                } else {
                    words.push(w.to_owned());
                }
            }
            out.push_str(&words.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The machine's release codename (`VERSION_CODENAME` of os-release).
fn machine_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|v| v.trim_matches('"').to_owned())
}

/// The private apt directory and the `-o` options pointing apt at it.
struct AptDir {
    root: PathBuf,
    /// The directory when none was asked for: removed on drop, also when `create` fails.
    _temporary: Option<tempfile::TempDir>,
    arch: String,
}

impl AptDir {
    fn create(req: &Request) -> Result<AptDir, String> {
        let (root, temporary) = match &req.state_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("osbuild-depsolve-apt.")
                    .tempdir()
                    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
                (t.path().to_owned(), Some(t))
            }
        };
        let io = |p: &Path| {
            let p = p.to_owned();
            move |e: std::io::Error| format!("{}: {e}", p.display())
        };
        // the sources are written anew every run; lists are kept (state_dir)
        let etc = root.join("etc");
        if etc.exists() {
            std::fs::remove_dir_all(&etc).map_err(io(&etc))?;
        }
        for d in ["etc/sources.list.d", "etc/preferences.d", "lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(&root.join(d)))?;
        }
        std::fs::write(root.join("status"), "").map_err(io(&root.join("status")))?;
        std::fs::write(root.join("etc/sources.list"), "").map_err(io(&root.join("etc/sources.list")))?;
        let parts = root.join("etc/sources.list.d");
        if let Some(mirror) = &req.mirror {
            let suite = req.suite.clone().or_else(machine_codename).ok_or("--mirror needs --suite")?;
            let comps = if req.components.is_empty() { vec!["main".to_owned()] } else { req.components.clone() };
            let text = format!("deb {mirror} {suite} {}\n", comps.join(" "));
            std::fs::write(parts.join("mirror.list"), text).map_err(io(&parts))?;
        } else {
            let mut files = req.sources.clone();
            if files.is_empty() {
                let main = Path::new("/etc/apt/sources.list");
                if main.is_file() {
                    files.push(main.to_owned());
                }
                if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
                    let mut found: Vec<PathBuf> = rd
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
            }
            if files.is_empty() {
                return Err("no apt sources: the machine's /etc/apt has none; give --sources or --mirror".into());
            }
            let rename = match &req.suite {
                Some(s) => {
                    Some((machine_codename().ok_or("cannot tell the machine's release to rename it")?, s.clone()))
                }
                None => None,
            };
            for (i, f) in files.iter().enumerate() {
                let ext = f.extension().and_then(|x| x.to_str()).unwrap_or("list");
                let ext = if ext == "sources" { "sources" } else { "list" };
                let mut text = std::fs::read_to_string(f).map_err(io(f))?;
                if let Some((from, to)) = &rename {
                    text = rename_suite(&text, from, to);
                }
                std::fs::write(parts.join(format!("{i:02}.{ext}")), text).map_err(io(&parts))?;
            }
        }
        Ok(AptDir { root, _temporary: temporary, arch: req.arch.clone() })
    }

    fn options(&self) -> Vec<String> {
        let r = self.root.display();
        vec![
            format!("Dir::Etc::SourceList={r}/etc/sources.list"),
            format!("Dir::Etc::SourceParts={r}/etc/sources.list.d"),
            format!("Dir::Etc::Preferences={r}/etc/preferences"),
            format!("Dir::Etc::PreferencesParts={r}/etc/preferences.d"),
            format!("Dir::State::Lists={r}/lists"),
            format!("Dir::State::status={r}/status"),
            format!("Dir::Cache={r}/cache"),
            "Dir::Cache::pkgcache=".into(),
            "Dir::Cache::srcpkgcache=".into(),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            "Acquire::ForceHash=SHA256".into(),
            "Acquire::Languages=none".into(),
            "APT::Get::List-Cleanup=0".into(),
        ]
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        for o in self.options() {
            c.arg("-o").arg(o);
        }
        c.env("LC_ALL", "C");
        c
    }
}

fn output(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} not found: install apt", cmd.get_program().to_string_lossy())
        } else {
            format!("cannot run {}: {e}", cmd.get_program().to_string_lossy())
        }
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().chain(stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        return Err(format!("{what} failed ({}):\n{tail}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The machine's dpkg architecture.
pub fn machine_arch() -> Result<String, String> {
    let mut c = Command::new("dpkg");
    c.arg("--print-architecture");
    Ok(output(c, "dpkg --print-architecture")?.trim().to_owned())
}

/// What apt resolved: the packages in installation order and the sources it used.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub packages: Vec<Package>,
    /// `org.osbuild.apt.sources` entries for the sources the packages came from.
    pub apt_sources: Vec<Value>,
}

/// Resolve `req` with apt.
pub fn resolve(req: &Request) -> Result<Resolution, String> {
    if req.packages.is_empty() && req.no_base {
        return Err("nothing to resolve: no packages given".into());
    }
    let dir = AptDir::create(req)?;
    let mut c = dir.cmd("apt-get");
    c.args(["-q", "update"]);
    let out = output(c, "apt-get update")?;
    let _ = out;
    let mut wanted: Vec<String> = Vec::new();
    if !req.no_base {
        wanted.push("?essential".into());
        wanted.push("?priority(required)".into());
    }
    if req.merged_usr {
        let mut c = dir.cmd("apt-cache");
        c.args(["show", "--no-all-versions", "usr-is-merged"]);
        if c.output().is_ok_and(|o| o.status.success()) {
            wanted.push("usr-is-merged".into());
        }
    }
    wanted.extend(req.packages.iter().cloned());
    wanted.extend(req.exclude.iter().map(|e| format!("{e}-")));
    let install = |extra: &[&str]| {
        let mut c = dir.cmd("apt-get");
        c.args(["-q", "-y", "install"]);
        c.arg(if req.recommends { "--install-recommends" } else { "--no-install-recommends" });
        c.args(extra).args(&wanted);
        c
    };
    let sim = output(install(&["-s"]), "resolving with apt-get install -s")?;
    let uris = output(install(&["--print-uris"]), "apt-get install --print-uris")?;
    let order = parse_simulation(&sim);
    if order.is_empty() {
        return Err("apt-get would install nothing".into());
    }
    let packages = join(&order, &parse_uris(&uris)?)?;
    let mut c = dir.cmd("apt-get");
    c.args(["indextargets", "--format", "$(CREATED_BY)\t$(REPO_URI)\t$(RELEASE)\t$(COMPONENT)"]);
    let apt_sources = parse_index_targets(&output(c, "apt-get indextargets")?);
    Ok(Resolution { packages, apt_sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: &str = "NOTE: This is only a simulation!\nInst gcc-12-base (12.2.0-14 Debian:12.5/stable [amd64])\n\
        Inst libc6 (2.36-9+deb12u4 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []\n\
        Conf libc6 (2.36-9+deb12u4 Debian:12.5/stable [amd64])\nInst fish-common (3.6.0-3.1 Debian:12.5/stable [all])\n";
    const URIS: &str = "Reading package lists...\n\
        'http://mirror.example/debian/pool/main/g/gcc-12/gcc-12-base_12.2.0-14_amd64.deb' gcc-12-base_12.2.0-14_amd64.deb 37596 SHA256:1896A2AACF4AD681FF5EACC24A5B0CA4D5D9C9B9C9E4B6DE5197BC1E116EA619\n\
        'http://mirror.example/debian/pool/main/f/fish/fish-common_3.6.0-3.1_all.deb' fish-common_3.6.0-3.1_all.deb 10 SHA256:ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf\n\
        'http://mirror.example/debian/pool/main/g/glibc/libc6_2.36-9%2bdeb12u4_amd64.deb' libc6_2.36-9+deb12u4_amd64.deb 2759320 SHA256:0000000000000000000000000000000000000000000000000000000000000001\n";

    #[test]
    fn simulation_and_uris_are_joined_in_install_order() {
        let order = parse_simulation(SIM);
        assert_eq!(order[1], ("libc6".into(), "2.36-9+deb12u4".into(), "amd64".into()));
        assert_eq!(order[2], ("fish-common".into(), "3.6.0-3.1".into(), "all".into()));
        let pkgs = join(&order, &parse_uris(URIS).unwrap()).unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["gcc-12-base", "libc6", "fish-common"]);
        assert_eq!(pkgs[0].checksum, "sha256:1896a2aacf4ad681ff5eacc24a5b0ca4d5d9c9b9c9e4b6de5197bc1e116ea619");
        assert_eq!(pkgs[1].url, "http://mirror.example/debian/pool/main/g/glibc/libc6_2.36-9%2bdeb12u4_amd64.deb");
        assert_eq!(pkgs[1].size, 2759320);
        let doc = result_json(&pkgs, &[]);
        assert_eq!(doc["checksums"][2], pkgs[2].checksum.as_str());
        assert_eq!(doc["sources"]["org.osbuild.curl"]["items"][&pkgs[1].checksum], pkgs[1].url.as_str());
        assert!(parse_uris("'http://x/a.deb' a.deb 1 MD5Sum:abc").unwrap_err().contains("no SHA256 checksum"));
        assert!(join(&order, &[]).unwrap_err().contains("no download for package gcc-12-base"));
    }

    #[test]
    fn layers_fill_successive_dpkg_stages_with_what_each_adds() {
        let all = join(&parse_simulation(SIM), &parse_uris(URIS).unwrap()).unwrap();
        let base = vec![all[0].clone(), all[1].clone()];
        let layers = increments(&[base.clone(), all.clone()]).unwrap();
        assert_eq!(layers[0], base);
        assert_eq!(layers[1], vec![all[2].clone()]);
        let dpkg = || {
            json!({"type": "org.osbuild.dpkg", "inputs": {"packages": {"type": "org.osbuild.files",
              "origin": "org.osbuild.source", "references": []}}, "options": {}})
        };
        let mut t = json!({"version": "2", "pipelines": [{"name": "os", "stages": [dpkg()]},
                           {"name": "update", "stages": [{"type": "org.osbuild.copy"}, dpkg()]}]});
        fill_template_layers(&mut t, &layers, &[]).unwrap();
        let refs = |p: usize, s: usize| t["pipelines"][p]["stages"][s]["inputs"]["packages"]["references"].clone();
        assert_eq!(refs(0, 0), json!([all[0].checksum, all[1].checksum]));
        assert_eq!(refs(1, 1), json!([all[2].checksum]));
        assert_eq!(t["sources"]["org.osbuild.curl"]["items"].as_object().unwrap().len(), 3);
        // one layer too many for the stages, and a layer that changes the base
        let mut t = json!({"version": "2", "pipelines": [{"name": "os", "stages": [dpkg()]}]});
        let e = fill_template_layers(&mut t, &layers, &[]).unwrap_err().to_string();
        assert!(e.contains("1 org.osbuild.dpkg stages with an empty 'packages' input for 2 package layers"), "{e}");
        let e = increments(&[all.clone(), base]).unwrap_err().to_string();
        assert!(e.contains("package layer 1 changes") && e.contains("fish-common 3.6.0-3.1"), "{e}");
    }

    #[test]
    fn template_gets_sources_and_ordered_references() {
        let pkgs = join(&parse_simulation(SIM), &parse_uris(URIS).unwrap()).unwrap();
        let mut t = json!({"version": "2", "pipelines": [{"name": "tree", "stages": [
            {"type": "org.osbuild.dpkg", "inputs": {"packages": {"type": "org.osbuild.files",
              "origin": "org.osbuild.source", "references": []}}, "options": {"apt_sources": []}},
            {"type": "org.osbuild.hostname", "options": {"hostname": "x"}}]}]});
        let src = parse_index_targets(
            "Packages\thttp://m.example/debian/\tbookworm\tmain\nDEP-11\thttp://m.example/debian/\tbookworm\tmain\n\
             Packages\thttp://m.example/debian/\tbookworm-updates\tmain\n\
             Packages\thttp://m.example/debian-security/\tbookworm-security\tmain\n\
             Packages\thttp://m.example/debian/\tbookworm\tcontrib\n",
        );
        assert_eq!(
            Value::Array(src.clone()),
            json!([{"uris": ["http://m.example/debian"], "suites": ["bookworm", "bookworm-updates"], "components": ["main", "contrib"]},
                   {"uris": ["http://m.example/debian-security"], "suites": ["bookworm-security"], "components": ["main"]}])
        );
        fill_template(&mut t, &pkgs, &src).unwrap();
        assert_eq!(t["pipelines"][0]["stages"][0]["options"]["apt_sources"], Value::Array(src.clone()));
        assert_eq!(t["sources"]["org.osbuild.curl"]["items"].as_object().unwrap().len(), 3);
        let refs = &t["pipelines"][0]["stages"][0]["inputs"]["packages"]["references"];
        assert_eq!(refs[0], pkgs[0].checksum.as_str());
        assert_eq!(refs.as_array().unwrap().len(), 3);
        // already filled: nothing left to fill is an error
        assert!(fill_template(&mut t, &pkgs, &src).unwrap_err().contains("no org.osbuild.dpkg stage"));
    }

    #[test]
    fn suites_are_renamed_in_both_formats() {
        let deb822 = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert!(rename_suite(deb822, "bookworm", "trixie").contains("Suites: trixie trixie-updates\n"));
        let one =
            "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian-security bookworm-security main\n# bookworm\n";
        assert_eq!(
            rename_suite(one, "bookworm", "trixie"),
            "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian-security trixie-security main\n# bookworm\n"
        );
        assert_eq!(
            rename_suite("deb http://m/ bookworm/updates main", "bookworm", "t"),
            "deb http://m/ t/updates main\n"
        );
    }
}
