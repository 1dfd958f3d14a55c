//! The runner: steps in order under budgets, error policy, panics caught, escalation, the report, and
//! the force path that exits even while a step is stuck.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{DEFAULT_TIMEOUT_SECS, DEFAULT_TRADER_ID, OnError, StepSettings};
use crate::node::Node;
use crate::report::{FileSink, LogSink, Outcome, Report, ReportSink, StepOutcome, StepReport};
use crate::signals::SignalListener;
use crate::step::{SharedResults, ShutdownStep, StepContext};
use crate::trigger::{Level, Reason, ShutdownHandle};

/// How long the force-exit thread waits past the global deadline for the runner to report by itself.
const WATCHDOG_GRACE: Duration = Duration::from_millis(100);
/// How long the force-exit thread waits for a report already being written before it exits anyway.
const WRITE_GRACE: Duration = Duration::from_secs(2);

/// The note of a disabled step: skipped on purpose, not a degradation.
const DISABLED: &str = "disabled";

/// A step in a runnable pipeline.
#[derive(Clone)]
pub struct PipelineStep {
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// Runner settings.
    pub settings: StepSettings,
    /// The step; `None` when disabled.
    pub step: Option<Arc<dyn ShutdownStep>>,
}

impl std::fmt::Debug for PipelineStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineStep")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PipelineStep {
    /// A step named after its kind: 5 s, not critical, `on_error = "continue"`.
    pub fn new(step: impl ShutdownStep) -> Self {
        Self::from_boxed(Box::new(step))
    }

    /// A step built from a registered kind's config (`StepConfig::build`), named after its kind.
    pub fn from_boxed(step: Box<dyn ShutdownStep>) -> Self {
        let kind = step.kind();
        Self {
            name: kind.to_owned(),
            kind,
            settings: StepSettings {
                timeout: Duration::from_secs(5),
                critical: false,
                on_error: OnError::Continue,
                enabled: true,
            },
            step: Some(Arc::from(step)),
        }
    }

    /// Set the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Set the step's own timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Make the step critical (it runs after the second signal).
    pub fn critical(mut self, critical: bool) -> Self {
        self.settings.critical = critical;
        self
    }

    /// Set the error policy.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.settings.on_error = on_error;
        self
    }
}

/// A runnable pipeline: built from a [`crate::PipelineConfig`], or in code.
///
/// ```
/// use std::time::Duration;
/// use shutdown_core::{Pipeline, PipelineStep};
/// # use shutdown_core::{ShutdownStep, StepContext, StepOutput, StepError};
/// # struct Flush;
/// # #[async_trait::async_trait]
/// # impl ShutdownStep for Flush {
/// #     fn kind(&self) -> &'static str { "flush" }
/// #     fn plan(&self) -> Vec<String> { vec![] }
/// #     async fn run(&self, _: StepContext) -> Result<StepOutput, StepError> { Ok(StepOutput::new()) }
/// # }
/// let pipeline = Pipeline::new(Duration::from_secs(10))
///     .push(PipelineStep::new(Flush).critical(true).timeout(Duration::from_secs(3)));
/// assert_eq!(pipeline.steps.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Global budget.
    pub timeout: Duration,
    /// Signals that trigger and escalate the shutdown.
    pub signals: Vec<&'static str>,
    /// Where the final report is written, if anywhere.
    pub report_path: Option<std::path::PathBuf>,
    /// Trader id.
    pub trader_id: String,
    /// Where metrics go (read by a metrics sink).
    pub metrics: crate::config::MetricsConfig,
    /// Steps in order.
    pub steps: Vec<PipelineStep>,
}

impl Pipeline {
    /// An empty pipeline with a global budget; SIGTERM and SIGINT; no report file.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            signals: vec!["SIGTERM", "SIGINT"],
            report_path: None,
            trader_id: DEFAULT_TRADER_ID.to_owned(),
            metrics: crate::config::MetricsConfig::default(),
            steps: Vec::new(),
        }
    }

    /// Append a step.
    pub fn push(mut self, step: PipelineStep) -> Self {
        self.steps.push(step);
        self
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS))
    }
}

/// What the runner and the force-exit thread share: the report so far.
#[derive(Debug)]
struct Progress {
    trader_id: String,
    reason: String,
    started_at: String,
    started: Instant,
    timeout: Duration,
    steps: Vec<StepReport>,
    /// Index and start of the step running now.
    current: Option<(usize, Instant)>,
    /// The step whose failure aborted the pipeline.
    aborted_by: Option<String>,
    /// Someone (runner or force-exit thread) is writing the final report.
    finalizing: bool,
    /// The final report is written.
    written: bool,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs a pipeline once, when asked, and reports.
pub struct Shutdown {
    pipeline: Arc<Pipeline>,
    node: Node,
    handle: ShutdownHandle,
    sinks: Vec<Arc<dyn ReportSink>>,
    exit_process: bool,
    dry_run: bool,
    overrides: Arc<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("pipeline", &self.pipeline)
            .field("exit_process", &self.exit_process)
            .finish_non_exhaustive()
    }
}

impl Shutdown {
    /// A shutdown of `pipeline` for `node`. The report goes to the log and, when the pipeline has a
    /// `report_path`, to that file. By default [`Shutdown::run`] returns the report; see
    /// [`Shutdown::exit_process`].
    pub fn new(pipeline: Pipeline, node: Node) -> Self {
        let mut sinks: Vec<Arc<dyn ReportSink>> = Vec::new();
        if let Some(path) = &pipeline.report_path {
            sinks.push(Arc::new(FileSink::new(path)));
        }
        Self {
            pipeline: Arc::new(pipeline),
            node,
            handle: ShutdownHandle::new(),
            sinks,
            exit_process: false,
            dry_run: false,
            overrides: Arc::default(),
        }
    }

    /// A dry run: steps are told not to write outside the process (see [`StepContext::dry_run`]).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// A run-time setting for the steps (see [`StepContext::override_value`]).
    pub fn with_override(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.overrides).insert(key.into(), value.into());
        self
    }

    /// Use this handle (share one with code that must trigger or observe the shutdown).
    pub fn with_handle(mut self, handle: ShutdownHandle) -> Self {
        self.handle = handle;
        self
    }

    /// Add a report sink. Sinks are written in the order added, then the report file (so that it names
    /// every sink that failed), the log line last.
    pub fn with_sink(mut self, sink: Arc<dyn ReportSink>) -> Self {
        let at = self.sinks.len() - usize::from(self.pipeline.report_path.is_some());
        self.sinks.insert(at, sink);
        self
    }

    /// Exit the process with the outcome's code once the report is written; and on force (third
    /// signal, global deadline), write the report and exit with 12 from a dedicated thread, even
    /// while a step blocks the async runtime.
    pub fn exit_process(mut self, exit: bool) -> Self {
        self.exit_process = exit;
        self
    }

    /// The handle that requests, escalates and observes this shutdown.
    pub fn handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Listen for the pipeline's signals until the returned listener is dropped.
    pub fn listen_signals(&self) -> std::io::Result<SignalListener> {
        SignalListener::start(&self.pipeline.signals, self.handle.clone())
    }

    /// Wait for a request (signal, [`ShutdownHandle::trigger`]), then run.
    pub async fn run_when_requested(self) -> Report {
        self.handle.requested().await;
        self.run().await
    }

    /// Run the pipeline now (requesting the shutdown with reason `api` if nobody has).
    pub async fn run(self) -> Report {
        self.handle.trigger(Reason::Api);
        let reason = self.handle.reason().unwrap_or(Reason::Api);
        let started_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                trader_id: self.pipeline.trader_id.clone(),
                reason: reason.to_string(),
                started_at,
                started: Instant::now(),
                timeout: self.pipeline.timeout,
                steps: Vec::new(),
                current: None,
                aborted_by: None,
                finalizing: false,
                written: false,
            }),
            written: Condvar::new(),
        });
        let span = tracing::info_span!(
            "shutdown",
            reason = %reason,
            trader_id = %self.pipeline.trader_id,
            timeout_secs = self.pipeline.timeout.as_secs_f64()
        );
        tracing::info!(parent: &span, steps = self.pipeline.steps.len(), "shutdown started");
        if self.exit_process {
            self.start_watchdog(&shared);
        }
        self.run_steps(&shared, &reason)
            .instrument(span.clone())
            .await;
        let forced_by = self.handle.forced_by();
        let report = {
            let mut p = shared.lock();
            if p.finalizing {
                None
            } else {
                p.finalizing = true;
                p.current = None;
                Some(assemble(&p, &self.pipeline, forced_by))
            }
        };
        let Some(report) = report else {
            // The force-exit thread is writing the report and will exit the process.
            return std::future::pending().await;
        };
        let report = write_sinks(&self.sinks, report);
        {
            let mut p = shared.lock();
            p.written = true;
            shared.written.notify_all();
        }
        tracing::info!(parent: &span, outcome = %report.outcome, exit_code = report.exit_code, duration = report.duration, "shutdown finished");
        if self.exit_process {
            std::process::exit(report.exit_code);
        }
        report
    }

    fn start_watchdog(&self, shared: &Arc<Shared>) {
        let shared = shared.clone();
        let handle = self.handle.clone();
        let pipeline = self.pipeline.clone();
        let sinks = self.sinks.clone();
        let elapsed = shared.lock().started.elapsed();
        let hard_deadline =
            std::time::Instant::now() + (pipeline.timeout + WATCHDOG_GRACE).saturating_sub(elapsed);
        let spawned = std::thread::Builder::new()
            .name("shutdown-watchdog".into())
            .spawn(move || {
                if handle.wait_blocking(Level::Force, Some(hard_deadline)) < Level::Force {
                    handle.force(Reason::Deadline);
                }
                let report = {
                    let mut p = shared.lock();
                    if p.finalizing {
                        // The runner is writing its report; give it a bounded moment.
                        let (p, _) = shared
                            .written
                            .wait_timeout_while(p, WRITE_GRACE, |p| !p.written)
                            .unwrap_or_else(|e| e.into_inner());
                        drop(p);
                        None
                    } else {
                        p.finalizing = true;
                        Some(assemble(&p, &pipeline, handle.forced_by()))
                    }
                };
                let code = match report {
                    Some(report) => {
                        let report = write_sinks(&sinks, report);
                        report.exit_code
                    }
                    None => crate::report::exit_code::FORCED,
                };
                std::process::exit(code);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the force-exit thread; forced exits rely on the runtime");
        }
    }

    async fn run_steps(&self, shared: &Arc<Shared>, reason: &Reason) {
        let receipt = {
            let shared = shared.clone();
            crate::step::Receipt::new(move || receipt(&shared.lock()))
        };
        let start = Instant::now();
        let deadline = start + self.pipeline.timeout;
        let force = self.handle.force_token();
        let hurry_token = self.handle.hurry_token();
        let results = SharedResults::default();
        let mut aborted_by: Option<String> = None;

        for (i, ps) in self.pipeline.steps.iter().enumerate() {
            let entry = |outcome: StepOutcome, error: Option<String>| StepReport {
                name: ps.name.clone(),
                kind: ps.kind.to_owned(),
                critical: ps.settings.critical,
                outcome,
                duration: 0.0,
                attempts: 0,
                error,
                problems: Vec::new(),
                details: serde_json::Map::new(),
            };
            let skip = if force.is_cancelled() {
                Some(entry(StepOutcome::NotRun, Some(forced_note(&self.handle))))
            } else if Instant::now() >= deadline {
                self.handle.force(Reason::Deadline);
                Some(entry(StepOutcome::NotRun, Some(forced_note(&self.handle))))
            } else if let Some(by) = &aborted_by {
                Some(entry(
                    StepOutcome::NotRun,
                    Some(format!(
                        "not run: step `{by}` failed with on_error = \"abort\""
                    )),
                ))
            } else if ps.step.is_none() {
                Some(entry(StepOutcome::Skipped, Some(DISABLED.into())))
            } else if self.handle.level() >= Level::Hurry && !ps.settings.critical {
                Some(entry(
                    StepOutcome::Skipped,
                    Some("skipped: second signal, non-critical steps are skipped".into()),
                ))
            } else {
                None
            };
            if let Some(report) = skip {
                shared.lock().steps.push(report);
                continue;
            }
            let Some(step) = ps.step.clone() else {
                continue;
            };

            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let capped = ps.settings.timeout >= left;
            let budget = ps.settings.timeout.min(left);
            let step_deadline = now + budget;
            let token = force.child_token();
            let ctx = StepContext {
                reason: reason.clone(),
                name: ps.name.clone(),
                deadline: step_deadline,
                cancel: token.clone(),
                node: self.node.clone(),
                results: results.clone(),
                trader_id: self.pipeline.trader_id.clone(),
                receipt: receipt.clone(),
                dry_run: self.dry_run,
                overrides: self.overrides.clone(),
            };
            let span = tracing::info_span!(
                "step",
                step = %ps.name,
                kind = ps.kind,
                index = i + 1,
                budget_secs = budget.as_secs_f64(),
                critical = ps.settings.critical
            );
            shared.lock().current = Some((i, Instant::now()));
            tracing::info!(parent: &span, "step started");
            let mut task =
                tokio::spawn(async move { step.run(ctx).await }.instrument(span.clone()));
            let hurry = async {
                if ps.settings.critical {
                    std::future::pending::<()>().await
                } else {
                    hurry_token.cancelled().await
                }
            };
            let ended = tokio::select! {
                biased;
                r = &mut task => Ended::Finished(r),
                _ = force.cancelled() => Ended::Forced,
                _ = tokio::time::sleep_until(step_deadline) => Ended::TimedOut,
                _ = hurry => Ended::Hurried,
            };
            if !matches!(ended, Ended::Finished(_)) {
                token.cancel();
                task.abort();
            }
            let elapsed = now.elapsed().as_secs_f64();
            let mut report = entry(StepOutcome::Succeeded, None);
            report.duration = elapsed;
            report.attempts = 1;
            match ended {
                Ended::Finished(Ok(Ok(out))) => {
                    report.attempts = out.attempts;
                    report.details = out.details;
                    report.problems = out.problems;
                }
                Ended::Finished(Ok(Err(e))) => {
                    report.outcome = StepOutcome::Failed;
                    report.attempts = e.attempts;
                    report.details = e.details;
                    report.error = Some(e.message);
                }
                Ended::Finished(Err(join)) => {
                    report.outcome = StepOutcome::Panicked;
                    report.error = Some(if join.is_panic() {
                        format!("panicked: {}", panic_message(join.into_panic()))
                    } else {
                        "the step's task was cancelled".into()
                    });
                }
                Ended::TimedOut => {
                    report.outcome = StepOutcome::TimedOut;
                    if capped {
                        self.handle.force(Reason::Deadline);
                        report.error = Some(format!(
                            "global deadline of {}s reached while the step ran",
                            self.pipeline.timeout.as_secs_f64()
                        ));
                    } else {
                        report.error = Some(format!("timed out after {}s", budget.as_secs_f64()));
                    }
                }
                Ended::Forced => {
                    report.outcome = StepOutcome::TimedOut;
                    report.error = Some(format!("interrupted: {}", forced_note(&self.handle)));
                }
                Ended::Hurried => {
                    report.outcome = StepOutcome::Skipped;
                    report.error =
                        Some("interrupted: second signal, non-critical steps are skipped".into());
                }
            }
            log_step(&span, &report);
            if report.outcome.is_failure() && ps.settings.on_error == OnError::Abort {
                aborted_by = Some(ps.name.clone());
            }
            let mut p = shared.lock();
            p.aborted_by.clone_from(&aborted_by);
            p.current = None;
            p.steps.push(report);
        }
    }
}

enum Ended {
    Finished(
        Result<Result<crate::step::StepOutput, crate::step::StepError>, tokio::task::JoinError>,
    ),
    Forced,
    TimedOut,
    Hurried,
}

fn forced_note(handle: &ShutdownHandle) -> String {
    match handle.forced_by() {
        Some(Reason::Deadline) | None => "global deadline reached, shutdown forced".into(),
        Some(other) => format!("shutdown forced by {other}"),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

fn log_step(span: &tracing::Span, r: &StepReport) {
    let error = r.error.as_deref().unwrap_or("");
    match r.outcome {
        StepOutcome::Succeeded if r.problems.is_empty() => {
            tracing::info!(parent: span, outcome = %r.outcome, duration = r.duration, attempts = r.attempts, "step finished")
        }
        StepOutcome::Succeeded | StepOutcome::Skipped => {
            tracing::warn!(parent: span, outcome = %r.outcome, duration = r.duration, problems = ?r.problems, error, "step finished")
        }
        _ => {
            tracing::error!(parent: span, outcome = %r.outcome, duration = r.duration, attempts = r.attempts, error, "step failed")
        }
    }
}

/// The receipt a step receives: what has happened before it.
fn receipt(p: &Progress) -> serde_json::Value {
    serde_json::json!({
        "trader_id": p.trader_id,
        "reason": p.reason,
        "started_at": p.started_at,
        "timeout_secs": p.timeout.as_secs_f64(),
        "steps": p.steps,
    })
}

/// The report from what has happened so far: a running step counts as interrupted, the rest as not run.
fn assemble(p: &Progress, pipeline: &Pipeline, forced_by: Option<Reason>) -> Report {
    let mut steps = p.steps.clone();
    let forced = forced_by.is_some();
    let note = match &forced_by {
        Some(Reason::Deadline) | None => "global deadline reached, shutdown forced".to_owned(),
        Some(other) => format!("shutdown forced by {other}"),
    };
    if let Some((i, since)) = p.current {
        if let Some(ps) = pipeline.steps.get(i) {
            steps.push(StepReport {
                name: ps.name.clone(),
                kind: ps.kind.to_owned(),
                critical: ps.settings.critical,
                outcome: StepOutcome::TimedOut,
                duration: since.elapsed().as_secs_f64(),
                attempts: 1,
                error: Some(format!("interrupted: {note}; its effects are unknown")),
                problems: Vec::new(),
                details: serde_json::Map::new(),
            });
        }
    }
    for ps in pipeline.steps.iter().skip(steps.len()) {
        steps.push(StepReport {
            name: ps.name.clone(),
            kind: ps.kind.to_owned(),
            critical: ps.settings.critical,
            outcome: StepOutcome::NotRun,
            duration: 0.0,
            attempts: 0,
            error: Some(note.clone()),
            problems: Vec::new(),
            details: serde_json::Map::new(),
        });
    }
    for (report, ps) in steps.iter_mut().zip(&pipeline.steps) {
        let not_done = match report.outcome {
            StepOutcome::Skipped => report.error.as_deref() != Some(DISABLED),
            StepOutcome::NotRun | StepOutcome::TimedOut | StepOutcome::Panicked => true,
            StepOutcome::Succeeded | StepOutcome::Failed => false,
        };
        if let Some(consequence) = ps
            .step
            .as_ref()
            .filter(|_| not_done)
            .and_then(|s| s.if_not_done())
        {
            report.problems.push(consequence);
        }
    }
    let aborted = p.aborted_by.is_some();
    let degraded = steps.iter().any(|s| {
        s.outcome.is_failure()
            || !s.problems.is_empty()
            || (s.outcome == StepOutcome::Skipped && s.error.as_deref() != Some(DISABLED))
    });
    let outcome = if forced {
        Outcome::Forced
    } else if aborted {
        Outcome::Aborted
    } else if degraded {
        Outcome::Degraded
    } else {
        Outcome::Clean
    };
    Report {
        trader_id: p.trader_id.clone(),
        reason: p.reason.clone(),
        forced_by: forced_by.map(|r| r.to_string()),
        started_at: p.started_at.clone(),
        duration: p.started.elapsed().as_secs_f64(),
        outcome,
        exit_code: outcome.exit_code(),
        timeout_secs: p.timeout.as_secs_f64(),
        steps,
        sink_errors: Vec::new(),
    }
}

fn write_sinks(sinks: &[Arc<dyn ReportSink>], mut report: Report) -> Report {
    for sink in sinks {
        if let Err(e) = sink.write(&report) {
            tracing::error!(sink = %sink.name(), error = %e, "report sink failed");
            report.sink_errors.push(format!("{}: {e}", sink.name()));
        }
    }
    let _ = LogSink.write(&report);
    report
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
