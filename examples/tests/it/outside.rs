//! `examples/minimal`, a crate outside the workspace as a user's node would be, built here with
//! cargo as its author would build it, then run: its operator commands know its own step, SIGTERM
//! runs its pipeline to a report, and it builds no Redis client, TLS or HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use shutdown_testkit::process::Proc;

use super::root;

/// `cargo ARGS` in a copy of the crate (its path dependencies made absolute), with a target
/// directory of its own under the workspace's; the outer build's flags left out.
fn cargo(copy: &Path, args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(args)
        .current_dir(copy)
        .env("CARGO_TARGET_DIR", root().join("target/outside"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("run cargo")
}

/// The crate copied to a temp dir and built once for all the tests here; its binary.
fn built() -> &'static (tempfile::TempDir, PathBuf) {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let here = root().join("examples/minimal");
        let copy = tempfile::tempdir().unwrap();
        let crates = root().join("crates").canonicalize().unwrap();
        let manifest = std::fs::read_to_string(here.join("Cargo.toml"))
            .unwrap()
            .replace("../../crates", &crates.display().to_string());
        std::fs::write(copy.path().join("Cargo.toml"), manifest).unwrap();
        // The workspace's versions, so that the build needs nothing it has not downloaded.
        std::fs::copy(root().join("Cargo.lock"), copy.path().join("Cargo.lock")).unwrap();
        std::fs::create_dir(copy.path().join("src")).unwrap();
        std::fs::copy(here.join("src/main.rs"), copy.path().join("src/main.rs")).unwrap();
        let out = cargo(copy.path(), &["build", "--offline", "--quiet"]);
        assert!(
            out.status.success(),
            "the crate outside the workspace does not build:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = root().join("target/outside/debug/minimal_node");
        (copy, bin)
    })
}

fn node() -> Command {
    let mut cmd = Command::new(&built().1);
    cmd.env_remove("SHUTDOWN_TIMEOUT_SECS");
    cmd
}

fn here() -> PathBuf {
    root().join("examples/minimal")
}

#[test]
fn it_stays_under_60_lines_and_builds_no_redis_tls_or_http() {
    let code = std::fs::read_to_string(here().join("src/main.rs")).unwrap();
    let lines = code
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .count();
    assert!(lines < 60, "{lines} lines of code");
    let out = cargo(
        built().0.path(),
        &["tree", "--offline", "-e", "normal", "--prefix", "none"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("shutdown-cli"), "{tree}");
    for heavy in ["redis ", "rustls ", "ureq ", "shutdown-redis "] {
        assert!(!tree.contains(heavy), "{heavy}is built:\n{tree}");
    }
}

#[test]
fn its_operator_commands_know_its_own_step_and_no_redis_command() {
    let out = node()
        .args(["validate", here().join("node.toml").to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("halt -> cancel -> announce"), "{said}");
    let out = node().args(["steps", "--json"]).output().unwrap();
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = (kinds.as_array().unwrap().iter())
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"announce"), "{kinds:?}");
    assert!(!kinds.contains(&"flush"), "no Redis, no flush: {kinds:?}");
    // `fleet` is no command of this build: the node takes it as its own arguments.
    let out = node().args(["fleet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: minimal_node CONFIG SCENARIO"));
}

#[test]
fn sigterm_runs_its_pipeline_with_its_own_step_to_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = node();
    cmd.arg(here().join("node.toml"))
        .arg(root().join("examples/scenarios/basic.toml"))
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
        .arg(root().join("examples/scenarios/basic.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("txt") && err.contains("did you mean `text`"),
        "{err}"
    );
}
