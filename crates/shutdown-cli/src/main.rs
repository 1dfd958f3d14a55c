//! `shutdownctl`, the operator's view of a shutdown pipeline: list step kinds, validate and plan a
//! config, dry-run it against a scenario on the paper venue, read a shutdown report.

// Link the crates whose steps register themselves.
extern crate shutdown_redis as _;
extern crate shutdown_steps as _;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use shutdown_core::{PipelineConfig, Registry, Report, Shutdown, exit_code};
use shutdown_paper::{PaperNode, Scenario};
use shutdown_redis::{PreviousShutdown, RestoreOptions};

/// `print!` that exits quietly (like a program killed by SIGPIPE) when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// `println!` that exits quietly when stdout is closed.
macro_rules! outln {
    () => { out!("\n") };
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

/// Seconds of headroom between the global timeout and the orchestrator's SIGKILL.
const HEADROOM_SECS: f64 = 2.0;

#[derive(Parser)]
#[command(
    name = "shutdownctl",
    version,
    about = "Validate, plan and dry-run graceful-shutdown pipelines for trading nodes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every registered step kind with its options.
    #[command(after_help = "Example:\n  shutdownctl steps --json")]
    Steps {
        /// Print JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the options reference as Markdown (the step sections of docs/config.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Check a config: `ok` and exit 0, or every problem and exit 78.
    #[command(
        after_help = "Example:\n  shutdownctl validate examples/configs/pipeline.toml\n\nEnvironment overrides (SHUTDOWN_TIMEOUT_SECS=5, SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS=15, ...) apply, as they would in the node."
    )]
    Validate {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the ordered steps and the time budget against the orchestrator's grace period.
    #[command(
        after_help = "Example:\n  shutdownctl plan examples/configs/pipeline.toml --grace-period 30\n\nExit codes: 0 fine, 1 warnings with --deny-warnings, 78 invalid config."
    )]
    Plan {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// The orchestrator's grace period in seconds (Kubernetes terminationGracePeriodSeconds,
        /// docker stop --time, systemd TimeoutStopSec).
        #[arg(long, value_name = "SECS")]
        grace_period: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when there are warnings.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Run the pipeline against a scenario on the paper venue; nothing leaves the process.
    #[command(
        after_help = "Example:\n  shutdownctl dry-run examples/configs/pipeline.toml --scenario examples/scenarios/basic.toml\n\nExits with the pipeline's exit code: 0 clean, 10 degraded, 11 aborted, 12 forced, 78 invalid config."
    )]
    DryRun {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// The scenario (TOML): instruments, positions, orders, connections, venue behaviour.
        #[arg(long)]
        scenario: PathBuf,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Flush to this Redis instead of a throwaway sink (the only side effect a dry run may have).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
    },
    /// Print the last shutdown report: from a file a node wrote (`report_path`), or from Redis.
    #[command(
        after_help = "Examples:\n  shutdownctl report --file /var/lib/trader/shutdown-report.json\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl report --trader-id trader-001"
    )]
    Report {
        /// The report file.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        redis: RedisArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask running nodes to shut down, through Redis (the fleet kill switch).
    #[command(
        after_help = "Examples:\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl fleet --all --note \"venue incident\"\n  shutdownctl fleet --redis redis://cache:6379 --trader-id trader-007\n\nExit codes: 0 at least one node listening, 1 none listening or an error."
    )]
    Fleet {
        /// Redis URL (default: the REDIS_URL environment variable).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Stop this trader only.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        trader_id: Option<String>,
        /// Stop every node.
        #[arg(long)]
        all: bool,
        /// Why, for the nodes' logs.
        #[arg(long, default_value = "fleet kill switch")]
        note: String,
    },
    /// Say whether the previous shutdown was clean and what its last snapshot holds (reads only).
    #[command(
        after_help = "Example:\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl restore --trader-id trader-001 --fallback-dir /var/lib/trader/fallback\n\nExit codes: 0 clean or no previous run, 10 not clean (reconcile with the venue), 1 error."
    )]
    Restore {
        #[command(flatten)]
        redis: RedisArgs,
        /// The flush step's fallback directory.
        #[arg(long, default_value = "shutdown-fallback")]
        fallback_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where a node keeps its snapshot and reports in Redis.
#[derive(clap::Args)]
struct RedisArgs {
    /// Redis URL (default: the REDIS_URL environment variable, which keeps the password off the command line).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The node's trader id.
    #[arg(long, default_value = "trader-001")]
    trader_id: String,
    /// Key prefix (default: the trader id).
    #[arg(long)]
    key_prefix: Option<String>,
}

impl RedisArgs {
    fn url(&self) -> Option<String> {
        self.redis
            .clone()
            .or_else(|| std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()))
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHUTDOWNCTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Steps { json, markdown } => steps(json, markdown),
        Command::Validate { config, json } => validate(&config, json),
        Command::Plan {
            config,
            grace_period,
            json,
            deny_warnings,
        } => plan(&config, grace_period, json, deny_warnings),
        Command::DryRun {
            config,
            scenario,
            seed,
            json,
            redis,
        } => dry_run(&config, &scenario, seed, json, redis),
        Command::Report { file, redis, json } => report(file.as_deref(), &redis, json),
        Command::Fleet {
            redis,
            trader_id,
            all: _,
            note,
        } => fleet(redis, trader_id, note),
        Command::Restore {
            redis,
            fallback_dir,
            json,
        } => restore(&redis, fallback_dir, json),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

fn load(config: &Path, json: bool) -> Result<PipelineConfig, i32> {
    PipelineConfig::load(config).map_err(|e| {
        if json {
            print_json(&serde_json::json!({ "ok": false, "problems": e.problems }));
        } else {
            eprintln!("error: {e}");
        }
        exit_code::INVALID_CONFIG
    })
}

fn steps(json: bool, markdown: bool) -> i32 {
    let registry = match Registry::global() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if markdown {
        out!("{}", steps_markdown(registry));
        return 0;
    }
    if json {
        let kinds: Vec<_> = registry
            .registrations()
            .map(|r| serde_json::json!({
                "kind": r.kind, "summary": r.summary, "critical": r.critical,
                "default_timeout_secs": r.default_timeout_secs, "requires": r.requires, "options": r.options,
            }))
            .collect();
        print_json(&kinds);
        return 0;
    }
    for r in registry.registrations() {
        outln!("{}", r.kind);
        for line in wrap(r.summary, 74) {
            outln!("    {line}");
        }
        outln!(
            "    default timeout {}s, {}",
            r.default_timeout_secs,
            if r.critical {
                "critical"
            } else {
                "not critical"
            }
        );
        for o in r.options {
            for (i, line) in wrap(&format!("{} ({}, default {})", o.name, o.ty, o.default), 74)
                .iter()
                .enumerate()
            {
                outln!("    {}{line}", if i == 0 { "" } else { "  " });
            }
            for line in wrap(o.doc, 70) {
                outln!("        {line}");
            }
        }
        outln!();
    }
    0
}

/// The per-kind reference of docs/config.md, generated from the registry so the two cannot drift.
fn steps_markdown(registry: &Registry) -> String {
    let mut md = String::new();
    for r in registry.registrations() {
        let roles: Vec<String> = r.requires.iter().map(ToString::to_string).collect();
        md.push_str(&format!("### `{}`\n\n{}\n\n", r.kind, r.summary));
        md.push_str(&format!(
            "Default timeout {}s; {}; needs the node roles: {}.\n\n",
            r.default_timeout_secs,
            if r.critical {
                "critical"
            } else {
                "not critical"
            },
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            }
        ));
        md.push_str("| option | type | default | meaning |\n|---|---|---|---|\n");
        for o in r.options {
            md.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                o.name,
                o.ty.replace('|', "\\|"),
                o.default,
                o.doc.replace('|', "\\|")
            ));
        }
        md.push('\n');
    }
    md
}

fn validate(path: &Path, json: bool) -> i32 {
    let config = match load(path, json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let kinds: Vec<&str> = config.steps.iter().map(|s| s.registration.kind).collect();
    if json {
        print_json(&serde_json::json!({
            "ok": true, "timeout_secs": config.settings.timeout.as_secs_f64(), "steps": kinds, "warnings": config.warnings,
            "env_overrides": config.env_overrides,
        }));
    } else {
        outln!(
            "ok: {} steps ({}), global timeout {}s",
            kinds.len(),
            kinds.join(" -> "),
            config.settings.timeout.as_secs_f64()
        );
        print_env_overrides(&config.env_overrides);
        for w in &config.warnings {
            outln!("warning: {w}");
        }
    }
    0
}

/// The environment variables that change what the file says (names only: a value may be a secret).
fn print_env_overrides(names: &[String]) {
    if !names.is_empty() {
        for (i, line) in wrap(&format!("from the environment: {}", names.join(", ")), 78)
            .iter()
            .enumerate()
        {
            outln!("{}{line}", if i == 0 { "" } else { "  " });
        }
    }
}

#[derive(Serialize)]
struct PlanStep {
    index: usize,
    name: String,
    kind: &'static str,
    enabled: bool,
    timeout_secs: f64,
    critical: bool,
    on_error: shutdown_core::OnError,
    actions: Vec<String>,
}

fn plan(path: &Path, grace: Option<f64>, json: bool, deny_warnings: bool) -> i32 {
    let config = match load(path, json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let node = PaperNode::new(&empty_scenario()).node();
    let pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID_CONFIG;
        }
    };
    let global = config.settings.timeout.as_secs_f64();
    let steps: Vec<PlanStep> = config
        .steps
        .iter()
        .zip(&pipeline.steps)
        .map(|(spec, built)| PlanStep {
            index: spec.index,
            name: spec.settings.name.clone(),
            kind: spec.registration.kind,
            enabled: spec.enabled,
            timeout_secs: spec.settings.timeout.as_secs_f64(),
            critical: spec.settings.critical,
            on_error: spec.settings.on_error,
            actions: built.step.as_ref().map(|s| s.plan()).unwrap_or_default(),
        })
        .collect();
    let sum: f64 = steps
        .iter()
        .filter(|s| s.enabled)
        .map(|s| s.timeout_secs)
        .sum();
    let critical_sum: f64 = steps
        .iter()
        .filter(|s| s.enabled && s.critical)
        .map(|s| s.timeout_secs)
        .sum();
    let mut warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    if sum > global {
        warnings.push(format!("the step timeouts add up to {sum}s, more than the global {global}s: late steps may not run"));
    }
    if critical_sum > global {
        warnings.push(format!("the critical steps need up to {critical_sum}s, more than the global {global}s: after a second signal they cannot all fit"));
    }
    if let Some(g) = grace {
        if global + HEADROOM_SECS > g {
            warnings.push(format!(
                "global timeout {global}s + {HEADROOM_SECS}s headroom does not fit in the {g}s grace period: the process would be killed before it can force-exit; raise the grace period or lower timeout_secs"
            ));
        }
    }
    if json {
        print_json(&serde_json::json!({
            "timeout_secs": global, "step_timeouts_sum_secs": sum, "critical_timeouts_sum_secs": critical_sum,
            "grace_period_secs": grace, "headroom_secs": HEADROOM_SECS, "steps": steps, "warnings": warnings,
            "env_overrides": config.env_overrides,
        }));
    } else {
        outln!(
            "{:<3} {:<16} {:<8} {:>8} {:<8} {:<8}",
            "#",
            "step",
            "kind",
            "timeout",
            "critical",
            "on_error"
        );
        for s in &steps {
            outln!(
                "{:<3} {:<16} {:<8} {:>7}s {:<8} {:<8}{}",
                s.index,
                s.name,
                s.kind,
                s.timeout_secs,
                if s.critical { "yes" } else { "no" },
                match s.on_error {
                    shutdown_core::OnError::Abort => "abort",
                    shutdown_core::OnError::Continue => "continue",
                },
                if s.enabled { "" } else { " (disabled)" }
            );
            for a in &s.actions {
                for (i, line) in wrap(a, 72).iter().enumerate() {
                    outln!("      {} {line}", if i == 0 { "-" } else { " " });
                }
            }
        }
        outln!();
        outln!(
            "budget: steps {sum}s, critical {critical_sum}s, global {global}s{}",
            grace
                .map(|g| format!(", grace period {g}s"))
                .unwrap_or_default()
        );
        print_env_overrides(&config.env_overrides);
        for w in &warnings {
            for (i, line) in wrap(&format!("warning: {w}"), 78).iter().enumerate() {
                outln!("{}{line}", if i == 0 { "" } else { "  " });
            }
        }
    }
    if deny_warnings && !warnings.is_empty() {
        1
    } else {
        0
    }
}

/// Split `text` into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

fn empty_scenario() -> Scenario {
    Scenario::from_toml("", "empty")
        .unwrap_or_else(|e| unreachable!("the empty scenario is valid: {e}"))
}

fn dry_run(
    config_path: &Path,
    scenario_path: &Path,
    seed: Option<u64>,
    json: bool,
    redis: Option<String>,
) -> i32 {
    let config = match load(config_path, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let scenario = match Scenario::load(scenario_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID_CONFIG;
        }
    };
    let paper = PaperNode::with_seed(&scenario, seed.unwrap_or(scenario.seed));
    let node = paper.node();
    let mut pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID_CONFIG;
        }
    };
    // A dry run leaves nothing behind: no report file.
    pipeline.settings.report_path = None;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let mut shutdown = Shutdown::new(pipeline, node).dry_run(true);
    if let Some(url) = redis {
        match shutdown_redis::RedisTarget::parse(&url) {
            Ok(target) => shutdown = shutdown.with_extension(target),
            Err(e) => {
                eprintln!("error: --redis: {e}");
                return exit_code::INVALID_CONFIG;
            }
        }
    }
    let report: Report = runtime.block_on(shutdown.run());
    if json {
        print_json(&report);
    } else {
        out!("{report}");
    }
    report.exit_code
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            1
        })
}

fn restore_options(redis: &RedisArgs, fallback_dir: PathBuf) -> RestoreOptions {
    RestoreOptions {
        url: redis.url(),
        trader_id: redis.trader_id.clone(),
        key_prefix: redis.key_prefix.clone(),
        fallback_dir,
        timeout: Duration::from_secs(5),
    }
}

fn report(file: Option<&Path>, redis: &RedisArgs, json: bool) -> i32 {
    let found = match file {
        Some(path) => shutdown_core::report::read_report(path),
        None => {
            if redis.url().is_none() {
                eprintln!("error: give --file PATH, or --redis URL (or set REDIS_URL)");
                return 2;
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            rt.block_on(shutdown_redis::restore(&restore_options(
                redis,
                PathBuf::from("shutdown-fallback"),
            )))
            .and_then(|r| match (r.last_report, r.redis_error) {
                (Some(report), _) => Ok(report),
                (None, Some(e)) => Err(e),
                (None, None) => Err(format!(
                    "no shutdown report recorded for {}",
                    redis.trader_id
                )),
            })
        }
    };
    match found {
        Ok(r) => {
            if json {
                print_json(&r);
            } else {
                out!("{r}");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn fleet(redis: Option<String>, trader_id: Option<String>, note: String) -> i32 {
    let Some(url) = redis.or_else(|| std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()))
    else {
        eprintln!("error: give --redis URL (or set REDIS_URL)");
        return 2;
    };
    let target = trader_id.unwrap_or_else(|| "*".into());
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let command = shutdown_redis::FleetCommand {
        target: target.clone(),
        note,
    };
    match rt.block_on(shutdown_redis::fleet::send(
        &url,
        &command,
        Duration::from_secs(5),
    )) {
        Ok(0) => {
            eprintln!(
                "error: no node is listening on {}",
                shutdown_redis::fleet::CHANNEL
            );
            1
        }
        Ok(n) => {
            let who = if target == "*" {
                "every node".to_owned()
            } else {
                target
            };
            outln!("sent to {n} listening node(s); asked {who} to shut down");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn restore(redis: &RedisArgs, fallback_dir: PathBuf, json: bool) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(shutdown_redis::restore(&restore_options(
        redis,
        fallback_dir,
    ))) {
        Ok(r) => {
            if json {
                print_json(&serde_json::json!({
                    "previous_shutdown": r.previous_shutdown,
                    "source": r.source,
                    "taken_at": r.snapshot.as_ref().map(|s| s.taken_at.clone()),
                    "counts": r.snapshot.as_ref().map(|s| s.counts()),
                    "last_report_outcome": r.last_report.as_ref().map(|l| l.outcome),
                    "redis_error": r.redis_error,
                    "summary": r.summary(),
                }));
            } else {
                outln!("{}", r.summary());
                if let Some(e) = &r.redis_error {
                    outln!("redis: {e}");
                }
                if let Some(l) = &r.last_report {
                    outln!(
                        "last report: {} (exit {}) at {}",
                        l.outcome,
                        l.exit_code,
                        l.started_at
                    );
                }
            }
            if r.previous_shutdown == PreviousShutdown::Unclean {
                10
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
