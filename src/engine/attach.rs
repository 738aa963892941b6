//! A stage's devices and mounts: attached on the host before the stage runs, handed to it as
//! upstream's `devices` / `mounts` arguments, and released afterwards on every path: mounts
//! synced (where they hold a file system) and detached in reverse order, then devices flushed
//! and detached. [`Attached::close`] reports the first failure, which fails the stage (a sync
//! that fails means lost writes); dropping does the same silently.
//!
//! Everything happens inside osbuild-rs's private mount namespace, and loop devices are
//! autoclear, so even a SIGKILL leaves no mount and no attached loop device behind.

use super::devices::{self, DeviceError, OpenDevice};
use super::mounts;
use super::EngineError;
use crate::manifest::{JsonPath, Stage};
use osbuild_sys::{FdMount, Root, SysError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Where devices and mounts appear inside the sandbox (upstream's `paths`).
pub const DEVICES_MAPPED: &str = "/dev";
pub const MOUNTS_MAPPED: &str = crate::sandbox::MOUNTS_DIR;

/// The devices and mounts of one stage, live until closed or dropped.
#[derive(Default)]
pub struct Attached {
    devices: Vec<(String, Box<dyn OpenDevice>)>,
    /// In the order they were made; `true`: sync the file system before detaching.
    mounts: Vec<(FdMount, bool)>,
    pub device_args: Map<String, Value>,
    pub mount_args: Map<String, Value>,
}

/// Why releasing a stage's devices and mounts failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("device '{name}'")]
    Device {
        name: String,
        #[source]
        source: Box<DeviceError>,
    },
}

/// `path` extended by the keys of `field`.
fn at(path: JsonPath, field: &[&str]) -> JsonPath {
    field.iter().fold(path, |p, k| p.key(*k))
}

impl Attached {
    /// Attach every device, then mount every mount, of `stage` whose tree is `tree`; mount points
    /// go under `mounts_root` (bound into the sandbox at [`MOUNTS_MAPPED`]).
    pub fn open(stage: &Stage, tree: &Path, mounts_root: &Path) -> Result<Attached, EngineError> {
        let mut att = Attached::default();
        let tree_root = Root::open(tree).map_err(|e| EngineError::Io { path: tree.to_owned(), source: e.source })?;
        for (name, dev) in &stage.devices {
            let cx = devices::Context { tree: &tree_root };
            let opened = devices::open(&cx, dev).map_err(|source| EngineError::Device {
                path: at(stage.path.key("devices").key(name), source.field()),
                source: Box::new(source),
            })?;
            att.device_args.insert(name.clone(), opened.args());
            att.devices.push((name.clone(), opened));
        }
        for m in &stage.mounts {
            let mut cx = mounts::Context { tree, mounts_root, devices: &mut att.devices };
            let made = mounts::mount(&mut cx, m).map_err(|source| EngineError::Mount {
                path: at(stage.path.key("mounts").key(&m.name), source.field()),
                source: Box::new(source),
            })?;
            att.mount_args.insert(m.name.clone(), made.args);
            att.mounts.extend(made.mounts.into_iter().map(|fm| (fm, made.sync)));
        }
        Ok(att)
    }

    /// Host device nodes the sandbox must expose.
    pub fn nodes(&self) -> Vec<PathBuf> {
        self.devices.iter().map(|(_, d)| d.node()).collect()
    }

    /// Sync, unmount and detach everything, reporting the first failure.
    pub fn close(mut self) -> Result<(), ReleaseError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), ReleaseError> {
        let mut first: Option<ReleaseError> = None;
        while let Some((m, sync)) = self.mounts.pop() {
            if sync {
                if let Err(e) = m.sync() {
                    first.get_or_insert(e.into());
                }
            }
            if let Err(e) = m.unmount() {
                first.get_or_insert(e.into());
            }
        }
        while let Some((name, d)) = self.devices.pop() {
            if let Err(source) = d.close() {
                first.get_or_insert(ReleaseError::Device { name, source: Box::new(source) });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.release();
    }
}
