//! Pipeline configuration: a TOML file (read with the `config` crate) and `SHUTDOWN_*` environment
//! overrides, validated all at once into a [`PipelineConfig`], with no I/O beyond reading the file;
//! [`PipelineConfig::build`] turns it into the [`Pipeline`] a node runs.
//!
//! - `load.rs`: the file and the environment, into one tree of values that know their origin;
//! - `fields.rs`: typed values (seconds, names, signals, choices) read by serde, every error kept;
//! - `parse.rs`: the tree into a `PipelineConfig`: top-level keys, `[metrics]`, each step;
//! - `compact.rs`: the compact form (no `[[steps]]`).

mod compact;
mod load;
mod parse;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

pub use self::load::MAX_FILE_BYTES;
use crate::pipeline::{Pipeline, PipelineSettings, PipelineStep, StepSettings};
use crate::registry::{Registry, StepConfig, StepRegistration};
use crate::step::ShutdownStep;
use crate::trading::roles::{Node, Role};

/// The pipeline the compact form builds, in order.
pub(crate) const DEFAULT_PIPELINE: &[&str] = &["halt", "cancel", "verify", "flush", "close"];

/// Which step a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRef {
    /// 1-based position in the pipeline.
    pub index: usize,
    /// The step's name, when it has one yet.
    pub name: Option<String>,
}

/// One problem (or warning) in a configuration, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConfigProblem {
    /// The file, or the environment variable, the value came from.
    pub origin: String,
    /// The step, when the problem is inside `[[steps]]`.
    pub step: Option<StepRef>,
    /// The key, when one is to blame.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with the whole of `origin`.
    pub fn new(origin: &str, message: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            step: None,
            key: None,
            message: message.into(),
        }
    }

    /// About this step.
    pub fn at_step(mut self, step: Option<&StepRef>) -> Self {
        self.step = step.cloned();
        self
    }

    /// About this key.
    pub fn at_key(mut self, key: Option<&str>) -> Self {
        self.key = key.filter(|k| !k.is_empty()).map(str::to_owned);
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(step) = &self.step {
            write!(f, ": step {}", step.index)?;
            if let Some(name) = &step.name {
                write!(f, " ({})", crate::fields::shorten(name))?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": `{}`", crate::fields::shorten(key))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    /// One problem with the whole of `origin`.
    pub fn one(origin: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem::new(origin, message)],
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let s = if n == 1 { "" } else { "s" };
        write!(f, "{n} configuration problem{s}:")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Where environment overrides come from.
#[derive(Debug, Clone, Default)]
pub enum EnvOverrides {
    /// The process environment (`SHUTDOWN_*`).
    #[default]
    Process,
    /// These variables only (full names, `SHUTDOWN_TIMEOUT_SECS`).
    Vars(HashMap<String, String>),
    /// No overrides.
    None,
}

/// A validated step of a [`PipelineConfig`]: its settings and how to build it.
#[derive(Debug)]
#[non_exhaustive]
pub struct StepSpec {
    /// 1-based position.
    pub index: usize,
    /// Name, kind, budget and policies, as the built step will have them.
    pub settings: StepSettings,
    /// Whether the step runs at all.
    pub enabled: bool,
    /// The registration of the step's kind.
    pub registration: &'static StepRegistration,
    /// The step's parsed options.
    pub config: Box<dyn StepConfig>,
}

/// A validated pipeline configuration: nothing built, nothing connected.
#[derive(Debug)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// Where it came from (a path, or a name given by the caller).
    pub source: String,
    /// Log level (`trace` .. `error`).
    pub log_level: String,
    /// Budget, signals, report path, trader id, metrics: what the built pipeline gets.
    pub settings: PipelineSettings,
    /// Steps in order.
    pub steps: Vec<StepSpec>,
    /// Non-fatal findings (a step timeout longer than the global one, say).
    pub warnings: Vec<ConfigProblem>,
    /// Names of the `SHUTDOWN_*` environment variables that override the file, sorted (names only:
    /// a value may be a secret).
    pub env_overrides: Vec<String>,
}

impl PipelineConfig {
    /// Read and validate a TOML file with overrides from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        Self::load_with(path, EnvOverrides::Process)
    }

    /// Read and validate a TOML file with the given overrides. The file must be a regular file of
    /// at most [`MAX_FILE_BYTES`].
    pub fn load_with(path: impl AsRef<Path>, env: EnvOverrides) -> Result<Self, ConfigErrors> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        Self::load_in(path, env, global_registry(&origin)?)
    }

    /// Validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str, env: EnvOverrides) -> Result<Self, ConfigErrors> {
        Self::from_toml_in(text, origin, env, global_registry(origin)?)
    }

    /// [`Self::load_with`], the step kinds looked up in `registry`.
    pub(crate) fn load_in(
        path: impl AsRef<Path>,
        env: EnvOverrides,
        registry: &'static Registry,
    ) -> Result<Self, ConfigErrors> {
        let path = path.as_ref();
        let text = load::read_file(path)?;
        Self::from_toml_in(&text, &path.display().to_string(), env, registry)
    }

    /// [`Self::from_toml`], the step kinds looked up in `registry`.
    pub(crate) fn from_toml_in(
        text: &str,
        origin: &str,
        env: EnvOverrides,
        registry: &'static Registry,
    ) -> Result<Self, ConfigErrors> {
        let mut root = load::parse_toml(text, origin)?;
        let vars = load::variables(env);
        let env_problems = load::overlay(&mut root, &vars);
        let env_overrides = vars.into_iter().map(|(name, _)| name).collect();
        parse::Parser::new(origin, registry, env_problems).parse(root, env_overrides)
    }

    /// Build the runnable pipeline for a node; fails when an enabled step needs a role the node
    /// lacks (every such step is named).
    pub fn build(&self, node: &Node) -> Result<Pipeline, ConfigErrors> {
        let roles = node.roles();
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for spec in &self.steps {
            let step = match build_step(spec, node, &roles) {
                Ok(step) => Some(step),
                // A disabled step the node cannot build never runs: its absence is what matters.
                Err(_) if !spec.enabled => None,
                Err(message) => {
                    let at = StepRef {
                        index: spec.index,
                        name: Some(spec.settings.name.clone()),
                    };
                    problems.push(ConfigProblem::new(&self.source, message).at_step(Some(&at)));
                    continue;
                }
            };
            steps.push(PipelineStep {
                settings: spec.settings.clone(),
                enabled: spec.enabled,
                step,
            });
        }
        if !problems.is_empty() {
            return Err(ConfigErrors { problems });
        }
        Ok(Pipeline {
            settings: self.settings.clone(),
            steps,
        })
    }
}

/// One enabled step for `node`: every missing role is named before the step's own build runs.
fn build_step(
    spec: &StepSpec,
    node: &Node,
    roles: &[Role],
) -> Result<Arc<dyn ShutdownStep>, String> {
    let missing: Vec<String> = (spec.registration.requires.iter())
        .filter(|r| !roles.contains(r))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "step kind `{}` needs the {} role{}, which this node does not provide",
            spec.registration.kind,
            missing.join(" and "),
            if missing.len() == 1 { "" } else { "s" }
        ));
    }
    spec.config
        .build(node)
        .map(Arc::from)
        .map_err(|e| e.to_string())
}

/// The kinds linked into the program (see [`Registry::global`]).
fn global_registry(origin: &str) -> Result<&'static Registry, ConfigErrors> {
    Registry::global().map_err(|e| ConfigErrors::one(origin, e.to_string()))
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
