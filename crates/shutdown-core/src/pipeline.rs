//! What a configuration builds, and what the runner runs: a [`Pipeline`] of [`PipelineStep`]s with
//! the settings every pipeline and every step has.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::signal::Signal;
use crate::step::{DEFAULT_TRADER_ID, ShutdownStep, StepDefaults};

/// Global budget when the config sets none.
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;

/// What the runner does when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Go on with the next step; the shutdown ends degraded.
    #[default]
    Continue,
    /// Stop the pipeline; the shutdown ends aborted.
    Abort,
}

/// The settings every step has: who it is and how the runner treats it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StepSettings {
    /// Unique name in the pipeline (the kind when the config gives none).
    pub name: String,
    /// The kind the step was registered under.
    pub kind: &'static str,
    /// The step's own budget (capped by what is left of the global one).
    #[serde(rename = "timeout_secs", serialize_with = "ser_secs")]
    pub timeout: Duration,
    /// Runs even after the second signal.
    pub critical: bool,
    /// What a failure does to the pipeline.
    pub on_error: OnError,
}

impl StepSettings {
    /// The settings of a step of `kind` that the config says nothing about: named after its kind,
    /// with its `defaults` (timeout, criticality), `on_error = "continue"`.
    pub fn new(kind: &'static str, defaults: StepDefaults) -> Self {
        Self {
            name: kind.to_owned(),
            kind,
            timeout: defaults.timeout,
            critical: defaults.critical,
            on_error: OnError::Continue,
        }
    }
}

pub(crate) fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Where the shutdown's metrics go (`[metrics]`); a dying process cannot be scraped, so they are pushed
/// or written at the end of the shutdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Pushgateway base URL (`http://pushgateway:9091`).
    pub pushgateway_url: Option<String>,
    /// node_exporter textfile collector path (`/var/lib/node_exporter/textfile/shutdown.prom`).
    pub textfile_path: Option<PathBuf>,
    /// Bound on the push, so a dead Pushgateway delays the exit by at most this.
    #[serde(serialize_with = "ser_secs")]
    pub push_timeout: Duration,
    /// Job label of the pushed group.
    pub job: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            pushgateway_url: None,
            textfile_path: None,
            push_timeout: Duration::from_secs(2),
            job: "shutdown".into(),
        }
    }
}

/// `[systemd]`: how the shutdown keeps the service manager informed (only when `NOTIFY_SOCKET` is set).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SystemdConfig {
    /// How often a running step's progress is told (`STATUS=`); a critical step whose counters
    /// moved in the last interval gets the stop timeout extended by twice this.
    #[serde(rename = "progress_interval_secs", serialize_with = "ser_secs")]
    pub progress_interval: Duration,
}

impl Default for SystemdConfig {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// The settings of a whole pipeline, as configured and as run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PipelineSettings {
    /// Global budget.
    #[serde(rename = "timeout_secs", serialize_with = "ser_secs")]
    pub timeout: Duration,
    /// Signals that trigger and escalate the shutdown.
    pub signals: Vec<Signal>,
    /// Where the final report is written, if anywhere.
    pub report_path: Option<PathBuf>,
    /// The node's trader id (keys, metrics labels, report).
    pub trader_id: String,
    /// Where metrics go.
    pub metrics: MetricsConfig,
    /// What systemd hears.
    pub systemd: SystemdConfig,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
            signals: vec![Signal::Term, Signal::Int],
            report_path: None,
            trader_id: DEFAULT_TRADER_ID.to_owned(),
            metrics: MetricsConfig::default(),
            systemd: SystemdConfig::default(),
        }
    }
}

/// A step in a runnable pipeline: its settings, whether it runs, and the step.
#[derive(Clone)]
pub struct PipelineStep {
    /// Name, kind, budget and policies.
    pub settings: StepSettings,
    /// Whether it runs; a disabled step is reported as skipped, and when it judges the node's
    /// safety (it declares counts, as `cancel`, `verify` and `close` do) what its absence means.
    pub enabled: bool,
    /// The step; `None` only for a disabled step that could not be built (the node lacks a role it
    /// needs).
    pub step: Option<Arc<dyn ShutdownStep>>,
}

impl std::fmt::Debug for PipelineStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineStep")
            .field("settings", &self.settings)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl PipelineStep {
    /// A step with its own defaults ([`ShutdownStep::defaults`], the values its kind is registered
    /// with): an in-code `cancel` is critical and has its 10 s, as it would from TOML.
    pub fn new(step: impl ShutdownStep) -> Self {
        Self::from_boxed(Box::new(step))
    }

    /// A step built from a registered kind's config (`StepConfig::build`), with its own defaults.
    pub fn from_boxed(step: Box<dyn ShutdownStep>) -> Self {
        Self {
            settings: StepSettings::new(step.kind(), step.defaults()),
            enabled: true,
            step: Some(Arc::from(step)),
        }
    }

    /// Whether it runs (see [`PipelineStep::enabled`]).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Set the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Set the step's own timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Make the step critical (it runs after the second signal) or not.
    pub fn critical(mut self, critical: bool) -> Self {
        self.settings.critical = critical;
        self
    }

    /// Set the error policy.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.settings.on_error = on_error;
        self
    }
}

/// A runnable pipeline: built from a [`crate::PipelineConfig`], or in code.
///
/// ```
/// use std::time::Duration;
/// use shutdown_core::{Pipeline, PipelineStep};
/// # use shutdown_core::{ShutdownStep, StepContext, StepOutput, StepError};
/// # struct Flush;
/// # #[async_trait::async_trait]
/// # impl ShutdownStep for Flush {
/// #     fn kind(&self) -> &'static str { "flush" }
/// #     fn plan(&self) -> Vec<String> { vec![] }
/// #     async fn run(&self, _: StepContext) -> Result<StepOutput, StepError> { Ok(StepOutput::new()) }
/// # }
/// let pipeline = Pipeline::new(Duration::from_secs(10))
///     .push(PipelineStep::new(Flush).critical(true).timeout(Duration::from_secs(3)));
/// assert_eq!(pipeline.steps.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    /// Budget, signals, report path, trader id, metrics.
    pub settings: PipelineSettings,
    /// Steps in order.
    pub steps: Vec<PipelineStep>,
}

impl Pipeline {
    /// An empty pipeline with a global budget; SIGTERM and SIGINT; no report file.
    pub fn new(timeout: Duration) -> Self {
        Self {
            settings: PipelineSettings {
                timeout,
                ..PipelineSettings::default()
            },
            steps: Vec::new(),
        }
    }

    /// Append a step.
    pub fn push(mut self, step: PipelineStep) -> Self {
        self.steps.push(step);
        self
    }

    /// What each disabled step that judges the node's safety (it declares counts: `cancel`,
    /// `verify`, `close`) means for a shutdown, in words: its counts are reported unknown, and the
    /// run degraded.
    pub fn disabled_safety_steps(&self) -> Vec<String> {
        let disabled = self.steps.iter().enumerate().filter(|(_, ps)| !ps.enabled);
        disabled
            .filter_map(|(i, ps)| {
                let step = ps.step.as_ref().filter(|s| !s.counts().is_empty())?;
                let counts: Vec<&str> = step.counts().iter().map(|c| c.name()).collect();
                let consequence = step
                    .if_not_done()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                Some(format!(
                    "step {} ({}) is disabled{consequence}; every shutdown reports {} as unknown and ends degraded",
                    i + 1,
                    ps.settings.name,
                    counts.join(" and ")
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::step::{StepContext, StepError, StepOutput};

    struct Mine(Option<StepDefaults>);

    #[async_trait]
    impl ShutdownStep for Mine {
        fn kind(&self) -> &'static str {
            "mine"
        }
        fn defaults(&self) -> StepDefaults {
            self.0.unwrap_or(StepDefaults::DEFAULT)
        }
        async fn run(&self, _: StepContext) -> Result<StepOutput, StepError> {
            Ok(StepOutput::new())
        }
    }

    #[test]
    fn a_step_built_in_code_has_the_defaults_it_declares_and_no_registry_is_asked() {
        // "mine" is registered nowhere: what it says of itself is what it gets.
        let declared = PipelineStep::new(Mine(Some(StepDefaults::new(7.5, true))));
        assert_eq!(declared.settings.timeout, Duration::from_millis(7500));
        assert!(declared.settings.critical);
        assert_eq!(declared.settings.name, "mine");
        let silent = PipelineStep::new(Mine(None));
        assert_eq!(silent.settings.timeout, Duration::from_secs(5));
        assert!(!silent.settings.critical);
    }
}
