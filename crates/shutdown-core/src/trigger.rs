//! The shutdown handle: requests from signals, code or a fleet command, coalesced, with escalation.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Notify;

use crate::signal::Signal;

/// Why the node is shutting down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A signal (`SIGTERM`, `SIGINT`, ...).
    Signal(Signal),
    /// A call from the embedding code.
    Api,
    /// The fleet kill switch.
    Fleet,
    /// The global deadline.
    Deadline,
    /// Not a shutdown: the start gate of a node that is starting (see [`crate::Shutdown::run_start_gate`]).
    Start,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Signal(signal) => f.write_str(signal.name()),
            Reason::Api => f.write_str("api"),
            Reason::Fleet => f.write_str("fleet"),
            Reason::Deadline => f.write_str("deadline"),
            Reason::Start => f.write_str("start"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Reason {
    type Err = String;

    /// What [`Reason`]'s `Display` writes: `api`, `fleet`, `deadline`, `start` or a signal name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "api" => Reason::Api,
            "fleet" => Reason::Fleet,
            "deadline" => Reason::Deadline,
            "start" => Reason::Start,
            _ => Reason::Signal(s.parse().map_err(|_| {
                format!("unknown reason {s:?} (api, fleet, deadline, start or a signal name)")
            })?),
        })
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How far a shutdown has escalated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
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

/// The escalation state: the one place that says how far the shutdown has gone, and why.
#[derive(Debug)]
struct State {
    level: Level,
    reason: Option<Reason>,
    forced_by: Option<Reason>,
    raised: Vec<Escalation>,
}

/// One raise of the escalation level: to what, why, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The level reached.
    pub level: Level,
    /// What raised it.
    pub reason: Reason,
    /// When (tokio's clock, so a paused test clock too).
    pub at: tokio::time::Instant,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Wakes threads waiting in [`ShutdownHandle::wait_blocking`] (the signal and force-exit threads).
    threads: Condvar,
    /// Wakes tasks waiting in [`ShutdownHandle::reached`].
    tasks: Notify,
}

/// A cheap, cloneable handle to request, escalate and observe the shutdown.
///
/// Requests coalesce: the pipeline runs once, whatever asks for it and however often.
///
/// ```
/// use shutdown_core::{Level, Reason, ShutdownHandle, Signal};
/// let handle = ShutdownHandle::new();
/// assert!(!handle.is_shutdown_requested());
/// assert!(handle.trigger(Reason::Api));
/// assert!(!handle.trigger(Reason::Fleet)); // coalesced
/// assert_eq!(handle.reason(), Some(Reason::Api));
/// assert_eq!(handle.escalate(Reason::Signal(Signal::Int)), Level::Hurry);
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
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    level: Level::Running,
                    reason: None,
                    forced_by: None,
                    raised: Vec::new(),
                }),
                threads: Condvar::new(),
                tasks: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move the level to `next(level)` when that is higher (it never goes down), keeping the first
    /// reason and what forced it. Returns the level before and after.
    fn raise(&self, next: impl FnOnce(Level) -> Level, reason: Reason) -> (Level, Level) {
        let mut state = self.lock();
        let before = state.level;
        let level = next(before);
        if level > before {
            if state.reason.is_none() {
                state.reason = Some(reason.clone());
            }
            if level == Level::Force {
                state.forced_by = Some(reason.clone());
            }
            state.raised.push(Escalation {
                level,
                reason,
                at: tokio::time::Instant::now(),
            });
            state.level = level;
            self.inner.threads.notify_all();
            self.inner.tasks.notify_waiters();
        }
        (before, state.level)
    }

    /// Request a graceful shutdown. Returns `false` when one was already requested (coalesced).
    pub fn trigger(&self, reason: Reason) -> bool {
        let (before, _) = self.raise(|_| Level::Graceful, reason);
        before == Level::Running
    }

    /// Signal semantics: the first request starts the graceful run, the second hurries, the third forces.
    pub fn escalate(&self, reason: Reason) -> Level {
        let next = |level| match level {
            Level::Running => Level::Graceful,
            Level::Graceful => Level::Hurry,
            Level::Hurry | Level::Force => Level::Force,
        };
        self.raise(next, reason).1
    }

    /// Skip the remaining non-critical steps (starts the shutdown if none was requested).
    pub fn hurry(&self, reason: Reason) {
        self.raise(|_| Level::Hurry, reason);
    }

    /// Force: write the report and stop at once (starts the shutdown if none was requested).
    pub fn force(&self, reason: Reason) {
        self.raise(|_| Level::Force, reason);
    }

    /// Whether a shutdown has been requested.
    pub fn is_shutdown_requested(&self) -> bool {
        self.level() > Level::Running
    }

    /// The current escalation level.
    pub fn level(&self) -> Level {
        self.lock().level
    }

    /// The first request's reason.
    pub fn reason(&self) -> Option<Reason> {
        self.lock().reason.clone()
    }

    /// What forced the shutdown, if it was forced.
    pub fn forced_by(&self) -> Option<Reason> {
        self.lock().forced_by.clone()
    }

    /// Every raise of the level so far, in order: the request, a hurry, a force.
    pub fn escalations(&self) -> Vec<Escalation> {
        self.lock().raised.clone()
    }

    /// Wait until the level reaches at least `level`; returns the level then.
    pub async fn reached(&self, level: Level) -> Level {
        loop {
            let notified = self.inner.tasks.notified();
            tokio::pin!(notified);
            // Registered before the level is read, so a raise in between is not missed.
            notified.as_mut().enable();
            let now = self.level();
            if now >= level {
                return now;
            }
            notified.await;
        }
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
        while state.level < level {
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(t) if !t.is_zero() => t,
                    _ => break,
                },
                None => Duration::from_secs(3600),
            };
            state = self
                .inner
                .threads
                .wait_timeout(state, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        state.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_reads_back_as_written_and_an_unknown_one_is_named() {
        let mut all = vec![Reason::Api, Reason::Fleet, Reason::Deadline, Reason::Start];
        all.extend(Signal::ALL.map(Reason::Signal));
        for reason in all {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(
                serde_json::from_str::<Reason>(&json).unwrap(),
                reason,
                "{json}"
            );
        }
        let err = serde_json::from_str::<Reason>("\"SIGKILL\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown reason \"SIGKILL\""),
            "{err}"
        );
    }

    #[test]
    fn signals_escalate_graceful_hurry_force_and_keep_the_first_reason() {
        let h = ShutdownHandle::new();
        assert_eq!(h.escalate(Reason::Signal(Signal::Term)), Level::Graceful);
        assert_eq!(h.escalate(Reason::Signal(Signal::Int)), Level::Hurry);
        assert_eq!(h.escalate(Reason::Signal(Signal::Int)), Level::Force);
        assert_eq!(h.escalate(Reason::Signal(Signal::Int)), Level::Force);
        assert_eq!(h.reason(), Some(Reason::Signal(Signal::Term)));
        assert_eq!(h.forced_by(), Some(Reason::Signal(Signal::Int)));
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
    async fn reached_wakes_every_waiter_once_the_level_is_reached() {
        let h = ShutdownHandle::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.reached(Level::Hurry).await })
            })
            .collect();
        tokio::task::yield_now().await;
        h.trigger(Reason::Api);
        h.force(Reason::Deadline);
        for w in waiters {
            assert_eq!(w.await.ok(), Some(Level::Force));
        }
        assert_eq!(h.reached(Level::Graceful).await, Level::Force);
    }

    #[tokio::test]
    async fn requested_resolves_with_the_reason() {
        let h = ShutdownHandle::new();
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.requested().await });
        h.trigger(Reason::Signal(Signal::Term));
        assert_eq!(waiter.await.ok(), Some(Reason::Signal(Signal::Term)));
    }
}
