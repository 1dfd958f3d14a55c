//! The fleet kill switch over a real Redis.

use std::time::Duration;

use shutdown_core::{Reason, ShutdownHandle};
use shutdown_redis::fleet::{FleetCommand, FleetSwitch, send};

use crate::support::{RedisServer, target};

fn command(target: &str) -> FleetCommand {
    FleetCommand {
        target: target.into(),
        note: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_command_reaches_the_named_trader_and_everyone_but_not_others() {
    let server = RedisServer::start();
    let t1 = ShutdownHandle::new();
    let t2 = ShutdownHandle::new();
    let timeout = Duration::from_secs(2);
    let _s1 = FleetSwitch::start(&target(&server.url), "trader-001", t1.clone(), timeout)
        .await
        .unwrap();
    let _s2 = FleetSwitch::start(&target(&server.url), "trader-002", t2.clone(), timeout)
        .await
        .unwrap();

    assert_eq!(
        send(&target(&server.url), &command("trader-001"), timeout)
            .await
            .unwrap(),
        2,
        "both nodes listen"
    );
    let reason = tokio::time::timeout(Duration::from_secs(5), t1.requested())
        .await
        .unwrap();
    assert_eq!(reason, Reason::Fleet);
    assert!(
        !t2.is_shutdown_requested(),
        "the other trader keeps trading"
    );

    send(&target(&server.url), &command("*"), timeout)
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), t2.requested())
        .await
        .unwrap();
    assert_eq!(reason, Reason::Fleet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_is_visible_and_a_dead_redis_is_an_error() {
    let mut server = RedisServer::start();
    assert_eq!(
        send(&target(&server.url), &command("*"), Duration::from_secs(2))
            .await
            .unwrap(),
        0
    );
    let url = server.url.clone();
    server.kill();
    let err = FleetSwitch::start(
        &target(&url),
        "t",
        ShutdownHandle::new(),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot subscribe at"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let handle = ShutdownHandle::new();
    let timeout = Duration::from_secs(2);
    let _switch = FleetSwitch::start(&target(&server.url), "trader-001", handle.clone(), timeout)
        .await
        .unwrap();
    server.restart();
    // The switch resubscribes after its backoff (1 s): send until a subscriber takes the command.
    let delivered = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(n @ 1..) = send(&target(&server.url), &command("trader-001"), timeout).await {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the switch subscribed again after the restart");
    assert_eq!(delivered, 1);
    let reason = tokio::time::timeout(Duration::from_secs(5), handle.requested())
        .await
        .unwrap();
    assert_eq!(reason, Reason::Fleet);
}
