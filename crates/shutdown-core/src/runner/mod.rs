//! The runner: what [`crate::Shutdown::run`] does, given the [`Job`] the builder set up. One job
//! per file:
//! - `job.rs`: what one run needs (the pipeline, the node, the sinks, what happens on a force);
//! - `mod.rs`: one run's shared state, and the start of its supervision on a task of its own;
//! - `exec.rs`: the supervision, one step at a time: admit (the skip rules), guard (a `select!` of
//!   the step against its deadline, a force and, for a step that is not critical, a hurry) and the
//!   step's report entry; then the report, handed to its sinks;
//! - `drive.rs`: polls a step's future on the blocking pool, so a step that blocks its thread holds
//!   a pool thread, never a runtime worker nor the supervision (or in place, for simulations);
//! - `progress.rs`: who has the report, the supervision or the force-exit thread;
//! - `so_far.rs`: the report from what is known so far (each step's entry, and the words of its
//!   notes), which the supervision, a receipt or the force-exit thread turns into a report;
//! - `force.rs`: the force-exit thread of a node that exits the process.
//!
//! Where the report goes is `report/deliver.rs`; what the service manager hears, `systemd.rs`; the exit
//! flushes, `exit_hooks.rs`.

mod drive;
mod exec;
mod force;
mod job;
mod progress;
mod so_far;

pub(crate) use job::Job;

use std::sync::Arc;

use tokio::time::Instant;

use self::progress::Shared;
use self::so_far::SoFar;
use crate::report::Report;
use crate::step::SharedResults;
use crate::trigger::Reason;

/// One run of a pipeline: what the supervision, the steps and the force-exit thread share.
pub(super) struct Run {
    /// What to run, and how.
    job: Job,
    reason: Reason,
    shared: Arc<Shared>,
    results: SharedResults,
    started: Instant,
    /// When the global budget ends.
    deadline: Instant,
    span: tracing::Span,
}

/// Run `job` now (requesting it with reason `api` if nobody has), its supervision on a task of its
/// own; see [`crate::Shutdown::run`].
pub(crate) async fn run(job: Job) -> Report {
    job.handle.trigger(Reason::Api);
    let reason = job.handle.reason().unwrap_or(Reason::Api);
    let started = Instant::now();
    let settings = &job.pipeline.settings;
    let span = tracing::info_span!("shutdown", reason = %reason, trader_id = %settings.trader_id,
        timeout_secs = settings.timeout.as_secs_f64());
    let so_far = SoFar::new(&job.pipeline, &reason, started);
    let run = Arc::new(Run {
        shared: Arc::new(Shared::new(so_far)),
        deadline: started + settings.timeout,
        started,
        reason,
        results: SharedResults::default(),
        span,
        job,
    });
    if run.job.exit_on_force {
        force::start(&run);
    }
    match tokio::spawn(run.clone().supervise()).await {
        Ok(report) => report,
        Err(_) => run.lost(),
    }
}

#[cfg(test)]
mod tests;
