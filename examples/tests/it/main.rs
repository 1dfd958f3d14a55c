//! End to end: the example trading node with a real redis-server and a real Pushgateway, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};

use std::process::Command;

use std::time::Duration;

use nix::sys::signal::Signal;

use shutdown_redis::fleet::{Action, Scope};

use shutdown_testkit::process::Proc;

use shutdown_testkit::pushgateway::{Pushgateway, promtool_check_metrics};

use shutdown_testkit::redis_server::RedisServer;

mod outside;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A node in its own working directory (report, fallback files), with `config` as its pipeline.
struct Node {
    proc: Proc,
    dir: PathBuf,
}

/// The node's command in `dir`, with the config already written there.
fn command(dir: &Path, redis: Option<&str>, pushgateway: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trading_node"));
    cmd.arg(dir.join("node.toml"))
        .arg(root().join("examples/scenarios/basic.toml"))
        .current_dir(dir);
    cmd.env_remove("REDIS_URL")
        .env_remove("SHUTDOWN_METRICS__PUSHGATEWAY_URL")
        // A node killed holding its lease lets it go in 1.5 s, well inside a test's waits.
        .env("TRADING_NODE_LEASE_TTL_MS", "1500");
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url);
    }
    if let Some(url) = pushgateway {
        cmd.env("SHUTDOWN_METRICS__PUSHGATEWAY_URL", url);
    }
    cmd
}

/// The line a node started again in `dir` prints about the previous shutdown.
fn restore_line(dir: &Path, redis: &str) -> String {
    Proc::spawn(command(dir, Some(redis), None)).wait_line("restore:")
}

fn start(dir: &Path, config: &str, redis: Option<&str>, pushgateway: Option<&str>) -> Node {
    std::fs::write(dir.join("node.toml"), config).unwrap();
    let cmd = command(dir, redis, pushgateway);
    let mut proc = Proc::spawn(cmd);
    proc.wait_line("ready");
    Node {
        proc,
        dir: dir.to_path_buf(),
    }
}

/// The entry of the first step of `kind` in a report.
fn step_of_kind<'a>(report: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    (report["steps"].as_array().unwrap().iter())
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {report:#}"))
}

impl Node {
    fn report(&self) -> serde_json::Value {
        report_in(&self.dir)
    }
}

fn shipped_config() -> String {
    std::fs::read_to_string(root().join("examples/configs/node.toml")).unwrap()
}

/// The shipped config with a notify step that takes 30 s: the shutdown is mid-pipeline while it runs.
fn slow_notify_config() -> String {
    shipped_config().replace(
        "message = \"trader-001 is stopping\"",
        "message = \"trader-001 is stopping\"\ndelay_secs = 30",
    )
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(server.dir.path().join("redis.sock"))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The report a node wrote in `dir`.
fn report_in(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("shutdown-report.json")).unwrap())
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The line a node started again in `dir` without Redis prints about the previous shutdown.
fn restore_line_without_redis(dir: &Path) -> String {
    Proc::spawn(command(dir, None, None)).wait_line("restore:")
}

mod deploy;
mod faults;
mod fleet;
mod lease;
mod signals;
mod start_gate;
