//! What `halt` and `resume` share: setting the trading gate, retried, and reading it back.

use std::time::Duration;

use shutdown_core::node::TradingGate;
use shutdown_core::retry::{Backoff, retry, work_deadline};
use shutdown_core::{StepError, StepOutput};
use tokio::time::Instant;

/// Halt the gate (`halt = true`) or open it, retrying a transient or rate-limited call up to
/// `retries` times; with `confirm`, read it back and fail unless it says what was asked. The output
/// says `halted` or `resumed`, `confirmed`, and what was done in one line.
pub(crate) async fn set(
    gate: &dyn TradingGate,
    halt: bool,
    confirm: bool,
    retries: u32,
    deadline: Instant,
) -> Result<StepOutput, StepError> {
    let backoff = Backoff {
        retries,
        initial: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    let deadline = work_deadline(deadline);
    let (key, done, did) = match halt {
        true => ("halt", "halted", "new orders halted"),
        false => ("resume", "resumed", "trading gate opened"),
    };
    let (result, attempts) = retry(key, backoff, deadline, || async {
        match halt {
            true => gate.halt().await,
            false => gate.resume().await,
        }
    })
    .await;
    if let Err(e) = result {
        let what = if halt { "halt" } else { "open" };
        return Err(StepError::new(format!("the gate did not {what}: {e}"))
            .attempts(attempts)
            .detail(done, false));
    }
    let out = StepOutput::new()
        .attempts(attempts)
        .detail(done, true)
        .summary(did);
    if !confirm {
        return Ok(out);
    }
    let (state, _) = retry(&format!("{key}-confirm"), backoff, deadline, || {
        gate.is_halted()
    })
    .await;
    match state {
        Ok(halted) if halted == halt => Ok(out
            .detail("confirmed", true)
            .summary(format!("{did} (confirmed by reading the gate back)"))),
        Ok(_) => {
            let still = match halt {
                true => "the gate still accepts new orders after halt",
                false => "the gate still reports halted after resume",
            };
            Err(StepError::new(still)
                .attempts(attempts)
                .detail(done, true)
                .detail("confirmed", false))
        }
        Err(e) => Err(StepError::new(format!("cannot read the gate back: {e}"))
            .attempts(attempts)
            .detail(done, true)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use shutdown_core::errors::RoleError;
    use shutdown_core::node::RoleResult;

    use super::*;

    /// A gate that ignores what it is told (`stuck`), or fails its first `fail_first` calls, or
    /// cannot be read back.
    #[derive(Default)]
    struct Gate {
        halted: Mutex<bool>,
        stuck: bool,
        fail_first: Mutex<u32>,
        unreadable: bool,
    }

    impl Gate {
        fn call(&self) -> RoleResult<()> {
            let mut left = self.fail_first.lock().unwrap_or_else(|e| e.into_inner());
            if *left > 0 {
                *left -= 1;
                return Err(RoleError::Transient("503".into()));
            }
            Ok(())
        }

        fn set(&self, halted: bool) -> RoleResult<()> {
            self.call()?;
            if !self.stuck {
                *self.halted.lock().unwrap_or_else(|e| e.into_inner()) = halted;
            }
            Ok(())
        }
    }

    #[async_trait]
    impl TradingGate for Gate {
        async fn halt(&self) -> RoleResult<()> {
            self.set(true)
        }
        async fn resume(&self) -> RoleResult<()> {
            self.set(false)
        }
        async fn is_halted(&self) -> RoleResult<bool> {
            match self.unreadable {
                true => Err(RoleError::Rejected("no such endpoint".into())),
                false => Ok(*self.halted.lock().unwrap_or_else(|e| e.into_inner())),
            }
        }
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test(start_paused = true)]
    async fn halting_and_opening_are_read_back_and_a_transient_failure_is_retried() {
        let gate = Gate {
            fail_first: Mutex::new(2),
            ..Gate::default()
        };
        let out = set(&gate, true, true, 3, deadline()).await.unwrap();
        assert_eq!(out.attempts, 3);
        assert_eq!(out.details["confirmed"], true);
        assert!(out.summary.unwrap().contains("confirmed"));
        let out = set(&gate, false, true, 3, deadline()).await.unwrap();
        assert_eq!(out.details["resumed"], true);
        assert!(!*gate.halted.lock().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_that_ignores_the_call_fails_the_step_either_way() {
        let gate = Gate {
            stuck: true,
            ..Gate::default()
        };
        let e = set(&gate, true, true, 0, deadline()).await.unwrap_err();
        assert_eq!(e.message, "the gate still accepts new orders after halt");
        *gate.halted.lock().unwrap() = true;
        let e = set(&gate, false, true, 0, deadline()).await.unwrap_err();
        assert_eq!(e.message, "the gate still reports halted after resume");
        assert_eq!(e.output.details["confirmed"], false);
        // Without confirm, the call's answer is all there is.
        assert!(set(&gate, false, false, 0, deadline()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_that_cannot_be_read_back_or_keeps_failing_says_so() {
        let gate = Gate {
            unreadable: true,
            ..Gate::default()
        };
        let e = set(&gate, true, true, 0, deadline()).await.unwrap_err();
        assert!(e.message.starts_with("cannot read the gate back"), "{e}");
        let gate = Gate {
            fail_first: Mutex::new(10),
            ..Gate::default()
        };
        let e = set(&gate, false, true, 2, deadline()).await.unwrap_err();
        assert!(e.message.starts_with("the gate did not open"), "{e}");
        assert_eq!(e.output.attempts, 3);
    }
}
