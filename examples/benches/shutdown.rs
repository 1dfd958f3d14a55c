//! A whole shutdown of the example node holding 10k orders, 1k positions and 100k cache entries,
//! against a local redis-server: SIGTERM to exit, per step, beside each step's limit; and the node's
//! peak RSS during the shutdown against its RSS before it (goal: under 1.5 times), for the node as
//! shipped and for a lean node whose start gate is `resume` alone (the shipped start gate frees
//! memory the shutdown then reuses), each with a redis-server of its own.
//!
//! `cargo bench -p shutdown-examples --bench shutdown`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use shutdown_testkit::redis_server::RedisServer;

const CONFIG: &str = r#"
timeout_secs = 60.0
trader_id = "bench"
report_path = "report.json"

[[steps]]
kind = "halt"
timeout_secs = 2.0

[[steps]]
kind = "cancel"
timeout_secs = 20.0
max_in_flight = 32

[[steps]]
kind = "verify"
timeout_secs = 10.0
on_unprotected = "report"

[[steps]]
kind = "flush"
timeout_secs = 20.0
url_env = "REDIS_URL"
response_timeout_ms = 20000

[[steps]]
kind = "close"
timeout_secs = 5.0
"#;

const SCENARIO: &str = r#"
seed = 1
[venue]
latency_ms = 0
[[instruments]]
symbol = "BTC-PERP"
mark_price = 65000
[generate]
orders = 9000
positions = 1000
cache_entries = 100000
[[connections]]
id = "rest-1"
venue = "paper"
dead_man_armed = true
"#;

/// `VmRSS` or `VmHWM` of a process, in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_for(lines: &std::sync::mpsc::Receiver<String>, prefix: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .map_err(|e| format!("no {prefix:?} line: {e}"))?;
        if line.to_lowercase().starts_with(prefix) || line.to_lowercase().contains(prefix) {
            return Ok(line);
        }
    }
}

/// Spawn `cmd` with its stdout as a channel of lines.
fn spawn_lines(
    mut cmd: Command,
) -> Result<(std::process::Child, std::sync::mpsc::Receiver<String>), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok((child, rx))
}

/// The start gate of the lean run: `resume` alone, so nothing the gate allocated and freed is
/// there for the shutdown to reuse.
const LEAN_START: &str = r#"
timeout_secs = 5.0
trader_id = "bench"

[[steps]]
kind = "resume"
timeout_secs = 2.0
"#;

/// One node, from start to exit: SIGTERM once it is ready; its RSS before the shutdown and its peak
/// during it (kB), the time from SIGTERM to exit, and its exit status.
fn shutdown_once(
    dir: &std::path::Path,
    start_config: Option<&str>,
) -> Result<(u64, u64, Duration, std::process::ExitStatus), String> {
    // A server of its own: what one run snapshots is not the next run's book.
    let redis = RedisServer::start();
    let mut node = Command::new(env!("CARGO_BIN_EXE_trading_node"));
    node.arg("node.toml")
        .arg("scenario.toml")
        .current_dir(dir)
        .env("REDIS_URL", &redis.url);
    if let Some(config) = start_config {
        let path = dir.join("start.toml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        node.env("TRADING_NODE_START_CONFIG", path);
    }
    let (mut node, node_lines) = spawn_lines(node)?;
    wait_for(&node_lines, "ready")?;
    let pid = node.id();
    let before = status_kb(pid, "VmRSS:").ok_or("no RSS")?;

    let start = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map_err(|e| e.to_string())?;
    let mut peak = before;
    let status = loop {
        if let Some(hwm) = status_kb(pid, "VmHWM:") {
            peak = peak.max(hwm);
        }
        match node.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            // Sampling the high-water mark, not synchronising: VmHWM only grows.
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    Ok((before, peak, start.elapsed(), status))
}

fn main() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

    std::fs::write(dir.path().join("node.toml"), CONFIG).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("scenario.toml"), SCENARIO).map_err(|e| e.to_string())?;
    // The lean node first: the same shutdown, measured without the shipped start gate.
    let lean_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for file in ["node.toml", "scenario.toml"] {
        std::fs::copy(dir.path().join(file), lean_dir.path().join(file))
            .map_err(|e| e.to_string())?;
    }
    let lean = shutdown_once(lean_dir.path(), Some(LEAN_START))?;
    let (before, peak, took, status) = shutdown_once(dir.path(), None)?;

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let limits: Vec<(String, f64)> = CONFIG
        .split("[[steps]]")
        .skip(1)
        .filter_map(|t| {
            let kind = t
                .lines()
                .find(|l| l.starts_with("kind"))?
                .split('"')
                .nth(1)?
                .to_owned();
            let secs = t
                .lines()
                .find(|l| l.starts_with("timeout_secs"))?
                .split('=')
                .nth(1)?
                .trim()
                .parse()
                .ok()?;
            Some((kind, secs))
        })
        .collect();
    println!(
        "whole shutdown: 10k orders, 1k positions, 100k cache entries; redis-server on a unix socket"
    );
    println!(
        "exit code {:?}, outcome {}",
        status.code(),
        report["outcome"]
    );
    println!(
        "{:<8} {:>10} {:>10} {:>8}  details",
        "step", "secs", "limit", "ratio"
    );
    let mut sum_limits = 0.0;
    for (s, (_, limit)) in report["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .zip(&limits)
    {
        sum_limits += limit;
        let d = s["duration"].as_f64().unwrap_or(0.0);
        let note = match s["kind"].as_str() {
            Some("cancel") => format!(
                "{} cancelled",
                s["details"]["cancelled"].as_array().map_or(0, Vec::len)
            ),
            Some("verify") => format!(
                "{} positions",
                s["details"]["positions"].as_array().map_or(0, Vec::len)
            ),
            Some("flush") => format!(
                "{} bytes to {}",
                s["details"]["bytes"],
                s["details"]["written_to"].as_str().unwrap_or("?")
            ),
            _ => String::new(),
        };
        println!(
            "{:<8} {d:>10.3} {limit:>10.1} {:>8.4}  {note}",
            s["name"].as_str().unwrap_or("?"),
            d / limit
        );
    }
    println!(
        "SIGTERM to exit: {:.3} s against the sum of step limits {sum_limits:.1} s (ratio {:.4})",
        took.as_secs_f64(),
        took.as_secs_f64() / sum_limits
    );
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "memory: RSS before {:.1} MB, peak during shutdown {:.1} MB, ratio {:.2} (goal < 1.5)",
        mb(before),
        mb(peak),
        peak as f64 / before as f64
    );
    let (lean_before, lean_peak) = (lean.0, lean.1);
    println!(
        "memory, start gate of `resume` alone: RSS before {:.1} MB, peak {:.1} MB, ratio {:.2}, exit {:?}",
        mb(lean_before),
        mb(lean_peak),
        lean_peak as f64 / lean_before as f64,
        lean.3.code()
    );
    Ok(())
}
