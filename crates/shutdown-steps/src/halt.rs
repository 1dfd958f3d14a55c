//! `halt`: stop new orders at the source, and confirm it by reading the gate back.

use shutdown_core::StepDefaults;
use std::sync::Arc;

use async_trait::async_trait;

use crate::gate;
use serde::{Deserialize, Serialize};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::TradingGate;
use shutdown_core::out_of_range;
use shutdown_core::{Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};

shutdown_core::step_options! {
    /// Options of `halt`.
    pub struct HaltConfig {
        /// Read the gate back and fail unless it reports halted.
        pub confirm: bool = true,
        /// Retries of a transient or rate-limited halt call.
        pub retries: u32 = 3,
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

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
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
        let c = &self.config;
        gate::set(&*self.gate, true, c.confirm, c.retries, ctx.deadline).await
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(2.0, false);

shutdown_core::register_step! {
    kind: "halt",
    summary: "Stop new orders at the source and confirm it by reading the gate back.",
    config: HaltConfig,
    requires: [TradingGate],
    defaults: DEFAULTS,
}
