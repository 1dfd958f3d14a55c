//! A child process under test: its stdout lines, its exit and signals to it; every wait bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct Proc {
    pid: Pid,
    lines: Receiver<String>,
    exit: Receiver<ExitStatus>,
    seen: Vec<String>,
    /// Every stderr line so far (also passed on to this process's stderr).
    stderr: Arc<Mutex<Vec<String>>>,
    /// Says when stderr is closed (the process is gone and every line is kept).
    stderr_closed: Receiver<()>,
}

impl Proc {
    /// Spawn `cmd` with stdout and stderr piped (stdin closed).
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (err, kept) = (child.stderr.take().unwrap(), stderr.clone());
        let (closed_tx, stderr_closed) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().unwrap().push(line);
            }
            let _ = closed_tx.send(());
        });
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let stdout = child.stdout.take().unwrap();
        let (line_tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (exit_tx, exit) = channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Proc {
            pid,
            lines,
            exit,
            seen: Vec::new(),
            stderr,
            stderr_closed,
        }
    }

    /// Everything the process wrote to stderr: call it after [`Proc::wait_exit`] to have it all
    /// (it waits, at most 5 s, for the pipe to close).
    pub fn stderr(&self) -> String {
        let _ = self.stderr_closed.recv_timeout(Duration::from_secs(5));
        self.stderr.lock().unwrap().join("\n")
    }

    /// Every stdout line so far (those already read and those waiting).
    pub fn stdout(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Wait (at most 10 s) for a stdout line starting with `prefix`; returns it.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!("no line starting {prefix:?} ({e}); seen: {:#?}", self.seen),
            }
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).expect("send signal");
    }

    /// Wait (at most `limit`) for the exit; returns the code (`None` when killed by a signal) and the wait.
    pub fn wait_exit(&self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        let status = self
            .exit
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("no exit within {limit:?}: {e}"));
        (status.code(), start.elapsed())
    }
}

/// How a process ended under [`Proc::kill_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself, with this code (`None`: by a signal).
    Exited(Option<i32>),
    /// It was still running at the deadline: SIGKILL, as an orchestrator's grace period ends.
    Killed,
}

impl Proc {
    /// Wait for the exit until `deadline`; then SIGKILL it, as an orchestrator does when its grace
    /// period ends.
    pub fn kill_at(&self, deadline: Instant) -> Ended {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.exit.recv_timeout(left) {
            Ok(status) => Ended::Exited(status.code()),
            Err(_) => {
                let _ = kill(self.pid, Signal::SIGKILL);
                let _ = self.exit.recv_timeout(Duration::from_secs(5));
                Ended::Killed
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}
