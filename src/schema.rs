//! Embedded JSON schemas and manifest validation with upstream's error shape.
//!
//! Validation collects every error (not just the first), each with the JSON path of the
//! offending value, sorted and de-duplicated the way upstream osbuild does, so callers
//! that compare paths see the same thing.

use crate::manifest::{JsonPath, Seg};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/schemas.rs"));
}

#[path = "schema/messages.rs"]
pub mod messages;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModuleKind {
    Stage,
    Source,
    Input,
    Device,
    Mount,
    Assembler,
}

impl ModuleKind {
    pub const ALL: [ModuleKind; 6] = [
        ModuleKind::Stage,
        ModuleKind::Source,
        ModuleKind::Input,
        ModuleKind::Device,
        ModuleKind::Mount,
        ModuleKind::Assembler,
    ];

    /// Directory name under `schemas/` (and under upstream's `--libdir`).
    pub fn dir(self) -> &'static str {
        match self {
            ModuleKind::Stage => "stages",
            ModuleKind::Source => "sources",
            ModuleKind::Input => "inputs",
            ModuleKind::Device => "devices",
            ModuleKind::Mount => "mounts",
            ModuleKind::Assembler => "assemblers",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            ModuleKind::Stage => "stage",
            ModuleKind::Source => "source",
            ModuleKind::Input => "input",
            ModuleKind::Device => "device",
            ModuleKind::Mount => "mount",
            ModuleKind::Assembler => "assembler",
        }
    }
}

/// The raw text of an embedded schema, if osbuild-rs has one for this module.
pub fn module_schema(kind: ModuleKind, name: &str) -> Option<&'static str> {
    embedded::EMBEDDED.iter().find(|(k, n, _)| *k == kind.dir() && *n == name).map(|(_, _, s)| *s)
}

/// Names of all modules of `kind` that have a schema.
pub fn modules_with_schema(kind: ModuleKind) -> impl Iterator<Item = &'static str> {
    embedded::EMBEDDED.iter().filter(move |(k, _, _)| *k == kind.dir()).map(|(_, n, _)| *n)
}

fn manifest_schema(version: &str) -> &'static str {
    let name = if version == "2" { "v2" } else { "v1" };
    embedded::EMBEDDED
        .iter()
        .find(|(k, n, _)| *k == "manifests" && *n == name)
        .map(|(_, _, s)| *s)
        .expect("manifest schemas are embedded")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: JsonPath,
    pub message: String,
}

/// The result of validating a manifest: upstream-shaped errors plus the modules we could
/// not validate because osbuild-rs does not know them.
#[derive(Debug, Default)]
pub struct Validation {
    pub errors: Vec<ValidationError>,
    pub unknown: Vec<(ModuleKind, String, JsonPath)>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    fn add(&mut self, base: &JsonPath, errs: Vec<ValidationError>) {
        for e in errs {
            self.errors.push(ValidationError { path: base.join(&e.path), message: e.message });
        }
    }

    /// Sort by upstream's path id and drop exact duplicates, as upstream's result set does.
    fn finish(mut self) -> Self {
        let mut seen = std::collections::HashSet::new();
        self.errors.retain(|e| seen.insert((e.path.upstream_id(), e.message.clone())));
        self.errors.sort_by_key(|e| e.path.upstream_id());
        self
    }

    /// Upstream's validation-error document.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "https://osbuild.org/validation-error",
            "title": "JSON Schema validation failed",
            "success": false,
            "errors": self.errors.iter().map(|e| json!({"message": e.message, "path": e.path.to_json()})).collect::<Vec<_>>(),
        })
    }
}

/// A compiled schema and the document it was compiled from (some messages quote it).
type Compiled = std::sync::Arc<(jsonschema::Validator, Value)>;

fn compiled_with(key: &str, make: impl FnOnce() -> Value) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(key) {
        return v.clone();
    }
    let schema = make();
    // Upstream's Draft 4 validator has no format checker, so `format` is not checked.
    // Patterns are matched the way Python's `re.search` does; messages quote the original.
    let v = jsonschema::draft4::options()
        .should_validate_formats(false)
        .build(&python_patterns(&schema))
        .unwrap_or_else(|e| panic!("embedded schema {key} is not a valid JSON schema: {e}"));
    let c = std::sync::Arc::new((v, schema));
    cache.lock().unwrap().insert(key.to_owned(), c.clone());
    c
}

/// A copy of `schema` whose `pattern` regexes match like Python's: there, `$` (outside a
/// character class, unescaped) also matches before a newline that ends the text, where the
/// ECMA/Rust `$` only matches at the very end. `patternProperties` keys are left alone (they
/// are schema paths too, and upstream's are not anchored at the end).
pub fn python_patterns(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("pattern", Value::String(p)) => Value::String(python_dollar(p)),
                        _ => python_patterns(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(python_patterns).collect()),
        v => v.clone(),
    }
}

/// Rewrite each end-of-text `$` of a regex as "an optional newline, then the end".
fn python_dollar(re: &str) -> String {
    let mut out = String::with_capacity(re.len());
    let mut chars = re.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // a `]` right after `[` or `[^` is a literal member
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                for _ in 0..skip {
                    out.push(chars.next().unwrap());
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class => out.push_str("(?:\\n?$)"),
            c => out.push(c),
        }
    }
    out
}

fn compiled(key: &str, text: &'static str) -> Compiled {
    compiled_with(key, || {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("embedded schema {key} is not JSON: {e}"))
    })
}

fn errors_of(c: &Compiled, instance: &Value) -> Vec<ValidationError> {
    let (v, schema) = &**c;
    let mut out = Vec::new();
    // `additionalProperties: false` in an object schema without `properties` or
    // `patternProperties` fails each extra key on its own ("False schema", at the object);
    // upstream names them all in one error.
    let mut merged: Vec<(String, String)> = Vec::new();
    for e in v.iter_errors(instance) {
        let ptr = e.instance_path().as_str();
        let sp = e.schema_path().as_str();
        if matches!(e.kind(), jsonschema::error::ValidationErrorKind::FalseSchema) {
            let object_schema = sp.strip_suffix("/additionalProperties").and_then(|p| schema.pointer(p));
            let object = instance.pointer(ptr).and_then(Value::as_object);
            if let (Some(os), Some(object)) = (object_schema, object) {
                if os.get("patternProperties").is_none() {
                    if !merged.iter().any(|(p, s)| p == ptr && s == sp) {
                        merged.push((ptr.to_owned(), sp.to_owned()));
                        let known = os.get("properties").and_then(Value::as_object);
                        let extra: Vec<String> =
                            object.keys().filter(|k| !known.is_some_and(|m| m.contains_key(*k))).cloned().collect();
                        out.push(ValidationError {
                            path: pointer_to_path(instance, ptr),
                            message: messages::additional_properties(&extra, Some(os)),
                        });
                    }
                    continue;
                }
            }
        }
        out.push(ValidationError {
            path: pointer_to_path(instance, ptr),
            message: messages::python_message(&e, schema),
        });
    }
    out
}

/// Validate `instance` against one schema text; paths are relative to `instance`.
pub fn validate_against(key: &str, text: &'static str, instance: &Value) -> Vec<ValidationError> {
    errors_of(&compiled(key, text), instance)
}

/// The schema a whole v2 stage (`{type, options, inputs, devices, mounts}`) is checked
/// with, put together the way upstream does it: the options schema under `options`, the
/// stage's `x-inputs`/`x-devices`/`x-mounts` under theirs, no other key. A stage without
/// `x-inputs` takes no inputs; devices and mounts default to any object and any array.
/// Options marked `"x-v1-only": true` are left out.
pub fn stage_schema(name: &str, text: &str) -> Value {
    let mut options: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("schema of {name} is not JSON: {e}"));
    let o = options.as_object_mut().unwrap_or_else(|| panic!("schema of {name} is not an object"));
    let definitions = o.remove("definitions");
    let inputs = o.remove("x-inputs");
    let devices = o.remove("x-devices").unwrap_or_else(|| json!({"type": "object"}));
    let mounts = o.remove("x-mounts").unwrap_or_else(|| json!({"type": "array"}));
    o.retain(|k, _| !k.starts_with("x-") && k != "$schema");
    // options only v1 manifests have are unknown ones in v2
    if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
        p.retain(|_, s| s.get("x-v1-only") != Some(&Value::Bool(true)));
    }
    let mut props = serde_json::Map::new();
    props.insert("type".into(), json!({ "enum": [name] }));
    props.insert("options".into(), options);
    if let Some(i) = inputs {
        props.insert("inputs".into(), i);
    }
    props.insert("devices".into(), devices);
    props.insert("mounts".into(), mounts);
    let mut w = json!({"type": "object", "additionalProperties": false, "required": ["type"], "properties": props});
    if let Some(d) = definitions {
        w["definitions"] = d;
    }
    w
}

/// Validate a whole v2 stage object against [`stage_schema`]; paths are relative to it.
pub fn validate_stage(name: &str, text: &'static str, stage: &Value) -> Vec<ValidationError> {
    errors_of(&compiled_with(&format!("stage-v2/{name}"), || stage_schema(name, text)), stage)
}

/// Turn a JSON pointer into path segments, telling array indices from keys by looking at
/// the instance (a key may well be all digits).
fn pointer_to_path(instance: &Value, pointer: &str) -> JsonPath {
    let mut segs = Vec::new();
    let mut cur = Some(instance);
    if pointer.is_empty() {
        return JsonPath(segs);
    }
    for raw in pointer.trim_start_matches('/').split('/') {
        let tok = raw.replace("~1", "/").replace("~0", "~");
        match cur {
            Some(Value::Array(a)) => {
                let i: usize = tok.parse().unwrap_or(0);
                cur = a.get(i);
                segs.push(Seg::Index(i));
            }
            Some(Value::Object(o)) => {
                cur = o.get(&tok);
                segs.push(Seg::Key(tok));
            }
            _ => {
                cur = None;
                segs.push(Seg::Key(tok));
            }
        }
    }
    JsonPath(segs)
}

fn check_module(v: &mut Validation, kind: ModuleKind, name: &str, instance: &Value, at: &JsonPath, report: &JsonPath) {
    match module_schema(kind, name) {
        Some(text) => {
            let key = format!("{}/{}", kind.dir(), name);
            let errs = validate_against(&key, text, instance);
            v.add(at, errs);
        }
        None => v.unknown.push((kind, name.to_owned(), report.clone())),
    }
}

/// Validate a parsed manifest description (either format).
pub fn validate(desc: &Value) -> Validation {
    let version = match desc.get("version") {
        Some(Value::String(s)) => s.as_str(),
        _ => "1",
    };
    let mut v = Validation::default();
    let root = JsonPath::root();
    let errs = validate_against(&format!("manifest-{version}"), manifest_schema(version), desc);
    v.add(&root, errs);
    if version == "2" {
        validate_v2(&mut v, desc);
    } else {
        validate_v1(&mut v, desc, &root);
    }
    v.finish()
}

fn empty() -> &'static Value {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    EMPTY.get_or_init(|| json!({}))
}

fn validate_v2(v: &mut Validation, desc: &Value) {
    let root = JsonPath::root();
    if let Some(sources) = desc.get("sources").and_then(Value::as_object) {
        for (name, s) in sources {
            let at = root.key("sources").key(name);
            check_module(v, ModuleKind::Source, name, s, &at, &at);
        }
    }
    let Some(pipelines) = desc.get("pipelines").and_then(Value::as_array) else {
        return;
    };
    for (i, p) in pipelines.iter().enumerate() {
        let Some(stages) = p.get("stages").and_then(Value::as_array) else {
            continue;
        };
        for (j, stage) in stages.iter().enumerate() {
            let at = root.key("pipelines").index(i).key("stages").index(j);
            let Some(kind) = stage.get("type").and_then(Value::as_str) else {
                continue;
            };
            match module_schema(ModuleKind::Stage, kind) {
                Some(text) => {
                    let errs = validate_stage(kind, text, stage);
                    v.add(&at, errs);
                }
                None => v.unknown.push((ModuleKind::Stage, kind.to_owned(), at.clone())),
            }
            for (group, mk) in [("devices", ModuleKind::Device), ("inputs", ModuleKind::Input)] {
                if let Some(items) = stage.get(group).and_then(Value::as_object) {
                    for (name, item) in items {
                        if let Some(t) = item.get("type").and_then(Value::as_str) {
                            let ipath = at.key(group).key(name);
                            check_module(v, mk, t, item, &ipath, &ipath);
                        }
                    }
                }
            }
            if let Some(mounts) = stage.get("mounts").and_then(Value::as_array) {
                for (k, item) in mounts.iter().enumerate() {
                    // Upstream reports mount errors under the mount's name, not its index.
                    let ipath = match item.get("name").and_then(Value::as_str) {
                        Some(n) => at.key("mounts").key(n),
                        None => at.key("mounts").index(k),
                    };
                    if let Some(t) = item.get("type").and_then(Value::as_str) {
                        check_module(v, ModuleKind::Mount, t, item, &ipath, &ipath);
                    }
                }
            }
        }
    }
}

fn validate_v1(v: &mut Validation, desc: &Value, base: &JsonPath) {
    let pipeline = desc.get("pipeline").unwrap_or(empty());
    let ppath = base.key("pipeline");
    if let Some(build) = pipeline.get("build").and_then(|b| b.get("pipeline")) {
        validate_v1(v, &json!({ "pipeline": build }), &ppath.key("build"));
    }
    if let Some(stages) = pipeline.get("stages").and_then(Value::as_array) {
        for (i, stage) in stages.iter().enumerate() {
            let at = ppath.key("stages").index(i);
            if let Some(name) = stage.get("name").and_then(Value::as_str) {
                // Upstream only checks options that are there.
                match stage.get("options") {
                    Some(options) => check_module(v, ModuleKind::Stage, name, options, &at.key("options"), &at),
                    None if module_schema(ModuleKind::Stage, name).is_none() => {
                        v.unknown.push((ModuleKind::Stage, name.to_owned(), at.clone()))
                    }
                    None => {}
                }
            }
        }
    }
    if let Some(asm) = pipeline.get("assembler") {
        let at = ppath.key("assembler");
        if let Some(name) = asm.get("name").and_then(Value::as_str) {
            match asm.get("options") {
                Some(options) => check_module(v, ModuleKind::Assembler, name, options, &at.key("options"), &at),
                None if module_schema(ModuleKind::Assembler, name).is_none() => {
                    v.unknown.push((ModuleKind::Assembler, name.to_owned(), at.clone()))
                }
                None => {}
            }
        }
    }
    if base.0.is_empty() {
        if let Some(sources) = desc.get("sources").and_then(Value::as_object) {
            for (name, s) in sources {
                let mapped = if name == "org.osbuild.files" { "org.osbuild.curl" } else { name.as_str() };
                let at = base.key("sources").key(mapped);
                check_module(v, ModuleKind::Source, mapped, s, &at, &at);
            }
        }
    }
}

/// Validate the options of stages and assemblers osbuild-rs has no schema for against a schema
/// from elsewhere (an upstream-style `--libdir`): `schema_for(kind, name)` gives it, as the
/// schema of the options object. Those modules are no longer `unknown`; their errors join the rest.
pub fn validate_unknown(
    desc: &Value,
    mut v: Validation,
    schema_for: impl Fn(ModuleKind, &str) -> Option<Value>,
) -> Validation {
    let mut still_unknown = Vec::new();
    for (kind, name, at) in std::mem::take(&mut v.unknown) {
        let schema =
            matches!(kind, ModuleKind::Stage | ModuleKind::Assembler).then(|| schema_for(kind, &name)).flatten();
        let Some(schema) = schema else {
            still_unknown.push((kind, name, at));
            continue;
        };
        let options = lookup(desc, &at).and_then(|s| s.get("options")).unwrap_or(empty());
        let errs = match jsonschema::draft4::new(&schema) {
            Ok(validator) => validator
                .iter_errors(options)
                .map(|e| ValidationError {
                    path: pointer_to_path(options, e.instance_path().as_str()),
                    message: e.to_string(),
                })
                .collect(),
            Err(e) => vec![ValidationError {
                path: JsonPath::root(),
                message: format!("the {} {name} has no valid schema: {e}", kind.noun()),
            }],
        };
        v.add(&at.key("options"), errs);
    }
    v.unknown = still_unknown;
    v.finish()
}

fn lookup<'a>(mut v: &'a Value, path: &JsonPath) -> Option<&'a Value> {
    for seg in &path.0 {
        v = match seg {
            Seg::Key(k) => v.get(k.as_str())?,
            Seg::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

/// Count of embedded schemas per kind, for the README table check.
pub fn inventory() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, n, _) in embedded::EMBEDDED {
        m.entry(k).or_default().push(n);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles() {
        for (k, n, text) in embedded::EMBEDDED {
            let _ = compiled(&format!("{k}/{n}"), text);
        }
    }

    #[test]
    fn dollar_matches_like_python() {
        assert_eq!(python_dollar("^a$"), "^a(?:\\n?$)");
        assert_eq!(python_dollar(r"^[$\]]\$x$|^b$"), r"^[$\]]\$x(?:\n?$)|^b(?:\n?$)");
        assert_eq!(python_dollar("[]$]$"), "[]$](?:\\n?$)");
        let v = jsonschema::draft4::new(&python_patterns(&json!({"pattern": "^.{1,3}$"}))).unwrap();
        assert!(v.is_valid(&json!("ab\n")));
        assert!(!v.is_valid(&json!("ab\n\n")));
        assert!(!v.is_valid(&json!("a\nb")));
        assert!(!v.is_valid(&json!("abcd")));
    }

    #[test]
    fn pattern_messages_quote_the_schema_text() {
        let c = compiled_with("test/pattern-ref", || {
            json!({"properties": {"a": {"pattern": "^x$"}, "b": {"$ref": "#/definitions/y"}},
                   "definitions": {"y": {"pattern": "^y$"}}})
        });
        let msgs: Vec<String> = errors_of(&c, &json!({"a": "x\n", "b": "q"})).into_iter().map(|e| e.message).collect();
        assert_eq!(msgs, vec!["'q' does not match '^y$'".to_owned()]);
        let msgs: Vec<String> = errors_of(&c, &json!({"a": "z"})).into_iter().map(|e| e.message).collect();
        assert_eq!(msgs, vec!["'z' does not match '^x$'".to_owned()]);
    }

    #[test]
    fn pointer_tells_indices_from_digit_keys() {
        let inst = json!({"a": [{"7": 1}]});
        let p = pointer_to_path(&inst, "/a/0/7");
        assert_eq!(p.to_json(), json!(["a", 0, "7"]));
    }
}
