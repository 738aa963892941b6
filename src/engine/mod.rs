//! Planning and executing a build: which pipelines to build, in which order, each stage
//! in its sandbox, the results committed to the store. Nothing else decides order.
//!
//! Around each stage, on the host: [`inputs`], [`devices`] and [`mounts`] (one type per
//! upstream module behind a trait each, typed options, one registry per kind), held together
//! for the stage's lifetime by [`attach`]; afterwards [`epoch`] clamps mtimes, and [`export`]
//! copies finished trees out. Every path those take from a manifest or a tree is resolved in
//! an `osbuild_sys::Root` and every mount is made by descriptor, so nothing a tree holds can
//! lead them onto the host.

mod api_socket;
mod attach;
mod devices;
mod epoch;
mod error;
mod export;
mod external;
mod host_tool;
mod inputs;
mod mounts;
mod number;
mod plan;

pub use attach::ReleaseError;
pub use devices::{byte_range, ByteRange, DeviceError};
pub use error::EngineError;
pub use export::ExportError;
pub use external::{options_schema as external_options_schema, ENV_EXTERNAL_STAGES};
pub use inputs::InputError;
pub use mounts::MountError;
pub use plan::{mark_checkpoints, plan};

/// What runs a stage (or a v1 assembler).
enum Module {
    Native(&'static stages::StageInfo),
    External(external::ExternalStage),
}

/// The module that runs `stage`: the native one, unless there is none or
/// `OSBUILD_RS_EXTERNAL_STAGES` asks for the external one, which then comes from `libdir`.
fn module_of(stage: &Stage, libdir: &Path) -> Option<Module> {
    let native = if stage.assembler { stages::assemblers::find(&stage.kind) } else { stages::find(&stage.kind) };
    match native {
        Some(info) if !external::forced(&stage.kind) => Some(Module::Native(info)),
        _ => external::locate(libdir, stage).map(Module::External).or(native.map(Module::Native)),
    }
}

/// Whether the engine can prepare inputs of this type.
pub fn input_supported(kind: &str) -> bool {
    inputs::is_supported(kind)
}

/// Whether the engine can attach devices of this type.
pub fn device_supported(kind: &str) -> bool {
    devices::is_supported(kind)
}

/// Whether the engine can mount mounts of this type.
pub fn mount_supported(kind: &str) -> bool {
    mounts::is_supported(kind)
}

use crate::manifest::{Manifest, Pipeline, Stage};
use crate::monitor::{self, Monitor, SourceItemOutcome, SourceOutcome, StageResult};
use crate::sandbox::{self, StageSandbox};
use crate::store::{ObjectStore, WorkDir};
use crate::{sources, stages};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct BuildOptions {
    pub libdir: PathBuf,
    /// `--break`: a stage type, stage id or `*`.
    pub debug_break: Option<String>,
    pub stage_timeout: Option<Duration>,
    pub checkpoints: HashSet<String>,
    pub exe: PathBuf,
    /// Let consecutive stages that need the same sandbox share one bubblewrap (see
    /// `sandbox::session`; off with `OSBUILD_RS_STAGE_SESSIONS=0`).
    pub stage_sessions: bool,
}

/// What happened, for the result document and the exit code.
pub struct BuildReport {
    pub success: bool,
    pub interrupted: Option<i32>,
    pub sources: Vec<SourceOutcome>,
    pub failed_source: Option<SourceOutcome>,
    pub pipeline_results: Vec<(String, Vec<StageResult>)>,
    pub failed_stage: Option<StageResult>,
}

/// Refuse, before any work starts, a plan that needs a module we cannot run.
pub fn check_supported(m: &Manifest, pipelines: &[&Pipeline], libdir: &Path) -> Result<(), EngineError> {
    let unsupported = |path: String, what: &'static str, name: &str, dir: &'static str| EngineError::Unsupported {
        path,
        what,
        name: name.to_owned(),
        libdir: libdir.display().to_string(),
        dir,
    };
    for p in pipelines {
        for s in &p.stages {
            match module_of(s, libdir) {
                None => {
                    let (what, dir) = if s.assembler { ("assembler", "assemblers") } else { ("stage", "stages") };
                    return Err(unsupported(s.path.to_string(), what, &s.kind, dir));
                }
                Some(Module::External(_)) => {
                    let runner = crate::runner::of_pipeline(m, p);
                    if external::runner(libdir, &runner).is_none() {
                        return Err(EngineError::Invalid {
                            path: s.path.clone(),
                            message: format!(
                                "{} runs from {} but it has no runner for '{runner}' in runners/",
                                s.kind,
                                libdir.display()
                            ),
                        });
                    }
                }
                Some(Module::Native(_)) => {}
            }
            for (name, i) in &s.inputs {
                if !inputs::is_supported(&i.kind) {
                    return Err(unsupported(s.path.key("inputs").key(name).to_string(), "input", &i.kind, "inputs"));
                }
            }
            if let Some((name, d)) = s.devices.iter().find(|(_, d)| !devices::is_supported(&d.kind)) {
                return Err(unsupported(s.path.key("devices").key(name).to_string(), "device", &d.kind, "devices"));
            }
            if let Some(mnt) = s.mounts.iter().find(|m| !mounts::is_supported(&m.kind)) {
                return Err(unsupported(s.path.key("mounts").key(&mnt.name).to_string(), "mount", &mnt.kind, "mounts"));
            }
        }
    }
    for s in &m.sources {
        if !sources::is_supported(&s.kind) {
            return Err(unsupported(format!("sources.{}", s.kind), "source", &s.kind, "sources"));
        }
    }
    Ok(())
}

/// Source items the planned pipelines read, per source type.
fn wanted_items(pipelines: &[&Pipeline]) -> BTreeSet<String> {
    pipelines
        .iter()
        .flat_map(|p| p.stages.iter())
        .flat_map(|s| s.inputs.iter())
        .filter(|(_, i)| i.origin == crate::manifest::ORIGIN_SOURCE)
        .flat_map(|(_, i)| i.refs.keys().cloned())
        .collect()
}

pub fn build(
    m: &Manifest,
    pipelines: &[&Pipeline],
    store: &ObjectStore,
    mon: &mut dyn Monitor,
    opts: &BuildOptions,
) -> Result<BuildReport, EngineError> {
    let mut report = BuildReport {
        success: true,
        interrupted: None,
        sources: Vec::new(),
        failed_source: None,
        pipeline_results: Vec::new(),
        failed_stage: None,
    };

    let wanted = wanted_items(pipelines);
    // Fetched files are synced as the store's objects are: only in a durable store.
    let fetch_opts = sources::FetchOptions { durable: store.is_durable(), ..sources::FetchOptions::default() };
    if !pipelines.is_empty() {
        mon.begin_sources(&m.sources);
    }
    for src in m.sources.iter().filter(|_| !pipelines.is_empty()) {
        let started = Instant::now();
        let dir = store.sources_dir(sources::store_kind(&src.kind).unwrap_or("org.osbuild.files"))?;
        let outcome = match sources::fetch(src, Some(&wanted), &dir, &fetch_opts) {
            Ok(items) => SourceOutcome {
                kind: src.kind.clone(),
                success: items.iter().all(|i| i.error.is_none()),
                output: String::new(),
                items: items
                    .into_iter()
                    .map(|i| SourceItemOutcome { checksum: i.checksum, cached: i.cached, error: i.error })
                    .collect(),
            },
            Err(e) => {
                let items = match &e {
                    sources::SourceError::Failed { results, .. } => results
                        .iter()
                        .map(|i| SourceItemOutcome {
                            checksum: i.checksum.clone(),
                            cached: i.cached,
                            error: i.error.clone(),
                        })
                        .collect(),
                    _ => vec![],
                };
                SourceOutcome { kind: src.kind.clone(), success: false, output: format!("{e}"), items }
            }
        };
        mon.finish_source(&outcome, started.elapsed());
        let ok = outcome.success;
        report.sources.push(outcome.clone());
        if !ok {
            report.success = false;
            report.failed_source = Some(outcome);
            return Ok(report);
        }
        if let Some(sig) = sandbox::interrupted() {
            report.success = false;
            report.interrupted = Some(sig);
            return Ok(report);
        }
    }

    for p in pipelines {
        mon.begin_pipeline(p);
        let runner = crate::runner::of_pipeline(m, p);
        let results = build_pipeline(p, &runner, store, mon, opts, &mut report)?;
        mon.finish_pipeline(p);
        let failed = results.iter().find(|r| !r.success).cloned();
        report.pipeline_results.push((p.name.clone(), results));
        if let Some(f) = failed {
            report.success = false;
            report.failed_stage = Some(f);
            return Ok(report);
        }
        if report.interrupted.is_some() {
            report.success = false;
            return Ok(report);
        }
    }
    Ok(report)
}

fn build_pipeline(
    p: &Pipeline,
    runner: &str,
    store: &ObjectStore,
    mon: &mut dyn Monitor,
    opts: &BuildOptions,
    report: &mut BuildReport,
) -> Result<Vec<StageResult>, EngineError> {
    let mut results = Vec::new();
    let Some(pid) = p.id() else { return Ok(results) };
    if store.contains(pid) {
        return Ok(results);
    }
    let build_root = p.build.as_ref().map(|b| store.tree_path(b));
    let epoch = source_epoch(p)?;

    // Continue from the last stage the store already has (a checkpoint), if any.
    let work = store.new_workdir()?;
    let mut start = 0;
    let mut meta = Map::new();
    for (i, s) in p.stages.iter().enumerate().rev() {
        if store.contains(&s.id) {
            store.clone_into(&s.id, &work)?;
            meta = store.read_meta(&s.id)?;
            start = i + 1;
            break;
        }
    }

    // Stage scratch (arguments, metadata, input links) lives beside, never inside, the tree.
    // One scratch dir per pipeline, and in it one `api/` and one `meta` that every stage reuses
    // (rewritten before each): creating inodes was a quarter of a trivial stage's cost on ext4.
    let scratch = store.new_workdir()?;
    let shared = SharedScratch::create(scratch.path())?;
    // Consecutive stages that need the same sandbox share one bubblewrap (see `sandbox::session`).
    let mut session = None;
    for (i, stage) in p.stages.iter().enumerate().skip(start) {
        mon.begin_stage(p, stage);
        let started = Instant::now();
        let dir = StageScratch { shared: &shared, own: scratch.path().join(format!("stage-{i}")) };
        let ctx = StageContext { epoch, runner, build_root: build_root.as_deref() };
        let (result, md) = run_stage(stage, &ctx, &work, &dir, store, mon, opts, report, &mut session)?;
        if let Some(md) = &md {
            meta.insert(stage.id.clone(), md.clone());
        }
        mon.finish_stage(stage, &result, started.elapsed(), md.as_ref());
        let ok = result.success;
        results.push(result);
        if !ok || report.interrupted.is_some() {
            // `work` is dropped here: nothing partial reaches the store.
            return Ok(results);
        }
        if let Some(epoch) = epoch {
            let tree = work.tree();
            epoch::clamp_mtimes(&tree, epoch).map_err(|source| EngineError::Io { path: tree.clone(), source })?;
        }
        let last = i + 1 == p.stages.len();
        if !last && opts.checkpoints.contains(&stage.id) {
            store.commit_copy(&work, &stage.id, &meta)?;
        }
    }
    // The session's sandbox binds the tree: gone before the tree moves into the store.
    drop(session);
    store.commit(work, pid, &meta)?;
    Ok(results)
}

/// The pipeline's `source-epoch` as seconds, or an error naming it when it is no whole number
/// of seconds that mtimes can be clamped to (never a silently disabled clamp).
fn source_epoch(p: &Pipeline) -> Result<Option<i64>, EngineError> {
    let Some(v) = &p.source_epoch else { return Ok(None) };
    let seconds = v.as_i64().or_else(|| v.as_number().and_then(number::whole).and_then(|n| i64::try_from(n).ok()));
    match seconds {
        Some(s) => Ok(Some(s)),
        None => Err(EngineError::Invalid {
            path: p.path.key("source-epoch"),
            message: format!("{v} is not a whole number of seconds from -2^63 to 2^63-1"),
        }),
    }
}

/// The scratch every stage of a pipeline reuses: the API directory (bound read-only, holding
/// `arguments`) and the metadata file (bound writable). Both are rewritten before each stage.
struct SharedScratch {
    api: PathBuf,
    meta: PathBuf,
}

impl SharedScratch {
    fn create(scratch: &Path) -> Result<SharedScratch, EngineError> {
        let api = scratch.join("api");
        let meta = scratch.join("meta");
        std::fs::create_dir(&api).map_err(|source| EngineError::Io { path: api.clone(), source })?;
        std::fs::write(&meta, b"").map_err(|source| EngineError::Io { path: meta.clone(), source })?;
        Ok(SharedScratch { api, meta })
    }
}

/// One stage's scratch: the shared part, and its own directory (for input links and mount
/// points), made only when the stage has inputs or mounts.
struct StageScratch<'a> {
    shared: &'a SharedScratch,
    own: PathBuf,
}

/// What a stage takes from its pipeline.
struct StageContext<'a> {
    epoch: Option<i64>,
    /// The pipeline's runner name (used by external stages).
    runner: &'a str,
    build_root: Option<&'a Path>,
}

#[allow(clippy::too_many_arguments)]
fn run_stage(
    stage: &Stage,
    ctx: &StageContext,
    work: &WorkDir,
    scratch: &StageScratch,
    store: &ObjectStore,
    mon: &mut dyn Monitor,
    opts: &BuildOptions,
    report: &mut BuildReport,
    session: &mut Option<sandbox::StageSession>,
) -> Result<(StageResult, Option<Value>), EngineError> {
    let module = module_of(stage, &opts.libdir).expect("checked before the build");
    let (epoch, build_root) = (ctx.epoch, ctx.build_root);
    let api = scratch.shared.api.clone();
    let meta_file = scratch.shared.meta.clone();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| EngineError::Io { path, source }
    };
    // Truncated, not recreated: nothing of the previous stage's metadata stays.
    std::fs::write(&meta_file, b"").map_err(io(&meta_file))?;

    let mut binds = Vec::new();
    let mut input_args = Map::new();
    for (name, input) in &stage.inputs {
        let prepared = inputs::prepare(store, input, &scratch.own.join("inputs").join(name)).map_err(|source| {
            EngineError::Input { path: stage.path.key("inputs").key(name), source: Box::new(source) }
        })?;
        let dest = PathBuf::from(sandbox::INPUTS_DIR).join(name);
        let mut arg = json!({ "path": dest });
        if let Some(data) = prepared.data {
            arg["data"] = data;
        }
        input_args.insert(name.clone(), arg);
        binds.push(sandbox::Bind { src: prepared.host_path, dest, writable: false });
    }

    // Devices and mounts stay attached until `attached` is closed or dropped, on every path out.
    let mounts_root = scratch.own.join("mounts");
    if !stage.mounts.is_empty() {
        std::fs::create_dir_all(&mounts_root).map_err(io(&mounts_root))?;
    }
    let attached = attach::Attached::open(stage, &work.tree(), &mounts_root)?;
    if !stage.mounts.is_empty() {
        binds.push(sandbox::Bind { src: mounts_root.clone(), dest: sandbox::MOUNTS_DIR.into(), writable: true });
    }

    let mut meta = json!({ "id": stage.id });
    if let Some(epoch) = &stage.source_epoch {
        meta["source-epoch"] = epoch.clone();
    }
    let arguments = json!({
        "tree": sandbox::TREE_DIR,
        "options": stage.options,
        "inputs": input_args,
        "devices": attached.device_args,
        "mounts": attached.mount_args,
        "meta": meta,
        "paths": { "devices": attach::DEVICES_MAPPED, "mounts": attach::MOUNTS_MAPPED, "inputs": sandbox::INPUTS_DIR },
    });
    let args_path = api.join("arguments");
    std::fs::write(&args_path, serde_json::to_vec(&arguments).expect("JSON")).map_err(io(&args_path))?;

    let mut env = vec![];
    if let Some(epoch) = epoch {
        env.push(("SOURCE_DATE_EPOCH".to_owned(), epoch.to_string()));
    }
    // Assemblers attach their own loop devices (partitions are known only once they ran).
    let devices = if stage.assembler { vec!["/dev/loop-control".into()] } else { attached.nodes() };
    let mut api_socket = None;
    let (argv, capabilities) = match &module {
        Module::Native(info) => (
            vec![
                sandbox::EXE_PATH.into(),
                if stage.assembler { "__assembler" } else { "__stage" }.into(),
                stage.kind.clone(),
            ],
            info.capabilities.iter().map(|c| c.to_string()).collect(),
        ),
        Module::External(ext) => {
            let runner = external::runner(&ext.libdir, ctx.runner).ok_or_else(|| EngineError::Invalid {
                path: stage.path.clone(),
                message: format!(
                    "{} has no runner for '{}' in {}/runners/",
                    stage.kind,
                    ctx.runner,
                    ext.libdir.display()
                ),
            })?;
            let runner_inside = format!("{}/{}", external::RUNNER_DIR, ctx.runner);
            let socket = api_socket::ApiSocket::start().map_err(io(Path::new("/run/osbuild-rs")))?;
            // The API directory is read-only inside: the socket needs a mount point there.
            let mount_point = api.join("osbuild");
            std::fs::write(&mount_point, b"").map_err(io(&mount_point))?;
            let ro = |src: &Path, dest: &str| sandbox::Bind { src: src.to_owned(), dest: dest.into(), writable: false };
            for (name, host) in external::lib_entries(&ext.libdir).map_err(io(&ext.libdir))? {
                binds.push(ro(&host, &format!("{}/{name}", external::LIB_DIR)));
            }
            binds.push(ro(&ext.program, &ext.sandbox_program()));
            binds.push(ro(&runner, &runner_inside));
            binds.push(sandbox::Bind { src: socket.path(), dest: external::API_SOCKET.into(), writable: true });
            api_socket = Some(socket);
            env.push(("PYTHONPATH".to_owned(), external::LIB_DIR.to_owned()));
            env.push(("PYTHONUNBUFFERED".to_owned(), "1".to_owned()));
            (vec![runner_inside, ext.sandbox_program()], ext.capabilities.clone())
        }
    };
    let sb = StageSandbox {
        build_root: build_root.map(Path::to_owned),
        tree: work.tree(),
        binds,
        api_dir: api,
        meta_file: meta_file.clone(),
        exe: opts.exe.clone(),
        argv,
        capabilities,
        devices,
        timeout: opts.stage_timeout,
        env,
        upstream_root: matches!(module, Module::External(_)),
    };
    let debug_break = opts.debug_break.as_deref().is_some_and(|pattern| breaks_at(pattern, stage));
    if debug_break {
        if std::io::stdin().is_terminal() {
            mon.log(
                &format!("--break: debug shell before {} ({}); exit it to run the stage", stage.kind, stage.id),
                None,
            );
            sb.run_interactive(&["/bin/sh".to_owned()])?;
        } else {
            mon.log("--break: no terminal attached, not opening a debug shell", None);
        }
    }
    // Monitors take raw output chunks, as upstream's do; the sandbox hands us lines.
    let on_line = &mut |line: &str| mon.stage_output(&format!("{line}\n"));
    // A stage under `--break` keeps a sandbox of its own: the one its debug shell just saw.
    let outcome = if opts.stage_sessions && !debug_break && sandbox::StageSession::can_host(&sb) {
        sandbox::StageSession::run_in(session, &sb, on_line)?
    } else {
        sb.run(on_line)?
    };
    mon.stage_output("");
    let exception = api_socket.and_then(api_socket::ApiSocket::finish);
    let released = attached.close();
    let success = outcome.status.success() && !outcome.timed_out && outcome.interrupted.is_none() && released.is_ok();
    let error = if success {
        None
    } else if let (true, Err(e)) = (outcome.success(), &released) {
        Some(json!(format!("releasing devices and mounts failed: {}", osbuild_sys::error_chain(e))))
    } else if let (Some(e), false) = (&exception, outcome.timed_out || outcome.interrupted.is_some()) {
        // As upstream: the exception an external stage reported is its error.
        Some(e.clone())
    } else if outcome.timed_out {
        Some(json!(format!("stage timed out after {} s", opts.stage_timeout.unwrap_or_default().as_secs())))
    } else if let Some(sig) = outcome.interrupted {
        report.interrupted = Some(sig);
        Some(json!(format!("interrupted by signal {sig}")))
    } else {
        Some(json!(format!("stage exited with {}", outcome.status)))
    };
    let md = std::fs::read(&meta_file).ok().filter(|b| !b.is_empty()).and_then(|b| serde_json::from_slice(&b).ok());
    let result = StageResult { name: stage.kind.clone(), id: stage.id.clone(), success, output: outcome.output, error };
    Ok((result, md))
}

/// Whether `--break PATTERN` selects this stage (upstream: stage name, id, or `*`).
fn breaks_at(pattern: &str, stage: &Stage) -> bool {
    pattern == "*" || pattern == stage.kind || pattern == stage.id
}

/// Copy a committed pipeline tree to `<output>/<name>/`, or, when `may_move` (nothing else of
/// this run needs the object and no checkpoint keeps it), move it out of the store if the store
/// lets it go (see [`export::export`]).
pub fn export(store: &ObjectStore, p: &Pipeline, name: &str, output: &Path, may_move: bool) -> Result<(), EngineError> {
    let mode = if may_move { export::Mode::Move } else { export::Mode::Copy };
    export::export(store, p, name, output, mode).map_err(|source| EngineError::Export {
        name: name.to_owned(),
        output: output.to_owned(),
        source: Box::new(source),
    })
}

/// Summary handed to the result document writers.
pub fn summary<'a>(m: &'a Manifest, report: &BuildReport, store: &ObjectStore) -> monitor::BuildSummary<'a> {
    let mut metadata = std::collections::BTreeMap::new();
    if report.success {
        for p in &m.pipelines {
            let Some(id) = p.id() else { continue };
            let Ok(meta) = store.read_meta(id) else { continue };
            let mut per_stage = Map::new();
            for s in &p.stages {
                if let Some(Value::Object(md)) = meta.get(&s.id) {
                    let entry = per_stage.entry(s.kind.clone()).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(e) = entry {
                        e.extend(md.clone());
                    }
                }
            }
            if !per_stage.is_empty() {
                metadata.insert(p.name.clone(), per_stage);
            }
        }
    }
    monitor::BuildSummary {
        manifest: m,
        success: report.success,
        sources: report.sources.clone(),
        pipeline_results: report.pipeline_results.clone(),
        metadata,
        failed_source: report.failed_source.clone(),
        failed_stage: report.failed_stage.clone(),
    }
}
