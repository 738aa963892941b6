//! `osbuild-depsolve-apt`: resolve Debian packages with apt for an osbuild manifest.
//!
//! Prints the closure of the given packages (plus the Essential set and priority `required`,
//! as debootstrap's minbase) as JSON: `sources` (`org.osbuild.curl` items, `sha256:<hex>` ->
//! URL), `checksums` (installation order, for the `packages` input of `org.osbuild.dpkg`),
//! `apt_sources` (the sources used, as `org.osbuild.apt.sources` entries) and `packages`
//! (name, version, architecture, checksum, url, size). With `--template` it
//! prints that manifest instead, filled in. See `osbuild_rs::depsolve_apt`.

use clap::Parser;
use osbuild_rs::depsolve_apt::{
    fill_template, fill_template_layers, increments, machine_arch, resolve, result_json, Request,
};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "osbuild-depsolve-apt", about = "Resolve Debian packages with apt for osbuild manifests")]
struct Cli {
    /// Packages to install (apt names, patterns such as `?priority(important)` work too).
    packages: Vec<String>,
    /// dpkg architecture to resolve for (default: the machine's).
    #[arg(long)]
    arch: Option<String>,
    /// A package that must not be installed (repeatable); apt fails if something needs it.
    #[arg(long)]
    exclude: Vec<String>,
    /// Apt source files (one-line .list or deb822 .sources) to use instead of /etc/apt's
    /// (repeatable).
    #[arg(long = "sources")]
    sources: Vec<PathBuf>,
    /// Use `deb MIRROR SUITE COMPONENTS` as the only source.
    #[arg(long)]
    mirror: Option<String>,
    /// With --mirror: the suite (default: the machine's release). Without: resolve against
    /// the machine's sources with its release renamed to SUITE (bookworm-updates -> SUITE-updates).
    #[arg(long)]
    suite: Option<String>,
    /// With --mirror: the components (default: main).
    #[arg(long, value_delimiter = ',')]
    components: Vec<String>,
    /// Leave out the Essential set and the packages of priority required.
    #[arg(long)]
    no_base: bool,
    /// Do not add usr-is-merged (the dpkg stage creates the merged-/usr links itself).
    #[arg(long)]
    no_merged_usr: bool,
    /// Also install recommended packages.
    #[arg(long)]
    recommends: bool,
    /// Keep apt's private state (package lists) in this directory between runs.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A manifest to fill in: source items added, the `packages` input of each
    /// `org.osbuild.dpkg` stage with no references set to the packages in order (and its
    /// `apt_sources` option, if present and empty, to the sources used).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Packages a later `org.osbuild.dpkg` stage of the template installs on top (repeatable,
    /// one per stage; comma- or space-separated names). The empty dpkg stages are then filled
    /// in manifest order: the first with the closure of PACKAGES, each further one with what
    /// adding its `--then` packages (to everything before) brings in.
    #[arg(long, requires = "template")]
    then: Vec<String>,
    /// Write the JSON here instead of to stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("osbuild-depsolve-apt: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let arch = match cli.arch {
        Some(a) => a,
        None => machine_arch()?,
    };
    let req = Request {
        packages: cli.packages,
        exclude: cli.exclude,
        arch,
        no_base: cli.no_base,
        merged_usr: !cli.no_merged_usr,
        recommends: cli.recommends,
        sources: cli.sources,
        mirror: cli.mirror,
        suite: cli.suite,
        components: cli.components,
        state_dir: cli.state_dir,
    };
    let res = resolve(&req)?;
    // each later layer is resolved with everything before it, so apt sees one system
    let mut full = vec![res.packages.clone()];
    let mut layered = req.clone();
    for more in &cli.then {
        layered.packages.extend(more.split([',', ' ']).filter(|p| !p.is_empty()).map(str::to_owned));
        full.push(resolve(&layered)?.packages);
    }
    let doc = match cli.template {
        Some(t) => {
            let text = std::fs::read_to_string(&t).map_err(|e| format!("{}: {e}", t.display()))?;
            let mut m: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", t.display()))?;
            let filled = if cli.then.is_empty() {
                fill_template(&mut m, &res.packages, &res.apt_sources)
            } else {
                increments(&full)
                    .and_then(|layers| fill_template_layers(&mut m, &layers, &res.apt_sources))
                    .map_err(|e| e.to_string())
            };
            filled.map_err(|e| format!("{}: {e}", t.display()))?;
            m
        }
        None => result_json(&res.packages, &res.apt_sources),
    };
    let text = serde_json::to_string_pretty(&doc).expect("JSON serialises") + "\n";
    match cli.output {
        Some(p) => std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
