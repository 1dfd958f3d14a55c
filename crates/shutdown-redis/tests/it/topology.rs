//! Everything Redis on a real local Redis Cluster (three masters) and a real Sentinel deployment
//! (one master, one replica, three sentinels), including the master's death.

use std::sync::Arc;
use std::time::Duration;

use shutdown_core::EnvOverrides;
use shutdown_core::{PipelineConfig, Reason, Shutdown, StepOutcome};
use shutdown_paper::PaperNode;
use shutdown_redis::fleet::{self, Action, Scope};
use shutdown_redis::restore::{PreviousShutdown, SnapshotSource};
use shutdown_redis::{RedisMode, RedisReportSink, restore, restore_and_mark_running};
use shutdown_testkit::redis_topology::{RedisCluster, RedisSentinel, cli, wait_until};

use crate::fleet::{acked, issue, node};
use crate::support::{flush_config, scenario, target};

const T: Duration = Duration::from_secs(2);

/// A node's whole life against `url`: restore and mark running, a shutdown that flushes its book
/// and hands its report to the Redis sink and the run marker, then the next start's restore.
async fn round_trip(url: &str, fallback: &std::path::Path, orders: usize) {
    let t = target(url);
    let options = shutdown_redis::RestoreOptions {
        redis: Some(t.clone()),
        trader_id: "trader-001".into(),
        key_prefix: None,
        fallback_dir: fallback.to_path_buf(),
        timeout: T,
    };
    let (first, marker) = restore_and_mark_running(&options).await.unwrap();
    assert_eq!(first.previous_shutdown, PreviousShutdown::None, "{first:?}");

    let paper = PaperNode::new(&scenario(orders, 10));
    let node = paper.node();
    let config = PipelineConfig::from_toml(
        &flush_config(url, fallback, "verify_full = true"),
        "test.toml",
        EnvOverrides::None,
    )
    .unwrap();
    let sink = RedisReportSink::new(t.clone(), "trader-001", 3, T, fallback).unwrap();
    let report = Shutdown::new(config.build(&node).unwrap(), node)
        .with_sink(Arc::new(sink))
        .with_sink(Arc::new(marker))
        .run()
        .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    assert!(report.sink_errors.is_empty(), "{:?}", report.sink_errors);
    let written_to = step.details["written_to"].as_str().unwrap();
    assert!(written_to.starts_with("redis redis+"), "{written_to}");

    let next = restore(&options).await.unwrap();
    assert_eq!(
        next.previous_shutdown,
        PreviousShutdown::Clean,
        "{}",
        next.why
    );
    assert_eq!(next.source, Some(SnapshotSource::Redis));
    assert_eq!(next.snapshot.unwrap().orders.len(), orders + 10);
    assert_eq!(next.last_report.unwrap().trader_id, "trader-001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_restore_the_report_and_the_run_marker_work_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    assert_eq!(target(&cluster.url).mode(), RedisMode::Cluster);
    let dir = tempfile::tempdir().unwrap();
    round_trip(&cluster.url, dir.path(), 5_000).await;
    // One live node per trader id holds on a cluster too (two hosts: two lock-file directories).
    let lease = |dir: &std::path::Path| shutdown_redis::LeaseOptions {
        dir: dir.to_path_buf(),
        trader_id: "trader-001".into(),
        key_prefix: None,
        redis: Some(target(&cluster.url)),
        ttl: Duration::from_secs(10),
        wait: Duration::from_millis(300),
        timeout: T,
    };
    let other_host = tempfile::tempdir().unwrap();
    let _held = shutdown_redis::Lease::acquire(&lease(dir.path()))
        .await
        .unwrap();
    let second = shutdown_redis::Lease::acquire(&lease(other_host.path())).await;
    assert!(
        matches!(second, Err(shutdown_redis::LeaseError::Held { .. })),
        "{second:?}"
    );
    // Every key of the trader is on the master of its hash tag, none elsewhere.
    let home = cluster.port_of("{trader-001}");
    assert_eq!(cli(home, &["exists", "{trader-001}:snapshot"]).trim(), "1");
    for n in &cluster.nodes {
        let keys = cli(n.port.unwrap(), &["keys", "*"]);
        if n.port != Some(home) {
            assert!(!keys.contains("{trader-001}"), "{keys}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_halt_on_a_cluster_reaches_traders_whose_keys_live_on_every_master() {
    let cluster = RedisCluster::start(3);
    let t = target(&cluster.url);
    // One trader per master.
    let mut traders: Vec<(u16, String)> = Vec::new();
    for i in 0..1000 {
        let id = format!("trader-{i:03}");
        let port = cluster.port_of(&format!("{{{id}}}"));
        if !traders.iter().any(|(p, _)| *p == port) {
            traders.push((port, id));
        }
        if traders.len() == 3 {
            break;
        }
    }
    assert_eq!(traders.len(), 3);
    let mut nodes = Vec::new();
    for (_, id) in &traders {
        nodes.push(node(&t, id, id).await);
    }
    let issued = issue(&t, Action::Shutdown, Scope::All, "cluster drill").await;
    for n in &nodes {
        let reason = tokio::time::timeout(Duration::from_secs(10), n.handle.requested())
            .await
            .unwrap();
        assert_eq!(reason, Reason::Fleet);
        assert!(n.gate.is_halted().await.unwrap());
    }
    let acks = acked(&t, &issued).await;
    assert!(acks.missing.is_empty(), "{acks:?}");
    assert_eq!(acks.acked.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sentinel_a_fleet_halt_outlives_its_master_and_nodes_follow_the_new_one() {
    let mut deployment = RedisSentinel::start();
    let t = target(&deployment.url);
    assert_eq!(t.mode(), RedisMode::Sentinel);
    let a = node(&t, "trader-001", "a").await;

    let halt = issue(&t, Action::Halt, Scope::All, "before the failover").await;
    assert_eq!(
        halt.replicas, 1,
        "the replica has the halt before the operator returns"
    );
    // The master dies right after the halt.
    deployment.fail_over();

    // A node started now finds the halt on the new master.
    let b = node(&t, "trader-002", "b").await;
    assert!(
        b.switch
            .hold()
            .why()
            .unwrap()
            .contains("before the failover")
    );
    assert!(b.gate.is_halted().await.unwrap());

    // The running node follows the new master: a shutdown issued there reaches it.
    let shutdown = issue(&t, Action::Shutdown, Scope::All, "after").await;
    for n in [&a, &b] {
        let reason = tokio::time::timeout(Duration::from_secs(20), n.handle.requested())
            .await
            .expect("every node hears the shutdown on the new master");
        assert_eq!(reason, Reason::Fleet);
    }
    let acks = fleet::wait_for_acks(&t, &shutdown.command, Duration::from_secs(20), T)
        .await
        .unwrap();
    assert!(acks.missing.is_empty(), "{acks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sentinel_a_flush_cut_by_the_masters_death_completes_or_falls_back_whole() {
    let deployment = RedisSentinel::start();
    let url = deployment.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let orders = 100_000;
    let paper = PaperNode::new(&scenario(orders, 0));
    let node = paper.node();
    let config = PipelineConfig::from_toml(
        &flush_config(
            &url,
            dir.path(),
            "chunk_size = 200\nretries = 5\nbackoff_ms = 500",
        ),
        "test.toml",
        EnvOverrides::None,
    )
    .unwrap();
    // Kill the master once the staging keys start to fill.
    let master = deployment.master.port.unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(deployment.master.pid()).unwrap());
    let killer = std::thread::spawn(move || {
        let mut caught = false;
        wait_until("a flush in flight", Duration::from_secs(30), || {
            caught = cli(master, &["keys", "*staging*"]).trim() != "";
            caught
        });
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        caught
    });
    let report = Shutdown::new(config.build(&node).unwrap(), node)
        .run()
        .await;
    assert!(killer.join().unwrap(), "the flush was caught in the middle");
    deployment.wait_failed_over(Some(master));
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");

    // Whichever way it went, what is read back is the whole snapshot.
    let restored = restore(&shutdown_redis::RestoreOptions {
        redis: Some(target(&url)),
        trader_id: "trader-001".into(),
        key_prefix: None,
        fallback_dir: dir.path().to_path_buf(),
        timeout: T,
    })
    .await
    .unwrap();
    let written_to = step.details["written_to"].as_str().unwrap();
    let want = if written_to.starts_with("redis") {
        SnapshotSource::Redis
    } else {
        SnapshotSource::File
    };
    assert_eq!(
        restored.source,
        Some(want),
        "{written_to}: {}",
        restored.why
    );
    assert_eq!(restored.snapshot.unwrap().orders.len(), orders);
}
