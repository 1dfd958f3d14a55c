//! The supervision of one shutdown: each step admitted or skipped, then guarded, in order; then the
//! report, to its sinks.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Run;
use super::drive::{InPoll, drive};
use super::so_far::{HELD_ITS_THREAD, IN_A_HURRY, entry, forced_note, timed_out_note};
use crate::pipeline::PipelineStep;
use crate::report::{Report, StepOutcome, StepReport};
use crate::step::{Partial, Receipt, ShutdownStep, StepContext, StepError};
use crate::systemd;
use crate::trigger::{Level, Reason};

impl Run {
    /// Run the steps in order, then write the report (and exit the process when asked to).
    pub(super) async fn supervise(self: Arc<Self>) -> Report {
        let steps = &self.job.pipeline.steps;
        tracing::info!(parent: &self.span, steps = steps.len(), "shutdown started");
        systemd::begins(self.job.notifier.as_ref(), &self.reason, steps.len());
        for (index, ps) in steps.iter().enumerate() {
            let report = match self.admit(ps) {
                Ok(step) => self.run_step(index, ps, step).await,
                Err((outcome, note)) => StepReport {
                    offset: self.started.elapsed().as_secs_f64(),
                    ..entry(ps, outcome, Some(note))
                },
            };
            self.shared.lock().so_far.record(ps, report);
        }
        self.finish().await
    }

    /// The skip rules, in order: nothing runs once the shutdown is forced or its budget is spent, nor
    /// after an `on_error = "abort"` failure; a disabled step is skipped; after a second signal only
    /// critical steps run. A step that may run is returned; for one that may not, its outcome and why.
    fn admit(&self, ps: &PipelineStep) -> Result<Arc<dyn ShutdownStep>, (StepOutcome, String)> {
        let handle = &self.job.handle;
        if Instant::now() >= self.deadline {
            handle.force(Reason::Deadline);
        }
        let level = handle.level();
        if level == Level::Force {
            return Err((StepOutcome::NotRun, forced_note(handle)));
        }
        if let Some(by) = self.shared.lock().so_far.aborted_by() {
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

    /// Run one step and make its report entry; a step that ran into the global deadline forces the
    /// shutdown.
    async fn run_step(
        &self,
        index: usize,
        ps: &PipelineStep,
        step: Arc<dyn ShutdownStep>,
    ) -> StepReport {
        let settings = &ps.settings;
        let started = Instant::now();
        // The step's own timeout, or the global deadline when that comes first.
        let deadline = (started + settings.timeout).min(self.deadline);
        let budget = deadline.saturating_duration_since(started);
        let span = tracing::info_span!(parent: &self.span, "step", step = %settings.name,
            kind = settings.kind, index = index + 1, budget_secs = budget.as_secs_f64(),
            critical = settings.critical);
        self.shared.lock().so_far.start_step(index, started);
        tracing::info!(parent: &span, "step started");
        let mut report = self.guard(index, ps, step, deadline, &span).await;
        report.duration = started.elapsed().as_secs_f64();
        report.offset = (started.saturating_duration_since(self.started)).as_secs_f64();
        report.budget = budget.as_secs_f64();
        if deadline == self.deadline && report.outcome == StepOutcome::TimedOut {
            self.job.handle.force(Reason::Deadline);
        }
        report.log(&span);
        report
    }

    /// Run one step until `deadline`: its end against its deadline, a force and (when it is not
    /// critical) a second signal; a panic comes back as a value. Giving up on a step is walking away
    /// from it; what it published until then is what it reports.
    async fn guard(
        &self,
        index: usize,
        ps: &PipelineStep,
        step: Arc<dyn ShutdownStep>,
        deadline: Instant,
        span: &tracing::Span,
    ) -> StepReport {
        let (s, critical) = (&self.job, ps.settings.critical);
        let (cancel, partial) = (CancellationToken::new(), Partial::default());
        let ctx = self.context(ps, deadline, cancel.clone(), partial.clone());
        // Says the step started, and while it runs, how it goes.
        let progress = systemd::step_progress(s.notifier.as_ref(), &s.pipeline, index, &partial);
        let in_poll = InPoll::default();
        let future = Box::pin(async move { step.run(ctx).await }.instrument(span.clone()));
        let driven = drive(future, in_poll.clone(), s.in_place);
        let (outcome, why) = tokio::select! {
            biased;
            out = driven => match out {
                Ok(Ok(out)) => return out.into_report(entry(ps, StepOutcome::Succeeded, None)),
                Ok(Err(e)) => {
                    let StepError { message, output: out } = e;
                    return out.into_report(entry(ps, StepOutcome::Failed, Some(message)));
                }
                Err(panic) => (StepOutcome::Panicked, format!("panicked: {panic}")),
            },
            _ = s.handle.reached(Level::Force) => {
                (StepOutcome::TimedOut, format!("interrupted: {}", forced_note(&s.handle)))
            }
            () = tokio::time::sleep_until(deadline) => {
                let global = (deadline == self.deadline).then_some(s.pipeline.settings.timeout);
                (StepOutcome::TimedOut, timed_out_note(&ps.settings, global))
            }
            _ = s.handle.reached(Level::Hurry), if !critical => {
                (StepOutcome::Skipped, format!("interrupted: {IN_A_HURRY}"))
            }
            never = progress => match never {},
        };
        // Cut short (or panicked): what the step published as it went is what the report can say.
        cancel.cancel();
        let why = match in_poll.holds_thread() {
            true => format!("{why}; {HELD_ITS_THREAD}"),
            false => why,
        };
        partial.cut_short(entry(ps, outcome, Some(why)))
    }

    fn context(
        &self,
        ps: &PipelineStep,
        deadline: Instant,
        cancel: CancellationToken,
        partial: Partial,
    ) -> StepContext {
        let (s, shared) = (&self.job, self.shared.clone());
        StepContext {
            reason: self.reason.clone(),
            name: ps.settings.name.clone(),
            deadline,
            cancel,
            node: s.node.clone(),
            results: self.results.clone(),
            trader_id: s.pipeline.settings.trader_id.clone(),
            receipt: Receipt::new(move || shared.lock().so_far.receipt()),
            dry_run: s.dry_run,
            extensions: s.extensions.clone(),
            partial,
        }
    }

    /// Write the report: the file and the log line first, the other sinks after; then return it, or
    /// exit the process with its code. When the force-exit thread has taken the report, it exits the
    /// process: this waits for that.
    async fn finish(&self) -> Report {
        let s = &self.job;
        let Some(report) = self.shared.take(&s.pipeline, &s.handle) else {
            return std::future::pending().await;
        };
        // What is left of the budget, and never less than the sinks' share of the time after the
        // deadline: a shutdown that hit its deadline still owes its sinks the report. A forced one
        // gets that share only, as the force-exit thread would.
        let left = self.deadline.saturating_duration_since(Instant::now());
        let grace = match s.handle.level() {
            Level::Force => s.after.sinks,
            _ => left.max(s.after.sinks),
        };
        let report = s.sinks.write(report, grace).await;
        systemd::ends(s.notifier.as_ref(), &self.reason, &report);
        report.log(&self.span);
        s.exit_hooks.run(s.after.exit_flushes);
        // Written and flushed: the force-exit thread, if one waits, may exit now.
        self.shared.written();
        if s.exit_process {
            std::process::exit(report.exit_code);
        }
        report
    }

    /// The supervision was cancelled (its runtime is shutting down): the report from what is known,
    /// written where it cannot hang, then to the other sinks within a second, then the exit
    /// flushes.
    pub(super) fn lost(&self) -> Report {
        let s = &self.job;
        tracing::error!(parent: &self.span, "the shutdown's supervision stopped before the end");
        s.handle.force(Reason::Api);
        let Some(report) = self.shared.take(&s.pipeline, &s.handle) else {
            return self.shared.lock().so_far.report(&s.pipeline, &s.handle);
        };
        self.write_blocking(report, s.after.sinks)
    }

    /// Write `report` without leaning on the runtime: the file and the log line, then the other
    /// sinks on threads of their own within `grace`, then the exit flushes.
    pub(super) fn write_blocking(&self, report: Report, grace: Duration) -> Report {
        let s = &self.job;
        let report = s.sinks.write_blocking(report, grace);
        s.exit_hooks.run(s.after.exit_flushes);
        self.shared.written();
        report
    }
}
