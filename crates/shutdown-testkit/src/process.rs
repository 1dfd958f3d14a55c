//! A child process under test: its stdout lines, its exit and signals to it; every wait bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct Proc {
    pid: Pid,
    lines: Receiver<String>,
    exit: Receiver<ExitStatus>,
    seen: Vec<String>,
}

impl Proc {
    /// Spawn `cmd` with stdout piped (stderr inherited, stdin closed).
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
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
        }
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

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}
