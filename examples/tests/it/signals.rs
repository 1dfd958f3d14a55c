//! Signals and kills: what the node does on SIGTERM, SIGINT twice and SIGKILL at any stage, and what
//! the next start makes of it.

use super::*;

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
