//! The manifest model shared by both formats: pipelines of stages with inputs, devices
//! and mounts, every element carrying the id upstream osbuild computes for it.
//!
//! Loading is pure (no I/O): `load` takes parsed JSON, `describe` gives back upstream's
//! `--inspect` view. Validation against schemas happens before loading (see `schema`).

mod describe;
pub mod path;
mod v1;
mod v2;

pub use describe::describe;
pub use path::{JsonPath, Seg};
pub use v2::{check_source_epoch, MAX_SOURCE_EPOCH};

use crate::canonical_json::IdHasher;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Invalid { path: JsonPath, message: String },
    #[error("unsupported manifest version {0}: osbuild-rs reads versions \"1\" and \"2\"")]
    UnknownVersion(String),
}

impl LoadError {
    pub fn at(path: &JsonPath, message: impl Into<String>) -> Self {
        LoadError::Invalid { path: path.clone(), message: message.into() }
    }

    pub fn path(&self) -> JsonPath {
        match self {
            LoadError::Invalid { path, .. } => path.clone(),
            LoadError::UnknownVersion(_) => JsonPath::root().key("version"),
        }
    }

    pub fn message(&self) -> String {
        match self {
            LoadError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub format: Format,
    pub pipelines: Vec<Pipeline>,
    pub sources: Vec<Source>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// Module type, e.g. `org.osbuild.curl` (v1's `org.osbuild.files` is mapped to it).
    pub kind: String,
    /// Items by checksum (or commit), as the manifest gives them.
    pub items: Value,
    /// Source options; for v1 the whole source description, as upstream keeps it.
    pub options: Value,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// Id of the build pipeline (its last stage's id); `None` builds on the host.
    pub build: Option<String>,
    /// The runner this pipeline declares for pipelines that use it as their build root.
    pub runner: Option<String>,
    pub source_epoch: Option<Value>,
    pub stages: Vec<Stage>,
    /// Where this pipeline sits in the manifest, for error messages.
    pub path: JsonPath,
}

impl Pipeline {
    /// Upstream's pipeline id: the id of its last stage, `None` without stages.
    pub fn id(&self) -> Option<&str> {
        self.stages.last().map(|s| s.id.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub kind: String,
    pub options: Value,
    pub build: Option<String>,
    pub base: Option<String>,
    pub source_epoch: Option<Value>,
    pub inputs: Vec<(String, Input)>,
    pub devices: Vec<(String, Device)>,
    pub mounts: Vec<Mount>,
    pub id: String,
    pub path: JsonPath,
    /// A v1 `assembler`: runs an assembler module (same name space as stages, other modules).
    pub assembler: bool,
}

impl Stage {
    fn new(pipeline: &Pipeline, kind: &str, options: Value, path: JsonPath) -> Self {
        Stage {
            kind: kind.to_owned(),
            options: if truthy(&options) { options } else { Value::Object(Map::new()) },
            build: pipeline.build.clone(),
            base: pipeline.id().map(str::to_owned),
            source_epoch: pipeline.source_epoch.clone(),
            inputs: Vec::new(),
            devices: Vec::new(),
            mounts: Vec::new(),
            id: String::new(),
            path,
            assembler: false,
        }
    }

    /// Recompute the id from everything upstream hashes (devices only through mounts).
    fn seal(&mut self) {
        let mut h = IdHasher::new();
        h.update_str(&self.kind);
        h.update(&opt_str(&self.build));
        h.update(&opt_str(&self.base));
        h.update(&self.options);
        if let Some(epoch) = &self.source_epoch {
            h.update(epoch);
        }
        for (_, input) in self.inputs.iter_mut() {
            input.seal();
        }
        if !self.inputs.is_empty() {
            let ids: Map<String, Value> =
                self.inputs.iter().map(|(n, i)| (n.clone(), Value::String(i.id.clone()))).collect();
            h.update(&Value::Object(ids));
        }
        if !self.mounts.is_empty() {
            let ids: Vec<Value> = self.mounts.iter().map(|m| Value::String(m.id.clone())).collect();
            h.update(&Value::Array(ids));
        }
        self.id = h.finish();
    }

    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }

    /// Ids of pipelines whose trees this stage reads through inputs.
    pub fn pipeline_dependencies(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .filter(|(_, i)| i.origin == ORIGIN_PIPELINE)
            .flat_map(|(_, i)| i.refs.keys().map(String::as_str))
    }
}

pub const ORIGIN_PIPELINE: &str = "org.osbuild.pipeline";
pub const ORIGIN_SOURCE: &str = "org.osbuild.source";

#[derive(Debug, Clone)]
pub struct Input {
    pub kind: String,
    pub origin: String,
    pub options: Value,
    /// Reference (source checksum or resolved pipeline id) to its options.
    pub refs: Map<String, Value>,
    pub id: String,
}

impl Input {
    fn new(kind: &str, origin: &str, options: Value) -> Self {
        let mut i = Input {
            kind: kind.to_owned(),
            origin: origin.to_owned(),
            options: or_empty(options),
            refs: Map::new(),
            id: String::new(),
        };
        i.seal();
        i
    }

    /// Add a reference; call `seal` once all are added (sealing per reference, as
    /// upstream does, is quadratic in the number of packages).
    fn add_reference(&mut self, reference: String, options: Value) {
        self.refs.insert(reference, or_empty(options));
    }

    fn seal(&mut self) {
        // The input's name is deliberately not part of its id (upstream does the same).
        let mut h = IdHasher::new();
        h.update_str(&self.kind).update_str(&self.origin);
        h.update_object(&self.refs);
        h.update(&self.options);
        self.id = h.finish();
    }
}

#[derive(Debug, Clone)]
pub struct Device {
    pub kind: String,
    pub parent: Option<String>,
    pub options: Value,
    pub id: String,
}

impl Device {
    fn new(kind: &str, parent: Option<(&str, &Device)>, options: Value) -> Self {
        let options = or_empty(options);
        let mut h = IdHasher::new();
        h.update_str(kind);
        if let Some((_, p)) = parent {
            h.update_str(&p.id);
        }
        h.update(&options);
        Device { kind: kind.to_owned(), parent: parent.map(|(n, _)| n.to_owned()), options, id: h.finish() }
    }
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub name: String,
    pub kind: String,
    /// Name of the stage device this mount reads from.
    pub source: Option<String>,
    pub target: Option<Value>,
    pub partition: Option<Value>,
    pub options: Value,
    pub id: String,
}

impl Mount {
    fn new(
        name: &str,
        kind: &str,
        device: Option<(&str, &Device)>,
        partition: Option<Value>,
        target: Option<Value>,
        options: Value,
    ) -> Self {
        let mut h = IdHasher::new();
        h.update_str(kind);
        if let Some((_, d)) = device {
            h.update_str(&d.id);
        }
        if let Some(p) = partition.as_ref().filter(|p| truthy(p)) {
            h.update(p);
        }
        if let Some(t) = target.as_ref().filter(|t| truthy(t)) {
            h.update(t);
        }
        h.update(&options);
        Mount {
            name: name.to_owned(),
            kind: kind.to_owned(),
            source: device.map(|(n, _)| n.to_owned()),
            target,
            partition,
            options,
            id: h.finish(),
        }
    }
}

impl Manifest {
    fn empty(format: Format) -> Self {
        Manifest { format, pipelines: Vec::new(), sources: Vec::new(), metadata: Map::new() }
    }

    /// Upstream's `manifest[name_or_id]`: a pipeline by name first, then by id.
    pub fn get(&self, name_or_id: &str) -> Option<&Pipeline> {
        self.pipelines
            .iter()
            .find(|p| p.name == name_or_id)
            .or_else(|| self.pipelines.iter().find(|p| p.id() == Some(name_or_id)))
    }

    pub fn by_name(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.pipelines.iter().flat_map(|p| p.stages.iter())
    }
}

/// Detect the format from `version` (absent means v1, as upstream) and load.
pub fn load(desc: &Value) -> Result<Manifest, LoadError> {
    let root = JsonPath::root();
    let obj = desc.as_object().ok_or_else(|| LoadError::at(&root, "a manifest must be a JSON object"))?;
    match obj.get("version") {
        None => v1::load(obj),
        Some(Value::String(v)) if v == "1" => v1::load(obj),
        Some(Value::String(v)) if v == "2" => v2::load(obj),
        Some(other) => Err(LoadError::UnknownVersion(other.to_string())),
    }
}

pub fn detect_format(desc: &Value) -> Result<Format, LoadError> {
    match desc.get("version") {
        None => Ok(Format::V1),
        Some(Value::String(v)) if v == "1" => Ok(Format::V1),
        Some(Value::String(v)) if v == "2" => Ok(Format::V2),
        Some(other) => Err(LoadError::UnknownVersion(other.to_string())),
    }
}

pub use osbuild_stage_api::util::truthy;

fn or_empty(v: Value) -> Value {
    if truthy(&v) {
        v
    } else {
        Value::Object(Map::new())
    }
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// Typed access to manifest JSON with errors naming the path.
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: JsonPath,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, path: JsonPath, what: &str) -> Result<Self, LoadError> {
        match v {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(LoadError::at(&path, format!("{what} must be an object"))),
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str, LoadError> {
        match self.map.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(LoadError::at(&self.path.key(key), "must be a string")),
            None => Err(LoadError::at(&self.path, format!("'{key}' is a required property"))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, LoadError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(LoadError::at(&self.path.key(key), "must be a string")),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a [Value], LoadError> {
        match self.map.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(LoadError::at(&self.path.key(key), "must be an array")),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, LoadError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(LoadError::at(&self.path.key(key), "must be an object")),
        }
    }

    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }
}
