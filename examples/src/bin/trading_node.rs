//! A trading node on the paper venue that shuts down gracefully: `trading_node CONFIG SCENARIO`.
//!
//! `trading_node validate|plan|dry-run|reconcile|report|restore|steps|fleet ...` are the operator's
//! commands of `shutdownctl`, with this binary's step kinds (`notify` too).
//!
//! First it takes the lease of its trader id (a lock file in `shutdown-fallback/`, and a Redis lease
//! when `REDIS_URL` is set), waiting for another node to let go (`TRADING_NODE_LEASE_WAIT_MS`, 60 s;
//! the lease lives `TRADING_NODE_LEASE_TTL_MS`, 10 s, without renewal); exits 75 if it cannot, and
//! 78 at once, naming `REDIS_URL`, when Redis refuses its password (no retry heals that).
//!
//! At start it restores the last snapshot (from Redis when `REDIS_URL` is set, from
//! `shutdown-fallback/` otherwise) and says whether the previous shutdown was clean. The paper venue
//! starts from the scenario on a first start, and on a restart from the last snapshot (the venue as
//! the last run left it) with the scenario's `[downtime]` applied. Then, with the
//! trading gate halted, it runs its start gate (`examples/configs/start.toml`, or the file
//! `TRADING_NODE_START_CONFIG` names): the venue compared with the last snapshot (on a first start
//! the venue's book is taken as the node's own), every difference handled, every position
//! protected; it prints what it found (`start gate:` lines). Only when the gate opens does it quote
//! continuously and print `ready` once it has orders resting; a gate left halted prints
//! `halted: not quoting` and the node waits, trading nothing. It follows the fleet kill switch
//! (with Redis): a halt in force (found at start, after a reconnect, or as a command) halts the
//! trading gate and keeps the start gate from opening it (`fleet:` lines; it reports itself every
//! `TRADING_NODE_FLEET_HEARTBEAT_MS`, 2 s); `fleet shutdown` runs the pipeline with reason `fleet`.
//! Once every halt covering it is cleared, it runs its start gate again and trades only if that
//! opens the gate. On SIGTERM or SIGINT (at any time, during the start gate too) it runs
//! the pipeline of CONFIG and exits with its exit code. Metrics go where `[metrics]` says; the
//! report to `report_path`, Redis and the log; with `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set (and
//! the default feature `otel`), the shutdown's spans to that OTLP/HTTP endpoint.

// Link the crates whose steps register themselves (the built-in ones and this crate's `notify`).
extern crate shutdown_examples as _;
extern crate shutdown_redis as _;
extern crate shutdown_steps as _;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use shutdown_core::EnvOverrides;
use shutdown_core::domain::LastKnown;
use shutdown_core::{PipelineConfig, Report, Shutdown, exit_code};
use shutdown_metrics::MetricsSink;
use shutdown_paper::{PaperNode, Scenario};
use shutdown_redis::{
    FleetOptions, FleetSwitch, Lease, LeaseError, LeaseOptions, PreviousShutdown, RedisReportSink,
    RedisTarget, RestoreOptions, restore_and_mark_running,
};

/// The start gate's pipeline: the file `TRADING_NODE_START_CONFIG` names, or the shipped one. No
/// `SHUTDOWN_*` overrides: those are for the shutdown.
fn start_config() -> PipelineConfig {
    let loaded = match std::env::var("TRADING_NODE_START_CONFIG") {
        Ok(path) => PipelineConfig::load_with(&path, EnvOverrides::None),
        Err(_) => PipelineConfig::from_toml(
            include_str!("../../configs/start.toml"),
            "examples/configs/start.toml",
            EnvOverrides::None,
        ),
    };
    loaded.unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()))
}

/// How often the node reports itself to the fleet: `TRADING_NODE_FLEET_HEARTBEAT_MS`, 2 s.
fn fleet_heartbeat() -> Duration {
    let ms = std::env::var("TRADING_NODE_FLEET_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    Duration::from_millis(ms)
}

/// One `fleet:` line each time the halts covering the node change.
fn say_fleet(mut watch: tokio::sync::watch::Receiver<shutdown_redis::FleetState>) {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let why = watch.borrow_and_update().why();
            if why != last {
                match &why {
                    Some(why) => say(&format!("fleet: halted: {why}")),
                    None if last.is_some() => say("fleet: halt cleared"),
                    None => {}
                }
                last = why;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    });
}

/// What the start gate found, one `start gate:` line each.
fn say_start_gate(report: &Report) {
    let first = report.to_string();
    say(&format!(
        "start gate: {}",
        first.lines().next().unwrap_or_default()
    ));
    let diffs = (report.steps.iter())
        .find(|s| s.kind == "reconcile")
        .and_then(|s| s.details.get("differences"))
        .and_then(|d| d.as_array());
    for d in diffs.into_iter().flatten() {
        let f = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
        let action = d["action"]
            .as_str()
            .map(|a| format!(": {a}"))
            .unwrap_or_default();
        say(&format!(
            "start gate: {} {} ({}): was {}, now {}; {}{action}",
            f("kind"),
            f("id"),
            f("instrument"),
            f("was"),
            f("now"),
            f("policy")
        ));
    }
    for s in report
        .steps
        .iter()
        .filter(|s| s.error.is_some() || !s.problems.is_empty())
    {
        let why = s
            .error
            .clone()
            .or_else(|| s.problems.first().cloned())
            .unwrap_or_default();
        say(&format!("start gate: {}: {why}", s.name));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(code);
}

/// The kinds this node's configs use: checked at start, so a crate left unlinked is named at once.
const KINDS: &[&str] = &[
    "halt",
    "cancel",
    "verify",
    "notify",
    "flush",
    "close",
    "reconcile",
    "resume",
];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `trading_node validate node.toml`, `trading_node plan ...`: the operator's commands, with this
    // binary's step kinds (its `notify` included).
    if args.get(1).is_some_and(|a| shutdown_cli::is_command(a)) {
        return shutdown_cli::main_from(args);
    }
    match shutdown_core::Registry::global().map(|r| r.require(KINDS)) {
        Ok(Ok(())) => {}
        Ok(Err(missing)) => fail(exit_code::INVALID_CONFIG, &missing.to_string()),
        Err(e) => fail(exit_code::INVALID_CONFIG, &e.to_string()),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(1, &format!("cannot start the runtime: {e}")));
    runtime.block_on(node(args));
    std::process::ExitCode::SUCCESS
}

async fn node(args: Vec<String>) {
    let [_, config_path, scenario_path] = args.as_slice() else {
        fail(2, "usage: trading_node CONFIG SCENARIO");
    };
    let config = PipelineConfig::load(config_path)
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(config.log_level.as_str())
        .init();
    let scenario = Scenario::load(scenario_path)
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()));
    let start_config = start_config();

    let redis = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|url| RedisTarget::parse(&url))
        .transpose()
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &format!("REDIS_URL: {e}")));
    // One live node per trader id: wait (bounded) for another node to let go before anything else.
    let env_ms = |name: &str, default: u64| {
        let ms = std::env::var(name).ok().and_then(|v| v.parse().ok());
        Duration::from_millis(ms.unwrap_or(default))
    };
    let lease = LeaseOptions {
        dir: "shutdown-fallback".into(),
        trader_id: config.settings.trader_id.clone(),
        key_prefix: None,
        redis: redis.clone(),
        ttl: env_ms("TRADING_NODE_LEASE_TTL_MS", 10_000),
        wait: env_ms("TRADING_NODE_LEASE_WAIT_MS", 60_000),
        timeout: Duration::from_secs(2),
    };
    say("lease: taking it");
    let lease = match Lease::acquire(&lease).await {
        Ok(lease) => Arc::new(lease),
        // A refused password or a malformed URL does not heal: the configuration is wrong.
        Err(e @ LeaseError::Refused(_)) => {
            fail(exit_code::INVALID_CONFIG, &format!("lease: REDIS_URL: {e}"))
        }
        Err(e) => fail(75, &format!("lease: {e}")),
    };
    say("lease: held");
    let restore = RestoreOptions {
        redis: redis.clone(),
        trader_id: config.settings.trader_id.clone(),
        key_prefix: None,
        fallback_dir: "shutdown-fallback".into(),
        timeout: Duration::from_secs(2),
    };
    let (marker, last) = match restore_and_mark_running(&restore).await {
        Ok((r, marker)) => {
            say(&format!("restore: {}", r.summary()));
            (Some(marker), Some(r))
        }
        Err(e) => {
            say(&format!("restore: failed: {e}"));
            (None, None)
        }
    };
    // The paper venue, and what the start gate compares it with. A real venue keeps its state
    // while the node is down; the paper venue starts again from the last snapshot (the venue as the
    // node left it) and the scenario's [downtime] (what happened while it was down).
    let snapshot = last.as_ref().map(|r| (r.previous_shutdown, r.last_known()));
    let (paper, last) = match snapshot {
        Some((PreviousShutdown::None, _)) => {
            say("start gate: no previous run: the venue's book is taken as the node's own");
            let paper = PaperNode::new(&scenario);
            let last = paper.last_known();
            (paper, last)
        }
        Some((_, Some(last))) => {
            let (paper, changes) = PaperNode::resumed(&scenario, &last);
            say(&format!(
                "venue: as the last run left it, then {} change(s) while the node was down",
                changes.len()
            ));
            (paper, last)
        }
        _ => {
            say(
                "start gate: no snapshot to compare the venue with: every working order there is unknown to the node",
            );
            (PaperNode::new(&scenario), LastKnown::default())
        }
    };
    let node = paper.node();
    let pipeline = config
        .build(&node)
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()));
    let start_pipeline = start_config
        .build(&node)
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()));
    // Nothing trades before the start gate opens the trading gate.
    let gate = node
        .gate()
        .unwrap_or_else(|e| fail(exit_code::INVALID_CONFIG, &e.to_string()));
    if let Err(e) = gate.halt().await {
        fail(
            1,
            &format!("cannot halt the trading gate before the start gate: {e}"),
        );
    }

    let mut shutdown = Shutdown::new(pipeline, node.clone()).exit_process(true);
    // Let the lease go once the report is final: a waiting node takes over at once.
    shutdown = shutdown.with_sink(lease.clone());
    // A node that loses its lease stops trading at once, and says so.
    if let Ok(gate) = node.gate() {
        let lease = lease.clone();
        tokio::spawn(async move {
            let why = lease.lost().await;
            match gate.halt().await {
                Ok(()) => say(&format!("lease lost ({why}): trading halted")),
                Err(e) => say(&format!("lease lost ({why}): HALTING FAILED: {e}")),
            }
        });
    }
    // The run marker clears itself once the report is final: a crash from now on is seen next time.
    if let Some(marker) = marker {
        shutdown = shutdown.with_sink(Arc::new(marker));
    }
    if let Some(sink) = MetricsSink::new(&config.settings.metrics, &config.settings.trader_id) {
        shutdown = shutdown.with_sink(Arc::new(sink));
    }
    // Traces of the shutdown (feature `otel`): one span for it, one per step, exported before exit.
    #[cfg(feature = "otel")]
    if let Some(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    {
        match shutdown_otel::otlp_provider(&endpoint) {
            Ok(provider) => {
                shutdown = shutdown.with_sink(Arc::new(shutdown_otel::TraceSink::new(provider)));
            }
            Err(e) => say(&format!("traces: not exported: {e}")),
        }
    }
    if let Some(target) = &redis {
        match RedisReportSink::new(
            target.clone(),
            &config.settings.trader_id,
            20,
            Duration::from_secs(1),
            "shutdown-fallback",
        ) {
            Ok(sink) => shutdown = shutdown.with_sink(Arc::new(sink)),
            Err(e) => fail(exit_code::INVALID_CONFIG, &e.to_string()),
        }
    }
    // The fleet kill switch: a halt in force halts the trading gate; `fleet shutdown` reaches this
    // node like a signal.
    let fleet = match &redis {
        Some(target) => match FleetSwitch::start(
            target,
            FleetOptions::new(&config.settings.trader_id).heartbeat(fleet_heartbeat()),
            shutdown.handle(),
            Some(gate.clone()),
        )
        .await
        {
            Ok(f) => {
                say_fleet(f.watch());
                Some(f)
            }
            Err(e) => {
                say(&format!("fleet: not following: {e}"));
                None
            }
        },
        None => None,
    };
    let _signals = shutdown
        .listen_signals()
        .unwrap_or_else(|e| fail(1, &format!("cannot install the signal handler: {e}")));

    let start = StartGate {
        pipeline: Arc::new(start_pipeline),
        node: node.clone(),
        hold: fleet.as_ref().map(FleetSwitch::hold),
        gate: gate.clone(),
    };
    let quoting = Quoting {
        paper: paper.clone(),
        handle: shutdown.handle(),
        instruments: scenario.instruments.clone(),
        started: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let open = start.run(last).await;
    if shutdown.handle().is_shutdown_requested() {
        shutdown.run_when_requested().await;
        return;
    }
    if open {
        quoting.start().await;
    } else {
        say("halted: not quoting");
    }
    // After a fleet halt is cleared, the start gate runs again (against the book the node holds
    // now) and opens the trading gate only if all is well.
    if let Some(fleet) = &fleet {
        tokio::spawn(resume_after_fleet(
            fleet.watch(),
            start,
            quoting,
            paper.clone(),
            shutdown.handle(),
        ));
    }
    shutdown.run_when_requested().await;
}

/// The start gate: its pipeline, run whenever the node would open its trading gate.
struct StartGate {
    pipeline: Arc<shutdown_core::Pipeline>,
    node: shutdown_core::Node,
    hold: Option<shutdown_core::TradingHold>,
    gate: Arc<dyn shutdown_core::node::TradingGate>,
}

impl StartGate {
    /// Run it against what the node last knew; whether the trading gate is open after it.
    async fn run(&self, last: LastKnown) -> bool {
        let mut gate = Shutdown::new(self.pipeline.clone(), self.node.clone()).with_extension(last);
        if let Some(hold) = &self.hold {
            gate = gate.with_extension(hold.clone());
        }
        let report = gate.run_start_gate().await;
        say_start_gate(&report);
        matches!(self.gate.is_halted().await, Ok(false))
    }
}

/// The strategies, started once.
struct Quoting {
    paper: PaperNode,
    handle: shutdown_core::ShutdownHandle,
    instruments: Vec<shutdown_paper::scenario::InstrumentSpec>,
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl Quoting {
    /// Start quoting (once), wait until every strategy has an order resting, say `ready`.
    async fn start(&self) {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut quoting = Vec::new();
        for inst in &self.instruments {
            let first = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(shutdown_examples::strategy::make_markets(
                self.paper.clone(),
                self.handle.clone(),
                inst.symbol.clone(),
                inst.mark_price,
                Duration::from_millis(10),
                first.clone(),
            ));
            quoting.push(first);
        }
        // Ready means trading: every strategy has an order resting (bounded, in case the venue
        // refuses).
        for first in quoting {
            let _ = tokio::time::timeout(Duration::from_secs(5), first.notified()).await;
        }
        say("ready");
        // Under systemd (Type=notify), the unit is up now.
        if let Err(e) = shutdown_core::systemd::ready() {
            say(&format!("systemd: cannot say ready: {e}"));
        }
    }
}

/// Each time the fleet halts covering the node are all cleared (and no shutdown is under way),
/// run the start gate again and, if it opens the trading gate, trade.
async fn resume_after_fleet(
    mut watch: tokio::sync::watch::Receiver<shutdown_redis::FleetState>,
    start: StartGate,
    quoting: Quoting,
    paper: PaperNode,
    handle: shutdown_core::ShutdownHandle,
) {
    let mut halted = !watch.borrow_and_update().halts.is_empty();
    while watch.changed().await.is_ok() {
        let (now, shutdown) = {
            let state = watch.borrow_and_update();
            (!state.halts.is_empty(), state.shutdown)
        };
        if halted && !now && !shutdown && !handle.is_shutdown_requested() {
            say("fleet: running the start gate again");
            if start.run(paper.last_known()).await {
                quoting.start().await;
                say("fleet: trading resumed");
            } else {
                say("fleet: the start gate keeps the trading gate halted");
            }
        }
        halted = now;
    }
}
