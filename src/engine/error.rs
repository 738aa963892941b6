//! What can stop a build outside a stage's own failure. Each variant names the place in the
//! manifest or the host path, and keeps its cause, so the CLI can print the chain down to the
//! errno (`{path}: cannot mount: …: No such device`).

use super::devices::DeviceError;
use super::export::ExportError;
use super::inputs::InputError;
use super::mounts::MountError;
use crate::manifest::JsonPath;
use crate::sandbox::SandboxError;
use crate::store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {what} type '{name}' is not implemented by osbuild-rs (looked in the built-in modules and in {libdir}/{dir}/)")]
    Unsupported { path: String, what: &'static str, name: String, libdir: String, dir: &'static str },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("{path}: cannot prepare the input")]
    Input {
        path: JsonPath,
        #[source]
        source: Box<InputError>,
    },
    #[error("{path}: cannot attach the device")]
    Device {
        path: JsonPath,
        #[source]
        source: Box<DeviceError>,
    },
    #[error("{path}: cannot mount")]
    Mount {
        path: JsonPath,
        #[source]
        source: Box<MountError>,
    },
    #[error("{path}: {message}")]
    Invalid { path: JsonPath, message: String },
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot export '{name}' to {}", output.display())]
    Export {
        name: String,
        output: PathBuf,
        #[source]
        source: Box<ExportError>,
    },
}
