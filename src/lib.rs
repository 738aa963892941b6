//! osbuild-rs: a drop-in compatible reimplementation of the osbuild image assembler.
//!
//! Layers, pure first: `manifest` (load, ids, describe) and `schema` (validation) do no
//! I/O; `engine` plans and runs builds with `store`, `sources`, `sandbox` and `monitor`;
//! `stages` holds the stage implementations that run inside the sandbox.

pub mod cli;
pub mod depsolve_apt;
pub mod engine;
pub mod installer;
pub mod inventory;
pub mod manifest;
pub mod monitor;
pub mod registry;
pub mod runner;
pub mod sandbox;
pub mod schema;
pub mod sources;
pub mod store;

pub use osbuild_stage_api::{canonical_json, UPSTREAM_VERSION};
/// The built-in stages (the `osbuild-stages` crate).
pub use osbuild_stages as stages;
