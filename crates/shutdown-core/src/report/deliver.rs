//! The report's way out: first where it cannot hang (the report file, or a fallback file and stderr
//! when that cannot be written, then the log line), then the network sinks, all at once, each bounded
//! by its own timeout and by what is left of the global budget.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{FileSink, LogSink, Report, ReportSink};

/// Every place a report goes.
#[derive(Clone, Default)]
pub(crate) struct Sinks {
    /// The pipeline's `report_path`.
    pub(crate) file: Option<FileSink>,
    /// Sinks added with [`crate::Shutdown::with_sink`], written after the file and the log.
    pub(crate) others: Vec<Arc<dyn ReportSink>>,
}

impl Sinks {
    /// Write the report everywhere: first where it cannot hang (the report file, then the log
    /// line), then to every other sink at once, each on a thread of its own, within its own timeout
    /// and `left`. A sink that fails or does not answer in time is named in `report.sink_errors`,
    /// and the report file is rewritten to say so. A sink that never answers keeps its thread, not
    /// the runtime: dropping the runtime afterwards does not wait for it.
    pub(crate) async fn write(&self, mut report: Report, left: Duration) -> Report {
        let json = self.write_local(&mut report);
        if self.others.is_empty() {
            return report;
        }
        let (others, shared) = (self.others.clone(), Arc::new(report));
        let lent = shared.clone();
        let errors = tokio::task::spawn_blocking(move || write_all(&others, &lent, &json, left))
            .await
            .unwrap_or_else(|e| vec![format!("the report sinks could not be written: {e}")]);
        self.record(reclaim(shared), errors)
    }

    /// [`Sinks::write`] without a runtime (the force-exit thread).
    pub(crate) fn write_blocking(&self, mut report: Report, left: Duration) -> Report {
        let json = self.write_local(&mut report);
        if self.others.is_empty() {
            return report;
        }
        let shared = Arc::new(report);
        let errors = write_all(&self.others, &shared, &json, left);
        self.record(reclaim(shared), errors)
    }

    /// Write the report file and the log line. When the file cannot be written, the report goes to
    /// a fallback file in the temporary directory and, whatever the log level, to stderr.
    ///
    /// Returns the report's JSON line, encoded once here for the log and every other sink.
    fn write_local(&self, report: &mut Report) -> Arc<str> {
        if let Some(file) = &self.file
            && let Err(e) = file.write(report)
        {
            report.sink_errors.push(format!("{}: {e}", file.name()));
            keep_elsewhere(report);
            let error = report.sink_errors.last().cloned().unwrap_or_default();
            tracing::error!(sink = %file.name(), error = %error, "report file not written");
        }
        let json: Arc<str> = report.to_json_line().into();
        let _ = LogSink.write_encoded(report, &json);
        json
    }

    /// Name each failed sink in the report, and rewrite the report file to say so.
    fn record(&self, mut report: Report, errors: Vec<String>) -> Report {
        if errors.is_empty() {
            return report;
        }
        for error in errors {
            tracing::error!(error = %error, "report sink failed");
            report.sink_errors.push(error);
        }
        if let Some(file) = &self.file
            && let Err(e) = file.write(&report)
        {
            tracing::error!(sink = %file.name(), error = %e, "report file not rewritten");
        }
        report
    }
}

/// The report the sinks shared, back: without a copy, unless a sink that did not answer in time
/// still holds it (a large report is the largest thing a shutdown holds at its end).
fn reclaim(shared: Arc<Report>) -> Report {
    Arc::try_unwrap(shared).unwrap_or_else(|held| (*held).clone())
}

/// Write `report` to every sink at once, each on a thread of its own, each within its timeout and
/// `left` (counted from the start); the errors, one per sink that failed or did not answer.
fn write_all(
    sinks: &[Arc<dyn ReportSink>],
    report: &Arc<Report>,
    json: &Arc<str>,
    left: Duration,
) -> Vec<String> {
    let started = std::time::Instant::now();
    let waits: Vec<_> = (sinks.iter())
        .map(|sink| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (s, report, json) = (sink.clone(), report.clone(), json.clone());
            let spawned = std::thread::Builder::new()
                .name("shutdown-sink".into())
                .spawn(move || {
                    let written = s.write_encoded(&report, &json);
                    // Let go of the report before saying so, so that it comes back uncopied.
                    drop((report, json));
                    let _ = tx.send(written);
                });
            (sink.name(), sink.timeout().min(left), spawned.map(|_| rx))
        })
        .collect();
    let mut errors = Vec::new();
    for (name, bound, rx) in waits {
        let wait = bound.saturating_sub(started.elapsed());
        match rx.map(|rx| rx.recv_timeout(wait)) {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(format!("{name}: {e}")),
            Ok(Err(std::sync::mpsc::RecvTimeoutError::Timeout)) => errors.push(format!(
                "{name}: no answer within {} (its timeout, capped by what was left of the global budget, 1s at least)",
                crate::secs::secs(bound)
            )),
            Ok(Err(std::sync::mpsc::RecvTimeoutError::Disconnected)) => {
                errors.push(format!("{name}: the sink failed (it panicked)"));
            }
            Err(e) => errors.push(format!("{name}: no thread to write it: {e}")),
        }
    }
    errors
}

/// Keep a report whose file could not be written: a fallback file, and stderr; the last of its
/// `sink_errors` (the file's) says where it went.
fn keep_elsewhere(report: &mut Report) {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let id: String = (report.trader_id.chars())
        .map(|c| if safe(c) { c } else { '_' })
        .collect();
    let path: PathBuf = std::env::temp_dir().join(format!("shutdown-report-{id}.json"));
    if let Some(error) = report.sink_errors.last_mut() {
        error.push_str(&format!(
            "; the report is in {} and on stderr",
            path.display()
        ));
    }
    if let Err(e) = FileSink::new(&path).write(report)
        && let Some(error) = report.sink_errors.last_mut()
    {
        let kept = format!(
            "the fallback {} failed too ({e}); the report is on stderr",
            path.display()
        );
        *error = format!(
            "{}; {kept}",
            error.split("; the report is in").next().unwrap_or("")
        );
    }
    // Whatever the log level: the content of the report must not be lost.
    eprintln!("shutdown report: {}", report.to_json_line());
}
