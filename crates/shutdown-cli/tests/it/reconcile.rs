//! `reconcile`: the start gate dry-run against a downtime.

use super::*;

#[test]
fn reconcile_dry_runs_the_start_gate_names_every_change_and_keeps_the_gate_halted_on_a_stranger() {
    let args = [
        "reconcile",
        "examples/configs/start.toml",
        "--scenario",
        "examples/scenarios/downtime.toml",
    ];
    let out = ctl(&args);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("start gate degraded (exit 10)"), "{s}");
    assert!(s.contains("! unknown_order manual-1 (ETH-PERP)"), "{s}");
    assert!(
        s.contains("gate: halted; the downtime made 4 changes"),
        "{s}"
    );
    assert!(s.contains("audit: report matches the venue"), "{s}");
    let mut json = args.to_vec();
    json.push("--json");
    let out = ctl(&json);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["gate_open"].as_bool(), v["audit"]["ok"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(v["reason"], "start");
    assert_eq!(v["downtime_changes"].as_array().unwrap().len(), 4);
    // The same inputs, the same report.
    let again: serde_json::Value = serde_json::from_slice(&ctl(&json).stdout).unwrap();
    assert_eq!(without_timings(v), without_timings(again));
    // With strangers only reported, the gate opens.
    let config = shipped("examples/configs/start.toml").replace(
        "on_unknown_order = \"halt\"",
        "on_unknown_order = \"report\"",
    );
    let scenario = shipped("examples/scenarios/downtime.toml");
    let dir = tempfile::tempdir().unwrap();
    let (c, sc) = (dir.path().join("start.toml"), dir.path().join("s.toml"));
    std::fs::write(&c, config).unwrap();
    std::fs::write(&sc, scenario).unwrap();
    let out = ctl(&[
        "reconcile",
        c.to_str().unwrap(),
        "--scenario",
        sc.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("gate: open"));
}

#[test]
fn a_downtime_that_names_an_order_the_scenario_lacks_is_refused() {
    let out = dry_run_texts(&shipped(PIPELINE), "[downtime]\nfilled = [\"nope\"]\n", &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("downtime.filled: no order \"nope\" in the scenario"),
        "{}",
        text(&out.stderr)
    );
}
