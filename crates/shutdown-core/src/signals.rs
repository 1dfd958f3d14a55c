//! OS signals: a listener thread that turns each configured signal into an escalation of the handle.
//!
//! The listener is a plain thread, not a task: a third signal must force the exit even when every
//! runtime worker is stuck in a step.

use std::io;
use std::thread::JoinHandle;

use signal_hook::iterator::{Handle, Signals};

use crate::signal::Signal;
use crate::trigger::{Reason, ShutdownHandle};

/// Listens for signals until dropped; each one escalates the handle (graceful, hurry, force).
#[derive(Debug)]
pub struct SignalListener {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalListener {
    /// Start listening for `signals` on a dedicated thread.
    pub fn start(signals: &[Signal], shutdown: ShutdownHandle) -> io::Result<Self> {
        let mut signals = Signals::new(signals.iter().map(|s| s.number()))?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("shutdown-signals".into())
            .spawn(move || {
                for number in signals.forever() {
                    let Some(signal) = Signal::from_number(number) else {
                        continue;
                    };
                    let level = shutdown.escalate(Reason::Signal(signal));
                    tracing::warn!(signal = signal.name(), level = ?level, "shutdown signal received");
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
