//! End to end: the example trading node with a real redis-server and a real Pushgateway, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use shutdown_redis::fleet::{Action, Scope};
use shutdown_testkit::process::Proc;
use shutdown_testkit::pushgateway::{Pushgateway, promtool_check_metrics};
use shutdown_testkit::redis_server::RedisServer;

mod outside;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A node in its own working directory (report, fallback files), with `config` as its pipeline.
struct Node {
    proc: Proc,
    dir: PathBuf,
}

/// The node's command in `dir`, with the config already written there.
fn command(dir: &Path, redis: Option<&str>, pushgateway: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trading_node"));
    cmd.arg(dir.join("node.toml"))
        .arg(root().join("examples/scenarios/basic.toml"))
        .current_dir(dir);
    cmd.env_remove("REDIS_URL")
        .env_remove("SHUTDOWN_METRICS__PUSHGATEWAY_URL")
        // A node killed holding its lease lets it go in 1.5 s, well inside a test's waits.
        .env("TRADING_NODE_LEASE_TTL_MS", "1500");
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url);
    }
    if let Some(url) = pushgateway {
        cmd.env("SHUTDOWN_METRICS__PUSHGATEWAY_URL", url);
    }
    cmd
}

/// The line a node started again in `dir` prints about the previous shutdown.
fn restore_line(dir: &Path, redis: &str) -> String {
    Proc::spawn(command(dir, Some(redis), None)).wait_line("restore:")
}

fn start(dir: &Path, config: &str, redis: Option<&str>, pushgateway: Option<&str>) -> Node {
    std::fs::write(dir.join("node.toml"), config).unwrap();
    let cmd = command(dir, redis, pushgateway);
    let mut proc = Proc::spawn(cmd);
    proc.wait_line("ready");
    Node {
        proc,
        dir: dir.to_path_buf(),
    }
}

/// The entry of the first step of `kind` in a report.
fn step_of_kind<'a>(report: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    (report["steps"].as_array().unwrap().iter())
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {report:#}"))
}

impl Node {
    fn report(&self) -> serde_json::Value {
        report_in(&self.dir)
    }
}

fn shipped_config() -> String {
    std::fs::read_to_string(root().join("examples/configs/node.toml")).unwrap()
}

/// The shipped config with a notify step that takes 30 s: the shutdown is mid-pipeline while it runs.
fn slow_notify_config() -> String {
    shipped_config().replace(
        "message = \"trader-001 is stopping\"",
        "message = \"trader-001 is stopping\"\ndelay_secs = 30",
    )
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(server.dir.path().join("redis.sock"))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sigterm_gives_exit_0_a_snapshot_a_clean_receipt_and_metrics() {
    let redis = RedisServer::start();
    let pgw = Pushgateway::start();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(
        dir.path(),
        &shipped_config(),
        Some(&redis.url),
        Some(&pgw.url),
    );
    node.proc.signal(Signal::SIGTERM);
    node.proc
        .wait_line("notify: trader-001 is stopping (reason SIGTERM");
    let (code, _) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{:#}", node.report());

    let report = node.report();
    assert_eq!(report["outcome"], "clean");
    assert!(report["sink_errors"].is_null(), "{report:#}");
    let orders: usize = redis_cli(&redis, &["HLEN", "{trader-001}:orders"])
        .parse()
        .unwrap();
    assert!(
        orders > 6,
        "the strategy's orders are in the snapshot too: {orders}"
    );
    assert_eq!(
        redis_cli(&redis, &["GET", "{trader-001}:shutdown:clean"]),
        "true"
    );
    let last: serde_json::Value =
        serde_json::from_str(&redis_cli(&redis, &["GET", "{trader-001}:shutdown:last"])).unwrap();
    assert_eq!(last["outcome"], "clean");

    let group = pgw
        .group(&[("job", "shutdown"), ("trader_id", "trader-001")])
        .expect("the group of job shutdown and trader-001");
    assert_eq!(
        group["shutdown_total"]["metrics"][0]["labels"]["outcome"],
        "clean"
    );
    assert_eq!(
        group["shutdown_total"]["metrics"][0]["labels"]["reason"],
        "SIGTERM"
    );
    let cancelled: f64 = group["shutdown_orders_cancelled_total"]["metrics"][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cancelled > 0.0);
    let text = ureq::get(&format!("{}/metrics", pgw.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let ours: String = text
        .lines()
        .filter(|l| l.contains("shutdown_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, out) = promtool_check_metrics(&ours);
    assert!(ok, "{out}\n{ours}");

    // The next start restores it and calls the previous shutdown clean.
    let line = restore_line(dir.path(), &redis.url);
    assert!(
        line.starts_with("restore: previous shutdown was clean (the shutdown of")
            && line.contains("; snapshot of"),
        "{line}"
    );
}

#[test]
fn sigint_twice_skips_the_non_critical_steps_and_still_flushes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), &slow_notify_config(), Some(&redis.url), None);
    node.proc.signal(Signal::SIGINT);
    node.proc.wait_line("notify:");
    node.proc.signal(Signal::SIGINT);
    let (code, waited) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(10));
    assert!(waited < Duration::from_secs(10));
    let report = node.report();
    let outcome = |name: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome("notify"), "skipped");
    assert_eq!(outcome("flush"), "succeeded");
    assert_eq!(outcome("close"), "skipped");
    let close = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "close")
        .unwrap();
    assert!(
        close["problems"][0]
            .as_str()
            .unwrap()
            .contains("dead-man's switch"),
        "{close:#}"
    );
    assert_eq!(
        redis_cli(&redis, &["GET", "{trader-001}:shutdown:clean"]),
        "true"
    );
}

#[test]
fn sigkill_after_a_short_grace_period_is_seen_as_unclean_at_the_next_start() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The shape of `docker stop -t 1`: SIGTERM, then SIGKILL before the pipeline reaches flush.
    let mut node = start(dir.path(), &slow_notify_config(), Some(&redis.url), None);
    node.proc.signal(Signal::SIGTERM);
    node.proc.wait_line("notify:");
    node.proc.signal(Signal::SIGKILL);
    let (code, _) = node.proc.wait_exit(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(
        redis_cli(&redis, &["EXISTS", "{trader-001}:shutdown:running"]),
        "1",
        "the run marker is still set"
    );

    let line = restore_line(dir.path(), &redis.url);
    assert!(
        line.starts_with("restore: previous shutdown was NOT clean"),
        "{line}"
    );
}

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
fn the_embedded_example_runs_its_pipeline_and_exits_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_embedded"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("notify: embedded node stopping (reason api"),
        "{text}"
    );
    assert!(text.contains("shutdown clean (exit 0)"), "{text}");
    for step in ["halt", "cancel", "verify", "notify", "close"] {
        assert!(
            text.lines()
                .any(|l| l.contains(step) && l.contains("succeeded")),
            "{step}: {text}"
        );
    }
}

/// The report a node wrote in `dir`.
fn report_in(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("shutdown-report.json")).unwrap())
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

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

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The line a node started again in `dir` without Redis prints about the previous shutdown.
fn restore_line_without_redis(dir: &Path) -> String {
    Proc::spawn(command(dir, None, None)).wait_line("restore:")
}

#[test]
fn without_redis_a_sigkill_at_any_stage_is_seen_as_unclean_and_a_finished_shutdown_as_clean() {
    let dir = tempfile::tempdir().unwrap();
    // A run that finishes its shutdown.
    let node = start(dir.path(), &shipped_config(), None, None);
    node.proc.signal(Signal::SIGTERM);
    let (code, _) = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let line = restore_line_without_redis(dir.path());
    assert!(
        line.starts_with("restore: previous shutdown was clean"),
        "{line}"
    );

    // Killed before any shutdown.
    let node = start(dir.path(), &shipped_config(), None, None);
    node.proc.signal(Signal::SIGKILL);
    node.proc.wait_exit(Duration::from_secs(10));
    let line = restore_line_without_redis(dir.path());
    assert!(
        line.starts_with("restore: previous shutdown was NOT clean"),
        "{line}"
    );
    assert!(line.contains("still marked running"), "{line}");

    // Killed in the middle of the pipeline (its notify step takes 30 s).
    let mut node = start(dir.path(), &slow_notify_config(), None, None);
    node.proc.signal(Signal::SIGTERM);
    node.proc.wait_line("notify:");
    node.proc.signal(Signal::SIGKILL);
    node.proc.wait_exit(Duration::from_secs(10));
    let line = restore_line_without_redis(dir.path());
    assert!(
        line.starts_with("restore: previous shutdown was NOT clean"),
        "{line}"
    );
}

/// A node in `dir` with a short lease, not yet waited for.
fn spawn_leased(dir: &Path, redis: Option<&str>, ttl_ms: u64, wait_ms: u64) -> Proc {
    std::fs::write(dir.join("node.toml"), shipped_config()).unwrap();
    let mut cmd = command(dir, redis, None);
    cmd.env("TRADING_NODE_LEASE_TTL_MS", ttl_ms.to_string())
        .env("TRADING_NODE_LEASE_WAIT_MS", wait_ms.to_string());
    Proc::spawn(cmd)
}

#[test]
fn a_second_node_waits_for_the_first_to_finish_its_shutdown_then_takes_over() {
    let redis = RedisServer::start();
    // Two hosts: each node has its own directory; Redis is where they meet.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = spawn_leased(dir_a.path(), Some(&redis.url), 3000, 60_000);
    a.wait_line("ready");
    let holder = redis_cli(&redis, &["GET", "{trader-001}:lease"]);
    let mut b = spawn_leased(dir_b.path(), Some(&redis.url), 3000, 60_000);
    b.wait_line("lease: taking it");
    assert!(!b.stdout().contains("lease: held"), "{}", b.stdout());
    a.signal(Signal::SIGTERM);
    let (code, _) = a.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    // The first let go when its report was final: the second takes over, well before the lease
    // would have expired.
    b.wait_line("lease: held");
    b.wait_line("ready");
    let now = redis_cli(&redis, &["GET", "{trader-001}:lease"]);
    assert_ne!(now, holder);
    b.signal(Signal::SIGTERM);
    b.wait_exit(Duration::from_secs(20));
}

#[test]
fn a_node_killed_holding_the_lease_lets_it_go_when_it_expires() {
    let redis = RedisServer::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = spawn_leased(dir_a.path(), Some(&redis.url), 1500, 60_000);
    a.wait_line("ready");
    // A waiting node with too short a wait gives up, exit 75, naming the holder.
    let mut quick = spawn_leased(dir_b.path(), Some(&redis.url), 1500, 300);
    quick.wait_line("lease: taking it");
    let (code, _) = quick.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(75));
    assert!(
        quick
            .stderr()
            .contains("another node holds the lease of trader-001")
    );
    a.signal(Signal::SIGKILL);
    a.wait_exit(Duration::from_secs(10));
    let mut b = spawn_leased(dir_b.path(), Some(&redis.url), 1500, 60_000);
    b.wait_line("lease: held");
    // The first node left no snapshot: the second cannot tell its orders from anyone else's, so its
    // start gate keeps the trading gate halted.
    b.wait_line("halted: not quoting");
    assert!(
        b.stdout().contains("start gate: unknown_order btc-bid-1"),
        "{}",
        b.stdout()
    );
    b.signal(Signal::SIGTERM);
    b.wait_exit(Duration::from_secs(20));
}

#[test]
fn a_lease_survives_a_redis_restart_and_two_nodes_on_one_host_share_a_lock_file() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = spawn_leased(dir.path(), Some(&redis.url), 1500, 60_000);
    a.wait_line("ready");
    let holder = redis_cli(&redis, &["GET", "{trader-001}:lease"]);
    // Redis restarts empty: the holder takes its lease back at its next renewal.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis_cli(&redis, &["GET", "{trader-001}:lease"]) != holder {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was not taken back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!a.stdout().contains("lease lost"), "{}", a.stdout());
    // A second node on the same host waits on the lock file even before it reaches Redis.
    let b = spawn_leased(dir.path(), Some(&redis.url), 1500, 300);
    let (code, _) = b.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(75));
    assert!(b.stderr().contains("lock file"), "{}", b.stderr());
    a.signal(Signal::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(20)).0, Some(0));
}

#[test]
fn a_node_that_loses_its_lease_halts_trading_at_once_and_says_so() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = spawn_leased(dir.path(), Some(&redis.url), 1500, 60_000);
    a.wait_line("ready");
    // Another node's lease replaces this one's (as after a partition and an expiry).
    redis_cli(
        &redis,
        &[
            "SET",
            "{trader-001}:lease",
            "pid 1 elsewhere",
            "PX",
            "60000",
        ],
    );
    let line = a.wait_line("lease lost");
    assert!(
        line.contains("another node holds the lease") && line.ends_with("trading halted"),
        "{line}"
    );
    a.signal(Signal::SIGTERM);
    a.wait_exit(Duration::from_secs(20));
}

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

/// The shipped config with its notify step moved after the first `after` steps (0 to 5) and made
/// slow: a node that is sent SIGTERM is inside its shutdown, with exactly those steps done, while
/// notify waits.
fn notify_after(after: usize) -> String {
    let shipped = shipped_config();
    let mut blocks: Vec<String> = shipped.split("[[steps]]").map(str::to_owned).collect();
    let head = blocks.remove(0);
    blocks.retain(|b| !b.contains("kind = \"notify\""));
    let notify =
        "\nkind = \"notify\"\nmessage = \"stopping\"\ndelay_secs = 30\ntimeout_secs = 12.0\n\n";
    blocks.insert(after, notify.to_owned());
    format!("{head}[[steps]]{}", blocks.join("[[steps]]"))
}

#[test]
fn a_sigkill_after_any_number_of_finished_shutdown_steps_is_unclean_with_and_without_redis() {
    let redis = RedisServer::start();
    for url in [None, Some(redis.url.as_str())] {
        for after in 0..=5 {
            // Each run from nothing: a node killed with no snapshot rightly does not trade again
            // before an operator looks (see the start gate), so each gets a clean slate.
            let dir = tempfile::tempdir().unwrap();
            redis_cli(&redis, &["FLUSHALL"]);
            let config = notify_after(after);
            let mut node = start(dir.path(), &config, url, None);
            node.proc.signal(Signal::SIGTERM);
            node.proc.wait_line("notify:");
            node.proc.signal(Signal::SIGKILL);
            node.proc.wait_exit(Duration::from_secs(10));
            let line = match url {
                Some(url) => {
                    // As if the dead node's lease had expired.
                    redis_cli(&redis, &["DEL", "{trader-001}:lease"]);
                    restore_line(dir.path(), url)
                }
                None => restore_line_without_redis(dir.path()),
            };
            assert!(
                line.starts_with("restore: previous shutdown was NOT clean"),
                "killed after {after} steps (redis: {}): {line}\nconfig:\n{config}",
                url.is_some()
            );
        }
    }
}

#[test]
fn the_node_binary_offers_the_operator_commands_with_its_own_step_kinds() {
    let node = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trading_node"))
            .args(args)
            .current_dir(root())
            .env_remove("SHUTDOWN_TIMEOUT_SECS")
            .output()
            .unwrap()
    };
    // Its config uses `notify`, which `shutdownctl` does not link; the node binary does.
    let out = node(&["validate", "examples/configs/node.toml"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("notify"), "{said}");
    let out = node(&["steps", "--json"]);
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "notify")
    );
    let out = node(&["plan", "examples/configs/node.toml", "--grace-period", "30"]);
    assert_eq!(out.status.code(), Some(0));
    // A dry run of its own pipeline: its custom step says nothing on stdout, which is JSON alone.
    let out = node(&[
        "dry-run",
        "examples/configs/node.toml",
        "--scenario",
        "examples/scenarios/basic.toml",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notify = step_of_kind(&report, "notify");
    assert_eq!(notify["summary"], "would post \"trader-001 is stopping\"");
    // Anything else is the node itself, with its own usage.
    let out = node(&["only-one-argument"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: trading_node CONFIG SCENARIO"));
}

#[test]
fn under_systemd_the_node_says_ready_stopping_each_step_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The service manager: reads as it comes, until the node has exited.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listening = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut heard, mut buf) = (Vec::new(), [0u8; 512]);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            while let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            heard
        })
    };
    std::fs::write(dir.path().join("node.toml"), shipped_config()).unwrap();
    let mut cmd = command(dir.path(), None, None);
    cmd.env("NOTIFY_SOCKET", &path);
    let mut node = Proc::spawn(cmd);
    node.wait_line("ready");
    node.signal(Signal::SIGTERM);
    let (code, _) = node.wait_exit(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let heard = listening.join().unwrap();
    assert_eq!(code, Some(0), "{}", node.stderr());
    // Before READY=1, the start gate's progress, with no STOPPING.
    let ready = heard.iter().position(|m| m == "READY=1").expect("READY=1");
    assert_eq!(heard[0], "STATUS=start gate: 3 steps", "{heard:#?}");
    assert!(
        heard[..ready].iter().all(|m| !m.contains("STOPPING")),
        "{heard:#?}"
    );
    assert_eq!(heard[ready - 1], "STATUS=start gate clean (exit 0)");
    let after: Vec<&str> = heard[ready + 1..].iter().map(String::as_str).collect();
    assert_eq!(
        after,
        [
            "STOPPING=1\nSTATUS=shutting down (SIGTERM): 6 steps",
            "STATUS=step 1/6 halt: started",
            "STATUS=step 2/6 cancel: started",
            "STATUS=step 3/6 verify: started",
            "STATUS=step 4/6 notify: started",
            "STATUS=step 5/6 flush: started",
            "STATUS=step 6/6 close: started",
            "STATUS=shutdown clean (exit 0)",
        ],
        "everything heard: {heard:#?}"
    );
}

/// `trading_node plan examples/configs/node.toml ARGS...`
fn plan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trading_node"))
        .args(["plan", "examples/configs/node.toml"])
        .args(args)
        .current_dir(root())
        .env_remove("SHUTDOWN_TIMEOUT_SECS")
        .output()
        .unwrap()
}

#[test]
fn the_shipped_kubernetes_manifest_is_what_plan_generates_and_its_grace_period_fits() {
    let shipped =
        std::fs::read_to_string(root().join("examples/kubernetes/trading-node.yaml")).unwrap();
    let out = plan(&["--k8s"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        shipped,
        "examples/kubernetes/trading-node.yaml is out of date: regenerate it with \
         `trading_node plan examples/configs/node.toml --k8s > examples/kubernetes/trading-node.yaml`"
    );
    // What a YAML reader makes of it (python3-yaml, which scripts/test.sh installs).
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::fs::File::open(root().join("examples/kubernetes/trading-node.yaml")).unwrap())
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let pod = &manifest["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let container = &pod["containers"][0];
    assert_eq!(
        container["lifecycle"]["preStop"]["exec"]["command"],
        serde_json::json!(["sleep", "2"])
    );
    assert_eq!(manifest["spec"]["strategy"]["type"], "Recreate");
    // The budget it pins is the config's, and the grace period covers it and the preStop.
    let json = plan(&["--k8s", "--json"]);
    let budget: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        container["env"][0],
        serde_json::json!({"name": "SHUTDOWN_TIMEOUT_SECS", "value": budget["timeout_secs"].as_f64().unwrap().to_string()})
    );
    assert_eq!(
        budget["kubernetes"]["termination_grace_period_seconds"],
        grace
    );
    assert!(grace as f64 >= 2.0 + budget["timeout_secs"].as_f64().unwrap() + 2.0);
    let fits = plan(&[
        "--k8s",
        "--deny-warnings",
        "--grace-period",
        &grace.to_string(),
    ]);
    assert_eq!(
        fits.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fits.stderr)
    );
    let short = plan(&[
        "--k8s",
        "--deny-warnings",
        "--grace-period",
        &(grace - 1).to_string(),
    ]);
    assert_eq!(short.status.code(), Some(1));
    let warning = String::from_utf8_lossy(&short.stderr);
    assert!(
        warning.contains(&format!(
            "terminationGracePeriodSeconds {} is too short: the pod needs {grace}",
            grace - 1
        )),
        "{warning}"
    );
}

#[test]
fn the_shipped_systemd_unit_is_valid_and_its_stop_timeout_fits_the_pipeline() {
    let unit =
        std::fs::read_to_string(root().join("examples/systemd/trading-node.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("KillSignal=SIGTERM"));
    // The stop timeout covers the pipeline's budget with headroom, as `plan` judges it.
    let stop: u64 = (unit.lines())
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    let out = plan(&["--grace-period", &stop.to_string(), "--deny-warnings"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // systemd's own check, where systemd is installed; the unit points at the binary just built.
    let Ok(check) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit file's syntax is not checked here");
        return;
    };
    assert!(check.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("trading-node.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/trading_node",
            env!("CARGO_BIN_EXE_trading_node"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
