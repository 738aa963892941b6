//! Devices: block devices attached on the host for one stage (upstream's device services),
//! exposed in the sandbox's `/dev`. One type per upstream device module implements
//! [`DeviceService`] with typed options; [`REGISTRY`] lists them.

mod loopback;

use crate::engine::host_tool::HostToolError;
use crate::manifest::Device;
use crate::registry::{Entry, Registry};
use osbuild_sys::{PathError, Root, SysError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;

pub use loopback::{byte_range, ByteRange};

/// What attaching a device sees.
pub struct Context<'a> {
    /// The tree of the pipeline being built; image files are found in it.
    pub tree: &'a Root,
}

/// One upstream device module.
pub trait DeviceService {
    const NAME: &'static str;
    type Options: DeserializeOwned;
    fn open(cx: &Context<'_>, device: &Device, options: Self::Options) -> Result<Box<dyn OpenDevice>, DeviceError>;
}

/// An attached device, until [`OpenDevice::close`] (or drop, silently).
pub trait OpenDevice {
    /// The device node on the host, e.g. `/dev/loop3`.
    fn node(&self) -> PathBuf;
    /// Upstream's reply for the stage's arguments (`path`, `node`).
    fn args(&self) -> Value;
    /// A block device for partition `n` (1-based) of this device.
    fn partition(&mut self, n: u64) -> Result<PathBuf, DeviceError>;
    /// Flush what was written and detach; a failed flush is an error (lost writes).
    fn close(self: Box<Self>) -> Result<(), DeviceError>;
}

type OpenFn = fn(&Context<'_>, &Device) -> Result<Box<dyn OpenDevice>, DeviceError>;

const fn entry<D: DeviceService>() -> Entry<OpenFn> {
    Entry { name: D::NAME, run: open_typed::<D> }
}

fn open_typed<D: DeviceService>(cx: &Context<'_>, device: &Device) -> Result<Box<dyn OpenDevice>, DeviceError> {
    let options = serde_json::from_value(device.options.clone()).map_err(DeviceError::Options)?;
    D::open(cx, device, options)
}

/// Every device module the engine can attach.
pub static REGISTRY: Registry<OpenFn> = Registry(&[entry::<loopback::Loopback>()]);

pub fn is_supported(kind: &str) -> bool {
    REGISTRY.is_supported(kind)
}

pub fn open(cx: &Context<'_>, device: &Device) -> Result<Box<dyn OpenDevice>, DeviceError> {
    let open = REGISTRY.find(&device.kind).ok_or_else(|| DeviceError::Unsupported { kind: device.kind.clone() })?;
    open(cx, device)
}

/// Why a device could not be attached, flushed or split into partitions.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device type '{kind}' is not implemented")]
    Unsupported { kind: String },
    #[error("invalid options")]
    Options(#[source] serde_json::Error),
    /// A value the manifest gives that cannot be used; `field` is its path below the device.
    #[error("{message}")]
    Invalid { field: &'static [&'static str], message: String },
    #[error("the image file")]
    Image(#[source] PathError),
    #[error("partition {n} {message}")]
    Partition { n: u64, message: String },
    #[error("cannot read the partition table")]
    PartitionTable(#[source] HostToolError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl DeviceError {
    /// Where below the device's manifest entry the problem is, when it is one value.
    pub fn field(&self) -> &'static [&'static str] {
        match self {
            DeviceError::Invalid { field, .. } => field,
            DeviceError::Options(_) => &["options"],
            DeviceError::Image(_) => &["options", "filename"],
            _ => &[],
        }
    }
}
