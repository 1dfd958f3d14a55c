//! The start gate: reconcile with the venue before quoting, and stay halted when told to.

use super::*;

#[test]
fn a_node_reconciles_with_the_venue_before_it_quotes_and_quotes_only_once_the_gate_opens() {
    let dir = tempfile::tempdir().unwrap();
    // First start: no previous run, the venue's book is the node's own; the gate opens.
    let mut first = start(dir.path(), &shipped_config(), None, None);
    let out = first.proc.stdout();
    assert!(
        out.contains("start gate: no previous run")
            && out.contains("start gate: start gate clean (exit 0)"),
        "{out}"
    );
    first.proc.signal(Signal::SIGTERM);
    assert_eq!(first.proc.wait_exit(Duration::from_secs(20)).0, Some(0));
    // Second start: the venue is as the shutdown left it, nothing happened meanwhile: the gate
    // opens before anything quotes.
    let mut second = start(dir.path(), &shipped_config(), None, None);
    let out = second.proc.stdout();
    assert!(
        out.contains("then 0 change(s) while the node was down"),
        "{out}"
    );
    let gate = out.find("start gate: start gate clean").expect(&out);
    let ready = out.find("\nready").expect(&out);
    assert!(gate < ready, "{out}");
    second.proc.signal(Signal::SIGTERM);
    assert_eq!(second.proc.wait_exit(Duration::from_secs(20)).0, Some(0));
    // Third start, after a downtime in which a dead-man's switch wiped the stops and someone
    // placed an order by hand: the stops are placed again, and the stranger keeps the gate halted.
    let mut cmd = command(dir.path(), None, None);
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    cmd = Command::new(cmd.get_program());
    cmd.arg(&args[0])
        .arg(root().join("examples/scenarios/downtime.toml"))
        .current_dir(dir.path())
        .env_remove("REDIS_URL");
    let mut third = Proc::spawn(cmd);
    third.wait_line("halted: not quoting");
    let out = third.stdout();
    assert!(
        out.lines()
            .any(|l| l.starts_with("start gate: stop_gone btc-stop")
                && l.contains("placed stop start-stop-btc-long")),
        "{out}"
    );
    assert!(out.contains("start gate: unknown_order manual-1"), "{out}");
    assert!(!out.contains("\nready"), "{out}");
    third.signal(Signal::SIGTERM);
    third.wait_exit(Duration::from_secs(20));
}

#[test]
fn a_start_gate_left_halted_quotes_nothing_and_still_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A start gate that holds on any unknown order, with no snapshot to go by (the evidence is a
    // run marker with no snapshot): every working order at the venue is unknown.
    std::fs::create_dir_all(dir.path().join("shutdown-fallback")).unwrap();
    std::fs::write(
        dir.path().join("shutdown-fallback/trader-001-running.json"),
        r#"{"pid": 1, "started_at": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("node.toml"), shipped_config()).unwrap();
    let mut node = Proc::spawn(command(dir.path(), None, None));
    node.wait_line("halted: not quoting");
    let out = node.stdout();
    assert!(
        out.contains("restore: previous shutdown was NOT clean"),
        "{out}"
    );
    assert!(!out.contains("\nready"), "{out}");
    node.signal(Signal::SIGTERM);
    let (code, _) = node.wait_exit(Duration::from_secs(20));
    // The shutdown still runs (halt, cancel, verify, flush, close) and reports.
    assert!(matches!(code, Some(0 | 10)), "{code:?}");
    assert!(dir.path().join("shutdown-report.json").exists());
}
