//! The shutdown report, exit codes, and report sinks (atomic JSON file, one log line).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::trading::Counter;
use crate::trigger::Reason;

pub(crate) mod deliver;

/// Exit codes of a shutdown, as documented in the README.
pub mod exit_code {
    /// Every step succeeded (or was disabled) and nothing was found wrong.
    pub const CLEAN: i32 = 0;
    /// The pipeline finished, but a step failed, timed out, panicked, was skipped in a hurry, or found a problem.
    pub const DEGRADED: i32 = 10;
    /// A step with `on_error = "abort"` failed; the steps after it did not run.
    pub const ABORTED: i32 = 11;
    /// The third signal or the global deadline forced the exit.
    pub const FORCED: i32 = 12;
    /// The configuration is invalid (the sysexits `EX_CONFIG` code).
    pub const INVALID_CONFIG: i32 = 78;
}

/// The outcome of the whole shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exit code 0.
    Clean,
    /// Exit code 10.
    Degraded,
    /// Exit code 11.
    Aborted,
    /// Exit code 12.
    Forced,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Clean => exit_code::CLEAN,
            Outcome::Degraded => exit_code::DEGRADED,
            Outcome::Aborted => exit_code::ABORTED,
            Outcome::Forced => exit_code::FORCED,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Degraded => "degraded",
            Outcome::Aborted => "aborted",
            Outcome::Forced => "forced",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Ran to its end without error.
    Succeeded,
    /// Not run on purpose: disabled, or non-critical after the second signal.
    Skipped,
    /// Returned an error.
    Failed,
    /// Its budget ran out.
    TimedOut,
    /// Panicked; caught by the runner.
    Panicked,
    /// Never started: an earlier step aborted, or the shutdown was forced.
    NotRun,
}

impl StepOutcome {
    fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Failed => "failed",
            StepOutcome::TimedOut => "timed_out",
            StepOutcome::Panicked => "panicked",
            StepOutcome::NotRun => "not_run",
        }
    }

    /// Whether the step did not do its job (failed, timed out or panicked).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            StepOutcome::Failed | StepOutcome::TimedOut | StepOutcome::Panicked
        )
    }
}

impl fmt::Display for StepOutcome {
    // `pad`, so the report's table can align it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A count over the whole report: what the steps counted, and whether some step that should have
/// counted could not (then the true number may be higher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    /// What was counted: the sum of things done, or the last judgement of a state; with
    /// `unknown`, a lower bound (what a step cut short had counted by then).
    pub known: u64,
    /// A step that counts this did not give its count.
    pub unknown: bool,
}

/// One step's entry in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// Step kind.
    pub kind: String,
    /// Whether the step is critical (runs after the second signal).
    pub critical: bool,
    /// Outcome.
    pub outcome: StepOutcome,
    /// Seconds the step took.
    pub duration: f64,
    /// Attempts the step made.
    pub attempts: u32,
    /// Why the step failed, was skipped or did not run.
    pub error: Option<String>,
    /// Problems found that degrade the shutdown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Step-specific details.
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Counts for the metrics; `null` when the step counts this and could not say.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<Counter, Option<u64>>,
    /// For a count that is `null` in `counts` because the step was cut short: what it had counted
    /// by then (orders cancelled so far, orders known still working). The true number is at least
    /// this.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub at_least: BTreeMap<Counter, u64>,
    /// What the step did, in one line for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Seconds from the start of the pipeline to the step's start (to its end or the report, for a
    /// step that never started).
    #[serde(default)]
    pub offset: f64,
    /// Seconds the step was given: its own timeout, capped by what was left of the global one.
    #[serde(default)]
    pub budget: f64,
}

/// The report of one shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// Trader id of the node.
    pub trader_id: String,
    /// What started the shutdown (`SIGTERM`, `SIGINT`, `api`, `fleet`, `deadline`), or `start` for
    /// a start gate.
    pub reason: Reason,
    /// What forced it, when it was forced (`deadline`, a signal name, `api`).
    #[serde(default)]
    pub forced_by: Option<Reason>,
    /// When the pipeline started (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds from start to the report.
    pub duration: f64,
    /// Overall outcome.
    pub outcome: Outcome,
    /// Process exit code for the outcome.
    pub exit_code: i32,
    /// The global budget in seconds.
    pub timeout_secs: f64,
    /// One entry per step, in pipeline order.
    pub steps: Vec<StepReport>,
    /// Report sinks that failed to take this report (written by the sinks that did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sink_errors: Vec<String>,
    /// When the shutdown escalated: the request, a second signal (hurry), a force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationReport>,
}

/// One escalation in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EscalationReport {
    /// The level reached: `graceful`, `hurry` or `force`.
    pub level: crate::trigger::Level,
    /// What raised it (`SIGTERM`, `api`, `deadline`, ...).
    pub reason: Reason,
    /// Seconds from the start of the pipeline (0 for the request that started it).
    pub offset: f64,
}

impl Report {
    /// The step entry of that name.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// A count over the steps: things done add up; a state (see [`Counter::is_state`]) is the
    /// last judgement of it, unknown when the last step that owed it could not say.
    pub fn count(&self, counter: Counter) -> Count {
        let mut count = Count::default();
        for (s, value) in (self.steps.iter()).filter_map(|s| Some((s, s.counts.get(&counter)?))) {
            count = match (value, counter.is_state()) {
                (Some(n), true) => Count {
                    known: *n,
                    unknown: false,
                },
                (Some(n), false) => Count {
                    known: count.known + n,
                    ..count
                },
                (None, state) => {
                    // What a step cut short had counted: a state it last judged, or more done.
                    let at_least = s.at_least.get(&counter).copied();
                    let known = match (at_least, state) {
                        (Some(n), true) => n,
                        (Some(n), false) => count.known + n,
                        (None, _) => count.known,
                    };
                    Count {
                        known,
                        unknown: true,
                    }
                }
            };
        }
        count
    }

    /// The report as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Log that the shutdown finished, and how.
    pub(crate) fn log(&self, span: &tracing::Span) {
        let (outcome, exit_code, duration) = (self.outcome, self.exit_code, self.duration);
        tracing::info!(parent: span, %outcome, exit_code, duration, "shutdown finished");
    }
}

impl StepReport {
    /// Log that the step finished: at info when it succeeded without problems, at warn when it
    /// succeeded with problems or was skipped, at error otherwise.
    pub(crate) fn log(&self, span: &tracing::Span) {
        let error = self.error.as_deref().unwrap_or("");
        let (outcome, duration, attempts) = (&self.outcome, self.duration, self.attempts);
        match self.outcome {
            StepOutcome::Succeeded if self.problems.is_empty() => {
                tracing::info!(parent: span, %outcome, duration, attempts, "step finished")
            }
            StepOutcome::Succeeded | StepOutcome::Skipped => {
                tracing::warn!(parent: span, %outcome, duration, problems = ?self.problems, error, "step finished")
            }
            _ => tracing::error!(parent: span, %outcome, duration, attempts, error, "step failed"),
        }
    }
}

impl fmt::Display for Report {
    /// A table that fits in 80 columns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            Reason::Start => "start gate",
            _ => "shutdown",
        };
        writeln!(
            f,
            "{what} {} (exit {}) after {:.3}s: reason {}{}",
            self.outcome,
            self.exit_code,
            self.duration,
            self.reason,
            self.forced_by
                .as_ref()
                .map(|b| format!(", forced by {b}"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "  {:<3}{:<20}{:<10} {:>7} {:>4}",
            "#", "step", "outcome", "secs", "try"
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            let name = match s.name == s.kind {
                true => s.name.clone(),
                false => format!("{} ({})", s.name, s.kind),
            };
            let row = format!(
                "  {:<3}{:<20}{:<10} {:>7.3} {:>4}",
                i + 1,
                truncate(&name, 19),
                s.outcome,
                s.duration,
                s.attempts,
            );
            writeln!(f, "{row}")?;
            // What the step did, under its row.
            for line in s
                .summary
                .iter()
                .flat_map(|did| wrap(did, "       ", "       "))
            {
                writeln!(f, "{line}")?;
            }
        }
        let notes: Vec<(&str, &String)> = (self.steps.iter())
            .flat_map(|s| {
                (s.error.iter().chain(&s.problems)).map(move |text| (s.name.as_str(), text))
            })
            .collect();
        if !notes.is_empty() {
            writeln!(f, "problems:")?;
            for (name, text) in notes {
                for line in wrap(&format!("{name}: {text}"), "  - ", "    ") {
                    writeln!(f, "{line}")?;
                }
            }
        }
        if !self.sink_errors.is_empty() {
            writeln!(f, "report sinks that failed:")?;
            for e in &self.sink_errors {
                for line in wrap(e, "  - ", "    ") {
                    writeln!(f, "{line}")?;
                }
            }
        }
        Ok(())
    }
}

/// The width of the human report.
const WIDTH: usize = 80;

/// `text` in lines of at most [`WIDTH`] characters, the first after `first`, the others after
/// `rest`; a word longer than a line is broken across lines (an id is shown whole).
fn wrap(text: &str, first: &str, rest: &str) -> Vec<String> {
    let options = textwrap::Options::new(WIDTH)
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(true);
    let lines: Vec<String> = (textwrap::wrap(text, options).into_iter())
        .map(|l| l.into_owned())
        .collect();
    if lines.is_empty() {
        vec![first.to_owned()]
    } else {
        lines
    }
}

/// `s` in at most `max` characters, its end replaced by `…` when it is longer (a column's width).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// How long the runner waits for a sink that does not say ([`ReportSink::timeout`]).
pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a report sink could not take the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A file could not be written.
    #[error("cannot write report to {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The report could not be encoded.
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    /// A sink elsewhere (Redis, a Pushgateway) refused or did not answer; the message never holds
    /// a secret.
    #[error("{0}")]
    Remote(String),
}

/// Why a report file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadReportError {
    /// The file could not be read.
    #[error("cannot read report {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a shutdown report.
    #[error("{}: not a shutdown report: {source}", path.display())]
    NotAReport {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Somewhere the final report goes. Synchronous, so that it can be written from a plain thread
/// while the async runtime is stuck; implementations must bound their own waits.
pub trait ReportSink: Send + Sync {
    /// A short name for errors (`file /var/lib/x.json`, `log`). Never a secret: a URL in it is
    /// redacted.
    fn name(&self) -> String;
    /// Take the report.
    fn write(&self, report: &Report) -> Result<(), SinkError>;
    /// Take the report with its JSON encoding ([`Report::to_json_line`]), made once for every sink
    /// (a report with long id lists is a megabyte: encoding it once per sink, each on its own
    /// thread, costs memory at the worst moment). The runner calls this; by default it is
    /// [`ReportSink::write`].
    fn write_encoded(&self, report: &Report, json: &str) -> Result<(), SinkError> {
        let _ = json;
        self.write(report)
    }
    /// How long the runner waits for [`ReportSink::write`] (also capped by what is left of the
    /// global budget); past it, the sink is named in the report's `sink_errors`.
    fn timeout(&self) -> Duration {
        DEFAULT_SINK_TIMEOUT
    }
}

/// Writes the report as one line of JSON to the log (target `shutdown::report`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

impl ReportSink for LogSink {
    fn name(&self) -> String {
        "log".into()
    }

    fn write(&self, report: &Report) -> Result<(), SinkError> {
        self.write_encoded(report, &report.to_json_line())
    }

    fn write_encoded(&self, _: &Report, json: &str) -> Result<(), SinkError> {
        tracing::info!(target: "shutdown::report", report = %json, "shutdown report");
        Ok(())
    }
}

/// Writes the report as pretty JSON to a file, atomically (temp file, fsync, rename, fsync dir).
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    /// A sink writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl ReportSink for FileSink {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn write(&self, report: &Report) -> Result<(), SinkError> {
        let json = serde_json::to_vec_pretty(report)?;
        write_atomic(&self.path, &json).map_err(|source| SinkError::File {
            path: self.path.clone(),
            source,
        })
    }
}

/// Write `bytes` to `path` so that a reader sees the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    // A name of its own per write (two sinks may write the same file at once), removed if the write
    // fails; readable as a file `File::create` makes (the textfile collector reads it as another
    // user), not tempfile's 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable.
    fs::File::open(&dir)?.sync_all()
}

/// Read a report written by [`FileSink`].
pub fn read_report(path: &Path) -> Result<Report, ReadReportError> {
    let path = path.to_path_buf();
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(source) => return Err(ReadReportError::Read { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| ReadReportError::NotAReport { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            trader_id: "trader-001".into(),
            reason: Reason::Signal(crate::Signal::Term),
            forced_by: None,
            started_at: "2026-01-01T00:00:00Z".into(),
            duration: 1.5,
            outcome: Outcome::Degraded,
            exit_code: 10,
            timeout_secs: 30.0,
            steps: vec![StepReport {
                name: "a-very-long-step-name-indeed".into(),
                kind: "cancel".into(),
                critical: true,
                outcome: StepOutcome::Failed,
                duration: 0.25,
                attempts: 3,
                error: Some("2 orders could not be cancelled: o-1, o-2".into()),
                problems: vec![],
                details: serde_json::Map::new(),
                counts: BTreeMap::new(),
                at_least: BTreeMap::new(),
                summary: None,
                offset: 0.5,
                budget: 4.0,
            }],
            sink_errors: vec![],
            escalations: vec![],
        }
    }

    #[test]
    fn file_sink_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        FileSink::new(&path).write(&sample()).unwrap();
        assert_eq!(read_report(&path).unwrap(), sample());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("report.json")]);
    }

    #[test]
    fn a_report_file_is_as_readable_as_a_file_the_process_creates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, plain) = (dir.path().join("report.json"), dir.path().join("plain"));
        FileSink::new(&path).write(&sample()).unwrap();
        fs::File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // The textfile collector and an operator read it as other users: not tempfile's 0600.
        assert_eq!(mode(&path), mode(&plain));
    }

    #[test]
    fn file_sink_error_names_the_path() {
        let err = FileSink::new("/nonexistent-dir/x/report.json")
            .write(&sample())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent-dir/x/report.json"), "{err}");
    }

    #[test]
    fn display_fits_in_80_columns() {
        let text = sample().to_string();
        assert!(text.contains("degraded (exit 10)"));
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{line:?} is {} wide",
                line.len()
            );
        }
    }

    #[test]
    fn the_table_columns_line_up_whatever_the_outcome_and_a_start_gate_says_so() {
        let mut r = sample();
        let mut ok = r.steps[0].clone();
        ok.outcome = StepOutcome::Succeeded;
        r.steps.push(ok);
        r.reason = Reason::Start;
        let text = r.to_string();
        assert!(text.starts_with("start gate degraded (exit 10)"), "{text}");
        let rows: Vec<&str> = text.lines().skip(2).collect();
        let secs = |row: &str| row.find("0.250").unwrap();
        assert_eq!(secs(rows[0]), secs(rows[1]), "{text}");
    }

    #[test]
    fn json_uses_the_contract_field_names() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json_line()).unwrap();
        for key in [
            "reason",
            "started_at",
            "duration",
            "outcome",
            "exit_code",
            "steps",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        let step = &v["steps"][0];
        for key in [
            "name", "kind", "outcome", "duration", "attempts", "error", "details",
        ] {
            assert!(step.get(key).is_some(), "missing step {key}");
        }
        assert_eq!(step["outcome"], "failed");
        assert_eq!(v["outcome"], "degraded");
    }
}
