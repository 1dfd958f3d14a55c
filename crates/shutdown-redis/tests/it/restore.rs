//! Restore and the clean marker.

use std::time::Duration;

use shutdown_core::ReportSink;
use shutdown_paper::PaperNode;
use shutdown_redis::restore::PreviousShutdown;
use shutdown_redis::{restore, restore_and_mark_running};

use crate::support::{
    RedisServer, client, flush_config, restore_options, run, scenario, sink_and_report,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_before_its_flush_is_seen_as_unclean() {
    let server = RedisServer::start();
    let first = restore_and_mark_running(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    assert_eq!(first.previous_shutdown, PreviousShutdown::None);
    // A clean shutdown.
    run(
        &flush_config(&server.url, &server.fallback_dir(), ""),
        &PaperNode::new(&scenario(5, 1)),
    )
    .await;
    let second = restore_and_mark_running(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    assert_eq!(second.previous_shutdown, PreviousShutdown::Clean);
    assert!(
        second
            .summary()
            .starts_with("previous shutdown was clean; snapshot of")
    );
    // This run dies without a flush (SIGKILL): the marker stays at "running".
    let third = restore(&restore_options(&server, Some(server.url.clone())))
        .await
        .unwrap();
    assert_eq!(third.previous_shutdown, PreviousShutdown::Unclean);
    assert!(third.summary().contains("NOT clean"));
    assert_eq!(
        third.snapshot.unwrap().orders.len(),
        6,
        "the last snapshot is still there to reconcile from"
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
