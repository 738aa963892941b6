//! Upstream osbuild's command line: same flags, same meaning, same exit codes.

use crate::manifest::{self, Format, Manifest};
use crate::monitor;
use crate::schema::{self, ModuleKind, Validation};
use crate::store::{self, ObjectStore};
use crate::{engine, sandbox, sources, stages};
use clap::Parser;
use serde_json::Value;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::io::{Read, Write};
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser, Debug, Clone)]
#[command(name = "osbuild", about = "Build operating system images", disable_version_flag = true)]
pub struct Args {
    /// JSON file containing the manifest to build, or '-' to read it from stdin
    #[arg(value_name = "MANIFEST")]
    pub manifest: String,

    /// Directory where sources and intermediate trees are stored
    #[arg(long = "store", visible_alias = "cache", value_name = "DIRECTORY")]
    pub store: Option<PathBuf>,

    /// Directory with external modules (stages/, sources/, ... as upstream's libdir)
    #[arg(short = 'l', long = "libdir", value_name = "DIRECTORY", default_value = "/usr/lib/osbuild")]
    pub libdir: PathBuf,

    /// Maximum size of the store (bytes, with optional unit suffix) or 'unlimited'
    #[arg(long = "cache-max-size", value_name = "SIZE", value_parser = parse_size)]
    pub cache_max_size: Option<CacheSize>,

    /// Sync the store before each commit and fail on lost writes (osbuild-rs; upstream never syncs)
    #[arg(long)]
    pub durable: bool,

    /// Pipeline or stage (name or id, globs allowed) to commit to the store; repeatable
    #[arg(long = "checkpoint", value_name = "ID")]
    pub checkpoint: Vec<String>,

    /// Pipeline (name or id) to export to the output directory; repeatable
    #[arg(long = "export", value_name = "ID")]
    pub export: Vec<String>,

    /// Run a pipeline in a VM (not supported by osbuild-rs)
    #[arg(long = "in-vm", value_name = "ID")]
    pub in_vm: Vec<String>,

    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// Directory where exports are written
    #[arg(long = "output-directory", visible_alias = "output-dir", value_name = "DIRECTORY")]
    pub output_directory: Option<PathBuf>,

    /// Print the manifest with all ids as JSON and exit
    #[arg(long)]
    pub inspect: bool,

    /// Monitor to use: LogMonitor, JSONSeqMonitor or NullMonitor
    #[arg(long, value_name = "NAME")]
    pub monitor: Option<String>,

    /// File descriptor the monitor writes to
    #[arg(long = "monitor-fd", value_name = "FD")]
    pub monitor_fd: Option<i32>,

    /// Maximum time in seconds each stage may run (at most 4294967295)
    #[arg(long = "stage-timeout", value_name = "SECS", value_parser = parse_stage_timeout)]
    pub stage_timeout: Option<u64>,

    /// Print the version and exit
    #[arg(long)]
    pub version: bool,

    /// Open a debug shell in the sandbox when running the named stage (name, id or '*')
    #[arg(long = "break", value_name = "STAGE", num_args = 0..=1, default_missing_value = "*")]
    pub debug_break: Option<String>,

    /// Directory for runtime data
    #[arg(long, value_name = "DIRECTORY")]
    pub rundir: Option<PathBuf>,

    /// Suppress normal output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSize {
    Unlimited,
    Bytes(u64),
}

/// Upstream's size syntax: a plain number of bytes, a number with a unit (kB, KiB, MB,
/// MiB, GB, GiB, TB, TiB; space allowed), or `unlimited`.
pub fn parse_size(s: &str) -> Result<CacheSize, String> {
    let t = s.trim();
    if t == "unlimited" {
        return Ok(CacheSize::Unlimited);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size '{s}': expected a number of bytes, a number with a unit, or 'unlimited'"))?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        other => return Err(format!("invalid size '{s}': unknown unit '{other}'")),
    };
    n.checked_mul(mult).map(CacheSize::Bytes).ok_or_else(|| format!("invalid size '{s}': too large"))
}

/// The longest `--stage-timeout` (about 136 years): far beyond any build, and small enough that
/// no clock arithmetic on it can overflow.
pub const MAX_STAGE_TIMEOUT: u64 = u32::MAX as u64;

/// `--stage-timeout`: whole seconds from 0 to [`MAX_STAGE_TIMEOUT`].
pub fn parse_stage_timeout(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) if secs <= MAX_STAGE_TIMEOUT => Ok(secs),
        Ok(_) => Err(format!("the stage timeout is at most {MAX_STAGE_TIMEOUT} seconds")),
        // Larger than u64 or not a number at all.
        Err(_) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("the stage timeout is at most {MAX_STAGE_TIMEOUT} seconds"))
        }
        Err(_) => Err("expected whole seconds".to_string()),
    }
}

/// The largest manifest read, unless `OSBUILD_RS_MAX_MANIFEST_SIZE` (bytes) says otherwise:
/// about 130 times the largest upstream test manifest, and small enough that parsing it cannot
/// exhaust a build machine's memory. A manifest is read up to this size and no further, so an
/// endless input (`/dev/zero`, a FIFO fed forever) ends with an error instead of growing.
pub const MAX_MANIFEST_SIZE: u64 = 64 << 20;
pub const ENV_MAX_MANIFEST_SIZE: &str = "OSBUILD_RS_MAX_MANIFEST_SIZE";

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the manifest from {name}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the manifest {name} is larger than the limit of {limit} bytes (set {ENV_MAX_MANIFEST_SIZE} to change it)"
    )]
    TooLarge { name: String, limit: u64 },
    #[error("invalid {ENV_MAX_MANIFEST_SIZE}={value}: expected a number of bytes from 1 to {}", u64::MAX / 2)]
    Limit { value: String },
}

/// The manifest size limit, from the environment or [`MAX_MANIFEST_SIZE`].
fn manifest_size_limit(env: Option<OsString>) -> Result<u64, ReadError> {
    let Some(value) = env.filter(|v| !v.is_empty()) else { return Ok(MAX_MANIFEST_SIZE) };
    let text = value.to_string_lossy().into_owned();
    match text.trim().parse::<u64>() {
        Ok(n @ 1..) if n <= u64::MAX / 2 => Ok(n),
        _ => Err(ReadError::Limit { value: text }),
    }
}

/// Reads all of `r` as the manifest `name`, refusing more than `limit` bytes.
pub fn read_bounded(r: impl Read, name: &str, limit: u64) -> Result<String, ReadError> {
    let io = |source| ReadError::Io { name: name.to_string(), source };
    let mut bytes = Vec::new();
    r.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { name: name.to_string(), limit });
    }
    String::from_utf8(bytes).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// How we were invoked decides how `--version` answers: builders call us as `osbuild`
/// and compare the number after "osbuild " with a minimum release.
fn invoked_as_osbuild(argv0: &OsString) -> bool {
    std::path::Path::new(argv0).file_name().is_some_and(|n| n == "osbuild")
}

pub fn version_line(as_osbuild: bool) -> String {
    if as_osbuild {
        format!("osbuild {}", crate::UPSTREAM_VERSION)
    } else {
        format!("osbuild-rs {} (compatible with osbuild {})", env!("CARGO_PKG_VERSION"), crate::UPSTREAM_VERSION)
    }
}

pub fn main(argv: Vec<OsString>) -> i32 {
    let argv0 = argv.first().cloned().unwrap_or_default();
    // Inside the sandbox we are re-executed to run one stage (see `sandbox`, `stages`).
    if argv.get(1).is_some_and(|a| a == "__stage") {
        let name = argv.get(2).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return stages::stage_main(&name);
    }
    // ... or to run, one after another, the stages of a pipeline that share a sandbox.
    if argv.get(1).is_some_and(|a| a == crate::sandbox::SESSION_COMMAND) {
        return crate::sandbox::serve_stage_session(&stages::stage_main);
    }
    if argv.get(1).is_some_and(|a| a == "__assembler") {
        let name = argv.get(2).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return stages::assembler_main(&name);
    }
    // The unattended installer of installer ISOs (see `installer`), run on the target machine.
    if argv.get(1).is_some_and(|a| a == "__install") {
        return crate::installer::main(&argv[2..]);
    }
    if argv.get(1).is_some_and(|a| a == "__modules-table") {
        print!("{}", crate::inventory::feature_table());
        return EXIT_OK;
    }
    // `--version` needs no manifest; answer before clap insists on one.
    if argv.iter().skip(1).any(|a| a == "--version") {
        println!("{}", version_line(invoked_as_osbuild(&argv0)));
        return EXIT_OK;
    }
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_INVALID } else { EXIT_OK };
        }
    };
    run(args)
}

/// Everything that can go wrong before any build work starts, with its exit code.
pub struct Prepared {
    pub manifest: Manifest,
    pub description: Value,
}

/// Reports `msg` (a plain message, or any error with its whole cause chain on one line, so an
/// errno at the bottom reaches the user) and gives back the exit code.
fn fail(code: i32, msg: impl Into<Failure>) -> i32 {
    eprintln!("osbuild-rs: error: {}", msg.into().0);
    code
}

/// The one-line text of a failure.
struct Failure(String);

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure(s.to_string())
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

impl<E: std::error::Error> From<&E> for Failure {
    fn from(e: &E) -> Self {
        Failure(osbuild_sys::error_chain(e))
    }
}

fn read_manifest(path: &str) -> Result<String, ReadError> {
    let limit = manifest_size_limit(std::env::var_os(ENV_MAX_MANIFEST_SIZE))?;
    if path == "-" {
        read_bounded(std::io::stdin().lock(), "<stdin>", limit)
    } else {
        let file = std::fs::File::open(path).map_err(|source| ReadError::Io { name: path.to_string(), source })?;
        read_bounded(file, path, limit)
    }
}

fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn show_validation(v: &Validation, name: &str) {
    let name = if name == "-" { "<stdin>" } else { name };
    eprintln!("{name} has errors:");
    for e in &v.errors {
        eprintln!(
            "  {}: {}",
            if e.path.0.is_empty() { "<manifest>".to_string() } else { e.path.to_string() },
            e.message
        );
    }
}

/// Load, validate and resolve a manifest; on failure report it and return the exit code.
pub fn prepare(args: &Args) -> Result<Prepared, i32> {
    let text = read_manifest(&args.manifest).map_err(|e| fail(EXIT_INVALID, &e))?;
    let name = if args.manifest == "-" { "<stdin>" } else { args.manifest.as_str() };
    let description: Value =
        serde_json::from_str(&text).map_err(|e| fail(EXIT_INVALID, format!("{name} is not valid JSON: {e}")))?;
    if let Err(e) = manifest::detect_format(&description) {
        return Err(fail(EXIT_INVALID, &e));
    }
    let v2 = description.get("version").and_then(Value::as_str) == Some("2");
    let validation = schema::validate_unknown(&description, schema::validate(&description), |kind, name| {
        engine::external_options_schema(&args.libdir, kind == ModuleKind::Assembler, name, v2)
    });
    if !validation.is_valid() {
        if args.json || args.inspect {
            // stdout stays the machine-readable document; people get one line on stderr.
            print_json(&validation.to_json());
            let first = &validation.errors[0];
            eprintln!(
                "osbuild-rs: error: {name} is invalid ({} error(s)); first at {}: {}",
                validation.errors.len(),
                first.path,
                first.message
            );
        } else {
            show_validation(&validation, &args.manifest);
        }
        return Err(EXIT_INVALID);
    }
    let manifest = manifest::load(&description).map_err(|e| {
        if args.json || args.inspect {
            let v = Validation {
                errors: vec![schema::ValidationError { path: e.path(), message: e.message() }],
                unknown: vec![],
            };
            print_json(&v.to_json());
        }
        fail(EXIT_INVALID, &e)
    })?;
    for (kind, name, path) in &validation.unknown {
        if external_module(&args.libdir, *kind, name) {
            continue;
        }
        eprintln!(
            "osbuild-rs: warning: {path}: unknown {} type '{name}': no schema to validate it against",
            kind.noun()
        );
    }
    Ok(Prepared { manifest, description })
}

/// Whether `--libdir` provides a module upstream-style (e.g. `stages/org.osbuild.foo`).
pub fn external_module(libdir: &std::path::Path, kind: ModuleKind, name: &str) -> bool {
    libdir.join(kind.dir()).join(name).is_file()
}

pub fn run(args: Args) -> i32 {
    if !args.in_vm.is_empty() {
        return fail(
            EXIT_FAILED,
            "--in-vm is not supported by osbuild-rs: pipelines run in bubblewrap sandboxes on this host",
        );
    }
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let m = &prepared.manifest;

    // Exports become directories of --output-directory: only plain names (as every pipeline
    // name and id is) can never land elsewhere.
    if let Some(bad) = args.export.iter().find(|e| !osbuild_sys::is_plain_name(e)) {
        return fail(
            EXIT_FAILED,
            format!("export '{bad}' is not a plain name: exports are pipeline names or ids, without '/' and not '.' or '..'"),
        );
    }
    let unresolved: Vec<&String> = args.export.iter().filter(|e| m.get(e).is_none()).collect();
    if !unresolved.is_empty() {
        let available: Vec<&str> = m.pipelines.iter().map(|p| p.name.as_str()).collect();
        for e in unresolved {
            eprintln!("osbuild-rs: error: export '{e}' not found; pipelines are: {}", available.join(", "));
        }
        return EXIT_FAILED;
    }

    if args.inspect {
        print_json(&manifest::describe(m));
        return EXIT_OK;
    }
    build(&args, m)
}

fn build(args: &Args, m: &Manifest) -> i32 {
    let checkpoints = engine::mark_checkpoints(m, &args.checkpoint);
    if !args.checkpoint.is_empty() && checkpoints.is_empty() {
        return fail(EXIT_FAILED, "no checkpoints matched the given patterns");
    }
    let output_directory = match (&args.output_directory, args.export.is_empty()) {
        (None, false) => return fail(EXIT_FAILED, "--export needs --output-directory"),
        (dir, _) => dir.clone(),
    };
    let store_dir = args.store.clone().unwrap_or_else(store::default_store_dir);
    let interactive = std::io::stdout().is_terminal();
    let monitor_name = args.monitor.clone().or_else(|| (args.json || args.quiet).then(|| "NullMonitor".to_owned()));
    let progress_bar = interactive && monitor_name.is_none();

    // Refuse invalid download settings before anything starts (the engine reads the same ones).
    if let Err(e) = sources::FetchOptions::from_env(|name| std::env::var_os(name)) {
        return fail(EXIT_INVALID, &e);
    }
    if let Err(e) = sandbox::dropped_capabilities() {
        return fail(
            EXIT_INVALID,
            format!("invalid {}: {}", sandbox::ENV_DROP_CAPABILITIES, osbuild_sys::error_chain(&e)),
        );
    }
    if let Err(e) = sandbox::enter_private_mount_namespace().and_then(|_| sandbox::install_signal_handlers()) {
        return fail(EXIT_FAILED, &e);
    }
    let mut object_store = match ObjectStore::open(&store_dir) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    object_store.set_durable(args.durable);
    if let Some(max) = args.cache_max_size {
        object_store.set_max_size(match max {
            CacheSize::Unlimited => None,
            CacheSize::Bytes(b) => Some(b),
        });
    }

    // Upstream builds what is exported; we also build pipelines holding a checkpoint.
    let mut targets = args.export.clone();
    for p in &m.pipelines {
        if p.stages.iter().any(|s| checkpoints.contains(&s.id)) {
            targets.push(p.name.clone());
        }
    }
    let pipelines = engine::plan(m, &targets, &object_store);
    // Hold on to what the plan takes from the store from now on, not only once a stage reads it:
    // another run's export may take an object it made out of the store, and only one that no
    // process holds.
    for s in m.pipelines.iter().flat_map(|p| &p.stages) {
        let _ = object_store.get(&s.id);
    }
    if let Err(e) = engine::check_supported(m, &pipelines, &args.libdir) {
        return fail(EXIT_FAILED, &e);
    }
    let total_steps = m.sources.len() + pipelines.len();
    let mut mon = match monitor::make(monitor_name.as_deref(), args.monitor_fd, total_steps, progress_bar) {
        Ok(mon) => mon,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    mon.log(&format!("starting {}", args.manifest), Some("osbuild.main_cli"));
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return fail(EXIT_FAILED, format!("cannot find our own executable: {}", osbuild_sys::error_chain(&e)))
        }
    };
    let opts = engine::BuildOptions {
        libdir: args.libdir.clone(),
        debug_break: args.debug_break.clone(),
        stage_timeout: args.stage_timeout.map(std::time::Duration::from_secs),
        checkpoints,
        exe,
        stage_sessions: crate::sandbox::sessions_enabled(),
    };
    let report = match engine::build(m, &pipelines, &object_store, mon.as_mut(), &opts) {
        Ok(r) => r,
        Err(e) => {
            mon.log(&format!("manifest {} failed", args.manifest), Some("osbuild.main_cli"));
            mon.finish(false);
            return fail(EXIT_FAILED, &e);
        }
    };
    let verdict = if report.success { "finished successfully" } else { "failed" };
    mon.log(&format!("manifest {} {verdict}", args.manifest), Some("osbuild.main_cli"));
    mon.finish(report.success);
    drop(mon);

    // Before the exports: a moved tree takes its object's metadata along.
    let summary = args.json.then(|| engine::summary(m, &report, &object_store));
    if report.success {
        if let Some(out) = &output_directory {
            // Each export goes into its own directory: they run side by side (a name given twice
            // is exported once), and the first failure in `--export` order is reported.
            let mut names: Vec<&String> = Vec::new();
            for name in &args.export {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            // As upstream keeps only checkpoints, a tree exported once and not checkpointed is
            // moved out of the store (when the store lets it go), not copied; a pipeline exported
            // under two names (name and id) is copied twice.
            let id_of = |name: &String| m.get(name).and_then(|p| p.id());
            let may_move = |name: &String| {
                id_of(name).is_some_and(|id| {
                    !opts.checkpoints.contains(id) && names.iter().filter(|n| id_of(n) == Some(id)).count() == 1
                })
            };
            let results: Vec<_> = std::thread::scope(|s| {
                let store = &object_store;
                let running: Vec<_> = names
                    .iter()
                    .map(|name| {
                        let p = m.get(name).expect("exports resolved before the build");
                        let may_move = may_move(name);
                        s.spawn(move || engine::export(store, p, name, out, may_move))
                    })
                    .collect();
                running.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
            });
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return fail(EXIT_FAILED, &e);
            }
        }
    }
    if let Some(summary) = summary {
        let doc = match m.format {
            Format::V2 => monitor::result_v2(&summary),
            Format::V1 => monitor::result_v1(&summary),
        };
        print_json(&doc);
    } else if !args.quiet && report.success {
        println!("\nPipelines");
        for p in &m.pipelines {
            println!("  {:<10}\t{}", format!("{}:", p.name), p.id().unwrap_or("-"));
        }
        if let Some(out) = &output_directory {
            for name in &args.export {
                println!("exported {name} to {}", out.join(name).display());
            }
        }
    }
    let keep: Vec<&str> = m.pipelines.iter().filter_map(|p| p.id()).collect();
    if let Err(e) = object_store.evict(&keep) {
        eprintln!("osbuild-rs: warning: store eviction failed: {}", osbuild_sys::error_chain(&e));
    }
    if let Some(sig) = report.interrupted.or_else(sandbox::interrupted) {
        eprintln!("osbuild-rs: interrupted by signal {sig}; nothing partial was kept");
        return EXIT_INTERRUPTED;
    }
    if report.success {
        EXIT_OK
    } else {
        if !args.json && !args.quiet {
            if let Some(f) = &report.failed_stage {
                eprintln!("osbuild-rs: error: stage {} ({}) failed", f.name, f.id);
            }
            if let Some(s) = &report.failed_source {
                eprintln!("osbuild-rs: error: source {} failed: {}", s.kind, s.output);
            }
        }
        EXIT_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_upstream() {
        assert_eq!(parse_size("unlimited"), Ok(CacheSize::Unlimited));
        assert_eq!(parse_size("1024"), Ok(CacheSize::Bytes(1024)));
        assert_eq!(parse_size("2 GiB"), Ok(CacheSize::Bytes(2 << 30)));
        assert_eq!(parse_size("5MB"), Ok(CacheSize::Bytes(5_000_000)));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 XB").is_err());
    }

    #[test]
    fn version_depends_on_name() {
        assert!(invoked_as_osbuild(&OsString::from("/usr/bin/osbuild")));
        assert!(!invoked_as_osbuild(&OsString::from("/usr/bin/osbuild-rs")));
        assert_eq!(version_line(true), "osbuild 191");
        assert!(version_line(false).contains("191"));
    }

    #[test]
    fn output_dir_alias_and_break_default() {
        let a = Args::try_parse_from(["osbuild", "--output-dir", "/o", "--break", "--", "m.json"]).unwrap();
        assert_eq!(a.output_directory, Some(PathBuf::from("/o")));
        assert_eq!(a.debug_break.as_deref(), Some("*"));
        let a = Args::try_parse_from(["osbuild", "--cache", "/s", "--monitor-fd=3", "-"]).unwrap();
        assert!(!a.durable, "upstream never syncs the store; durability is asked for");
        assert_eq!(a.store, Some(PathBuf::from("/s")));
        assert_eq!(a.monitor_fd, Some(3));
    }
}
