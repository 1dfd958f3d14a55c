//! A `testnode` child process: its stdout lines, its exit, signals to it; every wait bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct TestNode {
    pid: Pid,
    lines: Receiver<String>,
    exit: Receiver<ExitStatus>,
    pub report: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// Start `testnode` with `config` (TOML text); waits for its ready line.
    pub fn start(config: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("node.toml");
        std::fs::write(&config_path, config).expect("write config");
        let report = dir.path().join("report.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_testnode"))
            .arg(&config_path)
            .env("SHUTDOWN_REPORT_PATH", &report)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn testnode");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let stdout = child.stdout.take().expect("stdout");
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
        let node = TestNode {
            pid,
            lines,
            exit,
            report,
            _dir: dir,
        };
        node.wait_line("ready");
        node
    }

    /// Wait (at most 10 s) for a stdout line equal to `want`.
    pub fn wait_line(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => continue,
                Err(e) => panic!("no line {want:?} from testnode: {e}"),
            }
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).expect("send signal");
    }

    /// Wait (at most `limit`) for the exit; returns the code and how long the wait took.
    pub fn wait_exit(&self, limit: Duration) -> (i32, Duration) {
        let start = Instant::now();
        let status = self
            .exit
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("testnode did not exit within {limit:?}: {e}"));
        (
            status.code().expect("exit code, not a signal"),
            start.elapsed(),
        )
    }

    pub fn report(&self) -> serde_json::Value {
        read_json(&self.report)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("report {} not written: {e}", path.display()));
    serde_json::from_str(&text).expect("report is JSON")
}

/// `(name, outcome)` of every step of a report.
pub fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .expect("steps array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}
