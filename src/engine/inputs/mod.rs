//! Inputs: what a stage reads besides its tree, prepared on the host and bound read-only
//! into the sandbox at `/run/osbuild/inputs/<name>` (upstream's input services).
//!
//! One type per upstream input module implements [`InputService`] with the typed options of
//! one reference; [`REGISTRY`] lists them, and is all that `is_supported`, the engine's
//! up-front check and the build consult. Everything an input takes from a tree (a file of
//! another pipeline, its `compose.json`, its ostree repository) is reached through
//! [`osbuild_sys::Root`], so a symlink in that tree resolves inside it, never on the host.

mod files;
mod noop;
mod ostree;
mod ostree_checkout;
mod tree;

use crate::engine::host_tool::HostToolError;
use crate::manifest::Input;
use crate::registry::{Entry, Registry};
use crate::store::{ObjectStore, StoreError};
use osbuild_stage_api::ostree_ref::RefError;
use osbuild_sys::PathError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What an input hands the stage: the host directory bound at its place in the sandbox, and
/// upstream's `data` for the arguments document.
pub struct Prepared {
    pub host_path: PathBuf,
    pub data: Option<Value>,
}

/// What preparing one input sees.
pub struct Context<'a> {
    pub store: &'a ObjectStore,
    pub input: &'a Input,
    /// A fresh, empty host directory the input may fill.
    pub target: &'a Path,
}

impl Context<'_> {
    fn origin_is_pipeline(&self) -> bool {
        self.input.origin == crate::manifest::ORIGIN_PIPELINE
    }

    /// The committed tree of pipeline `id`.
    fn pipeline_tree(&self, id: &str) -> Result<PathBuf, InputError> {
        let dir = self.store.get(id).ok_or_else(|| InputError::NotBuilt { pipeline: id.to_owned() })?;
        Ok(dir.join("tree"))
    }
}

/// One upstream input module.
pub trait InputService {
    /// The module's upstream name, e.g. `org.osbuild.files`.
    const NAME: &'static str;
    /// The options one reference may carry.
    type RefOptions: DeserializeOwned;
    /// Prepare the input from its references, in manifest order.
    fn prepare(cx: &Context<'_>, refs: Vec<(String, Self::RefOptions)>) -> Result<Prepared, InputError>;
}

/// Options of a reference that takes none.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

type PrepareFn = fn(&Context<'_>) -> Result<Prepared, InputError>;

const fn entry<I: InputService>() -> Entry<PrepareFn> {
    Entry { name: I::NAME, run: prepare_typed::<I> }
}

fn prepare_typed<I: InputService>(cx: &Context<'_>) -> Result<Prepared, InputError> {
    let mut refs = Vec::with_capacity(cx.input.refs.len());
    for (reference, options) in &cx.input.refs {
        let typed = serde_json::from_value(options.clone())
            .map_err(|source| InputError::Options { reference: reference.clone(), source })?;
        refs.push((reference.clone(), typed));
    }
    I::prepare(cx, refs)
}

/// Every input module the engine can prepare.
pub static REGISTRY: Registry<PrepareFn> = Registry(&[
    entry::<files::Files>(),
    entry::<noop::Noop>(),
    entry::<ostree::Ostree>(),
    entry::<ostree_checkout::OstreeCheckout>(),
    entry::<tree::Tree>(),
]);

pub fn is_supported(kind: &str) -> bool {
    REGISTRY.is_supported(kind)
}

/// Prepare `input` into the fresh host directory `target` (created here).
pub fn prepare(store: &ObjectStore, input: &Input, target: &Path) -> Result<Prepared, InputError> {
    let prepare = REGISTRY.find(&input.kind).ok_or_else(|| InputError::Unsupported { kind: input.kind.clone() })?;
    std::fs::create_dir_all(target).map_err(|source| InputError::Io { path: target.to_owned(), source })?;
    prepare(&Context { store, input, target })
}

/// Why an input could not be prepared; the engine adds where in the manifest it is.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("input type '{kind}' is not implemented")]
    Unsupported { kind: String },
    #[error("options of reference '{reference}'")]
    Options {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("reference '{reference}' is not {expected}")]
    Reference { reference: String, expected: &'static str },
    #[error("source item {checksum} was not fetched")]
    NotFetched { checksum: String },
    #[error("pipeline {pipeline} has not been built")]
    NotBuilt { pipeline: String },
    #[error("reference '{reference}': {message}")]
    File { reference: String, message: &'static str },
    #[error("pipeline {pipeline}")]
    Tree {
        pipeline: String,
        #[source]
        source: PathError,
    },
    #[error("cannot create {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot put {file} into the input")]
    Copy {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("compose.json of pipeline {pipeline} {problem}")]
    Compose { pipeline: String, problem: String },
    #[error(
        "the ostree repository of pipeline {pipeline} holds a symlink at {path}, which the host's ostree would follow"
    )]
    RepoLink { pipeline: String, path: String },
    #[error("commit {commit} is not in the ostree repository {}", repo.display())]
    NoCommit { commit: String, repo: PathBuf },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error(transparent)]
    Tool(#[from] HostToolError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
