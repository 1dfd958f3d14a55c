//! Reading a pipeline config: the file (a regular file of bounded size) and the `SHUTDOWN_*`
//! variables, into one tree of values, each knowing where it came from.
//!
//! Every variable goes through the same path: `SHUTDOWN_TIMEOUT_SECS` sets `timeout_secs`,
//! `SHUTDOWN_METRICS__JOB` sets `job` in `[metrics]`, `SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS` sets
//! `timeout_secs` of the step named `cancel`. The value remembers its variable, so a problem with it
//! names the variable.

use std::collections::HashMap;
use std::path::Path;

use config::{Map, Value, ValueKind};

use super::{ConfigErrors, ConfigProblem, EnvOverrides};
use crate::fields::unknown_message;

/// Prefix of environment overrides.
pub(crate) const ENV_PREFIX: &str = "SHUTDOWN_";
/// The largest config file read: a pipeline is a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Read `path`: a regular file (not a directory, a FIFO or a device) of at most [`MAX_FILE_BYTES`].
pub(super) fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    let fail = |message: String| ConfigErrors::one(&path.display().to_string(), message);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(fail("is a directory, not a TOML file".into()));
    }
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a FIFO, a socket or a device): give the path of a TOML file"
                .into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "is {} bytes, more than a pipeline config may be ({MAX_FILE_BYTES})",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// The `SHUTDOWN_*` variables that apply (non-empty, Unicode), sorted by name.
pub(super) fn variables(env: EnvOverrides) -> Vec<(String, String)> {
    let vars: HashMap<String, String> = match env {
        EnvOverrides::Process => std::env::vars_os()
            // A variable that is not Unicode cannot be one of ours.
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
        EnvOverrides::Vars(vars) => vars,
        EnvOverrides::None => HashMap::new(),
    };
    let mut ours: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, v)| k.starts_with(ENV_PREFIX) && !v.is_empty())
        .collect();
    ours.sort();
    ours
}

/// Parse the TOML `text` into a tree of values (through the `config` crate).
pub(super) fn parse_toml(text: &str, origin: &str) -> Result<Map<String, Value>, ConfigErrors> {
    let cfg = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| {
            let message = match e {
                config::ConfigError::FileParse { cause, .. } => {
                    format!("invalid TOML: {}", cause.to_string().trim_end())
                }
                other => other.to_string(),
            };
            ConfigErrors::one(origin, message)
        })?;
    Ok(match cfg.cache.kind {
        ValueKind::Table(t) => t,
        _ => Map::new(),
    })
}

/// How a variable name spells a step name: upper case, `-` as `_`.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A step table's name: its `name`, else its `kind`.
fn step_name(item: &Value) -> Option<String> {
    let ValueKind::Table(t) = &item.kind else {
        return None;
    };
    ["name", "kind"].iter().find_map(|k| match t.get(*k) {
        Some(Value {
            kind: ValueKind::String(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    })
}

/// Set each variable's value in the tree where its name says; a variable that names nothing that
/// can be set is a problem naming it.
pub(super) fn overlay(
    root: &mut Map<String, Value>,
    vars: &[(String, String)],
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for (var, value) in vars {
        let origin = format!("environment variable {var}");
        let mut problem = |message: String| {
            problems.push(ConfigProblem::new(&origin, message));
        };
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            problem(format!(
                "expected {ENV_PREFIX}<KEY> or {ENV_PREFIX}<TABLE>__<KEY>, as in {ENV_PREFIX}TIMEOUT_SECS"
            ));
            continue;
        }
        let leaf = Value::new(Some(var), ValueKind::String(value.clone()));
        let table = match path[0].as_str() {
            "steps" => {
                let [_, name, key] = path.as_slice() else {
                    problem(format!(
                        "expected {ENV_PREFIX}STEPS__<STEP NAME>__<KEY>, as in {ENV_PREFIX}STEPS__CANCEL__TIMEOUT_SECS"
                    ));
                    continue;
                };
                let Some(items) = root.get_mut("steps").and_then(|v| match &mut v.kind {
                    ValueKind::Array(items) => Some(items),
                    _ => None,
                }) else {
                    problem("overrides a step by name, and this config has no [[steps]] (compact form): write the pipeline as [[steps]] tables to override a step's keys".into());
                    continue;
                };
                let names: Vec<Option<String>> = items.iter().map(step_name).collect();
                let Some(i) = (names.iter())
                    .position(|n| n.as_deref().is_some_and(|n| env_name(n) == env_name(name)))
                else {
                    let known: Vec<String> = names.iter().flatten().map(|n| env_name(n)).collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    problem(unknown_message(
                        "step name",
                        &name.to_ascii_uppercase(),
                        &known,
                    ));
                    continue;
                };
                match &mut items[i].kind {
                    ValueKind::Table(t) => {
                        t.insert(key.clone(), leaf);
                    }
                    _ => problem("names a step that is not a table".into()),
                }
                continue;
            }
            _ => &mut *root,
        };
        set(table, &path, leaf, &mut problem);
    }
    problems
}

/// Set `path` (nested table keys) to `leaf`, making the tables on the way.
fn set(
    table: &mut Map<String, Value>,
    path: &[String],
    leaf: Value,
    problem: &mut impl FnMut(String),
) {
    let Some((last, tables)) = path.split_last() else {
        return;
    };
    let mut at = table;
    for (depth, key) in tables.iter().enumerate() {
        let entry = at
            .entry(key.clone())
            .or_insert_with(|| Value::new(None, ValueKind::Table(Map::new())));
        match &mut entry.kind {
            ValueKind::Table(t) => at = t,
            _ => {
                problem(format!("`{}` is not a table", path[..=depth].join(".")));
                return;
            }
        }
    }
    at.insert(last.clone(), leaf);
}
