//! A `testnode` child process with its config and report in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use shutdown_testkit::process::Proc;

pub struct TestNode {
    proc: Proc,
    pub report: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// Start `testnode` with `config` (TOML text); waits for its ready line.
    pub fn start(config: &str) -> TestNode {
        Self::start_with_env(config, &[])
    }

    /// [`TestNode::start`] with extra environment variables (`{dir}` in a value is the node's temp
    /// dir).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("node.toml");
        std::fs::write(&config_path, config).expect("write config");
        let report = dir.path().join("report.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_testnode"));
        cmd.arg(&config_path).env("SHUTDOWN_REPORT_PATH", &report);
        for (k, v) in env {
            cmd.env(k, v.replace("{dir}", &dir.path().display().to_string()));
        }
        let mut proc = Proc::spawn(cmd);
        proc.wait_line("ready");
        TestNode {
            proc,
            report,
            _dir: dir,
        }
    }

    pub fn wait_line(&mut self, want: &str) {
        self.proc.wait_line(want);
    }

    pub fn signal(&self, signal: Signal) {
        self.proc.signal(signal);
    }

    /// Wait for the exit until `deadline`, then SIGKILL it (an orchestrator's grace period).
    pub fn kill_at(&self, deadline: std::time::Instant) -> shutdown_testkit::process::Ended {
        self.proc.kill_at(deadline)
    }

    pub fn wait_exit(&self, limit: Duration) -> (i32, Duration) {
        let (code, waited) = self.proc.wait_exit(limit);
        (code.expect("exit code, not a signal"), waited)
    }

    /// What it wrote to stderr (its log) so far.
    pub fn stderr(&mut self) -> String {
        self.proc.stderr()
    }

    /// Three SIGTERMs while the step `step` runs: the request, the hurry (waited for, so that the
    /// signals do not merge in the kernel), the force.
    pub fn force_during(&mut self, step: &str) {
        self.signal(Signal::SIGTERM);
        self.wait_line(&format!("step-started {step}"));
        self.signal(Signal::SIGTERM);
        self.wait_line("level Hurry");
        self.signal(Signal::SIGTERM);
    }

    /// The node's temp dir.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn report(&self) -> serde_json::Value {
        read_json(&self.report)
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
