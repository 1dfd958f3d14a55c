//! Metrics against a real Pushgateway, checked with promtool.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use shutdown_core::MetricsConfig;
use shutdown_core::{Report, ReportSink};
use shutdown_metrics::{MetricsSink, encode};
use shutdown_testkit::pushgateway::{Pushgateway, promtool_check_metrics};

/// A degraded report: cancel counted 3 cancelled and 1 orphan, verify could not say how many
/// positions are unprotected (it timed out), another verify counted 2.
fn report() -> Report {
    serde_json::from_value(serde_json::json!({
        "trader_id": "trader-007", "reason": "SIGTERM", "forced_by": null,
        "started_at": "2026-01-01T00:00:00Z", "duration": 1.5, "outcome": "degraded",
        "exit_code": 10, "timeout_secs": 30.0,
        "steps": [
            {"name": "cancel", "kind": "cancel", "critical": true, "outcome": "succeeded",
             "duration": 0.25, "attempts": 1, "error": null,
             "details": {"cancelled": ["a", "b", "c"], "orphaned": [{"client_id": "x"}]},
             "counts": {"orders_cancelled": 3, "orders_orphaned": 1}},
            {"name": "verify", "kind": "verify", "critical": true, "outcome": "succeeded",
             "duration": 0.25, "attempts": 1, "error": null, "details": {},
             "counts": {"positions_unprotected": 2}},
            {"name": "verify-again", "kind": "verify", "critical": true, "outcome": "timed_out",
             "duration": 0.25, "attempts": 1, "error": "timed out after 0.25s", "details": {},
             "counts": {"positions_unprotected": null}}
        ]
    }))
    .unwrap()
}

#[test]
fn a_step_cut_short_publishes_what_it_counted_beside_the_unknown_flag() {
    let report: Report = serde_json::from_value(serde_json::json!({
        "trader_id": "trader-007", "reason": "SIGTERM", "forced_by": "deadline",
        "started_at": "2026-01-01T00:00:00Z", "duration": 30.0, "outcome": "forced",
        "exit_code": 12, "timeout_secs": 30.0,
        "steps": [
            {"name": "cancel", "kind": "cancel", "critical": true, "outcome": "timed_out",
             "duration": 8.0, "attempts": 1, "error": "timed out after 8s", "details": {},
             "counts": {"orders_cancelled": null, "orders_orphaned": null},
             "at_least": {"orders_cancelled": 3083, "orders_orphaned": 146918}}
        ]
    }))
    .unwrap();
    let text = encode(&report, &[]).unwrap();
    for line in [
        "shutdown_orders_cancelled_total 3083",
        "shutdown_orders_orphaned 146918",
        "shutdown_state_unknown{count=\"orders_orphaned\"} 1",
        "shutdown_state_unknown{count=\"orders_cancelled\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

fn config(pushgateway: Option<String>, textfile: Option<std::path::PathBuf>) -> MetricsConfig {
    let mut config = MetricsConfig::default();
    config.pushgateway_url = pushgateway;
    config.textfile_path = textfile;
    config.push_timeout = Duration::from_millis(500);
    config
}

#[test]
fn the_encoded_metrics_carry_the_contract_names_and_pass_promtool() {
    let text = encode(&report(), &[("trader_id", "trader-007")]).unwrap();
    for line in [
        "shutdown_total{outcome=\"degraded\",reason=\"SIGTERM\",trader_id=\"trader-007\"} 1",
        "shutdown_duration_seconds{trader_id=\"trader-007\"} 1.5",
        "shutdown_step_duration_seconds{outcome=\"succeeded\",step=\"cancel\",trader_id=\"trader-007\"} 0.25",
        "shutdown_orders_cancelled_total{trader_id=\"trader-007\"} 3",
        "shutdown_orders_orphaned{trader_id=\"trader-007\"} 1",
        "shutdown_positions_unprotected{trader_id=\"trader-007\"} 2",
        "shutdown_exit_code{trader_id=\"trader-007\"} 10",
        "shutdown_state_unknown{count=\"positions_unprotected\",trader_id=\"trader-007\"} 1",
        "shutdown_state_unknown{count=\"orders_orphaned\",trader_id=\"trader-007\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    let (ok, out) = promtool_check_metrics(&text);
    assert!(ok, "{out}\n{text}");
}

#[test]
fn the_pushgateway_holds_the_metrics_under_the_trader_group() {
    let pgw = Pushgateway::start();
    let sink = MetricsSink::new(&config(Some(pgw.url.clone()), None), "trader-007").unwrap();
    sink.write(&report()).unwrap();
    let group = pgw
        .group(&[("job", "shutdown"), ("trader_id", "trader-007")])
        .expect("the group of job shutdown and trader-007");
    assert_eq!(
        group["shutdown_orders_orphaned"]["metrics"][0]["value"],
        "1"
    );
    let text = ureq::get(&format!("{}/metrics", pgw.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(text.contains("shutdown_total{instance=\"\",job=\"shutdown\",outcome=\"degraded\",reason=\"SIGTERM\",trader_id=\"trader-007\"} 1"), "{text}");
    let ours: String = text
        .lines()
        .filter(|l| l.contains("shutdown_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, out) = promtool_check_metrics(&ours);
    assert!(ok, "{out}\n{ours}");
}

#[test]
fn a_dead_pushgateway_costs_at_most_the_push_timeout_and_is_named() {
    // A port nobody listens on refuses at once; an unroutable address would hang: both are bounded.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink =
        MetricsSink::new(&config(Some(format!("http://127.0.0.1:{port}")), None), "t").unwrap();
    let start = Instant::now();
    let err = sink.write(&report()).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        err.contains(&format!(
            "push to http://127.0.0.1:{port}/metrics/job/shutdown/trader_id/t failed"
        )),
        "{err}"
    );
}

#[test]
fn a_password_in_the_pushgateway_url_never_shows() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://ops:s3cret@127.0.0.1:{port}");
    let sink = MetricsSink::new(&config(Some(url), None), "t").unwrap();
    let err = sink.write(&report()).unwrap_err().to_string();
    assert!(err.contains("http://ops:***@127.0.0.1"), "{err}");
    assert!(
        !format!("{err} {} {sink:?}", sink.name()).contains("s3cret"),
        "{err}"
    );
}

#[test]
fn the_textfile_is_written_for_node_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shutdown.prom");
    let sink = MetricsSink::new(&config(None, Some(path.clone())), "trader-007").unwrap();
    sink.write(&report()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let total = text
        .lines()
        .find(|l| l.starts_with("shutdown_total{"))
        .unwrap();
    for label in [
        "job=\"shutdown\"",
        "trader_id=\"trader-007\"",
        "outcome=\"degraded\"",
        "reason=\"SIGTERM\"",
    ] {
        assert!(total.contains(label), "{total}");
    }
    assert!(total.ends_with("} 1"), "{total}");
    let (ok, out) = promtool_check_metrics(&text);
    assert!(ok, "{out}");
    assert!(MetricsSink::new(&config(None, None), "t").is_none());
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_their_unit_tests() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let check = std::process::Command::new("promtool")
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&docs)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 6 rules found"));
    let test = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&docs)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

#[test]
fn the_alert_rules_use_only_metrics_this_crate_emits() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alerts.yml"),
    )
    .unwrap();
    let emitted = encode(&report(), &[]).unwrap();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        for word in line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("shutdown_"))
        {
            assert!(
                emitted.contains(&format!("# TYPE {word} ")),
                "{word} is not emitted"
            );
        }
    }
}
