//! The minimal node, as a user would run it: its operator commands know its own step, and SIGTERM
//! runs its pipeline to a report.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use shutdown_testkit::process::Proc;

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minimal_node"));
    cmd.env_remove("SHUTDOWN_TIMEOUT_SECS");
    cmd
}

#[test]
fn its_operator_commands_know_its_own_step() {
    let out = node()
        .args(["validate", here().join("node.toml").to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("halt -> cancel -> announce"), "{said}");
    let out = node().args(["steps", "--json"]).output().unwrap();
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let announce = (kinds.as_array().unwrap().iter())
        .find(|k| k["kind"] == "announce")
        .expect("announce listed");
    assert_eq!(announce["options"][0]["name"], "text");
}

#[test]
fn sigterm_runs_its_pipeline_with_its_own_step_to_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = node();
    cmd.arg(here().join("node.toml"))
        .arg(here().join("../scenarios/basic.toml"))
        .current_dir(dir.path());
    let mut proc = Proc::spawn(cmd);
    proc.wait_line("ready");
    proc.signal(Signal::SIGTERM);
    let (code, _) = proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", proc.stderr());
    assert!(proc.stdout().contains("announce: minimal node stopping"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let steps: Vec<(&str, &str)> = (report["steps"].as_array().unwrap().iter())
        .map(|s| (s["name"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("halt", "succeeded"),
            ("cancel", "succeeded"),
            ("announce", "succeeded")
        ]
    );
}

#[test]
fn a_broken_config_is_named_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "[[steps]]\nkind = \"announce\"\ntxt = \"typo\"\n").unwrap();
    let out = node()
        .arg(&config)
        .arg(here().join("../scenarios/basic.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("txt") && err.contains("did you mean `text`"),
        "{err}"
    );
}

#[test]
fn without_its_arguments_it_says_how_to_run_it() {
    let out = node().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: minimal_node CONFIG SCENARIO"));
}
