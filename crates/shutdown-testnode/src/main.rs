//! A node with no venue that runs the pipeline of `CONFIG` on signals: `testnode CONFIG`.
//!
//! Prints `ready` once its signal handler is installed; exits with the shutdown's exit code. With
//! `TESTNODE_EXIT_FLUSH=PATH`, an exit flush writes `flushed` to PATH (a trace exporter's batch,
//! say); with `TESTNODE_EXIT_STALL=1` too, a second exit flush never returns. With
//! `TESTNODE_SINK_STALL=1`, a report sink (`stalled`, timeout 30 s) never answers. With
//! `TESTNODE_REDIS_URL=URL`, the report goes to Redis too (`RedisReportSink`). With
//! `TESTNODE_HOST_HANGS=1`, the node exits on force only (`exit_on_force`): once the report is back
//! it prints `returned CODE` and hangs, as a host whose own work after the pipeline never ends.

// Link the crate whose steps register themselves.
extern crate shutdown_testkit as _;

use std::io::Write;

use shutdown_core::errors::SinkError;
use shutdown_core::{Level, Node, PipelineConfig, Report, ReportSink, Shutdown, exit_code};

/// A report sink that never answers (a Pushgateway that accepts the connection and says nothing).
struct StalledSink;

impl ReportSink for StalledSink {
    fn name(&self) -> String {
        "stalled".into()
    }

    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }

    fn write(&self, _report: &Report) -> Result<(), SinkError> {
        loop {
            std::thread::park();
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("info")
        .with_ansi(false)
        .init();
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: testnode CONFIG");
        std::process::exit(2);
    };
    let node = Node::new();
    let pipeline = match PipelineConfig::load(&path).and_then(|c| c.build(&node)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(exit_code::INVALID_CONFIG);
        }
    };
    let host_hangs = std::env::var("TESTNODE_HOST_HANGS").is_ok_and(|v| v == "1");
    let mut shutdown = match host_hangs {
        true => Shutdown::new(pipeline, node).exit_on_force(true),
        false => Shutdown::new(pipeline, node).exit_process(true),
    };
    if let Ok(path) = std::env::var("TESTNODE_EXIT_FLUSH") {
        shutdown = shutdown.on_exit("exporter", move || {
            let _ = std::fs::write(&path, "flushed");
        });
        if std::env::var("TESTNODE_EXIT_STALL").is_ok_and(|v| v == "1") {
            shutdown = shutdown.on_exit("stalled-exporter", || {
                loop {
                    std::thread::park();
                }
            });
        }
    }
    if let Ok(url) = std::env::var("TESTNODE_REDIS_URL") {
        let sink = shutdown_redis::RedisTarget::parse(&url)
            .map_err(|e| e.0)
            .and_then(|target| {
                let trader = shutdown.pipeline().settings.trader_id.clone();
                let timeout = std::time::Duration::from_secs(1);
                shutdown_redis::RedisReportSink::new(
                    target,
                    &trader,
                    5,
                    timeout,
                    "testnode-fallback",
                )
                .map_err(|e| e.to_string())
            });
        match sink {
            Ok(sink) => shutdown = shutdown.with_sink(std::sync::Arc::new(sink)),
            Err(e) => {
                eprintln!("TESTNODE_REDIS_URL: {e}");
                std::process::exit(exit_code::INVALID_CONFIG);
            }
        }
    }
    if std::env::var("TESTNODE_SINK_STALL").is_ok_and(|v| v == "1") {
        shutdown = shutdown.with_sink(std::sync::Arc::new(StalledSink));
    }
    let _signals = match shutdown.listen_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install the signal handler: {e}");
            std::process::exit(1);
        }
    };
    // Announce each escalation from a plain thread, so a test can wait for it even while a step
    // blocks the runtime (identical signals sent back to back would merge in the kernel).
    let handle = shutdown.handle();
    std::thread::spawn(move || {
        for level in [Level::Hurry, Level::Force] {
            handle.wait_blocking(level, None);
            println!("level {level:?}");
            let _ = std::io::stdout().flush();
        }
    });
    println!("ready");
    let _ = std::io::stdout().flush();
    let report = shutdown.run_when_requested().await;
    println!("returned {}", report.exit_code);
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
