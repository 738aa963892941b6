//! The stage API of osbuild-rs: what a stage stands on, and all it may depend on.
//!
//! A stage runs inside the build sandbox: the osbuild-rs binary is re-executed there as
//! `osbuild-rs __stage <name>`, reads upstream's arguments document from
//! `/run/osbuild/api/arguments`, changes the tree at `/run/osbuild/tree` and may write a
//! metadata document to `/run/osbuild/meta`. A stage is a type implementing [`Stage`]: its
//! upstream name, its capabilities and its typed options are written there once, and
//! [`entry`] turns it into the registry's [`StageInfo`].
//!
//! What a stage may use: [`StageArgs`] (its tree, inputs, devices, mounts, metadata), the
//! confined path helpers of [`util`] (built on [`osbuild_sys::Root`], `openat2` with
//! `RESOLVE_IN_ROOT`), one tool runner ([`tool`]), one chroot ([`chroot`]) and the typed
//! [`StageError`]. Mount and loop-device primitives come from `osbuild-sys`, re-exported in
//! [`sys`]; a stage never calls `mount(2)` itself.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub mod canonical_json;
pub mod chroot;
pub mod ostree_ref;
pub mod pyrepr;
pub mod testing;
pub mod tool;
pub mod util;

pub use osbuild_sys::error_chain;

/// The system primitives a stage may need (loop devices and mounts for the v1 assemblers,
/// which attach their own devices; the confinement root).
pub mod sys {
    pub use osbuild_sys::{
        mount_dev_tmpfs, mount_fs, sync_fs, unmount, BindFlags, LoopDevice, LoopOptions, MountGuard, PathError, Root,
        Special, SysError,
    };
}

/// The upstream osbuild release whose behaviour and interfaces we follow.
pub const UPSTREAM_VERSION: &str = "191";

/// Where the sandbox puts the arguments document.
pub const ARGUMENTS_PATH: &str = "/run/osbuild/api/arguments";
/// Where the sandbox expects the stage's metadata document.
pub const META_PATH: &str = "/run/osbuild/meta";

/// The arguments document upstream osbuild hands to a stage (`osbuild/api.py`).
#[derive(Debug, Clone, Deserialize)]
pub struct StageArgs {
    /// The tree being built, `/run/osbuild/tree` inside the sandbox.
    pub tree: PathBuf,
    #[serde(default)]
    pub options: Value,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub devices: Map<String, Value>,
    #[serde(default)]
    pub mounts: Map<String, Value>,
    #[serde(default)]
    pub meta: Map<String, Value>,
    #[serde(default)]
    pub paths: Map<String, Value>,
}

impl StageArgs {
    /// The stage's options, parsed into its typed `Options`.
    pub fn parse_options<T: serde::de::DeserializeOwned>(&self, stage: &'static str) -> Result<T, StageError> {
        let options = if self.options.is_null() { Value::Object(Map::new()) } else { self.options.clone() };
        serde_json::from_value(options).map_err(|source| StageError::Options { stage, source })
    }

    /// The pipeline's `source-epoch` in seconds: the stage's `meta` (as the engine writes it)
    /// or else `SOURCE_DATE_EPOCH` in the environment.
    pub fn source_epoch(&self) -> Option<i64> {
        match self.meta.get("source-epoch") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse().ok()),
        }
    }

    /// The host path of input `name` (its `path` field).
    pub fn input_path(&self, name: &str) -> Result<PathBuf, StageError> {
        self.inputs
            .get(name)
            .and_then(|i| i.get("path"))
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| StageError::missing("input", name))
    }

    /// The directory of files input `name` and its files (`data.files`: file name -> metadata),
    /// each name checked to be a plain file name in that directory.
    pub fn input_files(&self, name: &str) -> Result<(PathBuf, &Map<String, Value>), StageError> {
        let base = self.input_path(name)?;
        let files = self
            .inputs
            .get(name)
            .and_then(|p| p.pointer("/data/files"))
            .and_then(Value::as_object)
            .ok_or_else(|| StageError::BadInput { name: name.to_owned(), problem: "lists no files".into() })?;
        if let Some(bad) = files.keys().find(|f| f.is_empty() || f.contains('/') || *f == "." || *f == "..") {
            return Err(StageError::BadInput {
                name: name.to_owned(),
                problem: format!("has a bad file name '{bad}'"),
            });
        }
        Ok((base, files))
    }

    /// The host path of the one file input `name` holds (upstream's stages take `data.files`'
    /// only key and join it to the input's path).
    pub fn single_input_file(&self, name: &str) -> Result<PathBuf, StageError> {
        let (base, files) = self.input_files(name)?;
        match files.keys().collect::<Vec<_>>()[..] {
            [file] => Ok(base.join(file)),
            _ => Err(StageError::BadInput { name: name.to_owned(), problem: "must hold exactly one file".into() }),
        }
    }

    /// The path of device `name`'s node (upstream: `paths.devices` joined with the device's
    /// `path`, e.g. `/dev/loop3`).
    pub fn device_path(&self, name: &str) -> Result<PathBuf, StageError> {
        let dev = self
            .devices
            .get(name)
            .and_then(|d| d.get("path"))
            .and_then(Value::as_str)
            .ok_or_else(|| StageError::missing("device", name))?;
        let root = self.paths.get("devices").and_then(Value::as_str).unwrap_or("/dev");
        Ok(Path::new(root).join(dev))
    }

    /// The host path of mount `name`, or the mounts directory when `name` is empty.
    pub fn mount_path(&self, name: &str) -> Result<PathBuf, StageError> {
        let found = if name.is_empty() {
            self.paths.get("mounts").and_then(Value::as_str)
        } else {
            self.mounts.get(name).and_then(|m| m.get("path")).and_then(Value::as_str)
        };
        found.map(PathBuf::from).ok_or_else(|| StageError::missing("mount", name))
    }
}

/// Everything that can make a stage fail. Messages are lowercase and name the thing that
/// failed; the cause is kept as `source` so the whole chain can be printed on one line.
///
/// Which variant: [`StageError::Invalid`] only for option values or combinations the schema
/// cannot refuse and for tree content the stage cannot work with; [`StageError::Io`] for a
/// failing file operation (with the path); the `Tool*` variants for build-root tools (see
/// [`tool`]); [`StageError::Missing`] / [`StageError::BadInput`] for an input, device or
/// mount the arguments do not hold as the stage needs it; [`StageError::Step`] to say which
/// part of the stage a cause broke.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot read arguments file {path}")]
    ReadArguments {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid arguments file {path}")]
    ParseArguments {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid options")]
    Options {
        stage: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown {kind} '{name}'")]
    Missing { kind: &'static str, name: String },
    #[error("input '{name}' {problem}")]
    BadInput { name: String, problem: String },
    #[error("too many levels of symbolic links resolving {path} in {root}")]
    SymlinkLoop { root: PathBuf, path: String },
    #[error("{tool} not found {place}, but {stage} needs it")]
    ToolMissing { tool: String, stage: &'static str, place: &'static str },
    #[error("cannot run {tool}")]
    ToolSpawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    /// `stderr` is what the tool said: the tail of its stderr, or the stage's reading of it,
    /// prefixed with `: ` (empty if nothing).
    #[error("`{argv}` failed ({status}){stderr}")]
    ToolFailed { argv: String, status: std::process::ExitStatus, stderr: String },
    /// A tool that succeeded but left something other than it should have.
    #[error("{tool} {what}")]
    ToolUnexpected { tool: String, what: String },
    #[error("cannot parse the output of `{argv}`")]
    ToolOutput {
        argv: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}")]
    Step {
        what: String,
        #[source]
        source: Box<StageError>,
    },
    #[error(transparent)]
    Sys(#[from] osbuild_sys::SysError),
    #[error(transparent)]
    Path(#[from] osbuild_sys::PathError),
    #[error(transparent)]
    Ref(#[from] ostree_ref::RefError),
    #[error("cannot write metadata {path}")]
    WriteMeta {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StageError {
    /// A closure making [`StageError::Io`] of an `std::io::Error`, for `map_err`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StageError {
        let path = path.into();
        move |source| StageError::Io { op, path, source }
    }

    /// This error as the cause of a failed `what` ("installing the packages failed").
    pub fn context(self, what: impl Into<String>) -> StageError {
        StageError::Step { what: what.into(), source: Box::new(self) }
    }

    fn missing(kind: &'static str, name: &str) -> StageError {
        StageError::Missing { kind, name: name.to_owned() }
    }
}

/// What a stage returns on success: an optional metadata document.
pub type StageResult = Result<Option<Value>, StageError>;

/// One built-in stage.
pub struct StageInfo {
    /// Upstream's name, e.g. `org.osbuild.mkdir`.
    pub name: &'static str,
    /// Capabilities the sandbox must grant on top of the default set.
    pub capabilities: &'static [&'static str],
    pub run: fn(&StageArgs) -> StageResult,
    /// Parse options into the stage's typed `Options` without running it (see
    /// [`StageInfo::check_options`]).
    pub parse: fn(&Value) -> Result<(), serde_json::Error>,
}

impl StageInfo {
    /// Whether `options` (as in a manifest; `null` counts as `{}`) fit this stage's typed
    /// options. Complements the JSON schema check, which the engine does on the manifest.
    pub fn check_options(&self, options: &Value) -> Result<(), StageError> {
        let options = if options.is_null() { &Value::Object(Map::new()) } else { options };
        (self.parse)(options).map_err(|source| StageError::Options { stage: self.name, source })
    }
}

pub fn parse_as<T: serde::de::DeserializeOwned>(options: &Value) -> Result<(), serde_json::Error> {
    T::deserialize(options).map(drop)
}

impl std::fmt::Debug for StageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageInfo").field("name", &self.name).field("capabilities", &self.capabilities).finish()
    }
}

/// A stage: upstream's name, the capabilities it needs beyond the default set, its typed
/// options and what it does, each written once. The registry lists stages as
/// `entry::<module::Type>()`.
pub trait Stage {
    /// Upstream's name, e.g. `org.osbuild.mkdir`.
    const NAME: &'static str;
    /// Capabilities the sandbox must grant on top of the default set; the schema's
    /// `x-capabilities` repeats them (a test checks that both agree).
    const CAPABILITIES: &'static [&'static str] = &[];
    /// The options, checked against the manifest (unknown fields refused where upstream's
    /// schema refuses them).
    type Options: serde::de::DeserializeOwned;
    /// Change the tree (`args.tree`) as the options say; metadata for the result, if any.
    fn run(args: &StageArgs, options: Self::Options) -> StageResult;

    /// Parse the options from `args`, then [`Stage::run`]: what the registry calls.
    fn execute(args: &StageArgs) -> StageResult
    where
        Self: Sized,
    {
        let options = args.parse_options::<Self::Options>(Self::NAME)?;
        Self::run(args, options)
    }
}

/// The registry entry of stage `S`.
pub const fn entry<S: Stage>() -> StageInfo {
    StageInfo { name: S::NAME, capabilities: S::CAPABILITIES, run: S::execute, parse: parse_as::<S::Options> }
}

/// Run `stage` with the arguments document at `args_path`, writing its metadata (if any) to
/// `meta_path`. Returns the process exit code; errors are printed to stderr as one line,
/// `<stage name>: <error chain>`.
pub fn run_main(stage: &StageInfo, args_path: &Path, meta_path: &Path) -> i32 {
    match run_info(stage, args_path, meta_path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}: {}", stage.name, error_chain(&e));
            1
        }
    }
}

/// Run stage `S` as upstream runs a stage executable: arguments from
/// `/run/osbuild/api/arguments`, metadata to `/run/osbuild/meta`; the exit code to return.
pub fn stage_main<S: Stage>() -> i32 {
    run_main(&entry::<S>(), Path::new(ARGUMENTS_PATH), Path::new(META_PATH))
}

/// Read the arguments, run the stage, write its metadata.
pub fn run_info(stage: &StageInfo, args_path: &Path, meta_path: &Path) -> Result<(), StageError> {
    let text = std::fs::read_to_string(args_path)
        .map_err(|source| StageError::ReadArguments { path: args_path.to_owned(), source })?;
    let args: StageArgs = serde_json::from_str(&text)
        .map_err(|source| StageError::ParseArguments { path: args_path.to_owned(), source })?;
    if let Some(meta) = (stage.run)(&args)? {
        let text = serde_json::to_vec(&meta).expect("metadata serialises");
        std::fs::write(meta_path, text)
            .map_err(|source| StageError::WriteMeta { path: meta_path.to_owned(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_meta(_: &StageArgs) -> StageResult {
        Ok(Some(json!({"packages": [{"name": "x"}]})))
    }

    #[test]
    fn metadata_is_written_and_arguments_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let info = StageInfo { name: "org.osbuild.test", capabilities: &[], run: with_meta, parse: parse_as::<Value> };
        let args = t.path().join("arguments");
        let meta = t.path().join("meta");
        std::fs::write(&args, r#"{"tree": "/run/osbuild/tree", "api": {"extra": "ignored"}}"#).unwrap();
        run_info(&info, &args, &meta).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(written, json!({"packages": [{"name": "x"}]}));

        std::fs::write(&args, r#"{"options": {}}"#).unwrap();
        let e = error_chain(&run_info(&info, &args, &meta).unwrap_err());
        assert!(e.starts_with(&format!("invalid arguments file {}: missing field `tree`", args.display())), "{e}");
        let e = error_chain(&run_info(&info, &t.path().join("nope"), &meta).unwrap_err());
        assert!(e.starts_with("cannot read arguments file"), "{e}");
    }

    struct Paths;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PathsOptions {
        #[serde(default)]
        paths: Vec<String>,
    }

    impl Stage for Paths {
        const NAME: &'static str = "org.osbuild.test.paths";
        const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
        type Options = PathsOptions;
        fn run(_: &StageArgs, options: PathsOptions) -> StageResult {
            Ok(Some(json!({ "n": options.paths.len() })))
        }
    }

    #[test]
    fn a_typed_stage_becomes_a_registry_entry() {
        let info = entry::<Paths>();
        assert_eq!((info.name, info.capabilities), ("org.osbuild.test.paths", &["CAP_MAC_ADMIN"][..]));
        assert!(info.check_options(&Value::Null).is_ok());
        let e = info.check_options(&json!({"paths": [1]})).unwrap_err();
        assert!(error_chain(&e).starts_with("invalid options: invalid type: number, expected a string"), "{e:?}");
        let t = tempfile::tempdir().unwrap();
        let a = testing::args(t.path(), json!({"paths": ["a", "b"]}));
        assert_eq!((info.run)(&a).unwrap(), Some(json!({"n": 2})));
        let a = testing::args(t.path(), json!({"other": 1}));
        assert!(error_chain(&(info.run)(&a).unwrap_err()).contains("unknown field `other`"));
    }
}
