//! The force-exit thread of a node that exits the process ([`crate::Shutdown::exit_process`],
//! [`crate::Shutdown::exit_on_force`]): on a force (third signal) or past the global deadline, the
//! report is written (the file and the log line, then the other sinks, bounded), the node's exit
//! flushes run, and the process exits, even when the async runtime can no longer run the
//! supervision. Every wait is a share of [`crate::AfterDeadline`], so the process exits by the
//! deadline plus its worst case whatever path it takes.

use std::sync::Arc;

use super::Run;
use super::progress::Stage;
use crate::report::exit_code;
use crate::trigger::{Level, Reason};

/// Start the thread. It waits for a force, or for the global deadline and a take-over's time.
pub(super) fn start(run: &Arc<Run>) {
    let run = run.clone();
    let left = (run.deadline).saturating_duration_since(tokio::time::Instant::now());
    let hard_deadline = std::time::Instant::now() + left + run.job.after.take_over;
    let spawned = std::thread::Builder::new()
        .name("shutdown-force".into())
        .spawn(move || force_exit(&run, hard_deadline));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the force-exit thread; forced exits rely on the runtime");
    }
}

fn force_exit(run: &Run, hard_deadline: std::time::Instant) -> ! {
    let (s, shared, after) = (&run.job, &run.shared, run.job.after);
    if s.handle.wait_blocking(Level::Force, Some(hard_deadline)) < Level::Force {
        s.handle.force(Reason::Deadline);
    }
    // The supervision wakes on the force at once; give it a moment to take the report.
    drop(shared.wait_while(after.take_over, |p| p.stage == Stage::Running));
    if let Some(report) = shared.take(&s.pipeline, &s.handle) {
        tracing::error!(
            "the shutdown's supervision did not answer a force; writing the report from the force-exit thread"
        );
        let report = run.write_blocking(report, after.sinks);
        std::process::exit(report.exit_code);
    }
    // The supervision has the report: its sinks and the exit flushes are bounded by the same
    // shares. Past them, it is stuck: exit with what it has written (the file and the log line
    // come first), rather than overrun the time after the deadline.
    let (stage, code) = {
        let p = shared.wait_while(after.sinks + after.exit_flushes, |p| {
            p.stage < Stage::Written
        });
        (p.stage, p.exit_code)
    };
    if stage < Stage::Written {
        eprintln!(
            "shutdown: the report's sinks or the exit flushes did not end within their {}s after the deadline; exiting",
            (after.sinks + after.exit_flushes).as_secs_f64()
        );
    }
    std::process::exit(code.unwrap_or(exit_code::FORCED));
}
