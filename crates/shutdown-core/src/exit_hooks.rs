//! What runs last, before the process exits or the report is returned: the node's flushes (its log
//! writer, its metrics and trace exporters), each on a thread of its own, all within one bound, so a
//! stalled exporter cannot hold the exit and a fast one is not cut short.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A flush to run at the end of the shutdown.
type Hook = Arc<dyn Fn() + Send + Sync>;

/// The node's exit flushes.
#[derive(Clone, Default)]
pub(crate) struct ExitHooks {
    hooks: Vec<(String, Hook)>,
}

impl ExitHooks {
    pub(crate) fn push(&mut self, name: String, hook: Hook) {
        self.hooks.push((name, hook));
    }

    /// Run every hook at once and wait for them, at most `bound` in all (the exit flushes'
    /// share of [`crate::AfterDeadline`]); then flush stdout and stderr. A hook still running is
    /// named on stderr (not in the log: the log writer may be what hangs) and left behind. Returns
    /// the names of the hooks that did not finish.
    pub(crate) fn run(&self, bound: Duration) -> Vec<String> {
        let (done, finished) = mpsc::channel();
        let mut pending: Vec<bool> = vec![true; self.hooks.len()];
        for (i, (name, hook)) in self.hooks.iter().enumerate() {
            let (h, tx) = (hook.clone(), done.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("shutdown-exit-{name}"))
                .spawn(move || {
                    h();
                    let _ = tx.send(i);
                });
            if spawned.is_err() {
                // No thread to spare: run it here, unbounded, rather than skip it.
                hook();
                pending[i] = false;
            }
        }
        drop(done);
        let deadline = Instant::now() + bound;
        while pending.iter().any(|p| *p) {
            let left = deadline.saturating_duration_since(Instant::now());
            match finished.recv_timeout(left) {
                Ok(i) => pending[i] = false,
                Err(_) => break,
            }
        }
        let late: Vec<String> = (self.hooks.iter().zip(&pending))
            .filter(|(_, p)| **p)
            .map(|((name, _), _)| name.clone())
            .collect();
        if !late.is_empty() {
            eprintln!(
                "shutdown: exit flush not finished within {}s: {} (left behind)",
                bound.as_secs_f64(),
                late.join(", ")
            );
        }
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn every_hook_runs_and_a_stalled_one_costs_the_bound_not_the_exit() {
        let fast = Arc::new(AtomicBool::new(false));
        let mut hooks = ExitHooks::default();
        let f = fast.clone();
        hooks.push(
            "fast".into(),
            Arc::new(move || f.store(true, Ordering::SeqCst)),
        );
        let (_hold, stall) = mpsc::channel::<()>();
        let stall = std::sync::Mutex::new(stall);
        hooks.push(
            "stalled".into(),
            Arc::new(move || {
                let _ = stall.lock().map(|r| r.recv());
            }),
        );
        let late = hooks.run(Duration::from_millis(200));
        assert!(fast.load(Ordering::SeqCst));
        assert_eq!(late, vec!["stalled".to_owned()]);
        assert!(ExitHooks::default().run(Duration::from_secs(1)).is_empty());
    }
}
