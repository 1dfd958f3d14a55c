//! Real signals to a real process: graceful, hurried and forced shutdowns.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{TestNode, outcomes, pairs};

const PIPELINE: &str = r#"
timeout_secs = 20

[[steps]]
kind = "sleep"
name = "halt"
secs = 0.05

[[steps]]
kind = "sleep"
name = "slow"
secs = 60
timeout_secs = 15

[[steps]]
kind = "sleep"
name = "cancel"
secs = 0.05
critical = true

[[steps]]
kind = "sleep"
name = "notify"
secs = 0.05

[[steps]]
kind = "sleep"
name = "flush"
secs = 0.05
critical = true
"#;

#[test]
fn one_sigterm_runs_the_whole_pipeline_and_exits_0_with_a_complete_report() {
    let node = TestNode::start(
        "timeout_secs = 10\n[[steps]]\nkind = \"sleep\"\nname = \"a\"\nsecs = 0.1\n[[steps]]\nkind = \"sleep\"\nname = \"b\"\nsecs = 0.1\ncritical = true\n",
    );
    node.signal(Signal::SIGTERM);
    let (code, _) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0);
    let report = node.report();
    assert_eq!(report["reason"], "SIGTERM");
    assert_eq!(report["outcome"], "clean");
    assert_eq!(report["exit_code"], 0);
    assert!(
        report["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(report["duration"].as_f64().is_some_and(|d| d >= 0.2));
    assert_eq!(
        outcomes(&report),
        pairs(&[("a", "succeeded"), ("b", "succeeded")])
    );
    assert_eq!(report["steps"][0]["details"]["slept_secs"], 0.1);
}

#[test]
fn a_second_signal_skips_the_slow_non_critical_step_and_still_runs_the_critical_ones() {
    let mut node = TestNode::start(PIPELINE);
    node.signal(Signal::SIGTERM);
    node.wait_line("step-started slow");
    node.signal(Signal::SIGINT);
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 10, "skipping steps degrades the shutdown");
    assert!(waited < Duration::from_secs(10));
    let report = node.report();
    assert_eq!(report["reason"], "SIGTERM");
    assert_eq!(
        outcomes(&report),
        pairs(&[
            ("halt", "succeeded"),
            ("slow", "skipped"),
            ("cancel", "succeeded"),
            ("notify", "skipped"),
            ("flush", "succeeded"),
        ])
    );
}

#[test]
fn a_third_signal_forces_exit_12_while_a_step_blocks_its_thread() {
    let mut node = TestNode::start(
        "timeout_secs = 60\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\ntimeout_secs = 50\ncritical = true\n[[steps]]\nkind = \"sleep\"\nname = \"flush\"\ncritical = true\n",
    );
    node.force_during("stuck");
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 12);
    assert!(waited < Duration::from_secs(10));
    let report = node.report();
    assert_eq!(report["outcome"], "forced");
    assert_eq!(report["forced_by"], "SIGTERM");
    // The log, on a pipe, still has its last words: the forced report, and a last line that says
    // how it ended.
    let log = node.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("shutdown report") && l.contains("\"outcome\":\"forced\"")),
        "{log}"
    );
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.contains("exit_code=12") || last.contains("\"exit_code\":12"),
        "the log's last line: {last}\nwhole log:\n{log}"
    );
    assert_eq!(
        outcomes(&report),
        pairs(&[("stuck", "timed_out"), ("flush", "not_run")])
    );
}

#[test]
fn a_forced_exit_runs_the_exit_flushes_and_a_stalled_one_costs_one_second_not_the_exit() {
    let mut node = TestNode::start_with_env(
        "timeout_secs = 60\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\ntimeout_secs = 50\ncritical = true\n",
        &[
            ("TESTNODE_EXIT_FLUSH", "{dir}/flushed"),
            ("TESTNODE_EXIT_STALL", "1"),
        ],
    );
    node.force_during("stuck");
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 12);
    assert!(waited < Duration::from_secs(10));
    let flushed = std::fs::read_to_string(node.dir().join("flushed"));
    assert_eq!(
        flushed.as_deref().ok(),
        Some("flushed"),
        "the exporter's flush ran before the exit"
    );
    let log = node.stderr();
    assert!(
        log.contains("exit flush not finished within 1s: stalled-exporter (left behind)"),
        "{log}"
    );
}

#[test]
fn the_global_deadline_forces_exit_12_while_a_step_blocks_its_thread() {
    let node = TestNode::start(
        "timeout_secs = 1\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\n[[steps]]\nkind = \"sleep\"\nname = \"flush\"\n",
    );
    node.signal(Signal::SIGINT);
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 12);
    assert!(waited < Duration::from_secs(10));
    let report = node.report();
    assert_eq!(report["reason"], "SIGINT");
    assert_eq!(report["forced_by"], "deadline");
    assert_eq!(
        outcomes(&report),
        pairs(&[("stuck", "timed_out"), ("flush", "not_run")])
    );
}

#[test]
fn a_step_blocking_its_thread_past_its_timeout_is_abandoned_and_the_rest_still_runs() {
    let node = TestNode::start(
        "timeout_secs = 30\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\ntimeout_secs = 0.5\n[[steps]]\nkind = \"sleep\"\nname = \"flush\"\nsecs = 0.05\ncritical = true\n",
    );
    node.signal(Signal::SIGTERM);
    let (code, waited) = node.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 10, "a step that timed out degrades the shutdown");
    assert!(waited < Duration::from_secs(20));
    let report = node.report();
    assert_eq!(report["forced_by"], serde_json::Value::Null);
    assert_eq!(
        outcomes(&report),
        pairs(&[("stuck", "timed_out"), ("flush", "succeeded")])
    );
    let error = report["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("held its thread (a blocking call or a long computation)"),
        "{error}"
    );
}

#[test]
fn more_steps_blocking_their_threads_than_the_node_has_workers_are_each_given_up_on() {
    // testnode runs a runtime of 2 workers; three steps in a row block their thread for 2 minutes.
    let block = |name: &str| {
        format!("[[steps]]\nkind = \"block\"\nname = \"{name}\"\nsecs = 120\ntimeout_secs = 0.5\n")
    };
    let node = TestNode::start(&format!(
        "timeout_secs = 20\n{}{}{}[[steps]]\nkind = \"sleep\"\nname = \"flush\"\nsecs = 0.05\n",
        block("b1"),
        block("b2"),
        block("b3")
    ));
    node.signal(Signal::SIGTERM);
    let (code, waited) = node.wait_exit(Duration::from_secs(30));
    assert_eq!(
        code, 10,
        "each blocked step times out; the pipeline is degraded, not forced"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let report = node.report();
    assert_eq!(
        outcomes(&report),
        pairs(&[
            ("b1", "timed_out"),
            ("b2", "timed_out"),
            ("b3", "timed_out"),
            ("flush", "succeeded")
        ])
    );
}

#[test]
fn a_sink_that_never_answers_past_the_global_deadline_leaves_a_clean_shutdown_at_exit_0() {
    // The step ends just before the deadline; the stalled sink then runs past it, while the
    // force-exit thread wakes at the deadline. One rule: a sink failure never changes the outcome.
    let node = TestNode::start_with_env(
        "timeout_secs = 1.5\n[[steps]]\nkind = \"sleep\"\nname = \"work\"\nsecs = 1.3\n",
        &[("TESTNODE_SINK_STALL", "1")],
    );
    node.signal(Signal::SIGTERM);
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", node.report());
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let report = node.report();
    assert_eq!(report["outcome"], "clean");
    assert_eq!(report["forced_by"], serde_json::Value::Null);
    let errors = report["sink_errors"].to_string();
    assert!(errors.contains("stalled: no answer within 1s"), "{errors}");
}

#[test]
fn a_host_whose_work_after_the_pipeline_hangs_is_exited_at_the_global_deadline_with_the_reports_code()
 {
    let mut node = TestNode::start_with_env(
        "timeout_secs = 2\n[[steps]]\nkind = \"sleep\"\nname = \"work\"\nsecs = 0.1\n",
        &[("TESTNODE_HOST_HANGS", "1")],
    );
    node.signal(Signal::SIGTERM);
    node.wait_line("returned 0");
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "the report's code, not the forced one");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(node.report()["outcome"], "clean");
}

#[test]
fn exiting_on_force_only_still_exits_12_at_the_third_signal_while_a_step_blocks() {
    let mut node = TestNode::start_with_env(
        "timeout_secs = 60\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\ntimeout_secs = 50\ncritical = true\n",
        &[("TESTNODE_HOST_HANGS", "1")],
    );
    node.force_during("stuck");
    let (code, waited) = node.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 12);
    assert!(waited < Duration::from_secs(10));
    assert_eq!(node.report()["forced_by"], "SIGTERM");
}
