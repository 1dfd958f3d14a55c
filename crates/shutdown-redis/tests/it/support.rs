//! A real `redis-server` per test: own unix socket (or TCP port), own temp dir, killed on drop.

use std::path::Path;

use shutdown_core::EnvOverrides;
use shutdown_core::{PipelineConfig, Report, Shutdown};
use shutdown_paper::{PaperNode, Scenario};
pub use shutdown_testkit::redis_server::RedisServer;

/// A blocking client of the test server.
pub fn client(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

pub fn scenario(orders: usize, positions: usize) -> Scenario {
    Scenario::from_toml(
        &format!(
            "[[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n[generate]\norders = {orders}\npositions = {positions}\n\
             [[accounts]]\nid = \"main\"\ncurrency = \"USDT\"\nbalance = 1000\navailable = 900\n\
             [[strategies]]\nstrategy_id = \"mm\"\nstate = {{ inventory = 3 }}\n"
        ),
        "test",
    )
    .unwrap()
}

pub fn flush_config(url: &str, fallback: &Path, extra: &str) -> String {
    format!(
        "timeout_secs = 20\n[[steps]]\nkind = \"flush\"\nurl = \"{url}\"\nurl_env = \"SHUTDOWN_TEST_NO_SUCH_VAR\"\nfallback_dir = \"{}\"\ntimeout_secs = 10\n{extra}\n",
        fallback.display()
    )
}

pub async fn run(config: &str, paper: &PaperNode) -> Report {
    let node = paper.node();
    let config = PipelineConfig::from_toml(config, "test.toml", EnvOverrides::None).unwrap();
    Shutdown::new(config.build(&node).unwrap(), node)
        .run()
        .await
}

/// Where restore looks for trader-001 of `server`: `url`, and the server's fallback directory.
pub fn restore_options(
    server: &RedisServer,
    url: Option<String>,
) -> shutdown_redis::RestoreOptions {
    shutdown_redis::RestoreOptions {
        redis: url.map(|u| target(&u)),
        trader_id: "trader-001".into(),
        key_prefix: None,
        fallback_dir: server.fallback_dir(),
        timeout: std::time::Duration::from_secs(2),
    }
}

/// A report sink for trader-001 of `server` keeping 3 reports, and a report to give it.
pub async fn sink_and_report(
    server: &RedisServer,
    timeout: std::time::Duration,
) -> (shutdown_redis::RedisReportSink, Report) {
    let sink = shutdown_redis::RedisReportSink::new(
        target(&server.url),
        "trader-001",
        3,
        timeout,
        server.fallback_dir(),
    )
    .unwrap();
    let report = run(
        &flush_config(&server.url, &server.fallback_dir(), ""),
        &PaperNode::new(&scenario(1, 0)),
    )
    .await;
    (sink, report)
}

/// Where Redis is, for a URL a test built.
pub fn target(url: &str) -> shutdown_redis::RedisTarget {
    shutdown_redis::RedisTarget::parse(url).unwrap()
}
