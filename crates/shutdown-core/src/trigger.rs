//! The shutdown handle: requests from signals, code or a fleet command, coalesced, with escalation.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why the node is shutting down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A signal, by name (`SIGTERM`, `SIGINT`, ...).
    Signal(&'static str),
    /// A call from the embedding code.
    Api,
    /// The fleet kill switch.
    Fleet,
    /// The global deadline.
    Deadline,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Signal(name) => f.write_str(name),
            Reason::Api => f.write_str("api"),
            Reason::Fleet => f.write_str("fleet"),
            Reason::Deadline => f.write_str("deadline"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How far a shutdown has escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No shutdown requested.
    Running,
    /// First request: the whole pipeline runs.
    Graceful,
    /// Second request: remaining non-critical steps are skipped.
    Hurry,
    /// Third request or deadline: report and exit at once.
    Force,
}

#[derive(Debug)]
struct State {
    level: Level,
    reason: Option<Reason>,
    forced_by: Option<Reason>,
    requested_at: Option<Instant>,
    /// Threads in [`ShutdownHandle::wait_blocking`] (a condvar notification is a system call; skip it
    /// when nobody waits).
    blocked_waiters: usize,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// `state.level`, readable without the lock (the runner reads it before every step).
    level: AtomicU8,
    changed: Condvar,
    level_tx: watch::Sender<Level>,
    force: CancellationToken,
    hurry: CancellationToken,
}

/// A cheap, cloneable handle to request, escalate and observe the shutdown.
///
/// Requests coalesce: the pipeline runs once, whatever asks for it and however often.
///
/// ```
/// use shutdown_core::{Level, Reason, ShutdownHandle};
/// let handle = ShutdownHandle::new();
/// assert!(!handle.is_shutdown_requested());
/// assert!(handle.trigger(Reason::Api));
/// assert!(!handle.trigger(Reason::Fleet)); // coalesced
/// assert_eq!(handle.reason(), Some(Reason::Api));
/// assert_eq!(handle.escalate(Reason::Signal("SIGINT")), Level::Hurry);
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownHandle {
    /// A handle with no shutdown requested.
    pub fn new() -> Self {
        let (level_tx, _) = watch::channel(Level::Running);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    level: Level::Running,
                    reason: None,
                    forced_by: None,
                    requested_at: None,
                    blocked_waiters: 0,
                }),
                level: AtomicU8::new(Level::Running as u8),
                changed: Condvar::new(),
                level_tx,
                force: CancellationToken::new(),
                hurry: CancellationToken::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_level(&self, state: &mut State, level: Level, reason: Reason) {
        if level <= state.level {
            return;
        }
        if state.reason.is_none() {
            state.reason = Some(reason.clone());
            state.requested_at = Some(Instant::now());
        }
        if level == Level::Force && state.forced_by.is_none() {
            state.forced_by = Some(reason);
        }
        state.level = level;
        self.inner.level.store(level as u8, Ordering::Release);
        self.inner.level_tx.send_replace(level);
        if level >= Level::Hurry {
            self.inner.hurry.cancel();
        }
        if level == Level::Force {
            self.inner.force.cancel();
        }
        if state.blocked_waiters > 0 {
            self.inner.changed.notify_all();
        }
    }

    /// Request a graceful shutdown. Returns `false` when one was already requested (coalesced).
    pub fn trigger(&self, reason: Reason) -> bool {
        let mut state = self.lock();
        if state.level > Level::Running {
            return false;
        }
        self.set_level(&mut state, Level::Graceful, reason);
        true
    }

    /// Signal semantics: the first request starts the graceful run, the second hurries, the third forces.
    pub fn escalate(&self, reason: Reason) -> Level {
        let mut state = self.lock();
        let next = match state.level {
            Level::Running => Level::Graceful,
            Level::Graceful => Level::Hurry,
            Level::Hurry | Level::Force => Level::Force,
        };
        self.set_level(&mut state, next, reason);
        state.level
    }

    /// Skip the remaining non-critical steps (starts the shutdown if none was requested).
    pub fn hurry(&self, reason: Reason) {
        let mut state = self.lock();
        self.set_level(&mut state, Level::Hurry, reason);
    }

    /// Force: write the report and stop at once (starts the shutdown if none was requested).
    pub fn force(&self, reason: Reason) {
        let mut state = self.lock();
        self.set_level(&mut state, Level::Force, reason);
    }

    /// Whether a shutdown has been requested.
    pub fn is_shutdown_requested(&self) -> bool {
        self.level() > Level::Running
    }

    /// The current escalation level.
    pub fn level(&self) -> Level {
        match self.inner.level.load(Ordering::Acquire) {
            0 => Level::Running,
            1 => Level::Graceful,
            2 => Level::Hurry,
            _ => Level::Force,
        }
    }

    /// The first request's reason.
    pub fn reason(&self) -> Option<Reason> {
        self.lock().reason.clone()
    }

    /// What forced the shutdown, if it was forced.
    pub fn forced_by(&self) -> Option<Reason> {
        self.lock().forced_by.clone()
    }

    /// A token cancelled when the shutdown is hurried (second request) or forced.
    pub fn hurry_token(&self) -> CancellationToken {
        self.inner.hurry.clone()
    }

    /// A token cancelled when the shutdown is forced.
    pub fn force_token(&self) -> CancellationToken {
        self.inner.force.clone()
    }

    /// Wait until the level reaches at least `level`.
    pub async fn reached(&self, level: Level) {
        let mut rx = self.inner.level_tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|l| *l >= level).await;
    }

    /// Wait until a shutdown is requested; returns its reason.
    pub async fn requested(&self) -> Reason {
        self.reached(Level::Graceful).await;
        self.reason().unwrap_or(Reason::Api)
    }

    /// Block the calling OS thread until the level reaches `level` or `deadline` passes.
    /// Returns the level then. For watchdogs that must not depend on the async runtime.
    pub fn wait_blocking(&self, level: Level, deadline: Option<Instant>) -> Level {
        let mut state = self.lock();
        loop {
            if state.level >= level {
                return state.level;
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => t,
                    _ => return state.level,
                },
                None => Duration::from_secs(3600),
            };
            state.blocked_waiters += 1;
            state = self
                .inner
                .changed
                .wait_timeout(state, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            state.blocked_waiters -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_escalate_graceful_hurry_force_and_keep_the_first_reason() {
        let h = ShutdownHandle::new();
        assert_eq!(h.escalate(Reason::Signal("SIGTERM")), Level::Graceful);
        assert_eq!(h.escalate(Reason::Signal("SIGINT")), Level::Hurry);
        assert!(!h.force_token().is_cancelled());
        assert_eq!(h.escalate(Reason::Signal("SIGINT")), Level::Force);
        assert!(h.force_token().is_cancelled());
        assert_eq!(h.escalate(Reason::Signal("SIGINT")), Level::Force);
        assert_eq!(h.reason(), Some(Reason::Signal("SIGTERM")));
        assert_eq!(h.forced_by(), Some(Reason::Signal("SIGINT")));
    }

    #[test]
    fn triggers_coalesce() {
        let h = ShutdownHandle::new();
        assert!(h.trigger(Reason::Fleet));
        assert!(!h.trigger(Reason::Api));
        assert_eq!(h.level(), Level::Graceful);
        assert_eq!(h.reason(), Some(Reason::Fleet));
    }

    #[test]
    fn wait_blocking_returns_at_the_deadline_or_when_reached() {
        let h = ShutdownHandle::new();
        let past = Instant::now();
        assert_eq!(h.wait_blocking(Level::Force, Some(past)), Level::Running);
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.wait_blocking(Level::Force, None));
        h.force(Reason::Deadline);
        assert_eq!(t.join().ok(), Some(Level::Force));
    }

    #[tokio::test]
    async fn requested_resolves_with_the_reason() {
        let h = ShutdownHandle::new();
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.requested().await });
        h.trigger(Reason::Signal("SIGTERM"));
        assert_eq!(waiter.await.ok(), Some(Reason::Signal("SIGTERM")));
    }
}
