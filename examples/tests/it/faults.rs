//! A service or a file that fails during the shutdown (Redis, the Pushgateway, the OTLP collector,
//! the report path) costs a sink error or a fallback, never the report.

use super::*;

#[test]
fn redis_unavailable_means_a_fallback_file_and_exit_10() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &shipped_config(), Some(&redis.url), None);
    // Redis goes away while the node runs.
    redis.kill();
    node.proc.signal(Signal::SIGTERM);
    let (code, _) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(10));
    let report = node.report();
    let flush = step_of_kind(&report, "flush");
    let file = flush["details"]["fallback_file"].as_str().unwrap();
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(file)).unwrap()).unwrap();
    assert!(snapshot["snapshot"]["orders"].as_array().unwrap().len() > 6);
    let sink_errors = report["sink_errors"].as_array().unwrap();
    assert!(
        sink_errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("the report is in")),
        "{sink_errors:?}"
    );
}

#[test]
fn a_shutdown_forced_at_its_deadline_still_exports_its_spans_over_otlp() {
    let receiver = shutdown_testkit::otlp::OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    // A critical notify that takes 30 s in a 4 s budget: the deadline forces the exit.
    let config = shipped_config().replace("timeout_secs = 15.0", "timeout_secs = 4.0").replace(
        "message = \"trader-001 is stopping\"\ntimeout_secs = 2.0",
        "message = \"trader-001 is stopping\"\ntimeout_secs = 10.0\ndelay_secs = 30\ncritical = true",
    );
    std::fs::write(dir.path().join("node.toml"), &config).unwrap();
    let mut cmd = command(dir.path(), None, None);
    cmd.env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.url);
    let mut proc = Proc::spawn(cmd);
    proc.wait_line("ready");
    proc.signal(Signal::SIGTERM);
    let (code, _) = proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(12), "{}", proc.stderr());
    let report = report_in(dir.path());
    assert_eq!(report["outcome"], "forced");
    assert!(
        report["sink_errors"].as_array().is_none_or(Vec::is_empty),
        "the trace sink had its moment: {}",
        report["sink_errors"]
    );
    // Everything the exporter sent before the process exited.
    let sent: Vec<u8> = receiver.bodies.try_iter().flatten().collect();
    let sent = String::from_utf8_lossy(&sent);
    for name in [
        "shutdown",
        "step halt",
        "step cancel",
        "step verify",
        "step notify",
        "step flush",
        "step close",
    ] {
        assert!(sent.contains(name), "{name} exported: {sent:?}");
    }
    assert!(sent.contains("forced"), "the shutdown's status: {sent:?}");
    assert!(
        sent.contains("count.orders_cancelled"),
        "the counts: {sent:?}"
    );
}

/// A TCP server that accepts connections and never answers: a stalled Pushgateway.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        // Hold the connections until the test process ends.
        std::thread::park();
    });
    (port, thread)
}

#[test]
fn a_pushgateway_that_never_answers_costs_a_sink_error_not_the_report() {
    let (port, _hole) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    // The push may take 30 s; the pipeline has 5 s in all.
    let config = shipped_config()
        .replace("timeout_secs = 15.0", "timeout_secs = 5.0")
        .replace("push_timeout_secs = 1.0", "push_timeout_secs = 30.0");
    let url = format!("http://ops:s3cret@127.0.0.1:{port}");
    let mut node = start(dir.path(), &config, None, Some(&url));
    node.proc.signal(Signal::SIGTERM);
    let (code, waited) = node.proc.wait_exit(Duration::from_secs(20));
    let report = node.report();
    assert_eq!(code, Some(report["exit_code"].as_i64().unwrap() as i32));
    assert_ne!(
        code,
        Some(12),
        "a sink is not a reason to force: {report:#}"
    );
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    let errors = report["sink_errors"].to_string();
    assert!(errors.contains("metrics: no answer within"), "{errors}");
    let everything = format!(
        "{}{}{}",
        node.proc.stderr(),
        node.proc.stdout(),
        std::fs::read_to_string(dir.path().join("shutdown-report.json")).unwrap()
    );
    assert!(!everything.contains("s3cret"), "the password shows");
}

#[test]
fn a_stalled_redis_costs_a_fallback_and_a_sink_error_not_the_report() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The flush waits its 3 s for the paused Redis; the report sink gets what is left of 4 s.
    let config = shipped_config().replace("timeout_secs = 15.0", "timeout_secs = 4.0");
    let node = start(dir.path(), &config, Some(&redis.url), None);
    assert_eq!(
        redis_cli(&redis, &["CLIENT", "PAUSE", "30000", "ALL"]),
        "OK"
    );
    node.proc.signal(Signal::SIGTERM);
    let (code, waited) = node.proc.wait_exit(Duration::from_secs(20));
    let report = node.report();
    assert_eq!(code, Some(10), "{report:#}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    let errors = report["sink_errors"].to_string();
    assert!(errors.contains("redis"), "{errors}");
    let flush = step_of_kind(&report, "flush");
    assert!(flush["details"]["fallback_file"].is_string(), "{flush:#}");
}

#[test]
fn an_unwritable_report_path_keeps_the_report_on_stderr_and_in_a_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config().replace(
        "report_path = \"shutdown-report.json\"",
        "report_path = \"/nonexistent-dir/shutdown-report.json\"\nlog_level = \"warn\"",
    );
    std::fs::write(dir.path().join("node.toml"), config).unwrap();
    let mut cmd = command(dir.path(), None, None);
    cmd.env("TMPDIR", dir.path());
    let mut proc = Proc::spawn(cmd);
    proc.wait_line("ready");
    proc.signal(Signal::SIGTERM);
    let (code, _) = proc.wait_exit(Duration::from_secs(20));
    let stderr = proc.stderr();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("shutdown report: {"))
        .unwrap_or_else(|| panic!("no report on stderr:\n{stderr}"));
    let on_stderr: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("shutdown report: ")).unwrap();
    assert_eq!(Some(on_stderr["exit_code"].as_i64().unwrap() as i32), code);
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("shutdown-report-trader-001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["steps"], on_stderr["steps"]);
    assert!(
        kept["sink_errors"][0]
            .as_str()
            .unwrap()
            .contains("/nonexistent-dir")
    );
}

#[test]
fn a_password_in_the_redis_url_never_shows_when_redis_is_gone() {
    let mut redis = RedisServer::start_tcp(&["--requirepass", "s3cret-pw"]);
    let port = redis.port.unwrap();
    let url = format!("redis://:s3cret-pw@127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), &shipped_config(), Some(&url), None);
    // Redis goes away before the shutdown: the flush and the report sink both fail, and say so.
    redis.kill();
    node.proc.signal(Signal::SIGTERM);
    let (code, _) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(10));
    let report = std::fs::read_to_string(dir.path().join("shutdown-report.json")).unwrap();
    assert!(report.contains("redis://:***@127.0.0.1"), "{report}");
    let mut everything = format!("{}{}{report}", node.proc.stderr(), node.proc.stdout());
    for entry in walk(dir.path()) {
        everything += &std::fs::read_to_string(entry).unwrap_or_default();
    }
    assert!(!everything.contains("s3cret-pw"), "the password shows");
}

#[test]
fn a_wrong_redis_password_is_said_once_and_the_node_exits_78_naming_redis_url() {
    let redis = RedisServer::start_tcp(&["--requirepass", "s3cret-pw"]);
    let port = redis.port.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.toml"), shipped_config()).unwrap();
    let url = format!("redis://:wrong-pw@127.0.0.1:{port}/");
    let proc = Proc::spawn(command(dir.path(), Some(&url), None));
    // The lease would wait 60 s for a node that holds it; a refused password is not that.
    let (code, waited) = proc.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(78), "{}", proc.stderr());
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let log = proc.stderr();
    assert!(log.contains("error: lease: REDIS_URL: "), "{log}");
    assert!(log.contains("redis://:***@127.0.0.1"), "{log}");
    assert!(!log.contains("wrong-pw"), "{log}");
    assert!(!log.contains("retrying"), "said once, not retried: {log}");
}
