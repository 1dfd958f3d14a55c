//! The supervision of one shutdown: each step admitted or skipped, then guarded, in order; then the
//! report.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::drive::{InPoll, drive, in_place};
use super::exit::ExitHooks;
use super::progress::{Shared, entry, forced_note};
use super::sinks::Sinks;
use crate::node::Node;
use crate::pipeline::{Pipeline, PipelineStep};
use crate::report::{Report, StepOutcome, StepReport};
use crate::step::{
    Extensions, Partial, Receipt, SharedResults, ShutdownStep, StepContext, StepOutput,
};
use crate::systemd::Notifier;
use crate::trigger::{Level, Reason, ShutdownHandle};

/// The least the other report sinks are given, even past the global deadline (inside the 2 s
/// headroom `plan` keeps between the budget and the grace period).
pub(super) const SINK_GRACE: Duration = Duration::from_secs(1);

/// Why a non-critical step did not run, or stopped, after the second signal.
const IN_A_HURRY: &str = "second signal, non-critical steps are skipped";

/// What a step that held its thread when the runner walked away from it adds to its error.
const HELD_ITS_THREAD: &str = "it held its thread (a blocking call or a long computation) and was abandoned: its effects after what it published are unknown";

/// One run of a pipeline: what the supervision, the steps and the force-exit thread share.
pub(super) struct Run {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) node: Node,
    pub(super) handle: ShutdownHandle,
    pub(super) sinks: Sinks,
    pub(super) exit_process: bool,
    pub(super) dry_run: bool,
    /// Poll steps on the supervising task rather than the blocking pool.
    pub(super) in_place: bool,
    pub(super) extensions: Extensions,
    /// Where the service manager hears of the shutdown.
    pub(super) notifier: Option<Notifier>,
    /// The node's flushes, run last.
    pub(super) exit_hooks: ExitHooks,
    pub(super) reason: Reason,
    pub(super) shared: Arc<Shared>,
    pub(super) results: SharedResults,
    /// When the global budget ends.
    pub(super) deadline: Instant,
    pub(super) span: tracing::Span,
}

impl Run {
    /// Run the steps in order, then write the report (and exit the process when asked to).
    pub(super) async fn supervise(self: Arc<Self>) -> Report {
        tracing::info!(parent: &self.span, steps = self.pipeline.steps.len(), "shutdown started");
        // A start gate is no stop: the unit hears its progress, not STOPPING.
        let steps = self.pipeline.steps.len();
        self.tell(&match self.reason {
            Reason::Start => format!("STATUS=start gate: {steps} steps"),
            _ => format!(
                "STOPPING=1\nSTATUS=shutting down ({}): {steps} steps",
                self.reason
            ),
        });
        for (index, ps) in self.pipeline.steps.iter().enumerate() {
            let report = match self.admit(ps) {
                Ok(step) => self.guard(index, ps, step).await,
                Err((outcome, note)) => StepReport {
                    offset: self.shared.started().elapsed().as_secs_f64(),
                    ..entry(ps, outcome, Some(note))
                },
            };
            self.shared.record(ps, report);
        }
        self.finish().await
    }

    /// The skip rules, in order: nothing runs once the shutdown is forced or its budget is spent, nor
    /// after an `on_error = "abort"` failure; a disabled step is skipped; after a second signal only
    /// critical steps run. A step that may run is returned; for one that may not, its outcome and why.
    fn admit(&self, ps: &PipelineStep) -> Result<Arc<dyn ShutdownStep>, (StepOutcome, String)> {
        if Instant::now() >= self.deadline {
            self.handle.force(Reason::Deadline);
        }
        let level = self.handle.level();
        if level == Level::Force {
            return Err((StepOutcome::NotRun, self.forced_note()));
        }
        if let Some(by) = self.shared.aborted_by() {
            let note = format!("not run: step `{by}` failed with on_error = \"abort\"");
            return Err((StepOutcome::NotRun, note));
        }
        let Some(step) = ps.step.clone().filter(|_| ps.enabled) else {
            return Err((StepOutcome::Skipped, "disabled".into()));
        };
        if level >= Level::Hurry && !ps.settings.critical {
            return Err((StepOutcome::Skipped, format!("skipped: {IN_A_HURRY}")));
        }
        Ok(step)
    }

    /// Run one step under its budget: its end against its deadline, a force and (when it is not
    /// critical) a second signal. Giving up on a step is walking away from it.
    async fn guard(
        &self,
        index: usize,
        ps: &PipelineStep,
        step: Arc<dyn ShutdownStep>,
    ) -> StepReport {
        let started = Instant::now();
        let left = self.deadline.saturating_duration_since(started);
        let budget = ps.settings.timeout.min(left);
        let span = tracing::info_span!(parent: &self.span, "step", step = %ps.settings.name,
            kind = ps.settings.kind, index = index + 1, budget_secs = budget.as_secs_f64(),
            critical = ps.settings.critical);
        let cancel = CancellationToken::new();
        let partial = Partial::default();
        let ctx = self.context(ps, started + budget, cancel.clone(), partial.clone());
        self.shared.start_step(index, started);
        tracing::info!(parent: &span, "step started");
        self.tell(&self.status(index, ps, "started"));
        let in_poll = InPoll::default();
        let future = Box::pin(async move { step.run(ctx).await }.instrument(span.clone()));
        let hurried = async {
            match ps.settings.critical {
                true => std::future::pending().await,
                false => self.handle.reached(Level::Hurry).await,
            }
        };
        let global = ps.settings.timeout >= left;
        // Ok: the step returned (its output or its error); Err: how it was cut short, and why.
        let driven = match self.in_place {
            true => futures_util::future::Either::Left(in_place(future)),
            false => futures_util::future::Either::Right(drive(future, in_poll.clone())),
        };
        let ended = tokio::select! {
            biased;
            out = driven => out.map_err(|panic| {
                (StepOutcome::Panicked, format!("panicked: {panic}"))
            }),
            _ = self.handle.reached(Level::Force) => {
                Err((StepOutcome::TimedOut, format!("interrupted: {}", self.forced_note())))
            }
            () = tokio::time::sleep_until(started + budget) => {
                Err((StepOutcome::TimedOut, self.timed_out_note(global, budget)))
            }
            _ = hurried => Err((StepOutcome::Skipped, format!("interrupted: {IN_A_HURRY}"))),
            never = self.progress(index, ps, &partial) => match never {},
        };
        let (mut report, out) = match ended {
            Ok(Ok(out)) => (entry(ps, StepOutcome::Succeeded, None), out),
            Ok(Err(e)) => {
                let out = StepOutput {
                    details: e.details,
                    attempts: e.attempts,
                    problems: e.problems,
                    counts: e.counts,
                    summary: e.summary,
                };
                (entry(ps, StepOutcome::Failed, Some(e.message)), out)
            }
            Err((outcome, mut why)) => {
                cancel.cancel();
                if in_poll.get() {
                    why = format!("{why}; {HELD_ITS_THREAD}");
                }
                // Cut short: what the step published as it went is what the report can say. Its
                // counts may have moved since (requests were in flight): they are unknown.
                let out = StepOutput {
                    attempts: 1,
                    counts: Default::default(),
                    ..partial.take()
                };
                (entry(ps, outcome, Some(why)), out)
            }
        };
        report.attempts = out.attempts;
        report.details = out.details;
        report.problems = out.problems;
        report.summary = out.summary;
        report.offset = started
            .saturating_duration_since(self.shared.started())
            .as_secs_f64();
        report.budget = budget.as_secs_f64();
        report.counts = (out.counts.into_iter())
            .map(|(c, n)| (c, Some(n)))
            .collect();
        report.duration = started.elapsed().as_secs_f64();
        if global && report.outcome == StepOutcome::TimedOut {
            self.handle.force(Reason::Deadline);
        }
        log_step(&span, &report);
        report
    }

    fn context(
        &self,
        ps: &PipelineStep,
        deadline: Instant,
        cancel: CancellationToken,
        partial: Partial,
    ) -> StepContext {
        let shared = self.shared.clone();
        StepContext {
            reason: self.reason.clone(),
            name: ps.settings.name.clone(),
            deadline,
            cancel,
            node: self.node.clone(),
            results: self.results.clone(),
            trader_id: self.pipeline.settings.trader_id.clone(),
            receipt: Receipt::new(move || shared.receipt()),
            dry_run: self.dry_run,
            extensions: self.extensions.clone(),
            partial,
        }
    }

    fn forced_note(&self) -> String {
        forced_note(self.handle.forced_by().as_ref())
    }

    fn timed_out_note(&self, global: bool, budget: Duration) -> String {
        match global {
            true => format!(
                "global deadline of {}s reached while the step ran",
                self.pipeline.settings.timeout.as_secs_f64()
            ),
            false => format!("timed out after {}s", budget.as_secs_f64()),
        }
    }

    /// Write the report: the file and the log line first, the other sinks after; then return it, or
    /// exit the process with its code. When the force-exit thread has taken the report, it exits the
    /// process: this waits for that.
    async fn finish(&self) -> Report {
        let Some(mut report) = self.shared.take(&self.pipeline, &self.handle) else {
            return std::future::pending().await;
        };
        let json = self.sinks.write_local(&mut report);
        // What is left of the budget, and never less than a moment inside the headroom: a
        // shutdown that hit its deadline still owes its sinks the report.
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.sinks
            .write_others(&mut report, json, left.max(SINK_GRACE))
            .await;
        let what = match self.reason {
            Reason::Start => "start gate",
            _ => "shutdown",
        };
        self.tell(&format!(
            "STATUS={what} {} (exit {})",
            report.outcome, report.exit_code
        ));
        tracing::info!(parent: &self.span, outcome = %report.outcome, exit_code = report.exit_code,
            duration = report.duration, "shutdown finished");
        self.exit_hooks.run();
        // Written and flushed: the force-exit thread, if one waits, may exit now.
        self.shared.written();
        if self.exit_process {
            std::process::exit(report.exit_code);
        }
        report
    }

    /// Tell the service manager, if one listens.
    fn tell(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.tell(state);
        }
    }

    /// `STATUS=step 2/5 cancel: ...`.
    fn status(&self, index: usize, ps: &PipelineStep, what: &str) -> String {
        let total = self.pipeline.steps.len();
        format!(
            "STATUS=step {}/{total} {}: {what}",
            index + 1,
            ps.settings.name
        )
    }

    /// While a step runs: every interval, its status, and for a critical step whose counts or
    /// summary moved since the last look, more time from the service manager. A stalled step gets
    /// none, so the unit's own stop timeout still bounds it. Never returns; the step's end ends it.
    async fn progress(
        &self,
        index: usize,
        ps: &PipelineStep,
        partial: &Partial,
    ) -> std::convert::Infallible {
        let Some(notifier) = &self.notifier else {
            return std::future::pending().await;
        };
        let every = self.pipeline.settings.systemd.progress_interval;
        let mut seen = partial.progress();
        loop {
            tokio::time::sleep(every).await;
            let now = partial.progress();
            let what = now.1.clone().unwrap_or_else(|| "running".into());
            let mut state = self.status(index, ps, &what);
            if ps.settings.critical && now != seen {
                state.push_str(&format!(
                    "\nEXTEND_TIMEOUT_USEC={}",
                    (every * 2).as_micros()
                ));
            }
            notifier.tell(&state);
            seen = now;
        }
    }

    /// The supervision was cancelled (its runtime is shutting down): the report from what is known,
    /// written where it cannot hang, then to the other sinks within a second, then the exit
    /// flushes.
    pub(super) fn lost(&self) -> Report {
        tracing::error!(parent: &self.span, "the shutdown's supervision stopped before the end");
        self.handle.force(Reason::Api);
        let mut report = self.shared.take(&self.pipeline, &self.handle);
        if let Some(report) = report.as_mut() {
            let json = self.sinks.write_local(report);
            // No runtime to lean on: the other sinks on threads of their own, briefly.
            self.sinks.write_others_blocking(report, json, SINK_GRACE);
            self.exit_hooks.run();
            self.shared.written();
        }
        report.unwrap_or_else(|| self.shared.report(&self.pipeline, &self.handle))
    }
}

fn log_step(span: &tracing::Span, r: &StepReport) {
    let error = r.error.as_deref().unwrap_or("");
    let (outcome, duration, attempts) = (&r.outcome, r.duration, r.attempts);
    match r.outcome {
        StepOutcome::Succeeded if r.problems.is_empty() => {
            tracing::info!(parent: span, %outcome, duration, attempts, "step finished")
        }
        StepOutcome::Succeeded | StepOutcome::Skipped => {
            tracing::warn!(parent: span, %outcome, duration, problems = ?r.problems, error, "step finished")
        }
        _ => tracing::error!(parent: span, %outcome, duration, attempts, error, "step failed"),
    }
}
