//! Cancel throughput against the paper venue's rate limit, and how it scales with the in-flight bound.
//! Each figure is achieved cancels per second divided by the venue's limit, measured in the same run.
//! Goal: at least 0.95 for 10k orders.
//!
//! `cargo bench -p shutdown-steps --bench cancel`

// Link the built-in steps.
extern crate shutdown_steps as _;

use shutdown_core::EnvOverrides;
use shutdown_core::{PipelineConfig, Shutdown};
use shutdown_paper::{PaperNode, Scenario};

const LIMIT: u32 = 2000;
const LATENCY_MS: u64 = 2;

fn run(rt: &tokio::runtime::Runtime, orders: usize, options: &str) -> (f64, usize, u64) {
    let scenario = Scenario::from_toml(
        &format!(
            "[venue]\nlatency_ms = {LATENCY_MS}\nrate_limit_per_sec = {LIMIT}\n\
             [[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n[generate]\norders = {orders}\npositions = 0\n"
        ),
        "bench",
    )
    .expect("scenario");
    let paper = PaperNode::new(&scenario);
    let node = paper.node();
    let config = PipelineConfig::from_toml(
        &format!("timeout_secs = 120\n[[steps]]\nkind = \"cancel\"\ntimeout_secs = 110\nmax_rounds = 20\n{options}\n"),
        "bench.toml",
        EnvOverrides::None,
    )
    .expect("config");
    let pipeline = config.build(&node).expect("pipeline");
    let report = rt.block_on(async {
        tokio::spawn(Shutdown::new(pipeline, node).run())
            .await
            .expect("run")
    });
    let step = &report.steps[0];
    let cancelled = step.details["cancelled"].as_array().map_or(0, Vec::len);
    (step.duration, cancelled, paper.stats().rate_limited)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "cancel throughput: paper venue with {LATENCY_MS} ms latency and a {LIMIT}/s limit (1 s of burst)"
    );
    println!(
        "{:<40} {:>7} {:>9} {:>9} {:>6} {:>8}",
        "run", "orders", "secs", "per sec", "429s", "ratio"
    );
    let line = |name: &str, orders: usize, options: &str| {
        let (secs, cancelled, limited) = run(&rt, orders, options);
        let rate = cancelled as f64 / secs;
        println!(
            "{name:<40} {cancelled:>7} {secs:>9.3} {rate:>9.0} {limited:>6} {:>8.3}",
            rate / f64::from(LIMIT)
        );
    };
    line(
        "10k, paced at the limit, 32 in flight",
        10_000,
        &format!("rate_per_sec = {LIMIT}\nmax_in_flight = 32"),
    );
    line(
        "10k, unpaced (429s retried), 32 in flight",
        10_000,
        "max_in_flight = 32",
    );
    for in_flight in [1, 2, 4, 8, 16, 32] {
        line(
            &format!("2k, paced, {in_flight} in flight"),
            2_000,
            &format!("rate_per_sec = {LIMIT}\nmax_in_flight = {in_flight}"),
        );
    }
    println!(
        "(in-flight bound b caps the rate at b / latency = b x {} per second)",
        1000 / LATENCY_MS
    );
}
