//! `shutdownctl`, the operator's view of a shutdown pipeline, as a library: list step kinds, validate
//! and plan a config, dry-run it against a scenario on the paper venue, read a shutdown report,
//! restore, fleet commands. A node binary that links its own step crates can offer the same
//! commands with its kinds by calling [`main`].
//!
//! One module per command under `cmd/`; `output.rs` writes to the terminal.
//!
//! Cargo feature `redis` (default): the `flush` step, `restore`, `fleet` and reading reports from
//! Redis. Without it (`default-features = false`), a node that only wants its own steps and the
//! built-in ones gets the commands without building a Redis client, TLS or HTTP.

// Link the crates whose steps register themselves.
#[cfg(feature = "redis")]
extern crate shutdown_redis as _;
extern crate shutdown_steps as _;

mod cmd;
mod output;
pub mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "redis")]
use shutdown_redis::RedisTarget;

/// Validate, plan and dry-run graceful-shutdown pipelines for trading nodes.
#[derive(Parser)]
#[command(name = "shutdownctl", version, max_term_width = 80)]
pub struct Cli {
    /// Colour in the log on stderr: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// The run's log on stderr: -v info, -vv debug (SHUTDOWNCTL_LOG or RUST_LOG choose any
    /// filter). Without it the output is the command's alone: what the log would say of a run is
    /// in its report.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When stderr is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
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
        after_help = "Examples:\n  shutdownctl validate examples/configs/pipeline.toml\n  shutdownctl validate examples/configs/pipeline.toml --scenario examples/scenarios/venues/bybit.toml\n\nEnvironment overrides (SHUTDOWN_TIMEOUT_SECS=5, SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS=15, ...) apply, as they would in the node."
    )]
    Validate {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// Also warn where the config does not fit this scenario's venue and book (its profile's
        /// documented limits, its dead-man's switch).
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the ordered steps and the time budget against the orchestrator's grace period.
    #[command(
        after_help = "Examples:\n  shutdownctl plan examples/configs/pipeline.toml --grace-period 30\n  shutdownctl plan examples/configs/node.toml --k8s > trading-node.yaml\n\nExit codes: 0 fine, 1 warnings with --deny-warnings, 78 invalid config."
    )]
    Plan {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// Also warn where the config does not fit this scenario's venue and book (its profile's
        /// documented limits, its dead-man's switch).
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// The orchestrator's grace period in seconds (Kubernetes terminationGracePeriodSeconds,
        /// docker stop --time, systemd TimeoutStopSec).
        #[arg(long, value_name = "SECS")]
        grace_period: Option<f64>,
        /// Print the Kubernetes settings the budget needs (terminationGracePeriodSeconds, a preStop
        /// hook) as a Deployment manifest; with --grace-period, warn when the pod's is too short.
        #[arg(long)]
        k8s: bool,
        /// The preStop hook's sleep, in whole seconds, counted in the grace period (0: no hook).
        #[arg(long, value_name = "SECS", default_value_t = 2, requires = "k8s")]
        pre_stop: u64,
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
        #[allow(missing_docs)] // its arguments are documented
        #[command(flatten)]
        run: PaperRun,
        /// Flush to this Redis instead of a throwaway sink (the only side effect a dry run may have).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
    },
    /// Dry-run a start gate (reconcile, protect, resume) on the paper venue: the scenario's book is
    /// what the node knew when it stopped, its `[downtime]` what happened at the venue since.
    #[command(
        after_help = "Example:\n  shutdownctl reconcile examples/configs/start.toml --scenario examples/scenarios/downtime.toml\n\nPrints the start gate's report, whether the trading gate is open, and an audit: the gate must name every change the downtime made and open only with every position protected.\nExits with the start gate's exit code: 0 the gate opened, 10 it stays halted (a difference needs an operator, or a step failed), 11 aborted, 12 forced; 1 the audit failed; 78 invalid config or scenario."
    )]
    Reconcile {
        #[allow(missing_docs)] // its arguments are documented
        #[command(flatten)]
        run: PaperRun,
    },
    /// Print the last shutdown report: from a file a node wrote (`report_path`), or from Redis.
    #[command(
        after_help = "Examples:\n  shutdownctl report --file /var/lib/trader/shutdown-report.json\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl report --trader-id trader-001\n  shutdownctl report --file shutdown-report.json --timeline --svg shutdown.svg"
    )]
    Report {
        /// The report file.
        #[arg(long)]
        file: Option<PathBuf>,
        #[allow(missing_docs)] // its arguments are documented
        #[command(flatten)]
        redis: RedisArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Exit with the report's own exit code (0, 10, 11, 12), for scripts.
        #[arg(long)]
        exit_code: bool,
        /// Also draw the steps against their budgets and the global deadline.
        #[arg(long)]
        timeline: bool,
        /// Write the timeline as an SVG picture to this file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  shutdownctl completions bash > /etc/bash_completion.d/shutdownctl\n  shutdownctl completions zsh > \"${fpath[1]}/_shutdownctl\"\n  shutdownctl completions fish > ~/.config/fish/completions/shutdownctl.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  shutdownctl man > shutdownctl.1 && man ./shutdownctl.1")]
    Man,
    /// The fleet kill switch: halt, resume or shut down running nodes through Redis, and see who acknowledged.
    #[cfg(feature = "redis")]
    #[command(
        subcommand,
        after_help = "Examples:\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl fleet halt --all --note \"venue incident\" --wait 10\n  shutdownctl fleet status --redis redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/main"
    )]
    Fleet(FleetCommand),
    /// Say whether the previous shutdown was clean and what its last snapshot holds (reads only).
    #[cfg(feature = "redis")]
    #[command(
        after_help = "Example:\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl restore --trader-id trader-001 --fallback-dir /var/lib/trader/fallback\n\nExit codes: 0 clean or no previous run, 10 not clean (reconcile with the venue), 1 error."
    )]
    Restore {
        #[allow(missing_docs)] // its arguments are documented
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

/// A run on the paper venue: a pipeline config, a scenario, and how to print it.
#[derive(Debug, clap::Args)]
pub struct PaperRun {
    /// The pipeline config (TOML).
    pub config: PathBuf,
    /// The scenario (TOML): the book, the venue's behaviour and, for `reconcile`, its `[downtime]`.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `shutdownctl fleet ...`: the fleet kill switch.
#[cfg(feature = "redis")]
#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Halt trading on every node (--all) or one trader's nodes; persisted until `resume`.
    #[command(
        after_help = "Examples:\n  REDIS_URL=redis://:pw@cache:6379 shutdownctl fleet halt --all --note \"venue incident\" --wait 10\n  shutdownctl fleet halt --redis redis://cache:6379 --trader-id trader-007\n\nA node that is away when the halt is issued halts as soon as it is back.\nExit codes: 0 written (with --wait: every live node acknowledged), 1 some\nlive node did not acknowledge in time (named) or an error, 2 bad arguments\nor not confirmed."
    )]
    Halt(FleetArgs),
    /// Clear a halt of the same scope; nodes still covered by another halt stay halted.
    #[command(
        after_help = "Example:\n  shutdownctl fleet resume --trader-id trader-007 --wait 10\n\nA node does not resume trading by itself: its start gate (or its own code) opens the gate.\nExit codes: as for `fleet halt`."
    )]
    Resume(FleetArgs),
    /// Halt, and run the shutdown pipeline on every covered node (reason `fleet`).
    #[command(
        after_help = "Example:\n  shutdownctl fleet shutdown --all --note \"end of day\" --wait 30 --yes\n\nThe halt stays set: a node started later halts and shuts down too, until `resume`.\nExit codes: as for `fleet halt`."
    )]
    Shutdown(FleetArgs),
    /// The halts in force and every node seen: live or not, halted or not, its last acknowledgement.
    #[command(
        after_help = "Examples:\n  shutdownctl fleet status --json\n  shutdownctl fleet status --trader-id trader-007\n\nExit codes: 0 read, 1 cannot read, 2 no Redis given."
    )]
    Status {
        /// Redis URL (default: the REDIS_URL environment variable).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Only this trader's nodes, and the halts that cover them.
        #[arg(long)]
        trader_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Who a fleet command covers, and how to wait for it.
#[cfg(feature = "redis")]
#[derive(clap::Args)]
pub struct FleetArgs {
    /// Redis URL (default: the REDIS_URL environment variable).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Only this trader's nodes.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub trader_id: Option<String>,
    /// Every node.
    #[arg(long)]
    pub all: bool,
    /// Why: shown to nodes and in `fleet status`.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Wait up to SECS for every live covered node to acknowledge.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<f64>,
    /// Do not ask for confirmation of --all on a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a node keeps its snapshot and reports in Redis.
#[derive(clap::Args)]
pub struct RedisArgs {
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

#[cfg(feature = "redis")]
impl RedisArgs {
    /// Where Redis is: `--redis`, else `REDIS_URL`; `None` when neither is given.
    pub(crate) fn target(&self) -> Result<Option<RedisTarget>, String> {
        redis_target(self.redis.as_deref())
    }
}

/// `url`, else `REDIS_URL`, parsed; `None` when neither is given. The error never shows a password.
#[cfg(feature = "redis")]
pub(crate) fn redis_target(url: Option<&str>) -> Result<Option<RedisTarget>, String> {
    let env = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    url.map(str::to_owned)
        .or(env)
        .map(|u| RedisTarget::parse(&u).map_err(|e| e.to_string()))
        .transpose()
}

/// Parse the process's arguments, run the command, and return its exit code (logs go to stderr,
/// filtered by `SHUTDOWNCTL_LOG`, warnings by default).
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Whether `name` is one of the commands (`validate`, `plan`, ...): a node binary that offers them
/// hands its arguments to [`main_from`] when its first argument is one.
pub fn is_command(name: &str) -> bool {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == name)
}

/// As [`main`], with these arguments (the first is the program's name). Call it before any tokio
/// runtime is started: the commands start their own.
///
/// ```no_run
/// // A node binary that links its own step crates gets the operator commands with its kinds.
/// fn main() -> std::process::ExitCode {
///     let args: Vec<String> = std::env::args().collect();
///     if args.get(1).is_some_and(|a| shutdown_cli::is_command(a)) {
///         return shutdown_cli::main_from(args);
///     }
///     // ... otherwise start the runtime and the node
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(cli.color.enabled())
        .with_env_filter(log_filter(cli.verbose))
        .init();
    let code = run(cli);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The log on stderr: what `SHUTDOWNCTL_LOG` or `RUST_LOG` say; else, by `-v`, the run's log at info
/// or debug; else warnings from outside the pipeline only. A pipeline's own log lines (a step that
/// failed, the report as one line) say what its report says, and the report is the output.
fn log_filter(verbose: u8) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    for var in ["SHUTDOWNCTL_LOG", "RUST_LOG"] {
        if let Ok(filter) = EnvFilter::try_from_env(var) {
            return filter;
        }
    }
    EnvFilter::new(match verbose {
        0 => {
            "warn,shutdown=off,shutdown_core=off,shutdown_steps=off,shutdown_redis=off,shutdown_paper=off"
        }
        1 => "info",
        _ => "debug",
    })
}

/// Run one command; returns its exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Steps { json, markdown } => cmd::steps::run(json, markdown),
        Command::Validate {
            config,
            scenario,
            json,
        } => cmd::validate::run(&config, scenario.as_deref(), json),
        Command::Plan {
            config,
            scenario,
            grace_period,
            k8s,
            pre_stop,
            json,
            deny_warnings,
        } => cmd::plan::run(
            &config,
            cmd::plan::Options {
                scenario,
                grace_period,
                k8s: k8s.then_some(pre_stop),
                json,
                deny_warnings,
            },
        ),
        Command::DryRun { run, redis } => cmd::dry_run::run(&run, redis.as_deref()),
        Command::Reconcile { run } => cmd::reconcile::run(&run),
        Command::Report {
            file,
            redis,
            json,
            exit_code,
            timeline,
            svg,
        } => cmd::report::run(
            file.as_deref(),
            &redis,
            &cmd::report::View {
                json,
                exit_code,
                timeline,
                svg,
            },
        ),
        #[cfg(feature = "redis")]
        Command::Fleet(command) => cmd::fleet::run(command),
        #[cfg(feature = "redis")]
        Command::Restore {
            redis,
            fallback_dir,
            json,
        } => cmd::restore::run(&redis, fallback_dir, json),
        Command::Completions { shell } => cmd::docs::completions(shell),
        Command::Man => cmd::docs::man(),
    }
}
