//! The tree of values into a [`PipelineConfig`]: the top-level keys, `[metrics]`, then each step
//! (the keys every step has, then its kind's own options), every problem kept with its origin.

use std::collections::HashMap;
use std::path::PathBuf;

use config::{Map, Value, ValueKind};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{ConfigErrors, ConfigProblem, PipelineConfig, StepRef, StepSpec};
use crate::fields::closest;
use crate::fields::{
    FieldError, Flag, HttpUrl, Id, LogLevel, OnErrorValue, Raw, Seconds, Signals, StepName,
    deserialize_all, field_names,
};
use crate::pipeline::{MetricsConfig, PipelineSettings, StepSettings};
use crate::registry::{Registry, StepOptions};

/// The top-level keys. `metrics` and `steps` are read on their own, so that their problems name
/// their own keys.
#[derive(Deserialize)]
pub(super) struct TopLevel {
    timeout_secs: Option<Seconds>,
    log_level: Option<LogLevel>,
    signals: Option<Signals>,
    report_path: Option<PathBuf>,
    trader_id: Option<Id>,
    pub(super) cancel_orders: Option<Flag>,
    pub(super) verify_stop_losses: Option<Flag>,
    pub(super) flush_cache: Option<Flag>,
    #[allow(dead_code)] // read on its own
    metrics: Option<IgnoredAny>,
    #[allow(dead_code)] // read on its own
    systemd: Option<IgnoredAny>,
    #[allow(dead_code)] // read on its own
    steps: Option<IgnoredAny>,
}

/// `[metrics]`.
#[derive(Deserialize)]
struct MetricsTable {
    pushgateway_url: Option<HttpUrl>,
    textfile_path: Option<PathBuf>,
    push_timeout_secs: Option<Seconds>,
    job: Option<Id>,
}

/// `[systemd]`.
#[derive(Deserialize)]
struct SystemdTable {
    progress_interval_secs: Option<Seconds>,
}

/// The keys every step has; the rest of a step's table are its kind's options.
#[derive(Deserialize)]
struct StepKeys {
    #[allow(dead_code)] // looked up in the registry from the table itself
    kind: Option<String>,
    name: Option<StepName>,
    timeout_secs: Option<Seconds>,
    critical: Option<Flag>,
    on_error: Option<OnErrorValue>,
    enabled: Option<Flag>,
}

pub(super) struct Parser<'a> {
    pub(super) origin: &'a str,
    pub(super) registry: &'static Registry,
    pub(super) problems: Vec<ConfigProblem>,
    warnings: Vec<ConfigProblem>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(
        origin: &'a str,
        registry: &'static Registry,
        problems: Vec<ConfigProblem>,
    ) -> Self {
        Self {
            origin,
            registry,
            problems,
            warnings: Vec::new(),
        }
    }

    /// Where the value of `key` in `table` came from: its environment variable, or the file.
    fn origin_of(&self, table: &Map<String, Value>, key: Option<&str>) -> String {
        match key.and_then(|k| table.get(k)).and_then(Value::origin) {
            Some(var) => format!("environment variable {var}"),
            None => self.origin.to_owned(),
        }
    }

    pub(super) fn problem(
        &mut self,
        step: Option<&StepRef>,
        key: &str,
        message: impl Into<String>,
    ) {
        let problem = ConfigProblem::new(self.origin, message)
            .at_step(step)
            .at_key(Some(key));
        self.problems.push(problem);
    }

    /// Read `table` into `T`; each problem names its key, prefixed by `prefix` (`metrics.`).
    pub(super) fn table<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &Map<String, Value>,
        step: Option<&StepRef>,
        prefix: &str,
    ) -> Option<T> {
        match deserialize_all::<T>(table.clone(), field_names::<T>(), "key") {
            Ok(t) => Some(t),
            Err(errors) => {
                self.field_errors(table, step, prefix, errors);
                None
            }
        }
    }

    fn field_errors(
        &mut self,
        table: &Map<String, Value>,
        step: Option<&StepRef>,
        prefix: &str,
        errors: Vec<FieldError>,
    ) {
        for e in errors {
            let origin = self.origin_of(table, e.key.as_deref());
            let key = e.key.map(|k| format!("{prefix}{k}"));
            let problem = ConfigProblem::new(&origin, e.message)
                .at_step(step)
                .at_key(key.as_deref());
            self.problems.push(problem);
        }
    }

    pub(super) fn parse(
        mut self,
        mut root: Map<String, Value>,
        env_overrides: Vec<String>,
    ) -> Result<PipelineConfig, ConfigErrors> {
        let steps = root.remove("steps");
        let metrics = root.remove("metrics");
        let systemd = root.remove("systemd");
        let top = self.table::<TopLevel>(&root, None, "");
        let mut settings = PipelineSettings::default();
        let mut log_level = "info";
        if let Some(top) = &top {
            if let Some(Seconds(t)) = top.timeout_secs {
                settings.timeout = t;
            }
            if let Some(LogLevel(l)) = top.log_level {
                log_level = l.as_str();
            }
            if let Some(Signals(s)) = &top.signals {
                settings.signals = s.clone();
            }
            settings.report_path.clone_from(&top.report_path);
            if let Some(Id(t)) = &top.trader_id {
                settings.trader_id = t.clone();
            }
        }
        if let Some(value) = metrics {
            settings.metrics = self.metrics(value);
        }
        if let Some(table) = systemd.and_then(|v| self.section(v, "systemd"))
            && let Some(t) = self.table::<SystemdTable>(&table, None, "systemd.")
            && let Some(Seconds(every)) = t.progress_interval_secs
        {
            settings.systemd.progress_interval = every;
        }
        let steps = match steps {
            Some(value) => {
                if let Some(top) = &top {
                    self.refuse_switches(&root, top);
                }
                self.steps(value)
            }
            // The compact form (compact.rs).
            None => self.compact_steps(top.as_ref()),
        };
        for s in &steps {
            if s.settings.timeout > settings.timeout {
                let at = StepRef {
                    index: s.index,
                    name: Some(s.settings.name.clone()),
                };
                let message = format!(
                    "{}s is longer than the global timeout_secs ({}s); the step gets at most what is left of the global budget",
                    s.settings.timeout.as_secs_f64(),
                    settings.timeout.as_secs_f64()
                );
                let warning = ConfigProblem::new(self.origin, message)
                    .at_step(Some(&at))
                    .at_key(Some("timeout_secs"));
                self.warnings.push(warning);
            }
        }
        if !self.problems.is_empty() {
            return Err(ConfigErrors {
                problems: self.problems,
            });
        }
        Ok(PipelineConfig {
            source: self.origin.to_owned(),
            log_level: log_level.to_owned(),
            settings,
            steps,
            warnings: self.warnings,
            env_overrides,
        })
    }

    /// The table of section `[name]`, or a problem naming what was there instead.
    fn section(&mut self, value: Value, name: &str) -> Option<Map<String, Value>> {
        match value.kind {
            ValueKind::Table(t) => Some(t),
            other => {
                let found = Value::new(None, other).try_deserialize::<Raw>();
                let found = found.map(|r| r.to_string()).unwrap_or_default();
                self.problem(
                    None,
                    name,
                    format!("expected a [{name}] table, found {found}"),
                );
                None
            }
        }
    }

    fn metrics(&mut self, value: Value) -> MetricsConfig {
        let mut metrics = MetricsConfig::default();
        let Some(table) = self.section(value, "metrics") else {
            return metrics;
        };
        if let Some(m) = self.table::<MetricsTable>(&table, None, "metrics.") {
            metrics.pushgateway_url = m.pushgateway_url.map(|HttpUrl(u)| u);
            metrics.textfile_path = m.textfile_path;
            if let Some(Seconds(t)) = m.push_timeout_secs {
                metrics.push_timeout = t;
            }
            if let Some(Id(job)) = m.job {
                metrics.job = job;
            }
        }
        metrics
    }

    /// The compact form's switches make no sense next to `[[steps]]`.
    fn refuse_switches(&mut self, root: &Map<String, Value>, top: &TopLevel) {
        let set = [
            ("cancel_orders", "cancel", top.cancel_orders.is_some()),
            (
                "verify_stop_losses",
                "verify",
                top.verify_stop_losses.is_some(),
            ),
            ("flush_cache", "flush", top.flush_cache.is_some()),
        ];
        for (switch, kind, _) in set.into_iter().filter(|(_, _, set)| *set) {
            let origin = self.origin_of(root, Some(switch));
            let message = format!(
                "belongs to the compact form (no [[steps]]); with [[steps]], set `enabled = false` on the `{kind}` step instead"
            );
            self.problems
                .push(ConfigProblem::new(&origin, message).at_key(Some(switch)));
        }
    }

    fn steps(&mut self, value: Value) -> Vec<StepSpec> {
        let items = match value.kind {
            ValueKind::Array(items) if items.is_empty() => {
                self.problem(None, "steps", "the pipeline has no steps");
                return Vec::new();
            }
            ValueKind::Array(items) => items,
            other => {
                let found = Value::new(None, other).try_deserialize::<Raw>();
                let found = found.map(|r| r.to_string()).unwrap_or_default();
                self.problem(
                    None,
                    "steps",
                    format!("expected an array of [[steps]] tables, found {found}"),
                );
                return Vec::new();
            }
        };
        let mut steps: Vec<StepSpec> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let Some(spec) = self.step(i + 1, item) else {
                continue;
            };
            if let Some(first) = seen.get(&spec.settings.name) {
                let at = StepRef {
                    index: spec.index,
                    name: Some(spec.settings.name.clone()),
                };
                let message = format!(
                    "duplicate step name `{}` (also step {first}); give each step a unique `name`",
                    spec.settings.name
                );
                self.problem(Some(&at), "name", message);
            } else {
                seen.insert(spec.settings.name.clone(), spec.index);
            }
            steps.push(spec);
        }
        steps
    }

    /// One `[[steps]]` table: the keys every step has, then the kind's own options.
    fn step(&mut self, index: usize, item: Value) -> Option<StepSpec> {
        let mut table = match item.kind {
            ValueKind::Table(t) => t,
            other => {
                let found = Value::new(None, other).try_deserialize::<Raw>();
                let found = found.map(|r| r.to_string()).unwrap_or_default();
                let at = StepRef { index, name: None };
                self.problem(Some(&at), "", format!("expected a table, found {found}"));
                return None;
            }
        };
        let text = |k: &str| match table.get(k).map(|v| &v.kind) {
            Some(ValueKind::String(s)) => Some(s.clone()),
            _ => None,
        };
        let at = StepRef {
            index,
            name: text("name").or_else(|| text("kind")),
        };
        let common = field_names::<StepKeys>();
        let own: Map<String, Value> = common
            .iter()
            .filter_map(|k| table.remove_entry(*k))
            .collect();
        let keys = self.table::<StepKeys>(&own, Some(&at), "");
        // The kind is looked up even when another common key is wrong, so that the options are
        // checked too.
        let registration = match own.get("kind").map(|v| v.clone().into_string()) {
            None => {
                let registered = self.registry.kind_names().join(", ");
                let message =
                    format!("missing; every step needs a kind (registered: {registered})");
                self.problem(Some(&at), "kind", message);
                None
            }
            Some(Ok(kind)) => match self.registry.get(&kind) {
                Ok(r) => Some(r),
                Err(message) => {
                    let origin = self.origin_of(&own, Some("kind"));
                    let problem =
                        ConfigProblem::new(&origin, message.to_string()).at_step(Some(&at));
                    self.problems.push(problem.at_key(Some("kind")));
                    None
                }
            },
            // Named by the common keys' problems.
            Some(Err(_)) => None,
        };
        let registration = registration?;
        let options = match (registration.parse)(&StepOptions::new(table.clone())) {
            Ok(options) => Some(options),
            Err(errors) => {
                // An unknown option may be a misspelt common key.
                let errors = errors.into_iter().map(|mut e| {
                    let hint = e.key.as_deref().and_then(|k| closest(k, common));
                    if let Some(common) = hint.filter(|_| !e.message.contains("did you mean")) {
                        e.message.push_str(&format!("; did you mean `{common}`?"));
                    }
                    e
                });
                self.field_errors(&table, Some(&at), "", errors.collect());
                None
            }
        };
        let (keys, options) = (keys?, options?);
        let mut settings = StepSettings::new(registration.kind, registration.defaults);
        if let Some(StepName(name)) = keys.name {
            settings.name = name;
        }
        if let Some(Seconds(t)) = keys.timeout_secs {
            settings.timeout = t;
        }
        if let Some(Flag(c)) = keys.critical {
            settings.critical = c;
        }
        if let Some(OnErrorValue(o)) = keys.on_error {
            settings.on_error = o;
        }
        Some(StepSpec {
            index,
            settings,
            enabled: keys.enabled.is_none_or(|Flag(e)| e),
            registration,
            config: options,
        })
    }
}
