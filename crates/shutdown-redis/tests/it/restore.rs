//! Restore and the clean marker.

use std::time::Duration;

use std::sync::Arc;

use shutdown_core::EnvOverrides;
use shutdown_core::{PipelineConfig, ReportSink, Shutdown};
use shutdown_paper::PaperNode;
use shutdown_redis::restore::PreviousShutdown;
use shutdown_redis::{restore, restore_and_mark_running};

use crate::support::{
    RedisServer, client, flush_config, restore_options, scenario, sink_and_report,
};

/// A whole run as a node does it: restore and set the run marker, then a shutdown whose report goes
/// to Redis and clears the marker.
async fn a_run_with_its_shutdown(server: &RedisServer) -> shutdown_redis::Restored {
    let options = restore_options(server, Some(server.url.clone()));
    let (restored, marker) = restore_and_mark_running(&options).await.unwrap();
    let (sink, _) = sink_and_report(server, Duration::from_secs(2)).await;
    let node = PaperNode::new(&scenario(5, 1));
    let config = flush_config(&server.url, &server.fallback_dir(), "");
    let config = PipelineConfig::from_toml(&config, "test.toml", EnvOverrides::None).unwrap();
    let report = Shutdown::new(config.build(&node.node()).unwrap(), node.node())
        .with_sink(Arc::new(sink))
        .with_sink(Arc::new(marker))
        .run()
        .await;
    assert!(report.sink_errors.is_empty(), "{:?}", report.sink_errors);
    restored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_clean_only_once_its_shutdown_report_is_final() {
    let server = RedisServer::start();
    let first = a_run_with_its_shutdown(&server).await;
    assert_eq!(
        first.previous_shutdown,
        PreviousShutdown::None,
        "{}",
        first.why
    );
    let second = a_run_with_its_shutdown(&server).await;
    assert_eq!(
        second.previous_shutdown,
        PreviousShutdown::Clean,
        "{}",
        second.why
    );
    assert!(
        second
            .summary()
            .starts_with("previous shutdown was clean ("),
        "{}",
        second.summary()
    );
    // This run sets its marker and dies (SIGKILL) before any shutdown.
    let options = restore_options(&server, Some(server.url.clone()));
    let (_, _marker) = restore_and_mark_running(&options).await.unwrap();
    let third = restore(&options).await.unwrap();
    assert_eq!(third.previous_shutdown, PreviousShutdown::Unclean);
    assert!(
        third.why.contains("is still marked running"),
        "{}",
        third.why
    );
    assert_eq!(
        third.snapshot.unwrap().orders.len(),
        6,
        "the last snapshot is still there to reconcile from"
    );
    // Without Redis, the marker file on this host says the same.
    let mut local = options.clone();
    local.redis = None;
    let fourth = restore(&local).await.unwrap();
    assert_eq!(
        fourth.previous_shutdown,
        PreviousShutdown::Unclean,
        "{}",
        fourth.why
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_evidence_is_cannot_tell_naming_what_could_not_be_read() {
    let mut server = RedisServer::start();
    a_run_with_its_shutdown(&server).await;
    let mut con = client(&server);
    redis::cmd("SET")
        .arg("{trader-001}:shutdown:last")
        .arg("not json")
        .query::<()>(&mut con)
        .unwrap();
    let options = restore_options(&server, Some(server.url.clone()));
    let garbage = restore(&options).await.unwrap();
    assert_eq!(garbage.previous_shutdown, PreviousShutdown::Unknown);
    assert!(
        garbage.why.contains("{trader-001}:shutdown:last"),
        "{}",
        garbage.why
    );
    // Redis gone: a local file cannot prove the last run was on this host.
    server.kill();
    let gone = restore(&options).await.unwrap();
    assert_eq!(
        gone.previous_shutdown,
        PreviousShutdown::Unknown,
        "{}",
        gone.why
    );
    assert!(gone.why.contains("Redis cannot be read"), "{}", gone.why);
    // No Redis, and a fallback directory that is not there.
    let mut local = options.clone();
    local.redis = None;
    local.fallback_dir = server.dir.path().join("no-such-dir");
    let missing = restore(&local).await.unwrap();
    assert_eq!(missing.previous_shutdown, PreviousShutdown::Unknown);
    assert!(missing.why.contains("does not exist"), "{}", missing.why);
    // A marker file that is not one is named.
    std::fs::create_dir_all(server.fallback_dir()).unwrap();
    std::fs::write(server.fallback_dir().join("trader-001-running.json"), "{{{").unwrap();
    let mut local = options.clone();
    local.redis = None;
    let bad = restore(&local).await.unwrap();
    assert_eq!(bad.previous_shutdown, PreviousShutdown::Unknown);
    assert!(
        bad.why
            .contains("trader-001-running.json: not a run marker"),
        "{}",
        bad.why
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_sink_keeps_the_last_report_and_a_capped_history() {
    let server = RedisServer::start();
    let (sink, report) = sink_and_report(&server, Duration::from_secs(2)).await;
    for _ in 0..5 {
        sink.write(&report).unwrap();
    }
    let mut con = client(&server);
    let len: usize = redis::cmd("LLEN")
        .arg("{trader-001}:shutdown:history")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 3);
    let restored = restore(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    assert_eq!(restored.last_report.unwrap().steps, report.steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_sink_falls_back_to_a_file() {
    let mut server = RedisServer::start();
    let (sink, report) = sink_and_report(&server, Duration::from_millis(500)).await;
    server.kill();
    let err = sink.write(&report).unwrap_err().to_string();
    assert!(err.contains("the report is in"), "{err}");
    let mut opts = restore_options(&server, Some(server.url.clone()));
    opts.redis = None;
    let restored = restore(&opts).await.unwrap();
    assert_eq!(restored.last_report.unwrap().reason, report.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_position_stop_without_a_quantity_is_flushed_and_read_back() {
    let server = RedisServer::start();
    let text = "[[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n\
        [[positions]]\nid = \"p\"\ninstrument = \"BTC-PERP\"\nside = \"buy\"\nquantity = 4\nentry_price = 60000\n\
        [[orders]]\nclient_id = \"close-stop\"\ninstrument = \"BTC-PERP\"\nside = \"sell\"\norder_type = \"stop_market\"\nstatus = \"new\"\ntrigger_price = 58000\nclose_position = true\nconditional = true\n";
    let paper = PaperNode::new(&shutdown_paper::Scenario::from_toml(text, "test").unwrap());
    let config = flush_config(&server.url, &server.fallback_dir(), "");
    let report = crate::support::run(&config, &paper).await;
    assert_eq!(report.exit_code, 0, "{report:?}");
    let restored = restore(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    let snapshot = restored.snapshot.expect("a snapshot");
    let stop = (snapshot.orders.iter())
        .find(|o| o.client_id == "close-stop")
        .expect("the stop is in the snapshot");
    assert!(stop.close_position && stop.is_protective());
    assert_eq!(stop.quantity, rust_decimal::Decimal::ZERO);
}
