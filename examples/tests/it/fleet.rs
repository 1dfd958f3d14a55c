//! The fleet kill switch: halt, resume and shutdown sent through Redis to running nodes.

use super::*;

/// `action` for `scope` on the fleet of the Redis at `url`, by `ops`.
fn fleet(url: &str, action: Action, scope: Scope, note: &str) -> shutdown_redis::fleet::Issued {
    runtime()
        .block_on(shutdown_redis::fleet::issue(
            &shutdown_redis::RedisTarget::parse(url).unwrap(),
            action,
            scope,
            "ops",
            note,
            Duration::from_secs(2),
        ))
        .unwrap()
}

#[test]
fn a_fleet_halt_stops_the_trading_a_resume_restarts_it_through_the_start_gate_and_a_shutdown_stops_the_node()
 {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), &shipped_config(), Some(&redis.url), None);
    let issue = |action| {
        fleet(
            &redis.url,
            action,
            Scope::Trader("trader-001".into()),
            "test",
        )
    };
    issue(Action::Halt);
    node.proc.wait_line("fleet: halted:");
    issue(Action::Resume);
    node.proc.wait_line("fleet: running the start gate again");
    node.proc.wait_line("fleet: trading resumed");
    let issued = issue(Action::Shutdown);
    assert_eq!(issued.command.version, 3);
    let (code, _) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    assert_eq!(node.report()["reason"], "fleet");
}

#[test]
fn a_node_started_under_a_fleet_halt_never_opens_its_gate_and_a_fleet_shutdown_stops_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let issue = |action| fleet(&redis.url, action, Scope::All, "venue incident");
    issue(Action::Halt);
    std::fs::write(dir.path().join("node.toml"), shipped_config()).unwrap();
    let mut proc = Proc::spawn(command(dir.path(), Some(&redis.url), None));
    let halted = proc.wait_line("fleet: halted:");
    assert!(halted.contains("venue incident"), "{halted}");
    let resume = proc.wait_line("start gate: resume");
    assert!(resume.contains("fleet halt of every node"), "{resume}");
    proc.wait_line("halted: not quoting");
    // Cleared: the start gate runs again, opens the gate, and the node starts trading.
    issue(Action::Resume);
    proc.wait_line("fleet: running the start gate again");
    proc.wait_line("ready");
    proc.wait_line("fleet: trading resumed");

    let shutdown = issue(Action::Shutdown);
    let (code, _) = proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", proc.stderr());
    let report = report_in(dir.path());
    assert_eq!(report["reason"], "fleet");
    let target = shutdown_redis::RedisTarget::parse(&redis.url).unwrap();
    let acks = runtime()
        .block_on(shutdown_redis::fleet::acks(
            &target,
            &shutdown.command,
            Duration::from_secs(2),
        ))
        .unwrap();
    assert_eq!(acks.acked.len(), 1, "{acks:?}");
}
