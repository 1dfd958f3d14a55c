//! The report from what is known so far: the steps that ended, the step running now and the steps
//! not reached. The runner records into it step by step; a step's receipt, the supervision at the
//! end and the force-exit thread at any moment turn it into a [`Report`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::pipeline::{OnError, Pipeline, PipelineStep, StepSettings};
use crate::report::{EscalationReport, Outcome, Report, StepOutcome, StepReport};
use crate::secs::secs;
use crate::trigger::{Reason, ShutdownHandle};

/// What is known of one shutdown so far.
#[derive(Debug)]
pub(crate) struct SoFar {
    trader_id: String,
    reason: Reason,
    started_at: String,
    started: Instant,
    timeout: Duration,
    steps: Vec<StepReport>,
    /// The step running now: its index and start.
    running: Option<(usize, Instant)>,
    /// The step whose failure aborted the pipeline.
    aborted_by: Option<String>,
}

impl SoFar {
    /// A shutdown of `pipeline` that starts now.
    pub(crate) fn new(pipeline: &Pipeline, reason: &Reason, started: Instant) -> Self {
        let started_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            trader_id: pipeline.settings.trader_id.clone(),
            reason: reason.clone(),
            started_at,
            started,
            timeout: pipeline.settings.timeout,
            steps: Vec::new(),
            running: None,
            aborted_by: None,
        }
    }

    /// Step `index` starts now.
    pub(crate) fn start_step(&mut self, index: usize, at: Instant) {
        self.running = Some((index, at));
    }

    /// Record how step `ps` ended; an `on_error = "abort"` failure stops the pipeline.
    pub(crate) fn record(&mut self, ps: &PipelineStep, report: StepReport) {
        if report.outcome.is_failure() && ps.settings.on_error == OnError::Abort {
            self.aborted_by = Some(ps.settings.name.clone());
        }
        self.running = None;
        self.steps.push(report);
    }

    /// The step whose failure aborted the pipeline, if one did.
    pub(crate) fn aborted_by(&self) -> Option<&str> {
        self.aborted_by.as_deref()
    }

    /// What a step's receipt reads: what has happened before it, rendered straight to JSON text.
    pub(crate) fn receipt(&self) -> Box<RawValue> {
        #[derive(serde::Serialize)]
        struct Receipt<'a> {
            trader_id: &'a str,
            reason: &'a Reason,
            started_at: &'a str,
            timeout_secs: f64,
            steps: &'a [StepReport],
        }
        serde_json::value::to_raw_value(&Receipt {
            trader_id: &self.trader_id,
            reason: &self.reason,
            started_at: &self.started_at,
            timeout_secs: self.timeout.as_secs_f64(),
            steps: &self.steps,
        })
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
    }

    /// The report as things stand: a running step counts as interrupted, the rest as not run; each
    /// step left undone says what that means. A disabled step is left undone on purpose and costs
    /// nothing, unless it is one that judges the node's safety (it declares counts): without it,
    /// what it counts is unknown.
    pub(crate) fn report(&self, pipeline: &Pipeline, handle: &ShutdownHandle) -> Report {
        let forced_by = handle.forced_by();
        // One read of the handle: the notes and `forced_by` say the same.
        let note = forced_words(forced_by.as_ref());
        let mut steps = self.steps.clone();
        if let Some((index, started)) = self.running
            && let Some(ps) = pipeline.steps.get(index)
        {
            let why = format!("interrupted: {note}; its effects are unknown");
            let offset = started.saturating_duration_since(self.started);
            steps.push(StepReport {
                duration: started.elapsed().as_secs_f64(),
                attempts: 1,
                offset: offset.as_secs_f64(),
                budget: (ps.settings.timeout)
                    .min(self.timeout.saturating_sub(offset))
                    .as_secs_f64(),
                ..entry(ps, StepOutcome::TimedOut, Some(why))
            });
        }
        let now = self.started.elapsed().as_secs_f64();
        for ps in pipeline.steps.iter().skip(steps.len()) {
            steps.push(StepReport {
                offset: now,
                ..entry(ps, StepOutcome::NotRun, Some(note.clone()))
            });
        }
        let mut degraded = false;
        for (report, ps) in steps.iter_mut().zip(&pipeline.steps) {
            let undone = match report.outcome {
                StepOutcome::Succeeded | StepOutcome::Failed => false,
                StepOutcome::Skipped => {
                    ps.enabled || ps.step.as_ref().is_some_and(|s| !s.counts().is_empty())
                }
                StepOutcome::NotRun | StepOutcome::TimedOut | StepOutcome::Panicked => true,
            };
            if let Some(step) = &ps.step {
                if let Some(consequence) = step.if_not_done().filter(|_| undone) {
                    report.problems.push(consequence);
                }
                // A count the step owes and did not give is unknown, never 0.
                for counter in step.counts() {
                    report.counts.entry(*counter).or_insert(None);
                }
            }
            degraded |= undone || report.outcome.is_failure() || !report.problems.is_empty();
        }
        let outcome = if forced_by.is_some() {
            Outcome::Forced
        } else if self.aborted_by.is_some() {
            Outcome::Aborted
        } else if degraded {
            Outcome::Degraded
        } else {
            Outcome::Clean
        };
        Report {
            trader_id: self.trader_id.clone(),
            reason: self.reason.clone(),
            forced_by,
            started_at: self.started_at.clone(),
            duration: self.started.elapsed().as_secs_f64(),
            outcome,
            exit_code: outcome.exit_code(),
            timeout_secs: self.timeout.as_secs_f64(),
            steps,
            sink_errors: Vec::new(),
            escalations: (handle.escalations().into_iter())
                .map(|e| EscalationReport {
                    level: e.level,
                    reason: e.reason,
                    offset: e.at.saturating_duration_since(self.started).as_secs_f64(),
                })
                .collect(),
        }
    }
}

/// The report entry of step `ps` with nothing measured yet.
pub(crate) fn entry(ps: &PipelineStep, outcome: StepOutcome, error: Option<String>) -> StepReport {
    StepReport {
        name: ps.settings.name.clone(),
        kind: ps.settings.kind.to_owned(),
        critical: ps.settings.critical,
        outcome,
        duration: 0.0,
        attempts: 0,
        error,
        problems: Vec::new(),
        details: serde_json::Map::new(),
        counts: BTreeMap::new(),
        at_least: BTreeMap::new(),
        summary: None,
        offset: 0.0,
        budget: 0.0,
    }
}

/// Why a non-critical step did not run, or stopped, after the second signal.
pub(crate) const IN_A_HURRY: &str = "second signal, non-critical steps are skipped";

/// What a step that held its thread when the runner walked away from it adds to its error.
pub(crate) const HELD_ITS_THREAD: &str = "it held its thread (a blocking call or a long computation) and was abandoned: its effects after what it published are unknown";

/// What forced the shutdown, in words, as the handle says now.
pub(crate) fn forced_note(handle: &ShutdownHandle) -> String {
    forced_words(handle.forced_by().as_ref())
}

/// What `forced_by` forced, in words.
fn forced_words(forced_by: Option<&Reason>) -> String {
    match forced_by {
        Some(Reason::Deadline) | None => "global deadline reached, shutdown forced".into(),
        Some(other) => format!("shutdown forced by {other}"),
    }
}

/// Why a step ran out of time: its own timeout, or the shutdown's (`global`) when that ended first.
pub(crate) fn timed_out_note(settings: &StepSettings, global: Option<Duration>) -> String {
    match global {
        Some(timeout) => format!(
            "global deadline of {} reached while the step ran",
            secs(timeout)
        ),
        None => format!("timed out after {}", secs(settings.timeout)),
    }
}
