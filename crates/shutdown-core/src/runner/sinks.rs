//! The report's way out: first where it cannot hang (the report file, or a fallback file and stderr
//! when that cannot be written, then the log line), then the network sinks, all at once, each bounded
//! by its own timeout and by what is left of the global budget.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::report::{FileSink, LogSink, Report, ReportSink};

/// Every place a report goes.
#[derive(Clone, Default)]
pub(super) struct Sinks {
    /// The pipeline's `report_path`.
    pub(super) file: Option<FileSink>,
    /// Sinks added with [`crate::Shutdown::with_sink`], written after the file and the log.
    pub(super) others: Vec<Arc<dyn ReportSink>>,
}

impl Sinks {
    /// Write the report file and the log line. When the file cannot be written, the report goes to
    /// a fallback file in the temporary directory and, whatever the log level, to stderr.
    pub(super) fn write_local(&self, report: &mut Report) {
        if let Some(file) = &self.file
            && let Err(e) = file.write(report)
        {
            report.sink_errors.push(format!("{}: {e}", file.name()));
            keep_elsewhere(report);
            let error = report.sink_errors.last().cloned().unwrap_or_default();
            tracing::error!(sink = %file.name(), error = %error, "report file not written");
        }
        let _ = LogSink.write(report);
    }

    /// Write to every other sink at once, each on the blocking pool, within its own timeout and
    /// `left`; a sink that fails or does not answer in time is named in `report.sink_errors`, and
    /// the report file is rewritten to say so.
    pub(super) async fn write_others(&self, report: &mut Report, left: Duration) {
        if self.others.is_empty() {
            return;
        }
        let shared = Arc::new(report.clone());
        let writes = self.others.iter().map(|sink| {
            let (sink, shared) = (sink.clone(), shared.clone());
            let bound = sink.timeout().min(left);
            async move {
                let name = sink.name();
                let write = tokio::task::spawn_blocking(move || sink.write(&shared));
                match tokio::time::timeout(bound, write).await {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(e))) => Some(format!("{name}: {e}")),
                    Ok(Err(e)) => Some(format!("{name}: the sink failed: {e}")),
                    Err(_) => Some(format!(
                        "{name}: no answer within {}s (its timeout, capped by what was left of the global budget, 1s at least)",
                        bound.as_secs_f64()
                    )),
                }
            }
        });
        let errors: Vec<String> = (futures_util::future::join_all(writes).await)
            .into_iter()
            .flatten()
            .collect();
        if errors.is_empty() {
            return;
        }
        for error in errors {
            tracing::error!(error = %error, "report sink failed");
            report.sink_errors.push(error);
        }
        if let Some(file) = &self.file
            && let Err(e) = file.write(report)
        {
            tracing::error!(sink = %file.name(), error = %e, "report file not rewritten");
        }
    }
}

impl Sinks {
    /// [`Sinks::write_others`] without a runtime (the force-exit thread): each sink on a thread of
    /// its own, within its timeout and `left`; the ones that fail or do not answer are named in
    /// `report.sink_errors`, and the report file is rewritten to say so.
    pub(super) fn write_others_blocking(&self, report: &mut Report, left: Duration) {
        if self.others.is_empty() {
            return;
        }
        let shared = Arc::new(report.clone());
        let started = std::time::Instant::now();
        let waits: Vec<_> = (self.others.iter())
            .map(|sink| {
                let (tx, rx) = std::sync::mpsc::channel();
                let (s, shared) = (sink.clone(), shared.clone());
                let spawned = std::thread::Builder::new()
                    .name("shutdown-sink".into())
                    .spawn(move || {
                        let _ = tx.send(s.write(&shared));
                    });
                (sink.name(), sink.timeout().min(left), spawned.map(|_| rx))
            })
            .collect();
        for (name, bound, rx) in waits {
            let wait = bound.saturating_sub(started.elapsed());
            let error = match rx.map(|rx| rx.recv_timeout(wait)) {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => format!("{name}: {e}"),
                Ok(Err(_)) => format!(
                    "{name}: no answer within {}s (its timeout, capped by the force-exit grace)",
                    bound.as_secs_f64()
                ),
                Err(e) => format!("{name}: no thread to write it: {e}"),
            };
            tracing::error!(error = %error, "report sink failed");
            report.sink_errors.push(error);
        }
        if !report.sink_errors.is_empty()
            && let Some(file) = &self.file
        {
            let _ = file.write(report);
        }
    }
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
