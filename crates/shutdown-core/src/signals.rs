//! OS signals: a listener thread that turns each configured signal into an escalation of the handle.
//!
//! The listener is a plain thread, not a task: a third signal must force the exit even when every
//! runtime worker is stuck in a step.

use std::io;
use std::thread::JoinHandle;

use signal_hook::consts::signal;
use signal_hook::iterator::{Handle, Signals};

use crate::trigger::{Reason, ShutdownHandle};

/// Signal names accepted in `signals = [...]`.
pub const SIGNAL_NAMES: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2",
];

fn number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGHUP" => signal::SIGHUP,
        "SIGINT" => signal::SIGINT,
        "SIGQUIT" => signal::SIGQUIT,
        "SIGTERM" => signal::SIGTERM,
        "SIGUSR1" => signal::SIGUSR1,
        "SIGUSR2" => signal::SIGUSR2,
        _ => return None,
    })
}

fn name(number: i32) -> &'static str {
    SIGNAL_NAMES
        .iter()
        .copied()
        .find(|n| self::number(n) == Some(number))
        .unwrap_or("SIGNAL")
}

/// Listens for signals until dropped; each one escalates the handle (graceful, hurry, force).
#[derive(Debug)]
pub struct SignalListener {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalListener {
    /// Start listening for `names` (unknown names are an error) on a dedicated thread.
    pub fn start(names: &[&str], shutdown: ShutdownHandle) -> io::Result<Self> {
        let numbers = names
            .iter()
            .map(|n| {
                number(n).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("unknown signal {n:?}"))
                })
            })
            .collect::<io::Result<Vec<i32>>>()?;
        let mut signals = Signals::new(numbers)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("shutdown-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let level = shutdown.escalate(Reason::Signal(name(sig)));
                    tracing::warn!(signal = name(sig), level = ?level, "shutdown signal received");
                }
            })?;
        Ok(Self {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_signal_has_a_number_and_back() {
        for n in SIGNAL_NAMES {
            let num = number(n).unwrap();
            assert_eq!(name(num), *n);
        }
        assert!(SignalListener::start(&["SIGBOGUS"], ShutdownHandle::new()).is_err());
    }
}
