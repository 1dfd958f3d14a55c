//! Who has the report: the supervision records into it step by step, and the supervision or the
//! force-exit thread, whichever comes first, takes it to write it; the other waits.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::so_far::SoFar;
use crate::pipeline::Pipeline;
use crate::report::Report;
use crate::trigger::ShutdownHandle;

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

#[derive(Debug)]
pub(super) struct Progress {
    pub(super) so_far: SoFar,
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
    pub(super) fn new(so_far: SoFar) -> Self {
        let (stage, exit_code) = (Stage::Running, None);
        Self {
            progress: Mutex::new(Progress {
                so_far,
                stage,
                exit_code,
            }),
            changed: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the report to write it, unless someone else has.
    pub(super) fn take(&self, pipeline: &Pipeline, handle: &ShutdownHandle) -> Option<Report> {
        let mut p = self.lock();
        if p.stage != Stage::Running {
            return None;
        }
        let report = p.so_far.report(pipeline, handle);
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
}
