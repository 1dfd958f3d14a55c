//! `resume`: the last step of a start gate. It opens the trading gate only when every step before
//! it succeeded with no problem left (every difference handled, every position protected), and
//! confirms it by reading the gate back. Otherwise the gate stays halted and the step says why.

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
    /// Options of `resume`.
    pub struct ResumeConfig {
        /// Read the gate back and fail unless it reports open.
        pub confirm: bool = true,
        /// Retries of a transient or rate-limited resume call.
        pub retries: u32 = 3,
    }
}

impl StepConfig for ResumeConfig {
    fn validate(&self) -> Vec<OptionError> {
        out_of_range("retries", self.retries, 0, 100)
            .into_iter()
            .collect()
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Resume {
            config: self.clone(),
            gate: node.gate()?,
        }))
    }
}

/// The `resume` step.
pub struct Resume {
    config: ResumeConfig,
    gate: Arc<dyn TradingGate>,
}

/// Why the steps before this one keep the gate halted: each step that did not succeed, or succeeded
/// with problems left, read from the receipt.
fn holds(receipt: &serde_json::Value) -> Vec<String> {
    let steps = receipt["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut holds = Vec::new();
    for s in steps {
        let name = s["name"].as_str().unwrap_or("?");
        let outcome = s["outcome"].as_str().unwrap_or("?");
        if outcome != "succeeded" {
            let error = s["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            holds.push(format!("{name} {outcome}{error}"));
            continue;
        }
        let problems = s["problems"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(first) = problems.first().and_then(|p| p.as_str()) {
            let more = match problems.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            holds.push(format!("{name}: {first}{more}"));
        }
    }
    if steps.is_empty() && receipt["steps"].is_null() {
        holds.push("the steps before this one cannot be read".into());
    }
    holds
}

#[async_trait]
impl ShutdownStep for Resume {
    fn kind(&self) -> &'static str {
        "resume"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn if_not_done(&self) -> Option<String> {
        Some("the trading gate stays halted: the node does not trade".into())
    }

    fn plan(&self) -> Vec<String> {
        let mut plan = vec![
            "open the trading gate only if every step before succeeded with no problem left (a skipped step holds it too) and no hold (a fleet halt) forbids trading".to_owned(),
        ];
        if self.config.confirm {
            plan.push("read the gate back; fail unless it reports open".into());
        }
        plan
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let mut held_by = holds(&ctx.receipt.to_json());
        if let Some(why) = ctx
            .extensions
            .get::<shutdown_core::TradingHold>()
            .and_then(|h| h.why())
        {
            held_by.push(why);
        }
        if !held_by.is_empty() {
            return Err(StepError::new(format!(
                "the trading gate stays halted: {}",
                held_by.join("; ")
            ))
            .detail("resumed", false)
            .detail("held_by", &held_by)
            .summary("trading gate left halted"));
        }
        let c = &self.config;
        gate::set(&*self.gate, false, c.confirm, c.retries, ctx.deadline).await
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(2.0, false);

shutdown_core::register_step! {
    kind: "resume",
    summary: "At start: open the trading gate, only when every step before succeeded with nothing left outstanding; confirm it by reading the gate back.",
    config: ResumeConfig,
    requires: [TradingGate],
    defaults: DEFAULTS,
}
