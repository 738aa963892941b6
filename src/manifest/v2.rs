//! Loading format "2": named pipelines referring to each other with `name:<pipeline>`.

use super::*;
use std::collections::HashSet;

pub(super) fn load(root: &Map<String, Value>) -> Result<Manifest, LoadError> {
    let top = JsonPath::root();
    for key in root.keys() {
        if !matches!(key.as_str(), "version" | "pipelines" | "sources" | "metadata") {
            return Err(LoadError::at(&top.key(key), format!("unknown top-level key '{key}'")));
        }
    }
    let doc = Obj { map: root, path: top.clone() };
    let mut m = Manifest::empty(Format::V2);
    if let Some(md) = doc.object("metadata")? {
        m.metadata = md.clone();
    }

    let mut source_refs: HashSet<String> = HashSet::new();
    if let Some(sources) = doc.object("sources")? {
        for (name, desc) in sources {
            let s = Obj::new(desc, top.key("sources").key(name), "a source")?;
            let items = s.value("items").cloned().unwrap_or_else(|| Value::Object(Map::new()));
            let Value::Object(item_map) = &items else {
                return Err(LoadError::at(&s.path.key("items"), "must be an object"));
            };
            source_refs.extend(item_map.keys().cloned());
            let options = s.value("options").cloned().unwrap_or_else(|| Value::Object(Map::new()));
            m.sources.push(Source { kind: name.clone(), items, options });
        }
    }

    for (i, desc) in doc.array("pipelines")?.iter().enumerate() {
        load_pipeline(&mut m, desc, top.key("pipelines").index(i), &source_refs)?;
    }
    Ok(m)
}

fn resolve_ref(m: &Manifest, reference: &str, path: &JsonPath) -> Result<Option<String>, LoadError> {
    let name = &reference["name:".len()..];
    match m.by_name(name) {
        Some(p) => Ok(p.id().map(str::to_owned)),
        None => Err(LoadError::at(
            path,
            format!(
                "unknown pipeline reference 'name:{name}' (pipelines can only refer to pipelines defined before them)"
            ),
        )),
    }
}

fn load_pipeline(
    m: &mut Manifest,
    desc: &Value,
    path: JsonPath,
    source_refs: &HashSet<String>,
) -> Result<(), LoadError> {
    let p = Obj::new(desc, path.clone(), "a pipeline")?;
    let name = p.str("name")?.to_owned();
    check_pipeline_name(&name, &path.key("name"))?;
    if m.by_name(&name).is_some() {
        return Err(LoadError::at(&path.key("name"), format!("duplicate pipeline name '{name}'")));
    }
    let build = match p.opt_str("build")? {
        Some(b) if b.starts_with("name:") => {
            if b[5..] == name {
                return Err(LoadError::at(
                    &path.key("build"),
                    format!("pipeline '{name}' uses itself as its build pipeline"),
                ));
            }
            resolve_ref(m, b, &path.key("build"))?
        }
        Some(b) => Some(b.to_owned()),
        None => None,
    };
    let mut pipeline = Pipeline {
        name: name.clone(),
        build,
        runner: p.opt_str("runner")?.map(str::to_owned),
        source_epoch: match p.value("source-epoch") {
            Some(v) => {
                check_source_epoch(v, &path.key("source-epoch"))?;
                Some(v.clone())
            }
            None => None,
        },
        stages: Vec::new(),
        path: path.clone(),
    };
    for (j, sdesc) in p.array("stages")?.iter().enumerate() {
        let stage = load_stage(m, &pipeline, sdesc, path.key("stages").index(j), source_refs)?;
        pipeline.stages.push(stage);
    }
    m.pipelines.push(pipeline);
    Ok(())
}

/// A pipeline's name names its export directory (`<output>/<name>`): only a plain file name can
/// never land outside the output directory. Upstream takes any string; every name in its own
/// manifests is plain.
fn check_pipeline_name(name: &str, path: &JsonPath) -> Result<(), LoadError> {
    if osbuild_sys::is_plain_name(name) {
        return Ok(());
    }
    Err(LoadError::at(
        path,
        format!("pipeline name {name:?} is not a plain name: it names the export directory, so it must not be empty, '.' or '..', nor contain '/' or NUL"),
    ))
}

/// The largest `source-epoch`: the engine keeps it as an `i64` of seconds.
pub const MAX_SOURCE_EPOCH: i64 = i64::MAX;

/// `source-epoch` is a count of seconds since 1970 that the engine clamps mtimes to: an integer
/// from 0 to [`MAX_SOURCE_EPOCH`] (the schema already refuses other types and fractions; a huge
/// integer would silently disable clamping, a negative one is no timestamp tools accept).
pub fn check_source_epoch(v: &Value, path: &JsonPath) -> Result<i64, LoadError> {
    match v.as_i64() {
        Some(epoch) if epoch >= 0 => Ok(epoch),
        _ => Err(LoadError::at(
            path,
            format!("source-epoch must be an integer from 0 to {MAX_SOURCE_EPOCH} (seconds since 1970), got {v}"),
        )),
    }
}

fn load_stage(
    m: &Manifest,
    pipeline: &Pipeline,
    desc: &Value,
    path: JsonPath,
    source_refs: &HashSet<String>,
) -> Result<Stage, LoadError> {
    let s = Obj::new(desc, path.clone(), "a stage")?;
    let kind = s.str("type")?;
    let options = s.value("options").cloned().unwrap_or(Value::Null);
    let mut stage = Stage::new(pipeline, kind, options, path.clone());

    if let Some(devs) = s.object("devices")? {
        for (name, ddesc) in sort_devices(devs, &path.key("devices"))? {
            let d = Obj::new(ddesc, path.key("devices").key(name), "a device")?;
            let dkind = d.str("type")?;
            let parent = match d.opt_str("parent")? {
                Some(pname) => {
                    let pdev = stage.device(pname).expect("devices sorted parents first");
                    Some((pname, pdev))
                }
                None => None,
            };
            let device = Device::new(dkind, parent, d.value("options").cloned().unwrap_or(Value::Null));
            stage.devices.push((name.clone(), device));
        }
    }

    if let Some(inputs) = s.object("inputs")? {
        for (name, idesc) in inputs {
            let ipath = path.key("inputs").key(name);
            let input = load_input(m, pipeline, idesc, &ipath, source_refs)?;
            stage.inputs.push((name.clone(), input));
        }
    }

    for (k, mdesc) in s.array("mounts")?.iter().enumerate() {
        let mp = Obj::new(mdesc, path.key("mounts").index(k), "a mount")?;
        let name = mp.str("name")?;
        if stage.mounts.iter().any(|x| x.name == name) {
            return Err(LoadError::at(&mp.path.key("name"), format!("duplicate mount '{name}'")));
        }
        let device = match mp.opt_str("source")? {
            Some(src) => match stage.device(src) {
                Some(d) => Some((src, d)),
                None => {
                    return Err(LoadError::at(
                        &mp.path.key("source"),
                        format!("unknown device '{src}' for mount '{name}'"),
                    ))
                }
            },
            None => None,
        };
        let mount = Mount::new(
            name,
            mp.str("type")?,
            device,
            mp.value("partition").cloned(),
            mp.value("target").cloned(),
            mp.value("options").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        );
        stage.mounts.push(mount);
    }

    stage.seal();
    Ok(stage)
}

fn load_input(
    m: &Manifest,
    pipeline: &Pipeline,
    desc: &Value,
    path: &JsonPath,
    source_refs: &HashSet<String>,
) -> Result<Input, LoadError> {
    let d = Obj::new(desc, path.clone(), "an input")?;
    let origin = d.str("origin")?;
    let mut input = Input::new(d.str("type")?, origin, d.value("options").cloned().unwrap_or(Value::Null));

    let rpath = path.key("references");
    let mut refs: Vec<(String, Value)> = Vec::new();
    match d.value("references") {
        None => {}
        Some(Value::Array(list)) => {
            for (n, r) in list.iter().enumerate() {
                match r {
                    Value::String(s) => refs.push((s.clone(), Value::Null)),
                    Value::Object(o) => match o.get("id") {
                        Some(Value::String(id)) => {
                            refs.push((id.clone(), o.get("options").cloned().unwrap_or(Value::Null)))
                        }
                        _ => return Err(LoadError::at(&rpath.index(n), "a reference object needs a string 'id'")),
                    },
                    _ => return Err(LoadError::at(&rpath.index(n), "a reference must be a string or an object")),
                }
            }
        }
        Some(Value::Object(o)) => refs.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
        Some(_) => return Err(LoadError::at(&rpath, "references must be an array or an object")),
    }

    match origin {
        ORIGIN_PIPELINE => {
            for (r, opts) in refs {
                // Upstream silently ignores pipeline references not written as `name:`.
                let Some(target) = r.strip_prefix("name:") else {
                    continue;
                };
                if target == pipeline.name {
                    return Err(LoadError::at(
                        &rpath,
                        format!("dependency cycle: pipeline '{target}' refers to its own tree"),
                    ));
                }
                let id = resolve_ref(m, &r, &rpath)?;
                input.add_reference(id.unwrap_or_else(|| "null".into()), opts);
            }
        }
        ORIGIN_SOURCE => {
            for (r, opts) in refs {
                if !source_refs.contains(&r) {
                    return Err(LoadError::at(
                        &rpath,
                        format!("unknown source reference '{r}': no source has an item with this checksum"),
                    ));
                }
                input.add_reference(r, opts);
            }
        }
        other => {
            return Err(LoadError::at(
                &path.key("origin"),
                format!("unknown origin '{other}' (expected '{ORIGIN_SOURCE}' or '{ORIGIN_PIPELINE}')"),
            ))
        }
    }
    Ok(input)
}

/// Order devices so every parent comes before its children; detect missing parents and cycles.
fn sort_devices<'a>(
    devices: &'a Map<String, Value>,
    path: &JsonPath,
) -> Result<Vec<(&'a String, &'a Value)>, LoadError> {
    let mut done: Vec<(&String, &Value)> = Vec::new();
    let mut todo: Vec<(&String, &Value)> = devices.iter().collect();
    while !todo.is_empty() {
        let before = todo.len();
        let mut rest = Vec::new();
        for (name, desc) in todo {
            let parent = desc.get("parent").and_then(Value::as_str);
            match parent {
                Some(p) if !done.iter().any(|(n, _)| n.as_str() == p) => {
                    if !devices.contains_key(p) {
                        return Err(LoadError::at(
                            &path.key(name.as_str()).key("parent"),
                            format!("missing parent device '{p}' for '{name}'"),
                        ));
                    }
                    rest.push((name, desc));
                }
                _ => done.push((name, desc)),
            }
        }
        if rest.len() == before {
            return Err(LoadError::at(path, "cycle detected in 'devices'"));
        }
        todo = rest;
    }
    Ok(done)
}
