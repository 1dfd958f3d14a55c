//! The node lease: one node per trader id, handed over at shutdown or on expiry.

use super::*;

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
