//! The `--json` result documents, shaped as upstream's `formats/v2.py` and
//! `formats/v1.py` `output()` make them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{SourceOutcome, StageResult};
use crate::manifest::{truthy, Manifest, Pipeline};

/// Everything a result document is made from.
#[derive(Debug, Clone)]
pub struct BuildSummary<'a> {
    pub manifest: &'a Manifest,
    pub success: bool,
    /// Every source type fetched, in manifest order.
    pub sources: Vec<SourceOutcome>,
    /// Stage results of the pipelines built in this run, by pipeline name, in build
    /// order; a failed pipeline's list ends with the failed stage. Pipelines taken from
    /// the store (or never reached) are absent.
    pub pipeline_results: Vec<(String, Vec<StageResult>)>,
    /// Stage metadata: pipeline name -> stage type -> metadata, for every pipeline whose
    /// tree has metadata (built now or before), as upstream collects it from the store.
    pub metadata: BTreeMap<String, Map<String, Value>>,
    /// The source that failed, if sources failed (else the first unsuccessful one in
    /// `sources` is used).
    pub failed_source: Option<SourceOutcome>,
    /// The stage that failed (else the last stage of the last pipeline result is used).
    pub failed_stage: Option<StageResult>,
}

impl BuildSummary<'_> {
    fn stages_of(&self, pipeline: &str) -> Option<&[StageResult]> {
        self.pipeline_results.iter().find(|(name, _)| name == pipeline).map(|(_, r)| r.as_slice())
    }

    fn sources_success(&self) -> bool {
        self.failed_source.is_none() && self.sources.iter().all(|s| s.success)
    }
}

/// The v2 `--json` document: `{"type": "result", "success": true, "metadata", "sources",
/// "log"}` on success; on failure `{"type": "error", "success": false, "error": {"type":
/// "org.osbuild.error.source" | "org.osbuild.error.stage", "details"}, "sources", "log"}`.
/// Never has a top-level `build`, `stages` or `assembler` (callers would take it for v1).
pub fn result_v2(summary: &BuildSummary) -> Value {
    let mut result = Map::new();
    if !summary.success {
        result.insert("type".into(), json!("error"));
        result.insert("success".into(), json!(false));
        result.insert("error".into(), v2_error(summary));
    } else {
        result.insert("type".into(), json!("result"));
        result.insert("success".into(), json!(true));
        let mut metadata = Map::new();
        for p in &summary.manifest.pipelines {
            if let Some(md) = summary.metadata.get(&p.name).filter(|md| !md.is_empty()) {
                metadata.insert(p.name.clone(), Value::Object(md.clone()));
            }
        }
        result.insert("metadata".into(), Value::Object(metadata));
    }

    let mut sources = Map::new();
    sources.insert("success".into(), json!(summary.sources_success()));
    for src in &summary.sources {
        let items: Vec<Value> = src
            .items
            .iter()
            .map(|item| {
                let mut out = Map::new();
                out.insert("cached".into(), json!(item.cached));
                if !item.checksum.is_empty() {
                    out.insert("checksum".into(), json!(item.checksum));
                }
                if let Some(e) = item.error.as_ref().filter(|e| !e.is_empty()) {
                    out.insert("error".into(), json!(e));
                }
                Value::Object(out)
            })
            .collect();
        sources.insert(src.kind.clone(), Value::Array(items));
    }
    result.insert("sources".into(), Value::Object(sources));

    let mut log = Map::new();
    for p in &summary.manifest.pipelines {
        let Some(stages) = summary.stages_of(&p.name).filter(|s| !s.is_empty()) else { continue };
        let entries: Vec<Value> = stages
            .iter()
            .map(|r| {
                let mut e = Map::new();
                e.insert("id".into(), json!(r.id));
                e.insert("type".into(), json!(r.name));
                e.insert("output".into(), json!(r.output));
                if !r.success {
                    e.insert("success".into(), json!(false));
                    if let Some(err) = r.error.as_ref().filter(|e| truthy(e)) {
                        e.insert("error".into(), err.clone());
                    }
                }
                Value::Object(e)
            })
            .collect();
        log.insert(p.name.clone(), Value::Array(entries));
    }
    result.insert("log".into(), Value::Object(log));
    Value::Object(result)
}

fn v2_error(summary: &BuildSummary) -> Value {
    let failing_source = summary.failed_source.as_ref().or_else(|| summary.sources.iter().find(|s| !s.success));
    if let Some(src) = failing_source {
        let output = src
            .items
            .iter()
            .find(|i| !i.success())
            .and_then(|i| i.error.clone())
            .unwrap_or_else(|| "cannot find failing source item".into());
        return json!({
            "type": "org.osbuild.error.source",
            "details": {"source": {"type": src.kind, "output": output}},
        });
    }
    let failed = summary
        .failed_stage
        .clone()
        .or_else(|| summary.pipeline_results.last().and_then(|(_, stages)| stages.last().cloned()));
    let (id, kind, output, error) = match failed {
        Some(r) => (r.id, r.name, r.output, r.error.unwrap_or(Value::Null)),
        None => (String::new(), String::new(), String::new(), Value::Null),
    };
    json!({
        "type": "org.osbuild.error.stage",
        "details": {"stage": {"id": id, "type": kind, "output": output, "error": error}},
    })
}

/// The v1 `--json` document: the `tree` pipeline's result `{"success", "build"?,
/// "stages"?}`, nested through its build pipelines, plus `"assembler"` when it ran.
///
/// Unlike upstream, `success` is never true for a failed build: upstream lets a build
/// pipeline's success override its own, and ignores failed sources.
pub fn result_v1(summary: &BuildSummary) -> Value {
    let Some(tree) = summary.manifest.by_name("tree") else {
        return json!({"success": summary.success});
    };
    let mut result = v1_pipeline(summary, tree, 0);
    if !summary.success {
        result.insert("success".into(), json!(false));
    }
    if let Some(assembler) = summary.manifest.by_name("assembler") {
        if let Some(stage) = summary.stages_of(&assembler.name).and_then(|s| s.first()) {
            let value = v1_stage(summary, &assembler.name, stage);
            if !stage.success {
                result.insert("success".into(), json!(false));
            }
            result.insert("assembler".into(), value);
        }
    }
    Value::Object(result)
}

fn v1_pipeline(summary: &BuildSummary, p: &Pipeline, depth: usize) -> Map<String, Value> {
    let stages = summary.stages_of(&p.name).unwrap_or(&[]);
    let mut success = stages.iter().all(|r| r.success);
    let mut out = Map::new();
    out.insert("success".into(), json!(success));
    // The build pipeline is named by id; guard against cycles in a malformed model.
    let build = p.build.as_deref().and_then(|id| summary.manifest.get(id)).filter(|_| depth < 64);
    if let Some(build) = build {
        let b = v1_pipeline(summary, build, depth + 1);
        success &= b.get("success").and_then(Value::as_bool).unwrap_or(true);
        out.insert("build".into(), Value::Object(b));
        out.insert("success".into(), json!(success));
    }
    if !stages.is_empty() {
        let list = stages.iter().map(|r| v1_stage(summary, &p.name, r)).collect();
        out.insert("stages".into(), Value::Array(list));
    }
    out
}

fn v1_stage(summary: &BuildSummary, pipeline: &str, r: &StageResult) -> Value {
    let metadata = summary.metadata.get(pipeline).and_then(|md| md.get(&r.name)).cloned().unwrap_or(Value::Null);
    json!({
        "id": r.id,
        "type": r.name,
        "success": r.success,
        "error": r.error.clone().unwrap_or(Value::Null),
        "output": r.output,
        "metadata": metadata,
    })
}
