//! Build monitoring: what osbuild-rs tells its caller while it builds, and the `--json`
//! result document it prints at the end.
//!
//! The monitors follow upstream osbuild's `osbuild/monitor.py`:
//! - `JSONSeqMonitor`: RFC 7464 records (`0x1E`, one line of JSON, `\n`) with message,
//!   timestamp, context (in full once, then by id) and two-level progress; see [`jsonseq`].
//! - `LogMonitor`: human-readable log of pipelines, stages, their output and durations.
//! - `NullMonitor`: reports nothing.
//!
//! Any of them may be wrapped in a one-line progress bar on stderr (see [`make`]).
//! The result documents (`--json`) are built by [`result_v2`] and [`result_v1`].

mod jsonseq;
mod log;
mod progress_bar;
mod pyjson;
mod result;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::manifest;

pub use jsonseq::{truncate_output, JsonSeqMonitor, MAX_OUTPUT_LEN, MAX_RECORD_LEN};
pub use log::LogMonitor;
pub use progress_bar::ProgressBarMonitor;
pub use result::{result_v1, result_v2, BuildSummary};

/// The outcome of one stage, as upstream's `StageResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// The stage type, e.g. `org.osbuild.rpm`.
    pub name: String,
    /// The stage id.
    pub id: String,
    pub success: bool,
    /// Everything the stage printed.
    pub output: String,
    /// Structured error (upstream: the stage's `api.exception` payload), if any.
    pub error: Option<Value>,
}

/// One item a source fetched (or found cached).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItemOutcome {
    pub checksum: String,
    pub cached: bool,
    /// `Some` when this item failed.
    pub error: Option<String>,
}

impl SourceItemOutcome {
    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// The outcome of one source type (e.g. all `org.osbuild.curl` items).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOutcome {
    /// Source type, e.g. `org.osbuild.curl`.
    pub kind: String,
    pub success: bool,
    /// A summary line; when empty, upstream's wording is used in the monitor record
    /// (`source <kind> finished successfully` / `... finished unsuccessfully: <error>`).
    pub output: String,
    pub items: Vec<SourceItemOutcome>,
}

impl SourceOutcome {
    /// Upstream's `SourceResults.output`, unless `output` is set.
    pub fn summary(&self) -> String {
        if !self.output.is_empty() {
            return self.output.clone();
        }
        if self.success {
            format!("source {} finished successfully", self.kind)
        } else {
            let error = self.items.last().and_then(|i| i.error.clone()).unwrap_or_default();
            format!("source {} finished unsuccessfully: {}", self.kind, error)
        }
    }
}

/// Receives the events of a build. Calls come in this order (upstream's, which the
/// JSON-seq stream reproduces record for record):
/// - `log("starting <manifest path>", Some("osbuild.main_cli"))`;
/// - `begin_sources(all sources)`, then `finish_source` per source type (source-service
///   lines in between via `log(line, None)`);
/// - per pipeline to build (also one found in the store, then without stages):
///   `begin_pipeline`, per stage run `begin_stage`, `stage_output`…, `stage_output("")`
///   (upstream's final read), `finish_stage`; then `finish_pipeline` — also after a
///   failed stage, after which no further pipeline starts;
/// - `log("manifest <path> finished successfully\n" | "manifest <path> failed\n",
///   Some("osbuild.main_cli"))` and `finish`.
pub trait Monitor: Send {
    /// A status or log line. `origin` e.g. `osbuild.main_cli`, `osbuild.monitor`; `None`
    /// is upstream's default origin `org.osbuild` (used e.g. for source-service output).
    fn log(&mut self, message: &str, origin: Option<&str>);
    /// The sources about to be fetched, in manifest order.
    fn begin_sources(&mut self, _sources: &[manifest::Source]) {}
    /// One source type is done (advances the outer progress).
    fn finish_source(&mut self, outcome: &SourceOutcome, duration: Duration);
    /// "Starting pipeline X"; sets up the inner (stage) progress.
    fn begin_pipeline(&mut self, p: &manifest::Pipeline);
    /// "Starting module <stage type>".
    fn begin_stage(&mut self, p: &manifest::Pipeline, s: &manifest::Stage);
    /// Text the running stage printed, passed on verbatim (upstream forwards raw chunks,
    /// newlines included). An empty string still makes a (message-less) JSON-seq record,
    /// as upstream's end-of-stage flush does.
    fn stage_output(&mut self, line: &str);
    /// "Finished module <stage type>" with the result (advances the inner progress).
    fn finish_stage(
        &mut self,
        s: &manifest::Stage,
        r: &StageResult,
        duration: Duration,
        metadata: Option<&serde_json::Value>,
    );
    /// "Finished pipeline X" (advances the outer progress).
    fn finish_pipeline(&mut self, p: &manifest::Pipeline);
    /// The build is over; flush and clear anything transient (the progress bar).
    fn finish(&mut self, success: bool);
}

/// Reports nothing, as upstream's `NullMonitor`.
#[derive(Debug, Default)]
pub struct NullMonitor;

impl Monitor for NullMonitor {
    fn log(&mut self, _message: &str, _origin: Option<&str>) {}
    fn finish_source(&mut self, _outcome: &SourceOutcome, _duration: Duration) {}
    fn begin_pipeline(&mut self, _p: &manifest::Pipeline) {}
    fn begin_stage(&mut self, _p: &manifest::Pipeline, _s: &manifest::Stage) {}
    fn stage_output(&mut self, _line: &str) {}
    fn finish_stage(&mut self, _s: &manifest::Stage, _r: &StageResult, _d: Duration, _m: Option<&Value>) {}
    fn finish_pipeline(&mut self, _p: &manifest::Pipeline) {}
    fn finish(&mut self, _success: bool) {}
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Same wording as upstream's `ValueError`.
    #[error("Unknown monitor: {0}")]
    Unknown(String),
    #[error("cannot open monitor fd {fd}: {source}")]
    Fd { fd: i32, source: std::io::Error },
}

/// The writer monitors write to.
pub type Sink = Box<dyn Write + Send>;

/// Open the monitor fd for writing without `unsafe`: 1 and 2 are our stdout/stderr,
/// any other inherited fd is reopened through `/proc/self/fd/<N>` (in append mode, so a
/// regular file is never overwritten from its start).
pub fn open_fd(fd: i32) -> Result<Sink, MonitorError> {
    match fd {
        1 => Ok(Box::new(std::io::stdout())),
        2 => Ok(Box::new(std::io::stderr())),
        _ => OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{fd}"))
            .map(|f| Box::new(f) as Sink)
            .map_err(|source| MonitorError::Fd { fd, source }),
    }
}

/// Check a monitor name: `None` means `LogMonitor`, as upstream's CLI default.
fn check_name(name: Option<&str>) -> Result<&str, MonitorError> {
    match name.unwrap_or("LogMonitor") {
        n @ ("LogMonitor" | "JSONSeqMonitor" | "NullMonitor") => Ok(n),
        other => Err(MonitorError::Unknown(other.to_owned())),
    }
}

/// Create the monitor `name` (`None` -> `LogMonitor`; `LogMonitor`, `JSONSeqMonitor`,
/// `NullMonitor`) writing to `fd` (the `--monitor-fd`, default stdout). `total_steps` is
/// the number of sources plus pipelines to build. With `progress_bar` the monitor is
/// wrapped in a one-line progress display on stderr.
pub fn make(
    name: Option<&str>,
    fd: Option<i32>,
    total_steps: usize,
    progress_bar: bool,
) -> Result<Box<dyn Monitor>, MonitorError> {
    let name = check_name(name)?;
    let sink = if name == "NullMonitor" { Box::new(std::io::sink()) } else { open_fd(fd.unwrap_or(1))? };
    make_with_writer(Some(name), sink, total_steps, progress_bar)
}

/// As [`make`], writing to `out` instead of a file descriptor (tests, embedding).
pub fn make_with_writer(
    name: Option<&str>,
    out: Sink,
    total_steps: usize,
    progress_bar: bool,
) -> Result<Box<dyn Monitor>, MonitorError> {
    let name = check_name(name)?;
    let inner: Box<dyn Monitor> = match name {
        "JSONSeqMonitor" => Box::new(JsonSeqMonitor::new(out, total_steps)),
        "NullMonitor" => Box::new(NullMonitor),
        _ => Box::new(LogMonitor::new(out)),
    };
    if progress_bar {
        let mut bar = ProgressBarMonitor::new(inner, Box::new(std::io::stderr()), total_steps);
        // Only the human log may share the terminal with the line.
        bar.set_interleaved(name == "LogMonitor");
        Ok(Box::new(bar))
    } else {
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(make_with_writer(None, Box::new(std::io::sink()), 0, false).is_ok());
        for n in ["LogMonitor", "JSONSeqMonitor", "NullMonitor"] {
            assert!(make_with_writer(Some(n), Box::new(std::io::sink()), 0, false).is_ok());
        }
        let err = make(Some("BogusMonitor"), None, 0, false).err().unwrap();
        assert_eq!(err.to_string(), "Unknown monitor: BogusMonitor");
    }

    #[test]
    fn source_summary_like_upstream() {
        let mut o =
            SourceOutcome { kind: "org.osbuild.curl".into(), success: true, output: String::new(), items: vec![] };
        assert_eq!(o.summary(), "source org.osbuild.curl finished successfully");
        o.success = false;
        o.items.push(SourceItemOutcome { checksum: "sha256:1".into(), cached: false, error: Some("404".into()) });
        assert_eq!(o.summary(), "source org.osbuild.curl finished unsuccessfully: 404");
    }
}
