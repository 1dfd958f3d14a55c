//! The runner: steps in order under budgets, error policy, panics caught, escalation, the report, and
//! the force path that exits even while a step is stuck.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{DEFAULT_TIMEOUT_SECS, DEFAULT_TRADER_ID, OnError, StepSettings};
use crate::node::Node;
use crate::report::{FileSink, LogSink, Outcome, Report, ReportSink, StepOutcome, StepReport};
use crate::signals::SignalListener;
use crate::step::{SharedResults, ShutdownStep, StepContext, StepError, StepOutput};
use crate::trigger::{Level, Reason, ShutdownHandle};

/// How long the force-exit thread waits past the global deadline for the runner to report by itself.
const WATCHDOG_GRACE: Duration = Duration::from_millis(100);
/// How long the force-exit thread waits for a report already being written before it exits anyway.
const WRITE_GRACE: Duration = Duration::from_secs(2);

/// How long past a step's deadline (or a force, or for a non-critical step a hurry) the runner may
/// take to notice before the watch abandons the step as holding the runner's thread.
const WATCH_GRACE: Duration = Duration::from_millis(250);

/// Why a non-critical step did not run, or stopped, after the second signal.
const IN_A_HURRY: &str = "second signal, non-critical steps are skipped";

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

/// What the runner, the caller watching it and the force-exit thread share: the report so far.
#[derive(Debug)]
struct Progress {
    trader_id: String,
    reason: String,
    started_at: String,
    started: Instant,
    timeout: Duration,
    steps: Vec<StepReport>,
    /// The step running now.
    current: Option<Current>,
    /// Bumped when the watch abandons a step that holds the runner's thread: the runner that ran it
    /// must then drop whatever it finds when (if ever) it gets its thread back.
    generation: u64,
    /// The step whose failure aborted the pipeline.
    aborted_by: Option<String>,
    /// Someone (runner, watch or force-exit thread) is writing the final report.
    finalizing: bool,
    /// The final report is written.
    written: bool,
}

impl Progress {
    /// Record how the running step `ps` ended; an `on_error = "abort"` failure stops the pipeline.
    fn push(&mut self, ps: &PipelineStep, report: StepReport) {
        if report.outcome.is_failure() && ps.settings.on_error == OnError::Abort {
            self.aborted_by = Some(ps.name.clone());
        }
        self.current = None;
        self.steps.push(report);
    }
}

/// The step running now, as the watch sees it.
#[derive(Debug, Clone, Copy)]
struct Current {
    index: usize,
    generation: u64,
    started: Instant,
    deadline: Instant,
    budget: Duration,
    /// The budget is what was left of the global one.
    capped: bool,
    critical: bool,
}

impl Current {
    /// Whether ending `ended` means the global budget ran out (the step's budget was what was left).
    fn hit_global_deadline(&self, ended: &Ended) -> bool {
        self.capped && matches!(ended, Ended::TimedOut)
    }
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
    /// [`Shutdown::exit_process`]. Pass an `Arc<Pipeline>` to run one pipeline many times without
    /// copying it.
    pub fn new(pipeline: impl Into<Arc<Pipeline>>, node: Node) -> Self {
        let pipeline = pipeline.into();
        let mut sinks: Vec<Arc<dyn ReportSink>> = Vec::new();
        if let Some(path) = &pipeline.report_path {
            sinks.push(Arc::new(FileSink::new(path)));
        }
        Self {
            pipeline,
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
    ///
    /// The steps run on a task of their own: dropping this future does not stop the shutdown half
    /// way (orders half cancelled, no snapshot); the pipeline goes on and the report still reaches
    /// every sink.
    pub async fn run(self) -> Report {
        self.handle.trigger(Reason::Api);
        let reason = self.handle.reason().unwrap_or(Reason::Api);
        let started_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let started = Instant::now();
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                trader_id: self.pipeline.trader_id.clone(),
                reason: reason.to_string(),
                started_at,
                started,
                timeout: self.pipeline.timeout,
                steps: Vec::new(),
                current: None,
                generation: 0,
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
        let receipt = {
            let shared = shared.clone();
            crate::step::Receipt::new(move || receipt(&shared.lock()))
        };
        let run = Arc::new(Run {
            deadline: started + self.pipeline.timeout,
            shutdown: self,
            reason,
            shared,
            results: SharedResults::default(),
            receipt,
            span,
        });
        run.watch().await
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
}

/// One run of a pipeline. A single runner task runs the steps one after the other, polling each in
/// place (no task per step); the caller's future watches it ([`Run::watch`]), and when a step holds
/// the runner's thread past its budget (a blocking call, say), abandons it and continues the
/// pipeline from the next step on a new runner task.
struct Run {
    shutdown: Shutdown,
    reason: Reason,
    shared: Arc<Shared>,
    results: SharedResults,
    receipt: crate::step::Receipt,
    deadline: Instant,
    span: tracing::Span,
}

/// How a step ended.
enum Ended {
    Finished(Result<Result<StepOutput, StepError>, Box<dyn std::any::Any + Send>>),
    Forced,
    TimedOut,
    Hurried,
}

impl Run {
    fn spawn_runner(self: &Arc<Self>, first: usize, generation: u64) -> JoinHandle<Option<Report>> {
        let span = self.span.clone();
        tokio::spawn(self.clone().steps_from(first, generation).instrument(span))
    }

    /// Run the steps from `first`, as runner `generation`; then write the report. `None` when this
    /// runner was superseded, or the force-exit thread writes the report.
    async fn steps_from(self: Arc<Self>, first: usize, generation: u64) -> Option<Report> {
        let sd = &self.shutdown;
        let force = sd.handle.force_token();
        let hurry_token = sd.handle.hurry_token();
        // One timer for every step, reset to each step's deadline: registering a fresh timer for each
        // step would wake the runtime's timer thread every time.
        let timer = tokio::time::sleep_until(self.deadline);
        tokio::pin!(timer);
        let mut aborted_by = self.shared.lock().aborted_by.clone();

        for (i, ps) in sd.pipeline.steps.iter().enumerate().skip(first) {
            let now = Instant::now();
            let level = sd.handle.level();
            let skip = if level == Level::Force {
                Some((StepOutcome::NotRun, forced_note(&sd.handle)))
            } else if now >= self.deadline {
                sd.handle.force(Reason::Deadline);
                Some((StepOutcome::NotRun, forced_note(&sd.handle)))
            } else if let Some(by) = &aborted_by {
                Some((
                    StepOutcome::NotRun,
                    format!("not run: step `{by}` failed with on_error = \"abort\""),
                ))
            } else if ps.step.is_none() {
                Some((StepOutcome::Skipped, DISABLED.into()))
            } else if level >= Level::Hurry && !ps.settings.critical {
                Some((StepOutcome::Skipped, format!("skipped: {IN_A_HURRY}")))
            } else {
                None
            };
            if let Some((outcome, note)) = skip {
                if !self.record(
                    generation,
                    ps,
                    entry(ps, outcome, Some(note)),
                    None,
                    &mut aborted_by,
                ) {
                    return None;
                }
                continue;
            }
            let Some(step) = ps.step.clone() else {
                continue;
            };

            let left = self.deadline.saturating_duration_since(now);
            let current = Current {
                index: i,
                generation,
                started: now,
                deadline: now + ps.settings.timeout.min(left),
                budget: ps.settings.timeout.min(left),
                capped: ps.settings.timeout >= left,
                critical: ps.settings.critical,
            };
            timer.as_mut().reset(current.deadline);
            let token = force.child_token();
            let ctx = StepContext {
                reason: self.reason.clone(),
                name: ps.name.clone(),
                deadline: current.deadline,
                cancel: token.clone(),
                node: sd.node.clone(),
                results: self.results.clone(),
                trader_id: sd.pipeline.trader_id.clone(),
                receipt: self.receipt.clone(),
                dry_run: sd.dry_run,
                overrides: sd.overrides.clone(),
            };
            let span = tracing::info_span!(
                "step",
                step = %ps.name,
                kind = ps.kind,
                index = i + 1,
                budget_secs = current.budget.as_secs_f64(),
                critical = ps.settings.critical
            );
            {
                let mut p = self.shared.lock();
                if p.generation != generation {
                    return None;
                }
                p.current = Some(current);
            }
            tracing::info!(parent: &span, "step started");
            let mut task = CatchUnwind(step.run(ctx)).instrument(span.clone());
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
                _ = &mut timer => Ended::TimedOut,
                _ = hurry => Ended::Hurried,
            };
            drop(task);
            if !matches!(ended, Ended::Finished(_)) {
                token.cancel();
            }
            let global_deadline = current.hit_global_deadline(&ended);
            let report = self.step_report(ps, &current, ended, None);
            if !self.record(generation, ps, report, Some(&span), &mut aborted_by) {
                // The watch gave up on this step while it held the thread and the pipeline went on
                // without it: whatever came back is not this runner's to report, or act on.
                return None;
            }
            if global_deadline {
                sd.handle.force(Reason::Deadline);
            }
        }
        self.finish()
    }

    /// The report entry of a step that ended `ended`; `abandoned` says how the watch saw it if the step
    /// held the runner's thread.
    fn step_report(
        &self,
        ps: &PipelineStep,
        current: &Current,
        ended: Ended,
        abandoned: Option<&str>,
    ) -> StepReport {
        let sd = &self.shutdown;
        let mut report = entry(ps, StepOutcome::Succeeded, None);
        report.duration = current.started.elapsed().as_secs_f64();
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
            Ended::Finished(Err(panic)) => {
                report.outcome = StepOutcome::Panicked;
                report.error = Some(format!("panicked: {}", panic_message(panic)));
            }
            Ended::TimedOut => {
                report.outcome = StepOutcome::TimedOut;
                if current.capped {
                    report.error = Some(format!(
                        "global deadline of {}s reached while the step ran",
                        sd.pipeline.timeout.as_secs_f64()
                    ));
                } else {
                    report.error =
                        Some(format!("timed out after {}s", current.budget.as_secs_f64()));
                }
            }
            Ended::Forced => {
                report.outcome = StepOutcome::TimedOut;
                report.error = Some(format!("interrupted: {}", forced_note(&sd.handle)));
            }
            Ended::Hurried => {
                report.outcome = StepOutcome::Skipped;
                report.error = Some(format!("interrupted: {IN_A_HURRY}"));
            }
        }
        if let (Some(why), Some(error)) = (abandoned, report.error.as_mut()) {
            error.push_str("; ");
            error.push_str(why);
        }
        report
    }

    /// Add a step's entry (logging it under `span` when the step ran), unless runner `generation` was superseded (then `false`: stop,
    /// silently). Keeps `aborted_by` (the runner's copy) in step.
    fn record(
        &self,
        generation: u64,
        ps: &PipelineStep,
        report: StepReport,
        span: Option<&tracing::Span>,
        aborted_by: &mut Option<String>,
    ) -> bool {
        let mut p = self.shared.lock();
        if p.generation != generation {
            return false;
        }
        if let Some(span) = span {
            log_step(span, &report);
        }
        p.push(ps, report);
        aborted_by.clone_from(&p.aborted_by);
        true
    }

    /// Write the report to the sinks and return it (or exit the process with its code). `None` when
    /// the force-exit thread is writing it.
    fn finish(&self) -> Option<Report> {
        let sd = &self.shutdown;
        let forced_by = sd.handle.forced_by();
        let report = {
            let mut p = self.shared.lock();
            if p.finalizing {
                return None;
            }
            p.finalizing = true;
            let report = assemble(&p, &sd.pipeline, forced_by);
            p.current = None;
            report
        };
        let report = write_sinks(&sd.sinks, report);
        self.shared.lock().written = true;
        if sd.exit_process {
            // The force-exit thread may be waiting for it.
            self.shared.written.notify_all();
        }
        tracing::info!(parent: &self.span, outcome = %report.outcome, exit_code = report.exit_code, duration = report.duration, "shutdown finished");
        if sd.exit_process {
            std::process::exit(report.exit_code);
        }
        Some(report)
    }

    /// Start the runner and wait for its report, abandoning any step that holds the runner's thread
    /// past its deadline, or past a force (or, for a non-critical step, a hurry), by `WATCH_GRACE`.
    ///
    /// The runner does not tell the watch when a step starts (that would cost a wake-up per step):
    /// a step that starts after the watch last looked cannot be due before the shortest step timeout
    /// has passed, so the watch looks again by then at the latest.
    async fn watch(self: Arc<Self>) -> Report {
        let mut runner = self.spawn_runner(0, 0);
        let force = self.shutdown.handle.force_token();
        let hurry = self.shutdown.handle.hurry_token();
        let shortest = (self.shutdown.pipeline.steps.iter())
            .filter(|ps| ps.step.is_some())
            .map(|ps| ps.settings.timeout)
            .min()
            .unwrap_or(self.shutdown.pipeline.timeout);
        let (mut forced_at, mut hurried_at) = (None::<Instant>, None::<Instant>);
        let look = tokio::time::sleep_until(Instant::now() + shortest + WATCH_GRACE);
        tokio::pin!(look);
        loop {
            tokio::select! {
                biased;
                done = &mut runner => match done {
                    Ok(Some(report)) => return report,
                    // The force-exit thread writes the report and exits the process.
                    Ok(None) => return std::future::pending().await,
                    Err(e) => return self.runner_lost(&e),
                },
                _ = force.cancelled(), if forced_at.is_none() => {
                    forced_at = Some(Instant::now());
                }
                _ = hurry.cancelled(), if hurried_at.is_none() => {
                    hurried_at = Some(Instant::now());
                }
                _ = &mut look => {}
            }
            let now = Instant::now();
            let mut next_look = now + shortest + WATCH_GRACE;
            let current = self.shared.lock().current;
            if let Some(c) = current {
                let interrupted = forced_at.or(hurried_at.filter(|_| !c.critical));
                let due = interrupted.map_or(c.deadline, |at| at.min(c.deadline)) + WATCH_GRACE;
                if now < due {
                    next_look = next_look.min(due);
                } else if let Some((next, generation)) = self.abandon(&c, forced_at.is_some()) {
                    tracing::error!(parent: &self.span, next_step = next + 1, "a step holds the runner's thread past its time; the pipeline goes on without it");
                    runner = self.spawn_runner(next, generation);
                }
            }
            look.as_mut()
                .reset(next_look.max(now + Duration::from_millis(1)));
        }
    }

    /// Give up on step `c` (due: past its deadline, a force, or a hurry) if it is still running: record why, and return where a new runner starts
    /// and its generation.
    fn abandon(&self, c: &Current, forced: bool) -> Option<(usize, u64)> {
        let sd = &self.shutdown;
        let ps = sd.pipeline.steps.get(c.index)?;
        let ended = if forced {
            Ended::Forced
        } else if Instant::now() >= c.deadline {
            Ended::TimedOut
        } else {
            Ended::Hurried
        };
        let global_deadline = c.hit_global_deadline(&ended);
        let generation = {
            let mut p = self.shared.lock();
            let same = p
                .current
                .is_some_and(|now| now.index == c.index && now.generation == c.generation);
            if !same || p.finalizing {
                return None;
            }
            let report = self.step_report(
                ps,
                c,
                ended,
                Some(
                    "the step held the runner's thread and was abandoned; its effects are unknown",
                ),
            );
            log_step(&self.span, &report);
            p.push(ps, report);
            p.generation += 1;
            p.generation
        };
        if global_deadline {
            sd.handle.force(Reason::Deadline);
        }
        Some((c.index + 1, generation))
    }

    /// The runner task was cancelled (its runtime is shutting down) or failed outside any step: write
    /// the report from what is known.
    fn runner_lost(&self, e: &tokio::task::JoinError) -> Report {
        tracing::error!(parent: &self.span, error = %e, "the shutdown runner stopped before the end");
        self.shutdown.handle.force(Reason::Api);
        match self.finish() {
            Some(report) => report,
            None => {
                // The force-exit thread writes the report; wait for it, bounded.
                let p = self.shared.lock();
                let (p, _) = self
                    .shared
                    .written
                    .wait_timeout_while(p, WRITE_GRACE, |p| !p.written)
                    .unwrap_or_else(|e| e.into_inner());
                assemble(
                    &p,
                    &self.shutdown.pipeline,
                    self.shutdown.handle.forced_by(),
                )
            }
        }
    }
}

/// Polls a step's future, turning a panic into an error.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// A step's report entry with nothing measured yet.
fn entry(ps: &PipelineStep, outcome: StepOutcome, error: Option<String>) -> StepReport {
    StepReport {
        name: ps.name.clone(),
        kind: ps.kind.to_owned(),
        critical: ps.settings.critical,
        outcome,
        duration: 0.0,
        attempts: 0,
        error,
        problems: Vec::new(),
        details: serde_json::Map::new(),
    }
}

fn forced_note(handle: &ShutdownHandle) -> String {
    forced_by_note(handle.forced_by().as_ref())
}

/// What forced the shutdown, in words.
fn forced_by_note(forced_by: Option<&Reason>) -> String {
    match forced_by {
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

/// The receipt a step receives: what has happened before it, rendered straight to JSON text.
fn receipt(p: &Progress) -> Box<serde_json::value::RawValue> {
    #[derive(serde::Serialize)]
    struct Receipt<'a> {
        trader_id: &'a str,
        reason: &'a str,
        started_at: &'a str,
        timeout_secs: f64,
        steps: &'a [StepReport],
    }
    serde_json::value::to_raw_value(&Receipt {
        trader_id: &p.trader_id,
        reason: &p.reason,
        started_at: &p.started_at,
        timeout_secs: p.timeout.as_secs_f64(),
        steps: &p.steps,
    })
    .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned())
}

/// The report from what has happened so far: a running step counts as interrupted, the rest as not run.
fn assemble(p: &Progress, pipeline: &Pipeline, forced_by: Option<Reason>) -> Report {
    let mut steps = p.steps.clone();
    let forced = forced_by.is_some();
    let note = forced_by_note(forced_by.as_ref());
    if let Some(Current { index, started, .. }) = p.current {
        if let Some(ps) = pipeline.steps.get(index) {
            steps.push(StepReport {
                name: ps.name.clone(),
                kind: ps.kind.to_owned(),
                critical: ps.settings.critical,
                outcome: StepOutcome::TimedOut,
                duration: started.elapsed().as_secs_f64(),
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
