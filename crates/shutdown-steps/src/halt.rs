//! `halt`: stop new orders at the source, and confirm it by reading the gate back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::TradingGate;
use shutdown_core::registry::out_of_range;
use shutdown_core::{
    Node, OptionDoc, ShutdownStep, StepConfig, StepContext, StepError, StepOutput,
};

use shutdown_core::retry::{Backoff, retry, work_deadline};

/// Options of `halt`.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "confirm",
        ty: "bool",
        default: "true",
        doc: "Read the gate back and fail unless it reports halted.",
    },
    OptionDoc {
        name: "retries",
        ty: "integer",
        default: "3",
        doc: "Retries of a transient or rate-limited halt call.",
    },
];

/// Options of `halt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaltConfig {
    /// Read the gate back.
    pub confirm: bool,
    /// Retries.
    pub retries: u32,
}

impl Default for HaltConfig {
    fn default() -> Self {
        Self {
            confirm: true,
            retries: 3,
        }
    }
}

impl StepConfig for HaltConfig {
    fn validate(&self) -> Vec<OptionError> {
        out_of_range("retries", self.retries, 0, 100)
            .into_iter()
            .collect()
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Halt {
            config: self.clone(),
            gate: node.gate()?,
        }))
    }
}

/// The `halt` step.
pub struct Halt {
    config: HaltConfig,
    gate: Arc<dyn TradingGate>,
}

#[async_trait]
impl ShutdownStep for Halt {
    fn kind(&self) -> &'static str {
        "halt"
    }

    fn if_not_done(&self) -> Option<String> {
        Some(
            "new orders were not halted at the source: strategies may still have sent orders"
                .into(),
        )
    }

    fn plan(&self) -> Vec<String> {
        let mut plan = vec!["halt new orders at the trading gate".to_owned()];
        if self.config.confirm {
            plan.push("read the gate back; fail unless it reports halted".into());
        }
        plan
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let backoff = Backoff {
            retries: self.config.retries,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        let deadline = work_deadline(ctx.deadline);
        let (result, attempts) = retry("halt", backoff, deadline, || self.gate.halt()).await;
        if let Err(e) = result {
            return Err(StepError::new(format!("the gate did not halt: {e}")).attempts(attempts));
        }
        let mut out = StepOutput::new()
            .attempts(attempts)
            .detail("halted", true)
            .summary("new orders halted");
        if self.config.confirm {
            let (state, _) =
                retry("halt-confirm", backoff, deadline, || self.gate.is_halted()).await;
            match state {
                Ok(true) => {
                    out = out
                        .detail("confirmed", true)
                        .summary("new orders halted (confirmed by reading the gate back)")
                }
                Ok(false) => {
                    return Err(
                        StepError::new("the gate still accepts new orders after halt")
                            .attempts(attempts)
                            .detail("confirmed", false),
                    );
                }
                Err(e) => {
                    return Err(StepError::new(format!("cannot read the gate back: {e}"))
                        .attempts(attempts));
                }
            }
        }
        Ok(out)
    }
}

shutdown_core::register_step! {
    kind: "halt",
    summary: "Stop new orders at the source and confirm it by reading the gate back.",
    config: HaltConfig,
    options: OPTIONS,
    requires: [TradingGate],
    critical: false,
    default_timeout_secs: 2.0,
}
