//! `plan`: the budget against the grace period, and what `--k8s` and the environment make of it.

use super::*;

#[test]
fn plan_weighs_the_budget_against_the_grace_period() {
    let out = ctl(&["plan", PIPELINE, "--grace-period", "60"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(
        s.contains("budget: steps 20s, critical 15s, global 20s, grace period 60s"),
        "{s}"
    );
    assert!(!s.contains("warning"), "{s}");
    // The report's sinks and the exit flushes get 2.4 s after the deadline at most.
    assert!(
        s.contains("exits by 22.4s at worst (20s + 2.4s after the deadline"),
        "{s}"
    );
    assert!(s.contains("grace period 60s leaves 37.6s"), "{s}");
    let out = ctl(&["plan", PIPELINE, "--grace-period", "20", "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("later than the 20s grace period"), "{s}");
    assert!(s.contains("grace period 20s is 2.4s short"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    let out = ctl(&["plan", PIPELINE, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][1]["kind"], "cancel");
    assert_eq!(v["steps"][1]["critical"], true);
    assert_eq!(v["timeout_secs"], 20.0);
}

#[test]
fn plan_k8s_gives_the_grace_period_the_budget_needs() {
    let out = ctl(&["plan", PIPELINE, "--k8s", "--pre-stop", "0", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 20 s global + 2.4 s after the deadline (the worst case `plan` prints), rounded up; no preStop.
    assert_eq!(v["kubernetes"]["termination_grace_period_seconds"], 23);
    let manifest = v["kubernetes"]["manifest"].as_str().unwrap();
    assert!(
        manifest.contains("terminationGracePeriodSeconds: 23\n"),
        "{manifest}"
    );
    assert!(
        !manifest.contains("lifecycle:"),
        "no hook asked: {manifest}"
    );
    let out = ctl(&["plan", PIPELINE, "--k8s", "--pre-stop", "5"]);
    assert!(text(&out.stdout).contains("terminationGracePeriodSeconds: 28\n"));
    assert!(text(&out.stdout).contains("command: [\"sleep\", \"5\"]"));
    // Without --k8s, --pre-stop means nothing: refused.
    assert_eq!(
        ctl(&["plan", PIPELINE, "--pre-stop", "5"]).status.code(),
        Some(2)
    );
}

#[test]
fn plan_and_validate_name_the_environment_variables_in_effect_but_not_their_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["validate", PIPELINE])
        .current_dir(root())
        .env("SHUTDOWN_STEPS__FLUSH__URL", "redis://:hunter2@cache:6379")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("from the environment: SHUTDOWN_STEPS__FLUSH__URL"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn plan_applies_environment_overrides() {
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["plan", PIPELINE, "--json"])
        .current_dir(root())
        .env("SHUTDOWN_TIMEOUT_SECS", "9")
        .env("SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS", "3.5")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timeout_secs"], 9.0);
    assert_eq!(v["steps"][1]["name"], "cancel");
    assert_eq!(v["steps"][1]["timeout_secs"], 3.5);
    assert_eq!(
        v["env_overrides"],
        serde_json::json!([
            "SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS",
            "SHUTDOWN_TIMEOUT_SECS"
        ])
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("more than the global 9s"))
    );
}

#[test]
fn plan_warns_when_a_safety_step_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("no-close.toml");
    std::fs::write(
        &config,
        "[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"close\"\nenabled = false\n",
    )
    .unwrap();
    let out = ctl(&[
        "plan",
        config.to_str().unwrap(),
        "--json",
        "--deny-warnings",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("step 2 (close) is disabled") && warnings.contains("dead-man's switch"),
        "{warnings}"
    );
}
