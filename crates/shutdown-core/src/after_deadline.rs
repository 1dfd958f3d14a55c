//! The time a shutdown may take after its global deadline, owned in one place: the force-exit
//! thread's take-over, the report's network sinks and the node's exit flushes. The runner keeps to
//! it on every path (a clean end, the deadline, a third signal, a sink that hangs), and `plan` adds
//! it to the budget: the process exits by `timeout_secs` + [`AfterDeadline::worst_case`] at the
//! latest, which is the least grace period an orchestrator may give before its SIGKILL.

use std::time::Duration;

/// What the runner may spend after the global deadline (or after a force, for a third signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AfterDeadline {
    /// How long the force-exit thread gives the supervision to notice a force: once as the global
    /// deadline passes, once more before it writes the report itself.
    pub take_over: Duration,
    /// The least the report's sinks other than the file and the log line are given once the
    /// deadline has passed or the shutdown is forced (the file and the log line come first, at
    /// once).
    pub sinks: Duration,
    /// The node's exit flushes, all together ([`crate::Shutdown::on_exit`]).
    pub exit_flushes: Duration,
    /// The wake-ups of threads, the signal's delivery and the process's own exit.
    pub slack: Duration,
}

impl AfterDeadline {
    /// The runner's: 0.1 s to take over, 1 s for the sinks, 1 s for the exit flushes, 0.2 s of
    /// slack: 2.4 s in all.
    pub const DEFAULT: AfterDeadline = AfterDeadline {
        take_over: Duration::from_millis(100),
        sinks: Duration::from_secs(1),
        exit_flushes: Duration::from_secs(1),
        slack: Duration::from_millis(200),
    };

    /// The latest the process exits after the global deadline (or a force), whichever path it
    /// takes: the force-exit thread wakes (`take_over`), waits for the supervision (`take_over`),
    /// the report goes to its sinks (`sinks`), the exit flushes run (`exit_flushes`), and the
    /// process exits (`slack`).
    ///
    /// ```
    /// use shutdown_core::AfterDeadline;
    /// assert_eq!(AfterDeadline::DEFAULT.worst_case().as_secs_f64(), 2.4);
    /// ```
    pub fn worst_case(&self) -> Duration {
        self.take_over * 2 + self.sinks + self.exit_flushes + self.slack
    }

    /// The same, with the exit flushes given `bound` ([`crate::Shutdown::exit_flush_timeout`]).
    pub fn with_exit_flushes(self, bound: Duration) -> Self {
        Self {
            exit_flushes: bound,
            ..self
        }
    }
}

impl Default for AfterDeadline {
    fn default() -> Self {
        Self::DEFAULT
    }
}
