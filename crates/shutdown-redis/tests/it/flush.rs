//! The flush step against a real Redis.

use std::time::Duration;

use redis::Commands;
use shutdown_core::StepOutcome;
use shutdown_paper::PaperNode;
use shutdown_redis::restore;
use shutdown_redis::restore::{PreviousShutdown, SnapshotSource};

use crate::support::{RedisServer, client, flush_config, restore_options, run, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_round_trips() {
    let server = RedisServer::start();
    let paper = PaperNode::new(&scenario(20_000, 2_000));
    let report = run(
        &flush_config(&server.url, &server.fallback_dir(), "verify_full = true"),
        &paper,
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    assert!(step.problems.is_empty(), "{:?}", step.problems);
    assert!(
        step.details["written_to"]
            .as_str()
            .unwrap()
            .starts_with("redis redis+unix://")
    );
    let restored = restore(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    // A snapshot alone is no final report: the verdict waits for one.
    assert_eq!(restored.previous_shutdown, PreviousShutdown::Unclean);
    assert_eq!(restored.source, Some(SnapshotSource::Redis));
    let snap = restored.snapshot.unwrap();
    let mut want = paper.all_orders();
    let mut got = snap.orders.clone();
    want.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    got.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(got.len(), 20_000 + 2_000);
    assert_eq!(got, want);
    assert_eq!(snap.positions.len(), 2_000);
    assert_eq!(snap.strategies[0].value()["inventory"], 3);
    assert_eq!(snap.receipt_json()["reason"], "api");
    let mut con = client(&server);
    let keys: Vec<String> = con.keys("*").unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("{trader-001}:")),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.contains(":staging:")),
        "staging keys are gone: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_entries_of_the_previous_snapshot_never_survive() {
    let server = RedisServer::start();
    let config = flush_config(&server.url, &server.fallback_dir(), "");
    run(&config, &PaperNode::new(&scenario(50, 5))).await;
    run(&config, &PaperNode::new(&scenario(10, 0))).await;
    let mut con = client(&server);
    let orders: usize = con.hlen("{trader-001}:orders").unwrap();
    let positions: bool = con.exists("{trader-001}:positions").unwrap();
    assert_eq!(orders, 10);
    assert!(!positions, "an empty collection leaves no key behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_reader_never_sees_a_mix_of_two_snapshots() {
    let server = RedisServer::start();
    let small = PaperNode::new(&scenario(300, 0));
    let big = PaperNode::new(&scenario(3000, 0));
    let config = flush_config(&server.url, &server.fallback_dir(), "chunk_size = 100");
    run(&config, &small).await;
    let url = server.url.clone();
    let reader = std::thread::spawn(move || {
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let (n, meta): (usize, String) = redis::pipe()
                .atomic()
                .cmd("HLEN")
                .arg("{trader-001}:orders")
                .cmd("GET")
                .arg("{trader-001}:snapshot")
                .query(&mut con)
                .unwrap();
            let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
            assert_eq!(
                meta["counts"][0].as_u64().unwrap() as usize,
                n,
                "orders and metadata from different snapshots"
            );
            seen.insert(n);
        }
        seen
    });
    for i in 0..6 {
        let paper = if i % 2 == 0 { &big } else { &small };
        let report = run(&config, paper).await;
        assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
    }
    let seen = reader.join().unwrap();
    assert!(seen.iter().all(|n| *n == 300 || *n == 3000), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_before_the_flush_means_a_complete_fallback_file() {
    let mut server = RedisServer::start();
    let url = server.url.clone();
    server.kill();
    let paper = PaperNode::new(&scenario(500, 20));
    let report = run(
        &flush_config(&url, &server.fallback_dir(), "retries = 2\nbackoff_ms = 10"),
        &paper,
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded);
    assert_eq!(report.exit_code, 10, "degraded: Redis did not take it");
    let file = step.details["fallback_file"].as_str().unwrap();
    assert!(step.problems[0].contains(file), "{:?}", step.problems);
    assert_eq!(step.attempts, 3);
    let restored = restore(&restore_options(&server, Some(url))).await.unwrap();
    assert_eq!(restored.source, Some(SnapshotSource::File));
    assert!(restored.redis_error.is_some());
    let snap = restored.snapshot.unwrap();
    assert_eq!(snap.orders.len(), 520);
    assert_eq!(snap.positions.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_in_the_middle_of_a_flush_loses_nothing() {
    let mut server = RedisServer::start();
    let paper = PaperNode::new(&scenario(200_000, 0));
    let config = flush_config(
        &server.url,
        &server.fallback_dir(),
        "chunk_size = 50\nretries = 1\nbackoff_ms = 10",
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.pid()).unwrap());
    // Kill the server once the staging keys start to fill.
    let url = server.url.clone();
    let killer = std::thread::spawn(move || {
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let keys: Vec<String> = con.keys("*staging*").unwrap_or_default();
            if !keys.is_empty() {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                return true;
            }
        }
        false
    });
    let report = run(&config, &paper).await;
    assert!(killer.join().unwrap(), "the flush was caught in the middle");
    server.kill();
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    let restored = restore(&restore_options(&server, None)).await.unwrap();
    assert_eq!(restored.source, Some(SnapshotSource::File));
    assert_eq!(restored.snapshot.unwrap().orders.len(), 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_past_the_budget_means_fallback_within_the_budget() {
    let server = RedisServer::start();
    let mut con = client(&server);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(30_000)
        .arg("ALL")
        .query::<()>(&mut con)
        .unwrap();
    let paper = PaperNode::new(&scenario(100, 5));
    let config = flush_config(&server.url, &server.fallback_dir(), "")
        .replace("timeout_secs = 10", "timeout_secs = 2");
    let start = std::time::Instant::now();
    let report = run(&config, &paper).await;
    let took = start.elapsed();
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    assert!(step.details["fallback_file"].is_string());
    assert!(
        took < Duration::from_secs(2),
        "fallback written within the step's 2 s budget, took {took:?}"
    );
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut con)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_server_takes_the_right_password_and_never_shows_it() {
    let server = RedisServer::start_tcp(&["--requirepass", "s3cret-pw"]);
    let port = server.port.unwrap();
    let paper = PaperNode::new(&scenario(10, 1));
    let good = format!("redis://:s3cret-pw@127.0.0.1:{port}/");
    let report = run(&flush_config(&good, &server.fallback_dir(), ""), &paper).await;
    assert!(
        report.steps[0].details["written_to"]
            .as_str()
            .unwrap()
            .contains(":***@")
    );
    assert!(
        report.steps[0].problems.is_empty(),
        "{:?}",
        report.steps[0].problems
    );

    let bad = format!("redis://:wrong-pw@127.0.0.1:{port}/");
    let report = run(
        &flush_config(&bad, &server.fallback_dir(), "retries = 0"),
        &paper,
    )
    .await;
    let text = serde_json::to_string(&report).unwrap();
    assert!(
        !text.contains("wrong-pw") && !text.contains("s3cret-pw"),
        "{text}"
    );
    let error = report.steps[0].details["redis_error"].as_str().unwrap();
    assert!(error.contains("redis://:***@127.0.0.1"), "{error}");
    assert!(
        error.to_lowercase().contains("auth") || error.contains("WRONGPASS"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_is_not_retried_and_the_snapshot_goes_to_the_file_at_once() {
    let server = RedisServer::start_tcp(&["--requirepass", "s3cret-pw"]);
    let port = server.port.unwrap();
    let paper = PaperNode::new(&scenario(10, 1));
    let bad = format!("redis://:wrong-pw@127.0.0.1:{port}/");
    // Ten retries from 500 ms would take seconds; a wrong password is tried once.
    let started = std::time::Instant::now();
    let report = run(
        &flush_config(
            &bad,
            &server.fallback_dir(),
            "retries = 10
backoff_ms = 500",
        ),
        &paper,
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.attempts, 1, "{step:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let written_to = step.details["written_to"].as_str().unwrap();
    assert!(
        written_to.contains(&*server.fallback_dir().to_string_lossy()),
        "{written_to}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_redis_url_the_file_is_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[steps]]\nkind = \"flush\"\nurl_env = \"SHUTDOWN_TEST_NO_SUCH_VAR\"\nfallback_dir = \"{}\"\n",
        dir.path().display()
    );
    let report = run(&config, &PaperNode::new(&scenario(10, 2))).await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded);
    assert!(step.problems.is_empty(), "{:?}", step.problems);
    assert_eq!(report.exit_code, 0);
    let file = shutdown_redis::fallback::read(dir.path(), "trader-001")
        .unwrap()
        .unwrap();
    assert_eq!(file.snapshot.orders.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_tls_with_the_servers_ca_works_and_an_untrusted_one_falls_back() {
    let server = RedisServer::start_tls();
    let ca = server.dir.path().join("ca.crt");
    let paper = PaperNode::new(&scenario(20, 2));
    let trusted = flush_config(
        &server.url,
        &server.fallback_dir(),
        &format!("tls_ca_file = \"{}\"", ca.display()),
    );
    let report = run(&trusted, &paper).await;
    let step = &report.steps[0];
    assert!(step.problems.is_empty(), "{:?}", step.problems);
    assert!(
        step.details["written_to"]
            .as_str()
            .unwrap()
            .starts_with("redis rediss://127.0.0.1:")
    );

    // Without the CA, the system trust store does not know this server: nothing is lost all the same.
    let untrusted = flush_config(&server.url, &server.fallback_dir(), "retries = 0");
    let report = run(&untrusted, &paper).await;
    let step = &report.steps[0];
    assert!(step.details["fallback_file"].is_string(), "{step:?}");
    let error = step.details["redis_error"].as_str().unwrap();
    assert!(error.contains("rediss://127.0.0.1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_acknowledging_is_reported() {
    let server = RedisServer::start();
    let paper = PaperNode::new(&scenario(5, 1));
    let config = flush_config(
        &server.url,
        &server.fallback_dir(),
        "wait_replicas = 1\nwait_timeout_ms = 100",
    );
    let report = run(&config, &paper).await;
    let step = &report.steps[0];
    assert_eq!(
        step.details["replicas_acked"], 0,
        "a standalone server has no replica"
    );
    assert_eq!(
        step.problems,
        ["only 0 of 1 replicas acknowledged the snapshot"]
    );
    assert_eq!(report.exit_code, 10);
    assert!(
        step.details["written_to"]
            .as_str()
            .unwrap()
            .starts_with("redis "),
        "the snapshot is in Redis all the same"
    );
}

#[test]
fn the_documented_flush_options_are_its_fields_with_their_defaults() {
    let registry = shutdown_core::Registry::global().unwrap();
    let flush = registry.get("flush").unwrap();
    let docs = (flush.options)();
    let names: Vec<&str> = docs.iter().map(|o| o.name).collect();
    assert_eq!(
        names,
        (flush.fields)(),
        "every option documented is a field serde reads"
    );
    let default = |name: &str| {
        docs.iter()
            .find(|o| o.name == name)
            .unwrap()
            .default
            .clone()
    };
    assert_eq!(default("url_env"), "\"REDIS_URL\"");
    assert_eq!(default("response_timeout_ms"), "5000");
    assert_eq!(default("fallback_dir"), "\"shutdown-fallback\"");
}
