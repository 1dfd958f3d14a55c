//! A custom step defined outside the toolkit: `notify` tells the operators that the node is stopping.
//!
//! It registers itself by kind through `inventory`, exactly as the built-in steps do, so any program
//! that links this crate can use `kind = "notify"` in its TOML.

use shutdown_core::StepDefaults;
use std::io::Write;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::registry::out_of_range;
use shutdown_core::{
    Node, OptionDoc, ShutdownStep, StepConfig, StepContext, StepError, StepOutput,
};

/// Options of `notify`.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "message",
        ty: "string",
        default: "\"node stopping\"",
        doc: "What to tell the operators.",
    },
    OptionDoc {
        name: "path",
        ty: "string",
        default: "none",
        doc: "Append the message to this file as well as printing it.",
    },
    OptionDoc {
        name: "delay_secs",
        ty: "float",
        default: "0",
        doc: "How long the notification channel takes to answer (to rehearse a slow step).",
    },
];

/// Options of `notify`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The message.
    #[serde(default = "default_message")]
    pub message: String,
    /// A file to append to.
    #[serde(default)]
    pub path: Option<std::path::PathBuf>,
    /// Simulated latency.
    #[serde(default)]
    pub delay_secs: f64,
}

fn default_message() -> String {
    "node stopping".into()
}

impl StepConfig for NotifyConfig {
    fn validate(&self) -> Vec<OptionError> {
        out_of_range("delay_secs", self.delay_secs, 0.0, 86_400.0)
            .into_iter()
            .collect()
    }

    fn build(&self, _node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Notify(self.clone())))
    }
}

/// The `notify` step.
#[derive(Debug)]
pub struct Notify(NotifyConfig);

#[async_trait]
impl ShutdownStep for Notify {
    fn kind(&self) -> &'static str {
        "notify"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn plan(&self) -> Vec<String> {
        vec![format!("tell the operators: {:?}", self.0.message)]
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let line = format!(
            "notify: {} (reason {}, trader {})",
            self.0.message, ctx.reason, ctx.trader_id
        );
        if ctx.dry_run {
            // Nothing leaves the process in a dry run: not a line on the node's stdout (which a
            // `--json` caller parses), not a line in the file.
            return Ok(StepOutput::new()
                .detail("message", &self.0.message)
                .detail("dry_run", true)
                .summary(format!("would post {:?}", self.0.message)));
        }
        println!("{line}");
        let _ = std::io::stdout().flush();
        if self.0.delay_secs > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(self.0.delay_secs)).await;
        }
        if let Some(path) = &self.0.path {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| StepError::new(format!("cannot open {}: {e}", path.display())))?;
            writeln!(f, "{line}")
                .map_err(|e| StepError::new(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(StepOutput::new()
            .detail("message", &self.0.message)
            .summary(format!("posted {:?}", self.0.message)))
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(2.0, false);

shutdown_core::register_step! {
    kind: "notify",
    summary: "Tell the operators the node is stopping (an example of a step defined in its own crate).",
    config: NotifyConfig,
    options: OPTIONS,
    requires: [],
    defaults: DEFAULTS,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_options_are_the_fields_with_their_defaults() {
        let registry = shutdown_core::Registry::global().expect("no duplicate kinds");
        let notify = registry.get("notify").expect("notify is registered");
        assert_eq!(notify.drift(), Vec::<String>::new());
    }
}
