//! A single updating status line on a terminal (stderr), wrapped around any monitor:
//! `[k/n] pipeline <name> [i/m] <stage> mm:ss`, cleared when the build finishes.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Monitor, Sink, SourceOutcome, StageResult};
use crate::manifest;

/// Minimum time between redraws caused by stage output.
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
const CLEAR: &str = "\r\x1b[K";

pub struct ProgressBarMonitor {
    inner: Box<dyn Monitor>,
    term: Sink,
    /// Whether `inner` may write to the same terminal: then the line is cleared first.
    interleaved: bool,
    total: usize,
    done: usize,
    pipeline: String,
    stage: String,
    stages_total: usize,
    stages_done: usize,
    started: Instant,
    last_draw: Option<Instant>,
    /// Whether the inner monitor's output ends at a line start: drawing (which starts
    /// with a carriage return) mid-line would wipe a partial line of stage output.
    at_line_start: bool,
    width: usize,
}

impl ProgressBarMonitor {
    /// Wrap `inner`, drawing on `term`. The inner monitor's own writes are assumed to
    /// share the terminal, so the line is cleared around them.
    pub fn new(inner: Box<dyn Monitor>, term: Sink, total_steps: usize) -> Self {
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|w| *w > 10).unwrap_or(80);
        ProgressBarMonitor {
            inner,
            term,
            interleaved: true,
            total: total_steps,
            done: 0,
            pipeline: String::new(),
            stage: String::new(),
            stages_total: 0,
            stages_done: 0,
            started: Instant::now(),
            last_draw: None,
            at_line_start: true,
            width,
        }
    }

    /// The status line as it is drawn (without control characters).
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs();
        let step = (self.done + 1).min(self.total.max(1));
        let mut line = format!("[{step}/{}] {}", self.total, self.pipeline);
        if self.stages_total > 0 {
            let i = (self.stages_done + 1).min(self.stages_total);
            line.push_str(&format!(" [{i}/{}] {}", self.stages_total, self.stage));
        }
        line.push_str(&format!(" {:02}:{:02}", secs / 60, secs % 60));
        // Never wrap: a wrapped line cannot be redrawn in place.
        line.chars().take(self.width - 1).collect()
    }

    fn clear(&mut self) {
        if self.interleaved && self.last_draw.is_some() {
            let _ = self.term.write_all(CLEAR.as_bytes()).and_then(|_| self.term.flush());
        }
    }

    fn draw(&mut self) {
        if self.interleaved && !self.at_line_start {
            self.last_draw = None;
            return;
        }
        let text = format!("{CLEAR}{}", self.line());
        let _ = self.term.write_all(text.as_bytes()).and_then(|_| self.term.flush());
        self.last_draw = Some(Instant::now());
    }

    /// Run `f` on the inner monitor with the line out of the way, then redraw. The inner
    /// monitor ends everything but stage output with a newline.
    fn around(&mut self, f: impl FnOnce(&mut dyn Monitor)) {
        self.clear();
        f(self.inner.as_mut());
        self.at_line_start = true;
        self.draw();
    }
}

impl Monitor for ProgressBarMonitor {
    fn log(&mut self, message: &str, origin: Option<&str>) {
        self.around(|m| m.log(message, origin));
    }

    fn begin_sources(&mut self, sources: &[manifest::Source]) {
        self.pipeline = "sources".into();
        self.around(|m| m.begin_sources(sources));
    }

    fn finish_source(&mut self, outcome: &SourceOutcome, duration: Duration) {
        self.done += 1;
        self.pipeline = format!("source {}", outcome.kind);
        self.around(|m| m.finish_source(outcome, duration));
    }

    fn begin_pipeline(&mut self, p: &manifest::Pipeline) {
        self.pipeline = format!("pipeline {}", p.name);
        self.stage.clear();
        self.stages_total = p.stages.len();
        self.stages_done = 0;
        self.around(|m| m.begin_pipeline(p));
    }

    fn begin_stage(&mut self, p: &manifest::Pipeline, s: &manifest::Stage) {
        self.stage = s.kind.clone();
        self.around(|m| m.begin_stage(p, s));
    }

    fn stage_output(&mut self, line: &str) {
        if self.interleaved {
            self.clear();
            self.inner.stage_output(line);
            if !line.is_empty() {
                self.at_line_start = line.ends_with('\n');
            }
            self.draw();
        } else {
            self.inner.stage_output(line);
            if self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW_INTERVAL) {
                self.draw();
            }
        }
    }

    fn finish_stage(&mut self, s: &manifest::Stage, r: &StageResult, duration: Duration, metadata: Option<&Value>) {
        self.stages_done += 1;
        self.around(|m| m.finish_stage(s, r, duration, metadata));
    }

    fn finish_pipeline(&mut self, p: &manifest::Pipeline) {
        self.done += 1;
        self.stages_total = 0;
        self.around(|m| m.finish_pipeline(p));
    }

    fn finish(&mut self, success: bool) {
        if self.last_draw.is_some() {
            let _ = self.term.write_all(CLEAR.as_bytes()).and_then(|_| self.term.flush());
        }
        self.last_draw = None;
        self.inner.finish(success);
    }
}

impl ProgressBarMonitor {
    /// Declare whether the inner monitor writes to the terminal the line is drawn on.
    pub fn set_interleaved(&mut self, interleaved: bool) {
        self.interleaved = interleaved;
    }
}
