//! The force-exit thread of a node that exits the process ([`crate::Shutdown::exit_process`],
//! [`crate::Shutdown::exit_on_force`]): on a force (third signal) or past the global deadline, the
//! report is written (the file and the log line, then the other sinks, bounded), the node's exit
//! flushes run, and the process exits, even when the async runtime can no longer run the
//! supervision.

use std::sync::Arc;
use std::time::Duration;

use super::Run;
use super::exec::SINK_GRACE;
use super::progress::Stage;
use crate::report::exit_code;
use crate::trigger::{Level, Reason};

/// How long the supervision may take to notice a force before this thread writes the report itself.
const TAKE_OVER_GRACE: Duration = Duration::from_millis(100);
/// How long this thread waits for a report the supervision is writing before it exits anyway: the
/// other sinks' least time past the deadline, and a little more.
const WRITE_GRACE: Duration = Duration::from_secs(2);

/// Start the thread. It waits for a force, or for the global deadline and a little more.
pub(super) fn start(run: &Arc<Run>) {
    let run = run.clone();
    let left = (run.deadline).saturating_duration_since(tokio::time::Instant::now());
    let hard_deadline = std::time::Instant::now() + left + TAKE_OVER_GRACE;
    let spawned = std::thread::Builder::new()
        .name("shutdown-force".into())
        .spawn(move || force_exit(&run, hard_deadline));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the force-exit thread; forced exits rely on the runtime");
    }
}

fn force_exit(run: &Run, hard_deadline: std::time::Instant) -> ! {
    let (s, shared) = (&run.shutdown, &run.shared);
    if s.handle.wait_blocking(Level::Force, Some(hard_deadline)) < Level::Force {
        s.handle.force(Reason::Deadline);
    }
    // The supervision wakes on the force at once; give it a moment to take the report.
    drop(shared.wait_while(TAKE_OVER_GRACE, |p| p.stage == Stage::Running));
    if let Some(report) = shared.take(&s.pipeline, &s.handle) {
        tracing::error!(
            "the shutdown's supervision did not answer a force; writing the report from the force-exit thread"
        );
        let report = run.write_blocking(report, WRITE_GRACE);
        std::process::exit(report.exit_code);
    }
    // The supervision writes the sinks, then runs the exit flushes: wait for both.
    let grace = WRITE_GRACE.max(SINK_GRACE + s.exit_hooks.bound + TAKE_OVER_GRACE);
    let (stage, code) = {
        let p = shared.wait_while(grace, |p| p.stage < Stage::Written);
        (p.stage, p.exit_code)
    };
    if stage < Stage::Written {
        // The supervision is writing the report (or hangs doing so): flush what the node asked
        // for before leaving.
        s.exit_hooks.run();
    }
    std::process::exit(code.unwrap_or(exit_code::FORCED));
}
