#![deny(unreachable_pub)]
//! Graceful, bounded, observable shutdown for live trading nodes.
//!
//! A shutdown is a pipeline of steps (halt, cancel, verify, flush, close, or your own) assembled from
//! TOML or in code and run by [`Shutdown`] when a signal, a call or a fleet command asks for it:
//! in order, each under its own budget capped by the global one, with `on_error` and `critical`
//! policies, panics caught, escalation on the second and third signal, and a [`Report`] whose
//! [`Outcome`] maps to the process exit code.
//!
//! ```no_run
//! use shutdown_core::{Node, PipelineConfig, Shutdown};
//!
//! # async fn node() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PipelineConfig::load("shutdown.toml")?;
//! let node = Node::new(); // add the roles your venue has: .with_gate(..).with_orders(..)
//! let shutdown = Shutdown::new(config.build(&node)?, node).exit_process(true);
//! let _signals = shutdown.listen_signals()?;
//! shutdown.run_when_requested().await; // exits with the outcome's code
//! # Ok(()) }
//! ```
//!
//! # The parts
//!
//! Every public item has one path: the pipeline machinery at the root, every error type under
//! [`errors`], and four namespaces for what is not pipeline machinery: [`domain`] and [`node`] (the
//! trading vocabulary the steps speak: orders, positions, and the roles a [`Node`] plays), [`retry`]
//! (backoff for steps that retry) and [`systemd`] (the notify protocol), with [`redact`] for URLs in
//! messages. Inside, the imports run one way, leaves first:
//!
//! - `signal`, `secs`, `fields`, `options`, `redact`, `retry`: leaves;
//! - `trading/`: the domain, the node's roles, `Counter`, `TradingHold`;
//! - `trigger` (the handle and its reasons), `step` (the trait, its context and output), `report`
//!   (what a report is, and its sinks);
//! - `pipeline` (steps with their settings), `registry` (kinds by name), `config/` (TOML to a
//!   pipeline), `plan` and `after_deadline` (what a budget adds up to);
//! - `runner/` (one run of a job: supervision, the report so far, the force-exit thread), which
//!   `shutdown` (the builder) sets up and `signals` (the listener) triggers.

mod after_deadline;
mod config;
mod exit_hooks;
mod fields;
mod options;
mod pipeline;
mod plan;
pub mod redact;
mod registry;
mod report;
pub mod retry;
mod runner;
mod secs;
mod shutdown;
mod signal;
mod signals;
mod step;
pub mod systemd;
mod trading;
mod trigger;

pub use crate::trading::domain;

/// The roles a node plays for the steps: each a trait the venue's code implements, gathered in a
/// [`Node`].
pub mod node {
    pub use crate::trading::roles::{
        CancelAck, CancelRules, Connections, ExitRequest, MassCancelAck, MassCancelRules,
        MassCancelScope, OrderGateway, PositionBook, Role, RoleResult, StateSource, StopRequest,
        TradingGate,
    };
}

/// What `register_step!` expands to needs; not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::fields::field_names;
    pub use crate::options::{defaults_of, doc_text, shown_default};
    pub use crate::registry::parse_boxed;
    pub use inventory;
}

pub use crate::after_deadline::AfterDeadline;
pub use crate::config::{EnvOverrides, MAX_FILE_BYTES, PipelineConfig};
pub use crate::options::{OptionDoc, OptionType};
pub use crate::pipeline::{
    DEFAULT_TIMEOUT_SECS, MetricsConfig, OnError, Pipeline, PipelineSettings, PipelineStep,
    StepSettings, SystemdConfig,
};
pub use crate::plan::Budget;
pub use crate::registry::{
    ParseFn, Registry, StepConfig, StepOptions, StepRegistration, out_of_range,
};
pub use crate::report::{
    Count, DEFAULT_SINK_TIMEOUT, EscalationReport, FileSink, LogSink, Outcome, Report, ReportSink,
    StepOutcome, StepReport, exit_code, read_report, write_atomic,
};
pub use crate::secs::secs;
pub use crate::shutdown::Shutdown;
pub use crate::signal::Signal;
pub use crate::signals::SignalListener;
pub use crate::step::{
    DEFAULT_TRADER_ID, DryRunDir, Extensions, Partial, Receipt, SharedResults, ShutdownStep,
    StepContext, StepDefaults, StepError, StepOutput,
};
pub use crate::trading::{Counter, Node, TradingHold};
pub use crate::trigger::{Escalation, Level, Reason, ShutdownHandle};

/// Every error type of this crate.
pub mod errors {
    pub use crate::config::{ConfigErrors, ConfigProblem};
    pub use crate::fields::FieldError;
    pub use crate::registry::{OptionError, RegistryError, UnknownKind};
    pub use crate::report::{ReadReportError, SinkError};
    pub use crate::signal::UnknownSignal;
    pub use crate::step::StepError;
    pub use crate::trading::roles::{MissingRole, RoleError};
}

#[cfg(test)]
mod testing;
