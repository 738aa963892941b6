//! osbuild-rs: a drop-in compatible reimplementation of the osbuild image assembler.
//!
//! Layers, pure first: `manifest` (load, ids, describe) and `schema` (validation) do no
//! I/O; `engine` plans and runs builds with `store`, `sources`, `sandbox` and `monitor`;
//! `stages` holds the stage implementations that run inside the sandbox.

pub mod canonical_json;
pub mod cli;
pub mod depsolve_apt;
pub mod engine;
pub mod inventory;
pub mod manifest;
pub mod monitor;
pub mod runner;
pub mod sandbox;
pub mod schema;
pub mod sources;
#[path = "../stages/mod.rs"]
pub mod stages;
pub mod store;

/// The upstream osbuild release whose behaviour and interfaces we follow.
pub const UPSTREAM_VERSION: &str = "191";
