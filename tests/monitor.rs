//! The monitor stream and `--json` results against upstream osbuild's.
//!
//! The reference data in tests/data/monitor/ was produced by `record.py` there: a script
//! written for these tests that loads the manifests with upstream osbuild 191's own
//! loaders and plays a scripted 2-pipeline build (one curl source, pipelines `build`
//! and `os` of two stages each) through upstream's `JSONSeqMonitor` and its
//! `formats.v2/v1.output()`. Nothing was really built: outputs, results and metadata are
//! invented, sequence and shapes are upstream's. The tests below replay the same script
//! through osbuild-rs and compare: everything but timestamps and durations must be equal
//! (ids included, since osbuild-rs computes upstream's ids), and the shapes (keys and
//! JSON types at every level) must be equal everywhere.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use osbuild_rs::manifest::{self, Manifest};
use osbuild_rs::monitor::{
    self, result_v1, result_v2, BuildSummary, Monitor, ProgressBarMonitor, SourceItemOutcome, SourceOutcome,
    StageResult, MAX_OUTPUT_LEN, MAX_RECORD_LEN,
};
use serde_json::{json, Map, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/monitor");
const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

// ---------------------------------------------------------------------------------------
// The scripted build (same as record.py)

fn stage_output(pipeline: &str, stage: &str) -> Vec<String> {
    match (pipeline, stage) {
        ("build", "org.osbuild.rpm") => vec!["Installing a-1.0-1.noarch\n".into()],
        ("build", "org.osbuild.selinux") => vec!["restoring file contexts\n".into()],
        ("os", "org.osbuild.rpm") => vec!["Installing b-2.0-1.x86_64\n".into()],
        ("os", "org.osbuild.hostname") => (0..10).map(|i| format!("{}\n", i.to_string().repeat(3999))).collect(),
        _ => vec![],
    }
}

fn package(name: &str, version: &str, arch: &str) -> Value {
    json!({"name": name, "version": version, "release": "1", "epoch": null, "arch": arch,
           "sigmd5": "0".repeat(32), "sigpgp": null, "siggpg": null})
}

fn stage_metadata(pipeline: &str, stage: &str) -> Option<Value> {
    match (pipeline, stage) {
        ("build", "org.osbuild.rpm") => Some(json!({"packages": [package("a", "1.0", "noarch")]})),
        ("os" | "tree", "org.osbuild.rpm") => Some(json!({"packages": [package("b", "2.0", "x86_64")]})),
        _ => None,
    }
}

fn failure() -> Value {
    json!({"type": "RuntimeError", "value": "hostname: boom", "traceback": "Traceback ...\n"})
}

fn stage_result(p: &manifest::Pipeline, s: &manifest::Stage, success: bool) -> StageResult {
    StageResult {
        name: s.kind.clone(),
        id: s.id.clone(),
        success,
        output: stage_output(&p.name, &s.kind).concat(),
        error: if success { None } else { Some(failure()) },
    }
}

fn curl_outcome(fail_b: bool) -> SourceOutcome {
    let b = if fail_b {
        SourceItemOutcome {
            checksum: B.into(),
            cached: false,
            error: Some("curl: (22) The requested URL returned error: 404".into()),
        }
    } else {
        SourceItemOutcome { checksum: B.into(), cached: true, error: None }
    };
    SourceOutcome {
        kind: "org.osbuild.curl".into(),
        success: !fail_b,
        output: String::new(),
        items: vec![SourceItemOutcome { checksum: A.into(), cached: false, error: None }, b],
    }
}

fn load_manifest(name: &str) -> Manifest {
    let text = std::fs::read_to_string(format!("{DATA}/{name}")).unwrap();
    manifest::load(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()).unwrap()
}

/// A writer the test keeps a handle on.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Drive `m` the way the engine does for the scripted build.
fn play(m: &mut dyn Monitor, manifest: &Manifest) {
    play_failing(m, manifest, None)
}

/// As `play`, with the stage `fail` (pipeline name, stage type) failing.
fn play_failing(m: &mut dyn Monitor, manifest: &Manifest, fail: Option<(&str, &str)>) {
    let ms = Duration::from_millis;
    m.log("starting -", Some("osbuild.main_cli"));
    m.begin_sources(&manifest.sources);
    m.log("source/org.osbuild.curl (org.osbuild.curl): Downloaded https://example.com/repo/a-1.0-1.noarch.rpm\n", None);
    m.finish_source(&curl_outcome(false), ms(1500));
    for p in &manifest.pipelines {
        m.begin_pipeline(p);
        for s in &p.stages {
            m.begin_stage(p, s);
            for chunk in stage_output(&p.name, &s.kind) {
                m.stage_output(&chunk);
            }
            m.stage_output("");
            let ok = fail != Some((p.name.as_str(), s.kind.as_str()));
            m.finish_stage(s, &stage_result(p, s, ok), ms(250), stage_metadata(&p.name, &s.kind).as_ref());
            if !ok {
                break;
            }
        }
        m.finish_pipeline(p);
        if fail.is_some_and(|(name, _)| name == p.name) {
            m.log("manifest - failed\n", Some("osbuild.main_cli"));
            m.finish(false);
            return;
        }
    }
    m.log("manifest - finished successfully\n", Some("osbuild.main_cli"));
    m.finish(true);
}

fn json_seq_stream(manifest: &Manifest) -> String {
    json_seq_stream_failing(manifest, None)
}

fn json_seq_stream_failing(manifest: &Manifest, fail: Option<(&str, &str)>) -> String {
    let buf = Buf::default();
    let total = manifest.sources.len() + manifest.pipelines.len();
    let mut m = monitor::make_with_writer(Some("JSONSeqMonitor"), Box::new(buf.clone()), total, false).unwrap();
    play_failing(m.as_mut(), manifest, fail);
    buf.text()
}

fn assert_stream_matches(ours: &[Value], upstream: &[Value]) {
    let messages = |rs: &[Value]| rs.iter().map(|r| r.get("message").cloned()).collect::<Vec<_>>();
    assert_eq!(messages(ours), messages(upstream), "message sequence");
    for (i, (a, b)) in ours.iter().zip(upstream).enumerate() {
        assert_same_shape(a, b, &format!("record[{i}]"));
        assert_eq!(without_times(a.clone()), without_times(b.clone()), "record {i}");
    }
}

/// Split a JSON-seq stream into records, checking the framing of each.
fn records(stream: &str) -> Vec<Value> {
    assert!(stream.ends_with('\n'));
    stream
        .split_inclusive('\n')
        .map(|line| {
            let body = line.strip_prefix('\x1e').unwrap_or_else(|| panic!("record without 0x1E: {line:.80}"));
            let body = body.strip_suffix('\n').unwrap();
            assert!(!body.contains(['\n', '\x1e']), "a record must be one line");
            serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:.80}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Shape comparison

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.to_string().contains(['.', 'e', 'E']) => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys (in the same order) and the same JSON types at every level; values may differ.
fn assert_same_shape(ours: &Value, theirs: &Value, path: &str) {
    assert_eq!(kind(ours), kind(theirs), "type at {path}");
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            assert_eq!(ka, kb, "keys at {path}");
            for (k, v) in a {
                assert_same_shape(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "length at {path}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_shape(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn without_times(mut record: Value) -> Value {
    let obj = record.as_object_mut().unwrap();
    obj.remove("timestamp");
    obj.remove("duration");
    record
}

// ---------------------------------------------------------------------------------------
// The JSON-seq stream

#[test]
fn manifest_ids_are_upstreams() {
    // What the recorded contexts name; everything below relies on it.
    let m = load_manifest("manifest-v2.json");
    let upstream = records(&std::fs::read_to_string(format!("{DATA}/upstream-2pipelines.jsonseq")).unwrap());
    let ids: HashSet<&str> = upstream.iter().filter_map(|r| r["context"]["pipeline"]["id"].as_str()).collect();
    for p in &m.pipelines {
        assert!(ids.contains(p.id().unwrap()), "pipeline {} id {:?}", p.name, p.id());
    }
}

#[test]
fn stream_matches_upstream() {
    let m = load_manifest("manifest-v2.json");
    let ours = records(&json_seq_stream(&m));
    let upstream = records(&std::fs::read_to_string(format!("{DATA}/upstream-2pipelines.jsonseq")).unwrap());
    assert_eq!(ours.len(), 35);
    assert_stream_matches(&ours, &upstream);
}

#[test]
fn failure_stream_matches_upstream() {
    let m = load_manifest("manifest-v2.json");
    let ours = records(&json_seq_stream_failing(&m, Some(("build", "org.osbuild.selinux"))));
    let upstream = records(&std::fs::read_to_string(format!("{DATA}/upstream-stage-failure.jsonseq")).unwrap());
    assert_stream_matches(&ours, &upstream);
    let failed = ours.iter().find(|r| r["message"] == "Finished module org.osbuild.selinux").unwrap();
    assert_eq!(failed["result"]["success"], false);
    assert_eq!(failed["result"]["error"], failure());
    assert_eq!(ours.last().unwrap()["message"], "manifest - failed\n");
}

#[test]
fn stream_framing_and_sizes() {
    let m = load_manifest("manifest-v2.json");
    let stream = json_seq_stream(&m);
    assert!(stream.is_ascii(), "records are ASCII like Python's json.dumps");
    for line in stream.split_inclusive('\n') {
        assert!(line.starts_with('\x1e'));
        assert!(line.len() <= MAX_RECORD_LEN, "record of {} bytes", line.len());
    }
    let rs = records(&stream);
    for r in &rs {
        assert!(r["timestamp"].as_f64().unwrap() > 1.7e9);
    }
    // "Finished module <stage>" records carry a float duration; the others none.
    for r in &rs {
        let msg = r.get("message").and_then(Value::as_str).unwrap_or("");
        let is_stage_finish = msg.starts_with("Finished module org.");
        assert_eq!(r.get("duration").is_some(), is_stage_finish, "{msg}");
        assert_eq!(r.get("result").is_some(), msg.starts_with("Finished module"), "{msg}");
    }
}

#[test]
fn context_in_full_once_then_by_id() {
    let m = load_manifest("manifest-v2.json");
    let rs = records(&json_seq_stream(&m));
    let mut seen = HashSet::new();
    for r in &rs {
        let ctx = r["context"].as_object().unwrap();
        let id = ctx["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 64);
        if seen.insert(id) {
            assert!(ctx.contains_key("origin") && ctx.contains_key("pipeline"), "first use is full: {ctx:?}");
        } else {
            assert_eq!(ctx.len(), 1, "later uses are id-only: {ctx:?}");
        }
    }
    // Stage output is attributed to its stage, status lines to osbuild.monitor.
    let full: Vec<&Map<String, Value>> =
        rs.iter().map(|r| r["context"].as_object().unwrap()).filter(|c| c.len() > 1).collect();
    assert!(full
        .iter()
        .any(|c| c["origin"] == "stages/org.osbuild.rpm" && c["pipeline"]["stage"]["name"] == "org.osbuild.rpm"));
    assert!(full
        .iter()
        .any(|c| c["origin"] == "osbuild.monitor" && c["pipeline"]["name"] == "source org.osbuild.curl"));
    assert!(full.iter().any(|c| c["origin"] == "osbuild.main_cli"));
}

#[test]
fn progress_counters() {
    let m = load_manifest("manifest-v2.json");
    let rs = records(&json_seq_stream(&m));
    let mut last_done = 0;
    for r in &rs {
        let p = &r["progress"];
        assert_eq!(p["name"], "pipelines/sources");
        assert_eq!(p["total"], 3);
        let done = p["done"].as_u64().unwrap();
        assert!(done >= last_done && done <= 3);
        last_done = done;
        let msg = r.get("message").and_then(Value::as_str).unwrap_or("");
        if let Some(sub) = p.get("progress") {
            assert_eq!(sub["total"], 2);
            assert!(sub["done"].as_u64().unwrap() <= 2);
            assert!(sub["name"].as_str().unwrap().starts_with("pipeline: "));
        }
        // The outer count advances with each "Finished pipeline" (sources included) and
        // the inner one is dropped then.
        if msg.starts_with("Finished pipeline") {
            assert!(p.get("progress").is_none(), "{msg}");
        }
    }
    assert_eq!(last_done, 3);
    let find = |m: &str| rs.iter().filter(|r| r["message"] == m).map(|r| &r["progress"]).collect::<Vec<_>>();
    assert_eq!(find("Finished pipeline org.osbuild.curl")[0]["done"], 1);
    assert_eq!(find("Finished pipeline build")[0]["done"], 2);
    assert_eq!(find("Starting pipeline os")[0]["progress"], json!({"name": "pipeline: os", "total": 2, "done": 0}));
    let rpm = find("Finished module org.osbuild.rpm");
    assert_eq!(rpm[0]["progress"]["done"], 1);
    assert_eq!(find("Finished module org.osbuild.hostname")[0]["progress"]["done"], 2);
}

#[test]
fn finished_module_output_is_truncated() {
    let m = load_manifest("manifest-v2.json");
    let rs = records(&json_seq_stream(&m));
    let r = rs.iter().find(|r| r["message"] == "Finished module org.osbuild.hostname").unwrap();
    let out = r["result"]["output"].as_str().unwrap();
    let full: String = stage_output("os", "org.osbuild.hostname").concat();
    assert_eq!(full.len(), 40_000);
    let marker = "[...9000 bytes hidden...]\n";
    assert!(out.starts_with(marker), "{:.40}", out);
    assert_eq!(&out[marker.len()..], &full[9000..]);
    assert_eq!(out.len(), MAX_OUTPUT_LEN + marker.len());
    assert_eq!(r["result"]["id"], m.by_name("os").unwrap().id().unwrap());
}

#[test]
fn oversized_records_are_kept_under_64k() {
    let m = load_manifest("manifest-v2.json");
    let (p, s) = (&m.pipelines[0], &m.pipelines[0].stages[0]);
    let buf = Buf::default();
    let mut mon = monitor::make_with_writer(Some("JSONSeqMonitor"), Box::new(buf.clone()), 3, false).unwrap();
    mon.begin_pipeline(p);
    mon.begin_stage(p, s);
    // One huge chunk of output, and a non-ASCII result that escapes to ~6 bytes a char.
    let huge = "x".repeat(200_000);
    mon.stage_output(&huge);
    let euro = "€".repeat(40_000);
    let r = StageResult { name: s.kind.clone(), id: s.id.clone(), success: false, output: euro, error: None };
    mon.finish_stage(s, &r, Duration::from_secs(1), None);
    let stream = buf.text();
    for line in stream.split_inclusive('\n') {
        assert!(line.len() <= MAX_RECORD_LEN, "record of {} bytes", line.len());
    }
    let rs = records(&stream);
    let logged: String = rs.iter().filter_map(|r| r["message"].as_str()).filter(|m| m.starts_with('x')).collect();
    assert_eq!(logged, huge, "long output is split over records, not lost");
    let finished = rs.last().unwrap();
    let out = finished["result"]["output"].as_str().unwrap();
    let (hidden, tail) = out.strip_prefix("[...").unwrap().split_once(" bytes hidden...]\n").unwrap();
    assert_eq!(hidden.parse::<usize>().unwrap() + tail.chars().count(), 40_000);
    assert!(tail.chars().all(|c| c == '€'));
}

#[test]
fn monitor_fd_is_written_through_proc() {
    let m = load_manifest("manifest-v2.json");
    let mut file = tempfile::tempfile().unwrap();
    let mut mon = monitor::make(Some("JSONSeqMonitor"), Some(file.as_raw_fd()), 3, false).unwrap();
    play(mon.as_mut(), &m);
    drop(mon);
    let mut text = String::new();
    std::io::Seek::rewind(&mut file).unwrap();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(records(&text).len(), 35);
    assert!(monitor::make(Some("JSONSeqMonitor"), Some(987_654), 3, false).is_err());
    assert!(monitor::make(Some("Nope"), None, 3, false).is_err());
}

// ---------------------------------------------------------------------------------------
// LogMonitor, NullMonitor, progress bar

#[test]
fn log_monitor_is_readable() {
    let m = load_manifest("manifest-v2.json");
    let buf = Buf::default();
    let mut mon = monitor::make_with_writer(None, Box::new(buf.clone()), 3, false).unwrap();
    play(mon.as_mut(), &m);
    let text = buf.text();
    let build = m.by_name("build").unwrap();
    assert!(text.starts_with("starting -\n"));
    assert!(text.contains(&format!(
        "Pipeline build: {}\nBuild\n  root: <host>\n  runner: org.osbuild.linux\n",
        build.id().unwrap()
    )));
    assert!(text.contains(&format!(
        "Pipeline os: {}\nBuild\n  root: {}\n",
        m.pipelines[1].id().unwrap(),
        build.id().unwrap()
    )));
    assert!(text.contains(&format!("org.osbuild.selinux: {} {{\n  \"file_contexts\"", build.stages[1].id)));
    assert!(text.contains("Installing a-1.0-1.noarch\n"));
    assert!(text.contains("⏱  Duration: 0.25s\n"));
    assert!(text.contains("source org.osbuild.curl finished successfully\n⏱  Duration: 1.50s\n"));
    assert!(text.ends_with("manifest - finished successfully\n"));
}

#[test]
fn null_monitor_is_silent() {
    let m = load_manifest("manifest-v2.json");
    let buf = Buf::default();
    let mut mon = monitor::make_with_writer(Some("NullMonitor"), Box::new(buf.clone()), 3, false).unwrap();
    play(mon.as_mut(), &m);
    assert!(buf.text().is_empty());
}

#[test]
fn progress_bar_line() {
    let m = load_manifest("manifest-v2.json");
    let term = Buf::default();
    let mut bar = ProgressBarMonitor::new(Box::new(monitor::NullMonitor), Box::new(term.clone()), 3);
    bar.begin_sources(&m.sources);
    bar.finish_source(&curl_outcome(false), Duration::ZERO);
    let build = &m.pipelines[0];
    bar.begin_pipeline(build);
    bar.begin_stage(build, &build.stages[0]);
    assert!(bar.line().starts_with("[2/3] pipeline build [1/2] org.osbuild.rpm 00:0"), "{}", bar.line());
    bar.finish_stage(&build.stages[0], &stage_result(build, &build.stages[0], true), Duration::ZERO, None);
    bar.begin_stage(build, &build.stages[1]);
    assert!(bar.line().starts_with("[2/3] pipeline build [2/2] org.osbuild.selinux"), "{}", bar.line());
    bar.finish(true);
    let text = term.text();
    assert!(text.contains("\r\x1b[K[2/3] pipeline build [1/2] org.osbuild.rpm"));
    assert!(text.ends_with("\r\x1b[K"), "cleared at the end");
    assert!(!text.contains('\n'), "a single updating line");
}

#[test]
fn progress_bar_leaves_partial_lines_alone() {
    // The human log and the bar share one terminal: the bar must not wipe a partial line.
    let m = load_manifest("manifest-v2.json");
    let term = Buf::default();
    let log = monitor::LogMonitor::new(Box::new(term.clone()));
    let mut bar = ProgressBarMonitor::new(Box::new(log), Box::new(term.clone()), 3);
    let p = &m.pipelines[0];
    bar.begin_pipeline(p);
    bar.begin_stage(p, &p.stages[0]);
    bar.stage_output("50%");
    bar.stage_output("");
    bar.stage_output(" 100%\n");
    let text = term.text();
    assert!(text.contains("50% 100%\n\r\x1b[K["), "{text:?}");
    bar.finish(true);
    assert!(term.text().ends_with("\r\x1b[K"));
}

// ---------------------------------------------------------------------------------------
// --json results

fn summary<'a>(m: &'a Manifest, fail_stage: Option<(&str, &str)>, fail_source: bool) -> BuildSummary<'a> {
    let mut s = BuildSummary {
        manifest: m,
        success: true,
        sources: vec![curl_outcome(fail_source)],
        pipeline_results: vec![],
        metadata: BTreeMap::new(),
        failed_source: None,
        failed_stage: None,
    };
    // Metadata of every pipeline in the store, as upstream reads it from there.
    for p in &m.pipelines {
        let md: Map<String, Value> =
            p.stages.iter().filter_map(|st| Some((st.kind.clone(), stage_metadata(&p.name, &st.kind)?))).collect();
        s.metadata.insert(p.name.clone(), md);
    }
    if fail_source {
        s.success = false;
        s.failed_source = Some(curl_outcome(true));
        return s;
    }
    'pipelines: for p in &m.pipelines {
        let mut results = vec![];
        for st in &p.stages {
            let ok = fail_stage != Some((p.name.as_str(), st.kind.as_str()));
            results.push(stage_result(p, st, ok));
            if !ok {
                s.success = false;
                s.failed_stage = results.last().cloned();
                s.pipeline_results.push((p.name.clone(), results));
                break 'pipelines;
            }
        }
        s.pipeline_results.push((p.name.clone(), results));
    }
    s
}

fn assert_no_v1_keys(doc: &Value) {
    for key in ["build", "stages", "assembler"] {
        assert!(doc.get(key).is_none(), "v2 result has top-level {key:?}");
    }
}

#[test]
fn v2_success_matches_upstream() {
    let m = load_manifest("manifest-v2.json");
    let ours = result_v2(&summary(&m, None, false));
    let upstream = read_json("result-v2-success.json");
    assert_same_shape(&ours, &upstream, "$");
    assert_eq!(ours, upstream);
    assert_no_v1_keys(&ours);
    assert_eq!(ours["type"], "result");
    assert_eq!(ours["success"], true);
    assert_eq!(ours["metadata"]["os"]["org.osbuild.rpm"]["packages"][0]["name"], "b");
    assert!(ours["log"]["os"][1].get("success").is_none(), "success only on failed stages");
}

#[test]
fn v2_stage_error_matches_upstream() {
    let m = load_manifest("manifest-v2.json");
    let ours = result_v2(&summary(&m, Some(("os", "org.osbuild.hostname")), false));
    let upstream = read_json("result-v2-stage-error.json");
    assert_same_shape(&ours, &upstream, "$");
    assert_eq!(ours, upstream);
    assert_no_v1_keys(&ours);
    assert_eq!(ours["type"], "error");
    assert_eq!(ours["success"], false);
    assert_eq!(ours["error"]["type"], "org.osbuild.error.stage");
    let stage = &ours["error"]["details"]["stage"];
    assert_eq!(stage["type"], "org.osbuild.hostname");
    assert_eq!(stage["error"], failure());
    assert!(ours.get("metadata").is_none());
    assert_eq!(ours["log"]["os"][1]["success"], false);
    assert_eq!(ours["log"]["os"][1]["error"], failure());
}

#[test]
fn v2_stage_error_without_explicit_failed_stage() {
    // Like upstream, the last stage of the last pipeline result is the failed one.
    let m = load_manifest("manifest-v2.json");
    let mut s = summary(&m, Some(("build", "org.osbuild.selinux")), false);
    s.failed_stage = None;
    let doc = result_v2(&s);
    assert_eq!(doc["error"]["details"]["stage"]["id"], m.pipelines[0].stages[1].id.as_str());
    assert!(doc["log"].get("os").is_none(), "pipelines not built have no log");
    assert_no_v1_keys(&doc);
}

#[test]
fn v2_source_error_matches_upstream() {
    let m = load_manifest("manifest-v2.json");
    let ours = result_v2(&summary(&m, None, true));
    let upstream = read_json("result-v2-source-error.json");
    assert_same_shape(&ours, &upstream, "$");
    assert_eq!(ours, upstream);
    assert_no_v1_keys(&ours);
    assert_eq!(ours["error"]["type"], "org.osbuild.error.source");
    assert_eq!(ours["error"]["details"]["source"]["type"], "org.osbuild.curl");
    assert_eq!(ours["error"]["details"]["source"]["output"], "curl: (22) The requested URL returned error: 404");
    assert_eq!(ours["sources"]["success"], false);
    assert_eq!(ours["log"], json!({}));
}

#[test]
fn v1_success_matches_upstream() {
    let m = load_manifest("manifest-v1.json");
    let ours = result_v1(&summary(&m, None, false));
    let upstream = read_json("result-v1-success.json");
    assert_same_shape(&ours, &upstream, "$");
    assert_eq!(ours, upstream);
}

#[test]
fn v1_failure_is_never_success() {
    let m = load_manifest("manifest-v1.json");
    let doc = result_v1(&summary(&m, Some(("tree", "org.osbuild.hostname")), false));
    assert_eq!(doc["success"], false);
    assert_eq!(doc["build"]["success"], true);
    assert_eq!(doc["stages"][1]["success"], false);
    assert!(doc.get("assembler").is_none());
    let doc = result_v1(&summary(&m, None, true));
    assert_eq!(doc["success"], false);
}
