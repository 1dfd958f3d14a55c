//! The supervision of one shutdown: each step admitted (or skipped), guarded, and recorded, in order;
//! then the report.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::drive::{self, InPoll};
use super::progress::{Recorded, Shared, Stage, forced_note};
use super::sinks::Sinks;
use crate::node::Node;
use crate::pipeline::{Pipeline, PipelineStep};
use crate::report::{Report, StepOutcome, StepReport};
use crate::step::{
    Extensions, Receipt, SharedResults, ShutdownStep, StepContext, StepError, StepOutput,
};
use crate::trigger::{Level, Reason, ShutdownHandle};

/// Why a non-critical step did not run, or stopped, after the second signal.
const IN_A_HURRY: &str = "second signal, non-critical steps are skipped";

/// What a step that held its thread when the runner walked away from it adds to its error.
const HELD_ITS_THREAD: &str =
    "it held its thread (a blocking call) and was abandoned: its effects are unknown";

/// One run of a pipeline: everything the supervision, the steps and the force-exit thread share.
pub(super) struct Run {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) node: Node,
    pub(super) handle: ShutdownHandle,
    pub(super) sinks: Sinks,
    pub(super) exit_process: bool,
    pub(super) dry_run: bool,
    pub(super) extensions: Extensions,
    pub(super) reason: Reason,
    pub(super) shared: Arc<Shared>,
    pub(super) results: SharedResults,
    /// When the global budget ends.
    pub(super) deadline: Instant,
    pub(super) span: tracing::Span,
}

/// Why a step was not run.
enum Skip {
    /// The shutdown was forced, or the global budget is spent.
    Forced,
    /// An earlier `on_error = "abort"` step failed (its name).
    Aborted(String),
    /// The step is disabled: skipped on purpose.
    Disabled,
    /// A second signal came and the step is not critical.
    Hurry,
}

/// How a guarded step ended.
enum Ended {
    /// It returned its output or its error.
    Returned(Result<StepOutput, StepError>),
    /// It panicked (the message).
    Panicked(String),
    /// Its budget ran out; `global` when that budget was what was left of the global one.
    TimedOut { global: bool },
    /// The shutdown was forced while it ran.
    Forced,
    /// A second signal came while it (not critical) ran.
    Hurried,
}

impl Run {
    /// Run the steps in order, then write the report (and exit the process when asked to).
    pub(super) async fn supervise(self: Arc<Self>) -> Report {
        tracing::info!(parent: &self.span, steps = self.pipeline.steps.len(), "shutdown started");
        for (index, ps) in self.pipeline.steps.iter().enumerate() {
            let recorded = match self.admit(ps) {
                Ok(step) => self.guard(index, ps, step).await,
                Err(skip) => self.skipped(ps, skip),
            };
            self.shared.record(ps, recorded);
        }
        self.finish().await
    }

    /// The skip rules, in order: nothing runs once the shutdown is forced or its budget is spent, nor
    /// after an `on_error = "abort"` failure; a disabled step is skipped; after a second signal only
    /// critical steps run.
    fn admit(&self, ps: &PipelineStep) -> Result<Arc<dyn ShutdownStep>, Skip> {
        if Instant::now() >= self.deadline {
            self.handle.force(Reason::Deadline);
        }
        let level = self.handle.level();
        if level == Level::Force {
            return Err(Skip::Forced);
        }
        if let Some(by) = self.shared.aborted_by() {
            return Err(Skip::Aborted(by));
        }
        let step = ps.step.clone().ok_or(Skip::Disabled)?;
        if level >= Level::Hurry && !ps.settings.critical {
            return Err(Skip::Hurry);
        }
        Ok(step)
    }

    fn skipped(&self, ps: &PipelineStep, skip: Skip) -> Recorded {
        let (outcome, note) = match skip {
            Skip::Forced => (
                StepOutcome::NotRun,
                forced_note(self.handle.forced_by().as_ref()),
            ),
            Skip::Aborted(by) => (
                StepOutcome::NotRun,
                format!("not run: step `{by}` failed with on_error = \"abort\""),
            ),
            Skip::Disabled => (StepOutcome::Skipped, "disabled".to_owned()),
            Skip::Hurry => (StepOutcome::Skipped, format!("skipped: {IN_A_HURRY}")),
        };
        let mut recorded = Recorded::new(ps, outcome, Some(note));
        recorded.disabled = ps.step.is_none();
        recorded
    }

    /// Run one step under its budget: its completion against its deadline, a force, and (when it is
    /// not critical) a second signal. Giving up on a step is walking away from it.
    async fn guard(
        &self,
        index: usize,
        ps: &PipelineStep,
        step: Arc<dyn ShutdownStep>,
    ) -> Recorded {
        let started = Instant::now();
        let left = self.deadline.saturating_duration_since(started);
        let budget = ps.settings.timeout.min(left);
        let cancel = CancellationToken::new();
        let span = tracing::info_span!(
            parent: &self.span,
            "step",
            step = %ps.settings.name,
            kind = ps.settings.kind,
            index = index + 1,
            budget_secs = budget.as_secs_f64(),
            critical = ps.settings.critical
        );
        let ctx = StepContext {
            reason: self.reason.clone(),
            name: ps.settings.name.clone(),
            deadline: started + budget,
            cancel: cancel.clone(),
            node: self.node.clone(),
            results: self.results.clone(),
            trader_id: self.pipeline.settings.trader_id.clone(),
            receipt: {
                let shared = self.shared.clone();
                Receipt::new(move || shared.receipt())
            },
            dry_run: self.dry_run,
            extensions: self.extensions.clone(),
        };
        self.shared.start_step(index, started);
        tracing::info!(parent: &span, "step started");
        let in_poll = InPoll::default();
        let future = Box::pin(async move { step.run(ctx).await }.instrument(span.clone()));
        let hurried = async {
            if ps.settings.critical {
                std::future::pending::<Level>().await
            } else {
                self.handle.reached(Level::Hurry).await
            }
        };
        let ended = tokio::select! {
            biased;
            out = drive::drive(future, in_poll.clone()) => match out {
                Ok(returned) => Ended::Returned(returned),
                Err(panic) => Ended::Panicked(panic),
            },
            _ = self.handle.reached(Level::Force) => Ended::Forced,
            () = tokio::time::sleep_until(started + budget) => Ended::TimedOut {
                global: ps.settings.timeout >= left,
            },
            _ = hurried => Ended::Hurried,
        };
        if !matches!(ended, Ended::Returned(_)) {
            cancel.cancel();
        }
        if matches!(ended, Ended::TimedOut { global: true }) {
            self.handle.force(Reason::Deadline);
        }
        let mut recorded = self.ended(ps, budget, ended, in_poll.get());
        recorded.report.duration = started.elapsed().as_secs_f64();
        log_step(&span, &recorded.report);
        recorded
    }

    /// The report entry of a step that ran and ended `ended`; `held` when it was inside a poll.
    fn ended(
        &self,
        ps: &PipelineStep,
        budget: std::time::Duration,
        ended: Ended,
        held: bool,
    ) -> Recorded {
        let interrupted = |outcome, why: String| {
            let mut r = Recorded::new(ps, outcome, Some(why));
            if held {
                if let Some(error) = r.report.error.as_mut() {
                    error.push_str("; ");
                    error.push_str(HELD_ITS_THREAD);
                }
            }
            r.report.attempts = 1;
            r
        };
        match ended {
            Ended::Returned(Ok(out)) => {
                let mut r = Recorded::new(ps, StepOutcome::Succeeded, None);
                r.report.attempts = out.attempts;
                r.report.details = out.details;
                r.report.problems = out.problems;
                r
            }
            Ended::Returned(Err(e)) => {
                let mut r = Recorded::new(ps, StepOutcome::Failed, Some(e.message));
                r.report.attempts = e.attempts;
                r.report.details = e.details;
                r
            }
            Ended::Panicked(message) => {
                interrupted(StepOutcome::Panicked, format!("panicked: {message}"))
            }
            Ended::TimedOut { global: true } => interrupted(
                StepOutcome::TimedOut,
                format!(
                    "global deadline of {}s reached while the step ran",
                    self.pipeline.settings.timeout.as_secs_f64()
                ),
            ),
            Ended::TimedOut { global: false } => interrupted(
                StepOutcome::TimedOut,
                format!("timed out after {}s", budget.as_secs_f64()),
            ),
            Ended::Forced => interrupted(
                StepOutcome::TimedOut,
                format!(
                    "interrupted: {}",
                    forced_note(self.handle.forced_by().as_ref())
                ),
            ),
            Ended::Hurried => {
                interrupted(StepOutcome::Skipped, format!("interrupted: {IN_A_HURRY}"))
            }
        }
    }

    /// Write the report: the file and the log line first, the other sinks after; then return it, or
    /// exit the process with its code. Waits forever when the force-exit thread has the report (it
    /// exits the process).
    async fn finish(&self) -> Report {
        let Some(mut report) = self.shared.take(&self.pipeline, self.handle.forced_by()) else {
            return std::future::pending().await;
        };
        self.sinks.write_local(&mut report);
        self.shared.reach(Stage::Local);
        if !self.sinks.others.is_empty() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            self.sinks.write_others(&mut report, left).await;
            if !report.sink_errors.is_empty() {
                self.sinks.rewrite_file(&report);
            }
        }
        self.shared.reach(Stage::Done);
        tracing::info!(parent: &self.span, outcome = %report.outcome, exit_code = report.exit_code, duration = report.duration, "shutdown finished");
        if self.exit_process {
            std::process::exit(report.exit_code);
        }
        report
    }

    /// The supervision stopped before its end (its runtime is shutting down): the report from what
    /// is known, written where it cannot hang.
    pub(super) fn lost(&self, e: &tokio::task::JoinError) -> Report {
        tracing::error!(parent: &self.span, error = %e, "the shutdown's supervision stopped before the end");
        self.handle.force(Reason::Api);
        match self.shared.take(&self.pipeline, self.handle.forced_by()) {
            Some(mut report) => {
                self.sinks.write_local(&mut report);
                self.shared.reach(Stage::Done);
                report
            }
            None => {
                let p = self
                    .shared
                    .wait_while(std::time::Duration::from_secs(2), |p| {
                        p.stage < Stage::Local
                    });
                super::progress::assemble(&p, &self.pipeline, self.handle.forced_by())
            }
        }
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
