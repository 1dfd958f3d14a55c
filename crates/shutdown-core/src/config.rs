//! Pipeline configuration: TOML plus `SHUTDOWN_*` environment overrides, validated all at once, no I/O
//! beyond reading the file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::{Value, ValueKind};
use serde::Serialize;

use crate::node::Node;
use crate::pipeline::{
    DEFAULT_TIMEOUT_SECS, DEFAULT_TRADER_ID, MetricsConfig, OnError, Pipeline, PipelineSettings,
    PipelineStep, StepSettings,
};
use crate::registry::{Registry, StepConfig, StepOptions, StepRegistration, unknown_message};
use crate::signals::Signal;

/// Prefix of environment overrides: `SHUTDOWN_TIMEOUT_SECS=5` overrides `timeout_secs`.
pub const ENV_PREFIX: &str = "SHUTDOWN";
/// Prefix of a step's environment overrides, by step name: `SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS=15`
/// overrides `timeout_secs` of the step named `cancel`.
pub const STEP_ENV_PREFIX: &str = "SHUTDOWN_STEPS__";
/// The origin config values set from the environment carry.
const FROM_ENV: &str = "the environment";

const TOP_KEYS: &[&str] = &[
    "timeout_secs",
    "log_level",
    "signals",
    "report_path",
    "trader_id",
    "metrics",
    "steps",
    "cancel_orders",
    "verify_stop_losses",
    "flush_cache",
];
const COMPACT_SWITCHES: &[(&str, &str)] = &[
    ("cancel_orders", "cancel"),
    ("verify_stop_losses", "verify"),
    ("flush_cache", "flush"),
];
/// The pipeline the compact form builds, in order.
pub const DEFAULT_PIPELINE: &[&str] = &["halt", "cancel", "verify", "flush", "close"];
const METRICS_KEYS: &[&str] = &[
    "pushgateway_url",
    "textfile_path",
    "push_timeout_secs",
    "job",
];
const STEP_KEYS: &[&str] = &[
    "kind",
    "name",
    "timeout_secs",
    "critical",
    "on_error",
    "enabled",
];
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

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

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(step) = &self.step {
            write!(f, ": step {}", step.index)?;
            if let Some(name) = &step.name {
                write!(f, " ({name})")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
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

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
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

/// Environment variables and their values.
type Vars = Vec<(String, String)>;

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

impl PipelineConfig {
    /// Read and validate a TOML file with overrides from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigErrors> {
        Self::load_with(path, EnvOverrides::Process)
    }

    /// Read and validate a TOML file with the given overrides.
    pub fn load_with(path: impl AsRef<Path>, env: EnvOverrides) -> Result<Self, ConfigErrors> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let fail = |message: String| ConfigErrors {
            problems: vec![ConfigProblem {
                origin: origin.clone(),
                step: None,
                key: None,
                message,
            }],
        };
        if path.is_dir() {
            return Err(fail("is a directory, not a TOML file".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        Self::from_toml(&text, &origin, env)
    }

    /// Validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str, env: EnvOverrides) -> Result<Self, ConfigErrors> {
        let registry = Registry::global().map_err(|e| ConfigErrors {
            problems: vec![ConfigProblem {
                origin: origin.to_owned(),
                step: None,
                key: None,
                message: e.to_string(),
            }],
        })?;
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml));
        let vars: HashMap<String, String> = match env {
            EnvOverrides::Process => std::env::vars_os()
                // A variable that is not Unicode cannot be one of ours.
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            EnvOverrides::Vars(vars) => vars,
            EnvOverrides::None => HashMap::new(),
        };
        // A step's overrides are applied by step name, to its table: the `config` crate would replace
        // the whole [[steps]] array.
        let (step_vars, vars): (Vars, Vars) = vars
            .into_iter()
            .filter(|(k, v)| {
                !v.is_empty()
                    && k.strip_prefix(ENV_PREFIX)
                        .is_some_and(|rest| rest.starts_with('_'))
            })
            .partition(|(k, _)| k.starts_with(STEP_ENV_PREFIX));
        let mut env_overrides: Vec<String> = (step_vars.iter().chain(&vars))
            .map(|(k, _)| k.clone())
            .collect();
        env_overrides.sort();
        if !vars.is_empty() {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(vars.into_iter().collect())),
            );
        }
        let cfg = builder.build().map_err(|e| ConfigErrors {
            problems: vec![ConfigProblem {
                origin: origin.to_owned(),
                step: None,
                key: None,
                message: match e {
                    config::ConfigError::FileParse { cause, .. } => {
                        format!("invalid TOML: {}", cause.to_string().trim_end())
                    }
                    other => other.to_string(),
                },
            }],
        })?;
        let root = match cfg.cache.kind {
            ValueKind::Table(t) => t,
            _ => config::Map::new(),
        };
        let mut step_vars = step_vars;
        step_vars.sort();
        Parser {
            origin,
            registry,
            problems: Vec::new(),
            warnings: Vec::new(),
            step_vars,
            env_overrides,
        }
        .parse(root)
    }

    /// One enabled step for `node`: every missing role is named before the step's own build runs.
    fn build_step(
        &self,
        spec: &StepSpec,
        node: &Node,
        roles: &[crate::node::Role],
    ) -> Result<Arc<dyn crate::step::ShutdownStep>, String> {
        let missing: Vec<String> = spec
            .registration
            .requires
            .iter()
            .filter(|r| !roles.contains(r))
            .map(|r| r.to_string())
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

    /// Build the runnable pipeline for a node; fails when an enabled step needs a role the node lacks.
    pub fn build(&self, node: &Node) -> Result<Pipeline, ConfigErrors> {
        let roles = node.roles();
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for spec in &self.steps {
            let step = if spec.enabled {
                match self.build_step(spec, node, &roles) {
                    Ok(step) => Some(step),
                    Err(message) => {
                        problems.push(ConfigProblem {
                            origin: self.source.clone(),
                            step: Some(StepRef {
                                index: spec.index,
                                name: Some(spec.settings.name.clone()),
                            }),
                            key: None,
                            message,
                        });
                        continue;
                    }
                }
            } else {
                None
            };
            steps.push(PipelineStep {
                settings: spec.settings.clone(),
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

struct Parser<'a> {
    origin: &'a str,
    registry: &'static Registry,
    problems: Vec<ConfigProblem>,
    warnings: Vec<ConfigProblem>,
    /// `SHUTDOWN_STEPS__<NAME>__<KEY>` variables and their values, sorted.
    step_vars: Vec<(String, String)>,
    /// Names of every `SHUTDOWN_*` variable applied.
    env_overrides: Vec<String>,
}

/// Where a value came from: the file, or the environment variable that set `key`.
fn origin_of(value: &Value, file: &str, key_path: &str) -> String {
    match value.origin() {
        Some(FROM_ENV) => format!(
            "environment variable {ENV_PREFIX}_{}",
            key_path.replace('.', "__").to_uppercase()
        ),
        // A step's override carries its variable's name.
        Some(var) if var.starts_with(STEP_ENV_PREFIX) => format!("environment variable {var}"),
        _ => file.to_owned(),
    }
}

fn from_env(value: &Value) -> bool {
    value
        .origin()
        .is_some_and(|o| o == FROM_ENV || o.starts_with(STEP_ENV_PREFIX))
}

fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(i) => format!("integer {i}"),
        ValueKind::I128(i) => format!("integer {i}"),
        ValueKind::U64(i) => format!("integer {i}"),
        ValueKind::U128(i) => format!("integer {i}"),
        ValueKind::Float(x) => format!("float {x}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "an array".into(),
    }
}

impl Parser<'_> {
    fn problem(
        &mut self,
        value: Option<&Value>,
        step: Option<&StepRef>,
        key: &str,
        message: String,
    ) {
        let origin = value
            .map(|v| origin_of(v, self.origin, key))
            .unwrap_or_else(|| self.origin.to_owned());
        self.problems.push(ConfigProblem {
            origin,
            step: step.cloned(),
            key: (!key.is_empty()).then(|| key.to_owned()),
            message,
        });
    }

    fn seconds(&mut self, value: &Value, step: Option<&StepRef>, key: &str) -> Option<Duration> {
        let secs = match value.kind {
            ValueKind::Float(x) => Some(x),
            ValueKind::I64(i) => Some(i as f64),
            ValueKind::U64(i) => Some(i as f64),
            // Environment overrides are strings; in TOML a number must be a number.
            ValueKind::String(ref s) if from_env(value) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match secs {
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Some(Duration::from_secs_f64(s))
            }
            Some(s) => {
                self.problem(
                    Some(value),
                    step,
                    key,
                    format!("must be a finite number of seconds greater than 0 and at most 86400, found {s}"),
                );
                None
            }
            None => {
                self.problem(
                    Some(value),
                    step,
                    key,
                    format!(
                        "expected a number of seconds, found {}",
                        describe(&value.kind)
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value, step: Option<&StepRef>, key: &str) -> Option<bool> {
        let parsed = match &value.kind {
            ValueKind::Boolean(b) => Some(*b),
            ValueKind::String(s) if from_env(value) => match s.trim().to_ascii_lowercase().as_str()
            {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some(b) => Some(b),
            None => {
                self.problem(
                    Some(value),
                    step,
                    key,
                    format!("expected true or false, found {}", describe(&value.kind)),
                );
                None
            }
        }
    }

    fn string(&mut self, value: &Value, step: Option<&StepRef>, key: &str) -> Option<String> {
        match &value.kind {
            ValueKind::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    Some(value),
                    step,
                    key,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn one_of(
        &mut self,
        value: &Value,
        step: Option<&StepRef>,
        key: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let s = self.string(value, step, key)?;
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&s)) {
            Some(a) => Some(a),
            None => {
                let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
                self.problem(
                    Some(value),
                    step,
                    key,
                    format!("expected one of {}, found {s:?}", quoted.join(", ")),
                );
                None
            }
        }
    }

    fn parse(mut self, root: config::Map<String, Value>) -> Result<PipelineConfig, ConfigErrors> {
        let mut timeout = Some(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS));
        let mut log_level = "info".to_owned();
        let mut signals = vec![Signal::Term, Signal::Int];
        let mut report_path = None;
        let mut trader_id = DEFAULT_TRADER_ID.to_owned();
        let mut metrics = MetricsConfig::default();
        let mut switches: BTreeMap<&'static str, (bool, Value)> = BTreeMap::new();
        let mut step_values = None;

        // Sorted, so problems come out in a stable order whatever the map's order.
        let mut entries: Vec<(String, Value)> = root.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in entries {
            match key.as_str() {
                "timeout_secs" => timeout = self.seconds(&value, None, &key),
                "log_level" => {
                    if let Some(l) = self.one_of(&value, None, &key, LOG_LEVELS) {
                        log_level = l.to_owned();
                    }
                }
                "signals" => {
                    if let Some(s) = self.signals(&value) {
                        signals = s;
                    }
                }
                "report_path" => report_path = self.string(&value, None, &key).map(PathBuf::from),
                "trader_id" => match self.string(&value, None, &key) {
                    Some(t) if valid_trader_id(&t) => trader_id = t,
                    Some(t) => self.problem(
                        Some(&value),
                        None,
                        &key,
                        format!("must be 1 to 64 characters of letters, digits, `-`, `_` or `.`, found {t:?}"),
                    ),
                    None => {}
                },
                "steps" => step_values = Some(value),
                "metrics" => self.metrics(&value, &mut metrics),
                k => {
                    if let Some((name, _)) = COMPACT_SWITCHES.iter().find(|(s, _)| *s == k) {
                        if let Some(b) = self.boolean(&value, None, k) {
                            switches.insert(name, (b, value));
                        }
                    } else {
                        let message = unknown_message("key", k, TOP_KEYS);
                        self.problem(Some(&value), None, k, message);
                    }
                }
            }
        }

        let steps = match step_values {
            Some(value) => {
                for (switch, (_, v)) in &switches {
                    let kind = COMPACT_SWITCHES
                        .iter()
                        .find(|(s, _)| s == switch)
                        .map(|(_, k)| *k)
                        .unwrap_or_default();
                    self.problem(
                        Some(v),
                        None,
                        switch,
                        format!(
                            "belongs to the compact form (no [[steps]]); with [[steps]], set `enabled = false` on the `{kind}` step instead"
                        ),
                    );
                }
                self.steps(value)
            }
            None => {
                for (var, _) in std::mem::take(&mut self.step_vars) {
                    self.problems.push(ConfigProblem {
                        origin: format!("environment variable {var}"),
                        step: None,
                        key: None,
                        message: "overrides a step by name, and this config has no [[steps]] (compact form): write the pipeline as [[steps]] tables to override a step's keys".into(),
                    });
                }
                self.compact(&switches)
            }
        };

        if let Some(t) = timeout {
            for s in &steps {
                if s.settings.timeout > t {
                    self.warnings.push(ConfigProblem {
                        origin: self.origin.to_owned(),
                        step: Some(StepRef {
                            index: s.index,
                            name: Some(s.settings.name.clone()),
                        }),
                        key: Some("timeout_secs".into()),
                        message: format!(
                            "{}s is longer than the global timeout_secs ({}s); the step gets at most what is left of the global budget",
                            s.settings.timeout.as_secs_f64(),
                            t.as_secs_f64()
                        ),
                    });
                }
            }
        }

        match (self.problems.is_empty(), timeout) {
            (true, Some(timeout)) => Ok(PipelineConfig {
                source: self.origin.to_owned(),
                log_level,
                settings: PipelineSettings {
                    timeout,
                    signals,
                    report_path,
                    trader_id,
                    metrics,
                },
                steps,
                warnings: self.warnings,
                env_overrides: self.env_overrides,
            }),
            _ => Err(ConfigErrors {
                problems: self.problems,
            }),
        }
    }

    fn metrics(&mut self, value: &Value, metrics: &mut MetricsConfig) {
        let ValueKind::Table(table) = &value.kind else {
            let message = format!(
                "expected a [metrics] table, found {}",
                describe(&value.kind)
            );
            self.problem(Some(value), None, "metrics", message);
            return;
        };
        let mut entries: Vec<(&String, &Value)> = table.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, v) in entries {
            let path = format!("metrics.{key}");
            match key.as_str() {
                "pushgateway_url" => {
                    if let Some(u) = self.string(v, None, &path) {
                        if u.starts_with("http://") || u.starts_with("https://") {
                            metrics.pushgateway_url = Some(u.trim_end_matches('/').to_owned());
                        } else {
                            self.problem(Some(v), None, &path, format!("expected an http:// or https:// URL, found {u:?}"));
                        }
                    }
                }
                "textfile_path" => metrics.textfile_path = self.string(v, None, &path).map(PathBuf::from),
                "push_timeout_secs" => {
                    if let Some(t) = self.seconds(v, None, &path) {
                        metrics.push_timeout = t;
                    }
                }
                "job" => match self.string(v, None, &path) {
                    Some(j) if valid_trader_id(&j) => metrics.job = j,
                    Some(j) => self.problem(Some(v), None, &path, format!("must be 1 to 64 characters of letters, digits, `-`, `_` or `.`, found {j:?}")),
                    None => {}
                },
                other => {
                    let message = unknown_message("key", other, METRICS_KEYS);
                    self.problem(Some(v), None, &path, message);
                }
            }
        }
    }

    fn signals(&mut self, value: &Value) -> Option<Vec<Signal>> {
        let items = match &value.kind {
            ValueKind::Array(items) => items.clone(),
            // An environment override gives a comma-separated string.
            ValueKind::String(s) => s
                .split(',')
                .map(|p| Value::new(None, ValueKind::String(p.trim().to_owned())))
                .collect(),
            other => {
                self.problem(
                    Some(value),
                    None,
                    "signals",
                    format!(
                        "expected an array of signal names, found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for item in &items {
            let name = match &item.kind {
                ValueKind::String(s) => s.to_ascii_uppercase(),
                other => {
                    self.problem(
                        Some(value),
                        None,
                        "signals",
                        format!("expected a signal name, found {}", describe(other)),
                    );
                    continue;
                }
            };
            match name.parse::<Signal>() {
                Ok(signal) if !out.contains(&signal) => out.push(signal),
                Ok(_) => {}
                Err(e) => self.problem(Some(value), None, "signals", e.to_string()),
            }
        }
        if out.is_empty() && items.is_empty() {
            self.problem(
                Some(value),
                None,
                "signals",
                "must name at least one signal".into(),
            );
            return None;
        }
        Some(out)
    }

    fn compact(&mut self, switches: &BTreeMap<&'static str, (bool, Value)>) -> Vec<StepSpec> {
        let mut steps = Vec::new();
        for (i, kind) in DEFAULT_PIPELINE.iter().enumerate() {
            let enabled = COMPACT_SWITCHES
                .iter()
                .find(|(_, k)| k == kind)
                .and_then(|(s, _)| switches.get(s))
                .map(|(b, _)| *b)
                .unwrap_or(true);
            let step_ref = StepRef {
                index: i + 1,
                name: Some((*kind).to_owned()),
            };
            let reg = match self.registry.get(kind) {
                Ok(reg) => reg,
                Err(_) => {
                    self.problems.push(ConfigProblem {
                        origin: self.origin.to_owned(),
                        step: Some(step_ref),
                        key: None,
                        message: format!(
                            "the compact form builds {}, but step kind `{kind}` is not registered in this program (registered: {})",
                            DEFAULT_PIPELINE.join(" -> "),
                            self.registry.kind_names().join(", ")
                        ),
                    });
                    continue;
                }
            };
            match (reg.parse)(&StepOptions {
                table: config::Map::new(),
            }) {
                Ok(config) => steps.push(StepSpec {
                    index: i + 1,
                    settings: StepSettings::for_kind(reg.kind),
                    enabled,
                    registration: reg,
                    config,
                }),
                Err(errors) => self.option_errors(&step_ref, errors, &HashMap::new()),
            }
        }
        steps
    }

    /// A step's option errors; `from_vars` names the variable of each key set from the environment.
    fn option_errors(
        &mut self,
        step: &StepRef,
        errors: Vec<crate::registry::OptionError>,
        from_vars: &HashMap<String, String>,
    ) {
        for e in errors {
            let origin = e.key.as_ref().and_then(|k| from_vars.get(k));
            self.problems.push(ConfigProblem {
                origin: origin.cloned().unwrap_or_else(|| self.origin.to_owned()),
                step: Some(step.clone()),
                key: e.key,
                message: e.message,
            });
        }
    }

    /// Set each `SHUTDOWN_STEPS__<NAME>__<KEY>` variable's value as `<key>` of the step named
    /// `<name>` (its `name`, else its `kind`; matched ignoring case, `-` written `_`).
    fn apply_step_vars(&mut self, items: &mut [Value]) {
        let names: Vec<Option<String>> = items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::Table(t) => ["name", "kind"].iter().find_map(|k| match t.get(*k) {
                    Some(Value {
                        kind: ValueKind::String(s),
                        ..
                    }) => Some(s.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .collect();
        let env_name = |name: &str| name.to_ascii_uppercase().replace('-', "_");
        for (var, value) in std::mem::take(&mut self.step_vars) {
            let rest = &var[STEP_ENV_PREFIX.len()..];
            let mut problem = |message: String| {
                self.problems.push(ConfigProblem {
                    origin: format!("environment variable {var}"),
                    step: None,
                    key: None,
                    message,
                });
            };
            let Some((name, key)) = rest
                .split_once("__")
                .filter(|(n, k)| !n.is_empty() && !k.is_empty() && !k.contains("__"))
            else {
                problem(format!(
                    "expected {STEP_ENV_PREFIX}<STEP NAME>__<KEY>, as in {STEP_ENV_PREFIX}CANCEL__TIMEOUT_SECS"
                ));
                continue;
            };
            let Some(i) = names
                .iter()
                .position(|n| n.as_deref().is_some_and(|n| env_name(n) == env_name(name)))
            else {
                let known: Vec<String> = names.iter().flatten().map(|n| env_name(n)).collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                problem(unknown_message("step name", name, &known));
                continue;
            };
            if let ValueKind::Table(t) = &mut items[i].kind {
                t.insert(
                    key.to_ascii_lowercase(),
                    Value::new(Some(&var), ValueKind::String(value)),
                );
            }
        }
    }

    fn steps(&mut self, value: Value) -> Vec<StepSpec> {
        let items = match &value.kind {
            ValueKind::Array(items) => items.clone(),
            other => {
                let message = format!(
                    "expected an array of [[steps]] tables, found {}",
                    describe(other)
                );
                self.problem(Some(&value), None, "steps", message);
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.problem(
                Some(&value),
                None,
                "steps",
                "the pipeline has no steps".into(),
            );
            return Vec::new();
        }
        let mut items = items;
        self.apply_step_vars(&mut items);
        let mut steps = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let index = i + 1;
            let table = match item.kind {
                ValueKind::Table(ref t) => t.clone(),
                ref other => {
                    let message = format!("expected a table, found {}", describe(other));
                    self.problem(
                        Some(&item),
                        Some(&StepRef { index, name: None }),
                        "",
                        message,
                    );
                    continue;
                }
            };
            let name = table.get("name").and_then(|v| match &v.kind {
                ValueKind::String(s) => Some(s.clone()),
                _ => None,
            });
            let kind = table.get("kind").and_then(|v| match &v.kind {
                ValueKind::String(s) => Some(s.clone()),
                _ => None,
            });
            let step_ref = StepRef {
                index,
                name: name.clone().or_else(|| kind.clone()),
            };
            if let Some(spec) = self.step(index, &step_ref, table) {
                if let Some(first) = seen.get(&spec.settings.name) {
                    self.problems.push(ConfigProblem {
                        origin: self.origin.to_owned(),
                        step: Some(step_ref.clone()),
                        key: Some("name".into()),
                        message: format!(
                            "duplicate step name `{}` (also step {first}); give each step a unique `name`",
                            spec.settings.name
                        ),
                    });
                } else {
                    seen.insert(spec.settings.name.clone(), index);
                }
                steps.push(spec);
            }
        }
        steps
    }

    fn step(
        &mut self,
        index: usize,
        step_ref: &StepRef,
        mut table: config::Map<String, Value>,
    ) -> Option<StepSpec> {
        let step = Some(step_ref);
        let reg = match table.remove("kind") {
            None => {
                self.problem(
                    None,
                    step,
                    "kind",
                    format!(
                        "missing; every step needs a kind (registered: {})",
                        self.registry.kind_names().join(", ")
                    ),
                );
                None
            }
            Some(v) => self
                .string(&v, step, "kind")
                .and_then(|k| match self.registry.get(&k) {
                    Ok(reg) => Some(reg),
                    Err(message) => {
                        self.problem(Some(&v), step, "kind", message);
                        None
                    }
                }),
        };
        let name = match table.remove("name") {
            Some(v) => match self.string(&v, step, "name") {
                Some(n) if !n.trim().is_empty() => Some(n),
                Some(_) => {
                    self.problem(Some(&v), step, "name", "must not be empty".into());
                    None
                }
                None => None,
            },
            None => reg.map(|r| r.kind.to_owned()),
        };
        let timeout = match table.remove("timeout_secs") {
            Some(v) => self.seconds(&v, step, "timeout_secs"),
            None => reg.map(|r| Duration::from_secs_f64(r.default_timeout_secs)),
        };
        let critical = match table.remove("critical") {
            Some(v) => self.boolean(&v, step, "critical"),
            None => reg.map(|r| r.critical),
        };
        let on_error = match table.remove("on_error") {
            Some(v) => self
                .one_of(&v, step, "on_error", &["continue", "abort"])
                .map(|s| {
                    if s == "abort" {
                        OnError::Abort
                    } else {
                        OnError::Continue
                    }
                }),
            None => Some(OnError::Continue),
        };
        let enabled = match table.remove("enabled") {
            Some(v) => self.boolean(&v, step, "enabled"),
            None => Some(true),
        };
        let reg = reg?;
        let from_vars: HashMap<String, String> = table
            .iter()
            .filter(|(_, v)| from_env(v))
            .map(|(k, v)| (k.clone(), origin_of(v, self.origin, k)))
            .collect();
        let config = match (reg.parse)(&StepOptions { table }) {
            Ok(c) => Some(c),
            Err(errors) => {
                // The step's own unknown keys may be misspelt common keys.
                let errors = errors
                    .into_iter()
                    .map(|mut e| {
                        if let Some(k) = &e.key {
                            if let Some(common) = crate::registry::closest(k, STEP_KEYS) {
                                if !e.message.contains("did you mean") {
                                    e.message.push_str(&format!("; did you mean `{common}`?"));
                                }
                            }
                        }
                        e
                    })
                    .collect();
                self.option_errors(step_ref, errors, &from_vars);
                None
            }
        };
        let mut settings = StepSettings::for_kind(reg.kind);
        settings.name = name?;
        settings.timeout = timeout?;
        settings.critical = critical?;
        settings.on_error = on_error?;
        Some(StepSpec {
            index,
            settings,
            enabled: enabled?,
            registration: reg,
            config: config?,
        })
    }
}

fn valid_trader_id(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
