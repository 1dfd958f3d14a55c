//! The real `shutdownctl` binary: every command, its output and its exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::PathBuf;

use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(args)
        .current_dir(root())
        .env_remove("SHUTDOWN_TIMEOUT_SECS")
        .env_remove("SHUTDOWNCTL_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shutdownctl")
}

/// `shutdownctl dry-run CONFIG --scenario SCENARIO` with both written to a temp dir, plus `extra`
/// arguments.
fn dry_run_texts(config: &str, scenario: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (
        dir.path().join("config.toml"),
        dir.path().join("scenario.toml"),
    );
    std::fs::write(&c, config).unwrap();
    std::fs::write(&s, scenario).unwrap();
    let mut args = vec![
        "dry-run",
        c.to_str().unwrap(),
        "--scenario",
        s.to_str().unwrap(),
    ];
    args.extend(extra);
    ctl(&args)
}

/// A file of the repository, as text.
fn shipped(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const PIPELINE: &str = "examples/configs/pipeline.toml";

fn dry_run(scenario: &str, seed: &str) -> (i32, serde_json::Value) {
    let out = ctl(&[
        "dry-run",
        PIPELINE,
        "--scenario",
        scenario,
        "--json",
        "--seed",
        seed,
    ]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    for key in ["started_at", "duration"] {
        v[key] = serde_json::Value::Null;
    }
    for s in v["steps"].as_array_mut().unwrap() {
        s["duration"] = serde_json::Value::Null;
    }
    v
}

/// A dry-run's JSON without its one wall-clock field.
fn without_start(mut v: serde_json::Value) -> String {
    v["started_at"] = serde_json::Value::Null;
    v.to_string()
}

mod config;
mod dry_run;
mod fleet;
mod plan;
mod reconcile;
mod redis;
mod report;
mod terminal;
mod venues;
