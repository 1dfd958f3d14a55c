//! A node under a simulated grace period: an orchestrator's SIGKILL at exactly the worst case `plan`
//! promises (the request, or the force, plus `timeout_secs` plus what the runner may spend after the
//! deadline), on every path: a clean end, the global deadline, a third signal, a report sink and an
//! exit flush that hang. The node exits before it, and its report file, its report in Redis and its
//! exit flush are there every time.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shutdown_core::AfterDeadline;
use shutdown_testkit::process::Ended;
use shutdown_testkit::redis_server::RedisServer;

use crate::support::{TestNode, read_json};

/// Start a node with `config` (its `timeout_secs` is `timeout`), its report going to a file, to
/// Redis and its exit flush to a file; `escalate` sends the signals and says when the last one
/// went (the worst case counts from a force, and from the request for the deadline); then an
/// orchestrator kills it at that instant plus `timeout` (none after a force) plus the worst case.
fn under_grace_period(
    config: &str,
    timeout: Option<Duration>,
    env: &[(&str, &str)],
    escalate: impl FnOnce(&mut TestNode) -> Instant,
) {
    let redis = RedisServer::start();
    let mut all_env = vec![
        ("TESTNODE_EXIT_FLUSH", "{dir}/flushed"),
        ("TESTNODE_REDIS_URL", redis.url.as_str()),
    ];
    all_env.extend_from_slice(env);
    let mut node = TestNode::start_with_env(config, &all_env);
    let from = escalate(&mut node);
    let worst = AfterDeadline::DEFAULT.worst_case();
    let kill_at = from + timeout.unwrap_or_default() + worst;
    let ended = node.kill_at(kill_at);
    let file = read_json(&node.report);
    assert!(
        matches!(ended, Ended::Exited(Some(_))),
        "still running {worst:?} after the deadline: {ended:?}"
    );
    assert_eq!(
        ended,
        Ended::Exited(file["exit_code"].as_i64().map(|c| c as i32))
    );
    let flushed = std::fs::read_to_string(node.dir().join("flushed"));
    assert_eq!(
        flushed.as_deref().ok(),
        Some("flushed"),
        "the exit flush ran"
    );
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let kept: Option<String> = redis::cmd("GET")
        .arg("{trader-001}:shutdown:last")
        .query(&mut con)
        .unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(&kept.expect("the report in Redis")).unwrap();
    assert_eq!(kept["started_at"], file["started_at"]);
    assert_eq!(kept["exit_code"], file["exit_code"]);
}

fn sigterm(node: &mut TestNode) -> Instant {
    let at = Instant::now();
    node.signal(Signal::SIGTERM);
    at
}

/// SIGTERM once the step is running, again (hurry), and a third time (force): when the third went.
fn third_sigterm(node: &mut TestNode) -> Instant {
    node.signal(Signal::SIGTERM);
    node.wait_line("step-started stuck");
    node.signal(Signal::SIGTERM);
    node.wait_line("level Hurry");
    sigterm(node)
}

/// A clean run: one short step well inside a 2 s budget.
const CLEAN: &str = "timeout_secs = 2\n[[steps]]\nkind = \"sleep\"\nname = \"work\"\nsecs = 0.2\n";
/// A step that blocks its thread past a 1 s global deadline.
const STUCK: &str = "timeout_secs = 1\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\n";
/// A critical step that blocks its thread, with a budget long enough that only a force ends it.
const STUCK_CRITICAL: &str = "timeout_secs = 60\n[[steps]]\nkind = \"block\"\nname = \"stuck\"\nsecs = 120\ntimeout_secs = 50\ncritical = true\n";

#[test]
fn a_clean_end_is_all_out_before_the_grace_period_ends() {
    under_grace_period(CLEAN, Some(Duration::from_secs(2)), &[], sigterm);
}

#[test]
fn the_global_deadline_is_all_out_before_the_grace_period_ends() {
    under_grace_period(STUCK, Some(Duration::from_secs(1)), &[], sigterm);
}

#[test]
fn a_third_signal_is_all_out_before_the_grace_period_ends() {
    under_grace_period(STUCK_CRITICAL, None, &[], third_sigterm);
}

#[test]
fn a_sink_and_an_exit_flush_that_hang_past_the_deadline_are_all_out_before_the_grace_period_ends() {
    // The worst case: the deadline, a sink that never answers and an exit flush that never ends.
    under_grace_period(
        STUCK,
        Some(Duration::from_secs(1)),
        &[("TESTNODE_SINK_STALL", "1"), ("TESTNODE_EXIT_STALL", "1")],
        sigterm,
    );
}

#[test]
fn a_sink_that_hangs_after_a_clean_run_is_all_out_before_the_grace_period_ends() {
    under_grace_period(
        CLEAN,
        Some(Duration::from_secs(2)),
        &[("TESTNODE_SINK_STALL", "1"), ("TESTNODE_EXIT_STALL", "1")],
        sigterm,
    );
}

#[test]
fn a_third_signal_with_a_sink_and_an_exit_flush_that_hang_is_all_out_before_the_grace_period_ends()
{
    // Forced long before the deadline: the sinks get their share after the force, not the rest
    // of the budget.
    under_grace_period(
        STUCK_CRITICAL,
        None,
        &[("TESTNODE_SINK_STALL", "1"), ("TESTNODE_EXIT_STALL", "1")],
        third_sigterm,
    );
}
