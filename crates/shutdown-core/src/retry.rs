//! Retries with exponential backoff and deterministic jitter, bounded by a deadline: for the built-in
//! steps and for custom ones.

use std::future::Future;
use std::hash::Hasher;
use std::time::Duration;

use tokio::time::Instant;

/// How to retry a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts after the first.
    pub retries: u32,
    /// The first delay; it doubles each retry, jittered to between half and all of it.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

/// An error that says whether a retry may help, and how long the other side asked to wait.
pub trait Retryable {
    /// Whether a retry may succeed.
    fn is_retryable(&self) -> bool;
    /// The wait the other side asked for (HTTP 429 `Retry-After`), if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// The error to give when the deadline comes before an answer.
    fn timed_out() -> Self;
}

/// Jitter in [0.5, 1.0) of the delay, from a hash (FNV-1a) of the key and attempt: spread, yet
/// repeatable.
fn jitter(key: &str, attempt: u32) -> f64 {
    let mut h = fnv::FnvHasher::default();
    h.write(key.as_bytes());
    h.write(&attempt.to_le_bytes());
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 53) as f64 / 2.0
}

/// Call `f` until it succeeds, fails for good, runs out of retries, or the next wait would pass
/// `deadline` (each call is bounded by it too). Returns the result and the number of attempts. The
/// jitter is a hash of `key` and the attempt: spread across keys, and the same from run to run.
pub async fn retry<T, E, F, Fut>(
    key: &str,
    backoff: Backoff,
    deadline: Instant,
    mut f: F,
) -> (Result<T, E>, u32)
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match tokio::time::timeout_at(deadline, f()).await {
            Ok(Ok(v)) => return (Ok(v), attempt),
            Ok(Err(e)) => e,
            Err(_) => return (Err(E::timed_out()), attempt),
        };
        if !err.is_retryable() || attempt > backoff.retries {
            return (Err(err), attempt);
        }
        let exp = backoff
            .initial
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(backoff.max);
        let mut wait = exp.mul_f64(jitter(key, attempt));
        if let Some(after) = err.retry_after() {
            wait = wait.max(after);
        }
        if Instant::now() + wait >= deadline {
            return (Err(err), attempt);
        }
        tokio::time::sleep(wait).await;
    }
}

/// The deadline a step works to: a little before the runner's (a twentieth of what is left, at most
/// 250 ms), so it can still report what it did.
pub fn work_deadline(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 20).min(Duration::from_millis(250))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::roles::RoleError;

    #[test]
    fn jitter_is_repeatable_and_in_range() {
        for a in 1..50 {
            let j = jitter("o-1", a);
            assert!((0.5..1.0).contains(&j));
            assert_eq!(j, jitter("o-1", a));
        }
        assert_ne!(jitter("o-1", 1), jitter("o-2", 1));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up_on_a_rejection() {
        let backoff = Backoff {
            retries: 5,
            initial: Duration::from_millis(10),
            max: Duration::from_secs(1),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut calls = 0;
        let (r, attempts) = retry("k", backoff, deadline, || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 | 2 => Err::<(), _>(RoleError::Transient("503".into())),
                    _ => Err(RoleError::Rejected("no".into())),
                }
            }
        })
        .await;
        assert_eq!(attempts, 3);
        assert_eq!(r, Err(RoleError::Rejected("no".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_retrying_before_the_deadline() {
        let backoff = Backoff {
            retries: 100,
            initial: Duration::from_millis(400),
            max: Duration::from_secs(5),
        };
        let start = Instant::now();
        let deadline = start + Duration::from_secs(2);
        let (r, attempts) = retry("k", backoff, deadline, || async {
            Err::<(), _>(RoleError::RateLimited { retry_after: None })
        })
        .await;
        assert!(r.is_err());
        assert!((2..10).contains(&attempts), "{attempts}");
        assert!(Instant::now() < deadline);
    }
}
