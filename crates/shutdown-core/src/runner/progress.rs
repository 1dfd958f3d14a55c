//! The report so far: what the supervision records step by step, what a step's receipt reads, and
//! what the force-exit thread writes out when the supervision cannot.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::pipeline::{OnError, Pipeline, PipelineStep};
use crate::report::{EscalationReport, Outcome, Report, StepOutcome, StepReport};
use crate::trigger::{Reason, ShutdownHandle};

/// Who has the report, in the order it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// Steps are running: nobody has taken the report yet.
    Running,
    /// Someone (the supervision, or the force-exit thread) took it and is writing it.
    Writing,
    /// Every sink has had its turn.
    Written,
}

/// The report entry of step `ps` with nothing measured yet.
pub(super) fn entry(ps: &PipelineStep, outcome: StepOutcome, error: Option<String>) -> StepReport {
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
        summary: None,
        offset: 0.0,
        budget: 0.0,
    }
}

#[derive(Debug)]
pub(super) struct Progress {
    trader_id: String,
    reason: String,
    started_at: String,
    started: Instant,
    timeout: Duration,
    steps: Vec<StepReport>,
    /// The step running now: its index and start.
    running: Option<(usize, Instant)>,
    /// The step whose failure aborted the pipeline.
    aborted_by: Option<String>,
    pub(super) stage: Stage,
    /// The exit code of the report being written.
    pub(super) exit_code: Option<i32>,
}

/// The progress and a condition variable the force-exit thread waits on.
#[derive(Debug)]
pub(super) struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    pub(super) fn new(pipeline: &Pipeline, reason: &Reason) -> Self {
        let started_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            progress: Mutex::new(Progress {
                trader_id: pipeline.settings.trader_id.clone(),
                reason: reason.to_string(),
                started_at,
                started: Instant::now(),
                timeout: pipeline.settings.timeout,
                steps: Vec::new(),
                running: None,
                aborted_by: None,
                stage: Stage::Running,
                exit_code: None,
            }),
            changed: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the shutdown started.
    pub(super) fn started(&self) -> Instant {
        self.lock().started
    }

    /// Step `index` starts now.
    pub(super) fn start_step(&self, index: usize, at: Instant) {
        self.lock().running = Some((index, at));
    }

    /// Record how step `ps` ended; an `on_error = "abort"` failure stops the pipeline.
    pub(super) fn record(&self, ps: &PipelineStep, report: StepReport) {
        let mut p = self.lock();
        if report.outcome.is_failure() && ps.settings.on_error == OnError::Abort {
            p.aborted_by = Some(ps.settings.name.clone());
        }
        p.running = None;
        p.steps.push(report);
    }

    /// The step whose failure aborted the pipeline, if one did.
    pub(super) fn aborted_by(&self) -> Option<String> {
        self.lock().aborted_by.clone()
    }

    /// Take the report to write it, unless someone else has.
    pub(super) fn take(&self, pipeline: &Pipeline, handle: &ShutdownHandle) -> Option<Report> {
        let mut p = self.lock();
        if p.stage != Stage::Running {
            return None;
        }
        let report = assemble(&p, pipeline, handle);
        p.stage = Stage::Writing;
        p.exit_code = Some(report.exit_code);
        self.changed.notify_all();
        Some(report)
    }

    /// Every sink has had the report.
    pub(super) fn written(&self) {
        self.lock().stage = Stage::Written;
        self.changed.notify_all();
    }

    /// The report as things stand, for a caller that may not write it.
    pub(super) fn report(&self, pipeline: &Pipeline, handle: &ShutdownHandle) -> Report {
        assemble(&self.lock(), pipeline, handle)
    }

    /// Wait up to `timeout` while `waiting` holds; returns the progress then.
    pub(super) fn wait_while(
        &self,
        timeout: Duration,
        waiting: impl FnMut(&mut Progress) -> bool,
    ) -> MutexGuard<'_, Progress> {
        let p = self.lock();
        self.changed
            .wait_timeout_while(p, timeout, waiting)
            .map(|(p, _)| p)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// The receipt a step receives: what has happened before it, rendered straight to JSON text.
    pub(super) fn receipt(&self) -> Box<RawValue> {
        #[derive(serde::Serialize)]
        struct Receipt<'a> {
            trader_id: &'a str,
            reason: &'a str,
            started_at: &'a str,
            timeout_secs: f64,
            steps: &'a [StepReport],
        }
        let p = self.lock();
        serde_json::value::to_raw_value(&Receipt {
            trader_id: &p.trader_id,
            reason: &p.reason,
            started_at: &p.started_at,
            timeout_secs: p.timeout.as_secs_f64(),
            steps: &p.steps,
        })
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
    }
}

/// What forced the shutdown, in words.
pub(super) fn forced_note(forced_by: Option<&Reason>) -> String {
    match forced_by {
        Some(Reason::Deadline) | None => "global deadline reached, shutdown forced".into(),
        Some(other) => format!("shutdown forced by {other}"),
    }
}

/// The report from what has happened so far: a running step counts as interrupted, the rest as not
/// run; each step left undone says what that means. A disabled step is left undone on purpose and
/// costs nothing, unless it is one that judges the node's safety (it declares counts): without it,
/// what it counts is unknown.
pub(super) fn assemble(p: &Progress, pipeline: &Pipeline, handle: &ShutdownHandle) -> Report {
    let forced_by = handle.forced_by();
    let note = forced_note(forced_by.as_ref());
    let mut steps = p.steps.clone();
    if let Some((index, started)) = p.running
        && let Some(ps) = pipeline.steps.get(index)
    {
        let why = format!("interrupted: {note}; its effects are unknown");
        let offset = started.saturating_duration_since(p.started);
        steps.push(StepReport {
            duration: started.elapsed().as_secs_f64(),
            attempts: 1,
            offset: offset.as_secs_f64(),
            budget: (ps.settings.timeout)
                .min(p.timeout.saturating_sub(offset))
                .as_secs_f64(),
            ..entry(ps, StepOutcome::TimedOut, Some(why))
        });
    }
    let now = p.started.elapsed().as_secs_f64();
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
    } else if p.aborted_by.is_some() {
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
        escalations: (handle.escalations().into_iter())
            .map(|e| EscalationReport {
                level: e.level,
                reason: e.reason.to_string(),
                offset: e.at.saturating_duration_since(p.started).as_secs_f64(),
            })
            .collect(),
    }
}
