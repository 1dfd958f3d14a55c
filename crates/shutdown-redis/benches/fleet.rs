//! Fleet halt latency: the time from `fleet::issue` (a halt of every node) to the last node's
//! acknowledgement, for 10, 50, 100 and 200 nodes following one `redis-server` started here (tasks
//! of this process, each with its own connection). Prints the median and max over the runs.
//!
//! `cargo bench -p shutdown-redis --bench fleet`

use std::time::{Duration, Instant};

use shutdown_core::ShutdownHandle;
use shutdown_redis::RedisTarget;
use shutdown_redis::fleet::{self, Action, FleetOptions, FleetSwitch, Scope};
use shutdown_testkit::redis_server::RedisServer;

const RUNS: usize = 9;
const T: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("nodes  median_ms  max_ms  (issue -> last ack, {RUNS} runs each)");
    for nodes in [10usize, 50, 100, 200] {
        // A fresh server per size: no history of earlier runs.
        let server = RedisServer::start();
        let target = RedisTarget::parse(&server.url)?;
        let (median, max) = rt.block_on(measure(&target, nodes))?;
        println!(
            "{nodes:>5}  {:>9.1}  {:>6.1}",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

async fn measure(
    target: &RedisTarget,
    nodes: usize,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let mut switches = Vec::with_capacity(nodes);
    for i in 0..nodes {
        switches.push(
            FleetSwitch::start(
                target,
                FleetOptions::new(&format!("trader-{i:03}")).node_id(format!("n{i:03}")),
                ShutdownHandle::new(),
                None,
            )
            .await?,
        );
    }
    let mut con = target.connect(T, T).await?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let issued = fleet::issue(target, Action::Halt, Scope::All, "bench", "", T).await?;
        let key = fleet::keys::acks(issued.command.version);
        loop {
            let acked: usize = redis::cmd("HLEN").arg(&key).query_async(&mut con).await?;
            if acked >= nodes {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("{acked} of {nodes} acknowledged in 30 s").into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], times[RUNS - 1]))
}
