//! `LogMonitor`: a readable build log, in the spirit of upstream's monitor of that name:
//! a header per pipeline (`Pipeline <name>: <id>`, build root, runner, source epoch), a
//! header per stage (`<type>: <id>` and its options), the stage's output as it comes and
//! its duration.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use super::{Monitor, Sink, SourceOutcome, StageResult};
use crate::manifest;

pub struct LogMonitor {
    out: Sink,
}

impl LogMonitor {
    pub fn new(out: Sink) -> Self {
        LogMonitor { out }
    }

    fn write(&mut self, text: &str) {
        // A broken log fd must not fail the build.
        let _ = self.out.write_all(text.as_bytes()).and_then(|_| self.out.flush());
    }
}

impl Monitor for LogMonitor {
    fn log(&mut self, message: &str, _origin: Option<&str>) {
        if message.ends_with('\n') {
            self.write(message);
        } else {
            self.write(&format!("{message}\n"));
        }
    }

    fn finish_source(&mut self, outcome: &SourceOutcome, duration: Duration) {
        let cached = outcome.items.iter().filter(|i| i.cached).count();
        let mut text = format!("Source {}: {} items ({cached} cached)\n", outcome.kind, outcome.items.len());
        for item in &outcome.items {
            if let Some(error) = &item.error {
                text.push_str(&format!("  {}: {error}\n", item.checksum));
            }
        }
        text.push_str(&format!("{}\n⏱  Duration: {:.2}s\n", outcome.summary(), duration.as_secs_f64()));
        self.write(&text);
    }

    fn begin_pipeline(&mut self, p: &manifest::Pipeline) {
        let mut text = format!("Pipeline {}: {}\nBuild\n  root: ", p.name, p.id().unwrap_or(""));
        text.push_str(p.build.as_deref().unwrap_or("<host>"));
        if let Some(runner) = &p.runner {
            text.push_str(&format!("\n  runner: {runner}"));
        }
        if let Some(epoch) = &p.source_epoch {
            text.push_str(&format!("\n  source-epoch: [{epoch}]"));
        }
        text.push('\n');
        self.write(&text);
    }

    fn begin_stage(&mut self, _p: &manifest::Pipeline, s: &manifest::Stage) {
        let options = serde_json::to_string_pretty(&s.options).unwrap_or_else(|_| "{}".into());
        self.write(&format!("{}: {} {options}\n", s.kind, s.id));
    }

    fn stage_output(&mut self, line: &str) {
        self.write(line);
    }

    fn finish_stage(&mut self, _s: &manifest::Stage, r: &StageResult, duration: Duration, _md: Option<&Value>) {
        let mut text = format!("\n⏱  Duration: {:.2}s\n", duration.as_secs_f64());
        if !r.success {
            match &r.error {
                Some(e) => text.push_str(&format!("{} failed: {e}\n", r.name)),
                None => text.push_str(&format!("{} failed\n", r.name)),
            }
        }
        self.write(&text);
    }

    fn finish_pipeline(&mut self, _p: &manifest::Pipeline) {}

    fn finish(&mut self, _success: bool) {
        let _ = self.out.flush();
    }
}
