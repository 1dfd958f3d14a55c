//! Drives a step's future one poll at a time on the runtime's blocking pool.
//!
//! A step that blocks its thread (a synchronous call that never returns) then holds a blocking-pool
//! thread, never a runtime worker and never the supervision, however many steps do it. Between polls
//! the future waits on the runtime like any task, so timers and I/O work as usual, and a paused test
//! clock only moves while no poll is running (the blocking pool holds it while a poll runs).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A step's future, owned so that it can move between threads.
pub(super) type StepFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How long a poll must have been running, when the runner walks away, for the step to be said to
/// hold its thread. An async step's polls last microseconds; a poll that is merely queued for a
/// pool thread has not started, and counts for nothing.
pub(super) const HELD_AFTER: Duration = Duration::from_millis(100);

/// When the poll of the driven future now running began (wall-clock time: a blocking call holds its
/// thread in real time, whatever a paused test clock says); `None` between polls.
#[derive(Debug, Default, Clone)]
pub(super) struct InPoll(Arc<Mutex<Option<Instant>>>);

impl InPoll {
    /// Whether a poll is running and has been for at least [`HELD_AFTER`]: the step holds its thread.
    pub(super) fn holds_thread(&self) -> bool {
        self.running_for().is_some_and(|d| d >= HELD_AFTER)
    }

    /// How long the poll now running has been running.
    fn running_for(&self) -> Option<Duration> {
        let since = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        since.map(|t| t.elapsed())
    }

    fn set(&self, value: Option<Instant>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

/// The waker handed to the future: a wake-up stores a permit, so none is lost between polls.
struct Wakeup(Notify);

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.0.notify_one();
    }
}

/// Poll `future` to its end; a panic comes back as its message. Dropping the returned future walks
/// away: the step's future is dropped at once if it is between polls, or as soon as the poll that
/// holds its thread returns.
///
/// `in_place` polls it on the task that awaits it instead: for a simulation on a current-thread
/// runtime with a paused clock, which must give the same run every time (see
/// [`crate::Shutdown::poll_in_place`]). A step that blocks its thread then blocks the runtime.
pub(super) async fn drive<T: Send + 'static>(
    mut future: StepFuture<T>,
    in_poll: InPoll,
    in_place: bool,
) -> Result<T, String> {
    if in_place {
        let caught = futures_util::FutureExt::catch_unwind(AssertUnwindSafe(future)).await;
        return caught.map_err(|panic| panic_message(&*panic));
    }
    let wakeup = Arc::new(Wakeup(Notify::new()));
    let waker = Waker::from(wakeup.clone());
    loop {
        let waker = waker.clone();
        let running = in_poll.clone();
        let polled = tokio::task::spawn_blocking(move || {
            // Set here, not when the poll is handed over: a poll queued for a thread holds none.
            running.set(Some(Instant::now()));
            let mut cx = Context::from_waker(&waker);
            let poll = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            running.set(None);
            (future, poll)
        })
        .await;
        match polled {
            Ok((_, Ok(Poll::Ready(out)))) => return Ok(out),
            Ok((back, Ok(Poll::Pending))) => {
                future = back;
                wakeup.0.notified().await;
            }
            Ok((_, Err(panic))) => return Err(panic_message(&*panic)),
            Err(e) => return Err(format!("the runtime stopped the step: {e}")),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_future_that_waits_on_timers_runs_to_its_end_in_paused_time() {
        let start = tokio::time::Instant::now();
        let out = drive(
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                7
            }),
            InPoll::default(),
            false,
        )
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_panic_comes_back_as_its_message() {
        let in_poll = InPoll::default();
        let out: Result<(), String> = drive(
            Box::pin(async { panic!("boom {}", 1) }),
            in_poll.clone(),
            false,
        )
        .await;
        assert_eq!(out, Err("boom 1".into()));
        assert_eq!(in_poll.running_for(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_poll_that_blocks_its_thread_is_seen_in_poll_and_can_be_walked_away_from() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let in_poll = InPoll::default();
        let mut driven = tokio::spawn(drive(
            Box::pin(async move {
                let _ = started_tx.send(());
                let _ = rx.recv();
            }),
            in_poll.clone(),
            false,
        ));
        // The poll has its thread (however long it queued for one); walk away HELD_AFTER later.
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let timed_out = tokio::time::timeout(HELD_AFTER, &mut driven).await;
        assert!(timed_out.is_err());
        assert!(in_poll.holds_thread(), "the poll still holds its thread");
        driven.abort();
        drop(tx);
    }
}
