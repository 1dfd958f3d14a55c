//! Flush throughput against its raw limit, measured side by side on one `redis-server` started here:
//! the flush of 100k orders and 10k positions (staging, MULTI/EXEC switch, read-back) against the same
//! bytes written by a bare pipelined HSET loop. Prints the ratio raw_time / flush_time (goal >= 0.8).
//!
//! `cargo bench -p shutdown-redis --bench flush`

use std::time::{Duration, Instant};

use shutdown_paper::{PaperNode, Scenario};
use shutdown_redis::Keys;
use shutdown_redis::snapshot::Snapshot;
use shutdown_redis::store::{WriteOptions, write_snapshot};
use shutdown_testkit::redis_server::RedisServer;

const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = RedisServer::start();
    let url = server.url.clone();

    let scenario = Scenario::from_toml(
        "[[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n[generate]\norders = 90000\npositions = 10000\n",
        "bench",
    )?;
    let paper = PaperNode::new(&scenario);
    let snapshot = Snapshot {
        trader_id: "bench".into(),
        taken_at: "2026-01-01T00:00:00Z".into(),
        orders: paper.all_orders(),
        positions: paper.open_positions(),
        accounts: vec![],
        strategies: Default::default(),
        receipt: serde_json::value::RawValue::NULL.to_owned(),
    };
    let start = Instant::now();
    let encoded = snapshot.encode()?;
    let encode_time = start.elapsed();
    let options = WriteOptions::default();
    let keys = Keys::new("bench")?;

    // As in a node: a multi-threaded runtime, so staging batches travel while the next is encoded.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (flush, raw) = rt.block_on(async {
        let client = redis::Client::open(url.as_str())?;
        let cfg =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        let mut con = shutdown_redis::Connection::Single(
            client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await?,
        );
        let mut flush = Vec::new();
        let mut raw = Vec::new();
        for round in 0..ROUNDS {
            let start = Instant::now();
            write_snapshot(&mut con, &keys, &snapshot, &format!("r{round}"), &options).await?;
            flush.push(start.elapsed());

            let start = Instant::now();
            for (i, entries) in encoded.collections.iter().enumerate() {
                let key = format!("raw:{i}");
                let mut pipe = redis::pipe();
                pipe.cmd("DEL").arg(&key).ignore();
                let mut it = entries.iter().peekable();
                while it.peek().is_some() {
                    let mut cmd = redis::cmd("HSET");
                    cmd.arg(&key);
                    for (k, v) in it.by_ref().take(options.chunk_size) {
                        cmd.arg(k).arg(v);
                    }
                    pipe.add_command(cmd).ignore();
                }
                pipe.query_async::<()>(&mut con).await?;
            }
            raw.push(start.elapsed());
        }
        Ok::<_, Box<dyn std::error::Error>>((median(flush), median(raw)))
    })?;
    drop(server);
    let mb = encoded.bytes as f64 / 1e6;
    println!(
        "snapshot: {} orders, {} positions, {mb:.1} MB of entries",
        snapshot.orders.len(),
        snapshot.positions.len()
    );
    println!(
        "flush (stage + MULTI/EXEC + read-back), median of {ROUNDS}: {:.1} ms ({:.0} MB/s)",
        flush.as_secs_f64() * 1e3,
        mb / flush.as_secs_f64()
    );
    println!(
        "raw pipelined HSET of the same bytes, median of {ROUNDS}: {:.1} ms ({:.0} MB/s)",
        raw.as_secs_f64() * 1e3,
        mb / raw.as_secs_f64()
    );
    println!(
        "(JSON encoding of the snapshot alone, measured apart: {:.1} ms)",
        encode_time.as_secs_f64() * 1e3
    );
    println!(
        "ratio raw/flush: {:.2} (goal >= 0.80)",
        raw.as_secs_f64() / flush.as_secs_f64()
    );
    Ok(())
}
