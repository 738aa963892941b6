//! `JSONSeqMonitor`: machine-readable progress, as upstream's monitor of that name.
//!
//! Every record is `0x1E`, one line of JSON (Python `json.dumps` style, ASCII only) and
//! `\n`. Members, in upstream's order, `null`/`""` members left out (recursively in
//! objects): `message`, `result`, `context`, `progress`, `options`, `timestamp`,
//! `duration`, `metadata`.
//!
//! The context is `{"origin", "pipeline": {"name", "id", "stage": {"name", "id"}}, "id"}`
//! the first time its id is sent and `{"id"}` afterwards; the id is the sha256 of the
//! context (with `null`s, before omission) as sorted-key Python JSON. Like upstream, the
//! stage part of the context is kept when the next pipeline starts, until its first stage.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::pyjson::{self, escaped_len, omitempty};
use super::{Monitor, Sink, SourceOutcome, StageResult};
use crate::canonical_json::IdHasher;
use crate::manifest::{self, truthy};

/// Upstream's limit on a stage's `output` inside a "Finished module" record (characters).
pub const MAX_OUTPUT_LEN: usize = 31_000;
/// We keep each record (0x1E, JSON and newline) at most this many bytes when we can:
/// older consumers read lines with a 64 KiB scanner.
pub const MAX_RECORD_LEN: usize = 64 * 1024 - 1;
/// Log messages are split into records of at most this many bytes of escaped text.
const MAX_MESSAGE_BYTES: usize = 32 * 1024;

const ORIGIN_DEFAULT: &str = "org.osbuild";
const ORIGIN_MONITOR: &str = "osbuild.monitor";

/// Upstream's truncation of a stage's output for the monitor: keep the last
/// [`MAX_OUTPUT_LEN`] characters behind a `[...N bytes hidden...]\n` line (N counts
/// characters, as upstream's `len(str)` does despite the wording).
pub fn truncate_output(output: &str) -> Cow<'_, str> {
    let n = output.chars().count();
    if n <= MAX_OUTPUT_LEN {
        return Cow::Borrowed(output);
    }
    let removed = n - MAX_OUTPUT_LEN;
    let at = output.char_indices().nth(removed).map_or(output.len(), |(i, _)| i);
    Cow::Owned(format!("[...{removed} bytes hidden...]\n{}", &output[at..]))
}

#[derive(Debug, Clone, Default)]
struct Context {
    origin: Option<String>,
    pipeline_name: Option<String>,
    pipeline_id: Option<String>,
    stage_name: Option<String>,
    stage_id: Option<String>,
}

impl Context {
    fn dict(&self) -> Map<String, Value> {
        let s = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
        let mut m = Map::new();
        m.insert("origin".into(), s(&self.origin));
        m.insert(
            "pipeline".into(),
            json!({
                "name": s(&self.pipeline_name),
                "id": s(&self.pipeline_id),
                "stage": {"name": s(&self.stage_name), "id": s(&self.stage_id)},
            }),
        );
        m
    }
}

#[derive(Debug, Clone)]
struct Progress {
    name: String,
    total: usize,
    done: usize,
    sub: Option<Box<Progress>>,
}

impl Progress {
    fn new(name: String, total: usize) -> Self {
        Progress { name, total, done: 0, sub: None }
    }

    /// Advance; a sub-progress belongs to the step just finished and is dropped.
    fn incr(&mut self) {
        self.done += 1;
        self.sub = None;
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("total".into(), self.total.into());
        m.insert("done".into(), self.done.into());
        if let Some(sub) = &self.sub {
            m.insert("progress".into(), sub.to_value());
        }
        Value::Object(m)
    }
}

/// Extra members of a "Finished module" record.
struct Finished {
    result: Value,
    options: Option<Value>,
    duration: Option<f64>,
    metadata: Option<Value>,
}

pub struct JsonSeqMonitor {
    out: Sink,
    context: Context,
    sent_contexts: HashSet<String>,
    progress: Progress,
    module_options: Value,
    /// Whether a stage has started (upstream's `_module_start_time` is set).
    stage_started: bool,
    /// Sources announced by `begin_sources`: (type, upstream's source "pipeline" id).
    sources: Vec<(String, String)>,
    started_source: Option<String>,
    finished_sources: HashSet<String>,
}

impl JsonSeqMonitor {
    pub fn new(out: Sink, total_steps: usize) -> Self {
        JsonSeqMonitor {
            out,
            context: Context { origin: Some(ORIGIN_DEFAULT.into()), ..Context::default() },
            sent_contexts: HashSet::new(),
            progress: Progress::new("pipelines/sources".into(), total_steps),
            module_options: Value::Object(Map::new()),
            stage_started: false,
            sources: Vec::new(),
            started_source: None,
            finished_sources: HashSet::new(),
        }
    }

    /// The context for a record: in full when its id is new, else only the id.
    fn context_value(&mut self, origin: Option<&str>) -> Value {
        let mut ctx = Cow::Borrowed(&self.context);
        if let Some(o) = origin {
            ctx.to_mut().origin = Some(o.to_owned());
        }
        let mut dict = ctx.dict();
        let mut h = IdHasher::new();
        h.update(&Value::Object(dict.clone()));
        let id = h.finish();
        if !self.sent_contexts.insert(id.clone()) {
            return json!({ "id": id });
        }
        dict.insert("id".into(), Value::String(id));
        Value::Object(dict)
    }

    fn record(&mut self, message: Option<&str>, origin: Option<&str>, finished: Option<Finished>) {
        let mut entry = Map::new();
        entry.insert("message".into(), message.map_or(Value::Null, |m| Value::String(m.to_owned())));
        let (result, options, duration, metadata) = match finished {
            Some(f) => (f.result, f.options, f.duration, f.metadata),
            None => (Value::Null, None, None, None),
        };
        entry.insert("result".into(), result);
        entry.insert("context".into(), self.context_value(origin));
        entry.insert("progress".into(), self.progress.to_value());
        entry.insert("options".into(), options.filter(truthy).unwrap_or(Value::Null));
        entry.insert("timestamp".into(), json!(now()));
        entry.insert("duration".into(), duration.map_or(Value::Null, |d| json!(d)));
        entry.insert("metadata".into(), metadata.filter(truthy).unwrap_or(Value::Null));
        omitempty(&mut entry);
        let mut text = pyjson::to_string(&Value::Object(entry.clone()));
        if text.len() + 2 > MAX_RECORD_LEN && shrink_output(&mut entry, text.len() + 2 - MAX_RECORD_LEN) {
            text = pyjson::to_string(&Value::Object(entry));
        }
        let mut buf = Vec::with_capacity(text.len() + 2);
        buf.push(0x1e);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        // A monitor must not fail the build: a closed or broken monitor fd is ignored.
        let _ = self.out.write_all(&buf).and_then(|_| self.out.flush());
    }

    /// Log `message`, split over several records if it is too long for one.
    fn log_message(&mut self, message: &str, origin: Option<&str>) {
        if message.is_empty() {
            self.record(None, origin, None);
            return;
        }
        let mut start = 0;
        let mut size = 0;
        for (i, c) in message.char_indices() {
            let n = escaped_len(c);
            if size + n > MAX_MESSAGE_BYTES {
                self.record(Some(&message[start..i]), origin, None);
                start = i;
                size = 0;
            }
            size += n;
        }
        self.record(Some(&message[start..]), origin, None);
    }

    fn start_source(&mut self, kind: &str) {
        let id = self
            .sources
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| source_id(kind, &Value::Null));
        self.context.pipeline_name = Some(format!("source {kind}"));
        self.context.pipeline_id = Some(id);
        self.started_source = Some(kind.to_owned());
        self.log_message(&format!("Starting pipeline source {kind}"), Some(ORIGIN_MONITOR));
    }

    fn start_next_source(&mut self) {
        let next = self.sources.iter().map(|(k, _)| k).find(|k| !self.finished_sources.contains(*k)).cloned();
        if let Some(kind) = next {
            self.start_source(&kind);
        }
    }
}

/// Upstream's id of a source when it poses as a pipeline for the monitor.
fn source_id(kind: &str, items: &Value) -> String {
    let mut h = IdHasher::new();
    h.update_str(kind).update(items);
    h.finish()
}

#[cfg(test)]
fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Cut `excess` more bytes (as escaped JSON) from the front of `result.output`,
/// keeping upstream's `[...N bytes hidden...]` marker up to date. False if there is no
/// output to cut.
fn shrink_output(entry: &mut Map<String, Value>, excess: usize) -> bool {
    let Some(Value::String(output)) = entry.get_mut("result").and_then(|r| r.get_mut("output")) else {
        return false;
    };
    // Split off an existing marker so the hidden count stays a total.
    let (mut hidden, body) = match output.strip_prefix("[...").and_then(|rest| rest.split_once(" bytes hidden...]\n")) {
        Some((n, body)) if n.parse::<usize>().is_ok() => (n.parse::<usize>().unwrap_or(0), body.to_owned()),
        _ => (0, output.clone()),
    };
    // Room for the marker itself (its digits may grow).
    let need = excess + 40;
    let mut cut = 0;
    let mut at = body.len();
    for (i, c) in body.char_indices() {
        if cut >= need {
            at = i;
            break;
        }
        cut += escaped_len(c);
        hidden += 1;
    }
    *output = format!("[...{hidden} bytes hidden...]\n{}", &body[at..]);
    true
}

impl Monitor for JsonSeqMonitor {
    fn log(&mut self, message: &str, origin: Option<&str>) {
        self.log_message(message, origin);
    }

    fn begin_sources(&mut self, sources: &[manifest::Source]) {
        self.sources = sources.iter().map(|s| (s.kind.clone(), source_id(&s.kind, &s.items))).collect();
        self.start_next_source();
    }

    fn finish_source(&mut self, outcome: &SourceOutcome, duration: Duration) {
        if self.started_source.as_deref() != Some(outcome.kind.as_str()) {
            self.start_source(&outcome.kind);
        }
        if let Some(sub) = self.progress.sub.as_mut() {
            sub.incr();
        }
        let items: Vec<Value> = outcome
            .items
            .iter()
            .map(|item| {
                let mut md = Map::new();
                if !item.checksum.is_empty() {
                    md.insert("checksum".into(), Value::String(item.checksum.clone()));
                }
                md.insert("cached".into(), Value::Bool(item.cached));
                json!({"success": item.success(), "metadata": md, "error": item.error.clone().unwrap_or_default()})
            })
            .collect();
        let mut result = json!({
            "name": format!("source {}", outcome.kind),
            "source_type": outcome.kind,
            "success": outcome.success,
            "output": outcome.summary(),
            "results": items,
        });
        // Upstream drops the per-item results when the whole result is too long.
        if pyjson::to_string(&result).len() > MAX_OUTPUT_LEN {
            result["results"] = json!([]);
        }
        let finished = Finished {
            result,
            options: Some(self.module_options.clone()),
            // Upstream times sources only from an earlier stage's start, i.e. never in practice.
            duration: self.stage_started.then_some(duration.as_secs_f64()),
            metadata: None,
        };
        self.record(Some(&format!("Finished module source {}", outcome.kind)), Some(ORIGIN_MONITOR), Some(finished));
        self.progress.incr();
        self.log_message(&format!("Finished pipeline {}", outcome.kind), Some(ORIGIN_MONITOR));
        self.finished_sources.insert(outcome.kind.clone());
        self.started_source = None;
        self.start_next_source();
    }

    fn begin_pipeline(&mut self, p: &manifest::Pipeline) {
        self.context.pipeline_name = Some(p.name.clone());
        self.context.pipeline_id = p.id().map(str::to_owned);
        if !p.stages.is_empty() {
            self.progress.sub = Some(Box::new(Progress::new(format!("pipeline: {}", p.name), p.stages.len())));
        }
        self.log_message(&format!("Starting pipeline {}", p.name), Some(ORIGIN_MONITOR));
    }

    fn begin_stage(&mut self, p: &manifest::Pipeline, s: &manifest::Stage) {
        self.context.pipeline_name = Some(p.name.clone());
        self.context.pipeline_id = p.id().map(str::to_owned);
        self.context.stage_name = Some(s.kind.clone());
        self.context.stage_id = Some(s.id.clone());
        self.module_options = s.options.clone();
        self.stage_started = true;
        self.log_message(&format!("Starting module {}", s.kind), Some(ORIGIN_MONITOR));
    }

    fn stage_output(&mut self, line: &str) {
        let origin = self.context.stage_name.as_ref().map(|n| format!("stages/{n}"));
        self.log_message(line, origin.as_deref());
    }

    fn finish_stage(&mut self, s: &manifest::Stage, r: &StageResult, duration: Duration, metadata: Option<&Value>) {
        if let Some(sub) = self.progress.sub.as_mut() {
            sub.incr();
        }
        let name = if r.name.is_empty() { &s.kind } else { &r.name };
        let result = json!({
            "name": name,
            "id": r.id,
            "success": r.success,
            "output": truncate_output(&r.output),
            "error": r.error,
        });
        let finished = Finished {
            result,
            options: Some(self.module_options.clone()),
            duration: Some(duration.as_secs_f64()),
            metadata: metadata.cloned(),
        };
        self.record(Some(&format!("Finished module {name}")), Some(ORIGIN_MONITOR), Some(finished));
    }

    fn finish_pipeline(&mut self, p: &manifest::Pipeline) {
        self.progress.incr();
        self.log_message(&format!("Finished pipeline {}", p.name), Some(ORIGIN_MONITOR));
    }

    fn finish(&mut self, _success: bool) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_tail() {
        assert_eq!(truncate_output("abc"), "abc");
        let long = format!("{}{}", "x".repeat(10), "é".repeat(MAX_OUTPUT_LEN));
        let t = truncate_output(&long);
        assert!(t.starts_with("[...10 bytes hidden...]\n"));
        assert_eq!(t.chars().count(), MAX_OUTPUT_LEN + "[...10 bytes hidden...]\n".len());
    }

    #[test]
    fn context_id_is_sha256_of_sorted_python_json() {
        let ctx = Context { origin: Some("osbuild.main_cli".into()), ..Context::default() };
        let text = r#"{"origin": "osbuild.main_cli", "pipeline": {"id": null, "name": null, "stage": {"id": null, "name": null}}}"#;
        let expected = hex_sha256(text);
        let mut h = IdHasher::new();
        h.update(&Value::Object(ctx.dict()));
        assert_eq!(h.finish(), expected);
    }

    #[test]
    fn shrink_updates_marker() {
        let mut entry = Map::new();
        entry.insert("result".into(), json!({"output": format!("[...5 bytes hidden...]\n{}", "a".repeat(100))}));
        assert!(shrink_output(&mut entry, 10));
        let out = entry["result"]["output"].as_str().unwrap();
        assert!(out.starts_with("[...55 bytes hidden...]\n"), "{out}");
        assert_eq!(out.len(), "[...55 bytes hidden...]\n".len() + 50);
    }
}
