//! A custom step defined outside the toolkit: `notify` tells the operators that the node is stopping.
//!
//! It registers itself by kind through `inventory`, exactly as the built-in steps do, so any program
//! that links this crate can use `kind = "notify"` in its TOML.

use shutdown_core::StepDefaults;
use std::io::Write;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::out_of_range;
use shutdown_core::{Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};

shutdown_core::step_options! {
    /// Options of `notify`.
    pub struct NotifyConfig {
        /// What to tell the operators.
        pub message: String = "node stopping".into(),
        /// Append the message to this file as well as printing it.
        pub path: Option<std::path::PathBuf> = None,
        /// How long the notification channel takes to answer (to rehearse a slow step).
        pub delay_secs: f64 = 0.0,
    }
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
    requires: [],
    defaults: DEFAULTS,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_options_are_the_fields_with_their_defaults() {
        let registry = shutdown_core::Registry::global().expect("no duplicate kinds");
        let notify = registry.get("notify").expect("notify is registered");
        let docs = (notify.options)();
        let names: Vec<&str> = docs.iter().map(|o| o.name).collect();
        assert_eq!(names, (notify.fields)(), "documented = read");
        assert_eq!(&*docs[0].default, "\"node stopping\"");
        assert_eq!(&*docs[1].default, "none");
    }
}
