//! Upstream's `--inspect` view of a loaded manifest, ids included.

use super::*;
use serde_json::json;
use std::collections::HashMap;

pub fn describe(m: &Manifest) -> Value {
    match m.format {
        Format::V2 => describe_v2(m),
        Format::V1 => describe_v1(m),
    }
}

fn put_if(map: &mut Map<String, Value>, key: &str, v: Value) {
    if truthy(&v) {
        map.insert(key.into(), v);
    }
}

fn describe_v2(m: &Manifest) -> Value {
    // The manifest declares a runner on the pipeline that *is* the build root; upstream
    // shows it on pipelines some other pipeline builds with, keyed by id (last one wins).
    let mut runners: HashMap<&str, String> = HashMap::new();
    for p in &m.pipelines {
        if let Some(build) = p.build.as_deref() {
            let declared = m.pipelines.iter().find(|q| q.id() == Some(build)).and_then(|q| q.runner.clone());
            runners.insert(build, declared.unwrap_or_else(|| crate::runner::host().to_owned()));
        }
    }

    let pipelines: Vec<Value> = m
        .pipelines
        .iter()
        .map(|p| {
            let mut d = Map::new();
            d.insert("name".into(), json!(p.name));
            if let Some(b) = &p.build {
                d.insert("build".into(), json!(b));
            }
            if let Some(r) = p.id().and_then(|id| runners.get(id)) {
                d.insert("runner".into(), json!(r));
            }
            if !p.stages.is_empty() {
                d.insert("stages".into(), Value::Array(p.stages.iter().map(describe_stage_v2).collect()));
            }
            Value::Object(d)
        })
        .collect();

    let mut out = Map::new();
    out.insert("version".into(), json!("2"));
    out.insert("pipelines".into(), Value::Array(pipelines));
    if !m.metadata.is_empty() {
        out.insert("metadata".into(), Value::Object(m.metadata.clone()));
    }
    if !m.sources.is_empty() {
        let sources: Map<String, Value> =
            m.sources.iter().map(|s| (s.kind.clone(), json!({ "items": s.items }))).collect();
        out.insert("sources".into(), Value::Object(sources));
    }
    Value::Object(out)
}

fn describe_stage_v2(s: &Stage) -> Value {
    let mut d = Map::new();
    d.insert("type".into(), json!(s.kind));
    d.insert("id".into(), json!(s.id));
    put_if(&mut d, "options", s.options.clone());
    let devices: Map<String, Value> = s
        .devices
        .iter()
        .map(|(name, dev)| {
            let mut dd = Map::new();
            dd.insert("type".into(), json!(dev.kind));
            put_if(&mut dd, "options", dev.options.clone());
            (name.clone(), Value::Object(dd))
        })
        .collect();
    put_if(&mut d, "devices", Value::Object(devices));
    let mounts: Vec<Value> = s
        .mounts
        .iter()
        .map(|mnt| {
            let mut md = Map::new();
            md.insert("name".into(), json!(mnt.name));
            md.insert("type".into(), json!(mnt.kind));
            md.insert("target".into(), mnt.target.clone().unwrap_or(Value::Null));
            if let Some(src) = &mnt.source {
                md.insert("source".into(), json!(src));
            }
            put_if(&mut md, "options", mnt.options.clone());
            put_if(&mut md, "partition", mnt.partition.clone().unwrap_or(Value::Null));
            Value::Object(md)
        })
        .collect();
    put_if(&mut d, "mounts", Value::Array(mounts));
    let inputs: Map<String, Value> = s
        .inputs
        .iter()
        .map(|(name, ip)| {
            let mut id = Map::new();
            id.insert("type".into(), json!(ip.kind));
            id.insert("origin".into(), json!(ip.origin));
            put_if(&mut id, "options", ip.options.clone());
            put_if(&mut id, "references", Value::Object(ip.refs.clone()));
            (name.clone(), Value::Object(id))
        })
        .collect();
    put_if(&mut d, "inputs", Value::Object(inputs));
    Value::Object(d)
}

fn describe_v1(m: &Manifest) -> Value {
    fn stage(s: &Stage) -> Value {
        let mut d = Map::new();
        d.insert("name".into(), json!(s.kind));
        put_if(&mut d, "options", s.options.clone());
        d.insert("id".into(), json!(s.id));
        Value::Object(d)
    }
    fn pipeline(m: &Manifest, p: &Pipeline) -> Value {
        let mut d = Map::new();
        if let Some(build) = p.build.as_deref().and_then(|b| m.get(b)) {
            d.insert("build".into(), json!({ "pipeline": pipeline(m, build), "runner": p.runner }));
        }
        if !p.stages.is_empty() {
            d.insert("stages".into(), Value::Array(p.stages.iter().map(stage).collect()));
        }
        Value::Object(d)
    }
    let tree = m.by_name("tree").expect("v1 manifests always have a tree pipeline");
    let mut pl = pipeline(m, tree);
    if let Some(asm) = m.by_name("assembler").and_then(|a| a.stages.first()) {
        pl.as_object_mut().unwrap().insert("assembler".into(), stage(asm));
    }
    let mut out = Map::new();
    out.insert("pipeline".into(), pl);
    if !m.sources.is_empty() {
        let sources: Map<String, Value> = m
            .sources
            .iter()
            .map(|s| {
                let name = if s.kind == "org.osbuild.curl" { "org.osbuild.files" } else { s.kind.as_str() };
                (name.to_owned(), s.options.clone())
            })
            .collect();
        out.insert("sources".into(), Value::Object(sources));
    }
    Value::Object(out)
}
