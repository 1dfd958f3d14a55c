//! `shutdownctl validate`: `ok` and exit 0, or every problem and exit 78.

use std::path::Path;

use shutdown_core::errors::ConfigProblem;

use super::{fit_warnings, load};
use crate::output::{outln, outln_wrapped, print_env_overrides, print_json};

pub(crate) fn run(path: &Path, scenario: Option<&Path>, json: bool) -> i32 {
    let config = match load(path, json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let venue = match fit_warnings(&config, scenario, json) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let kinds: Vec<&str> = config.steps.iter().map(|s| s.registration.kind).collect();
    // The config's own warnings, then what does not fit in the budget (after them in the list).
    let mut warnings = config.warnings.clone();
    let budget = config.budget(None).warnings;
    let over = budget.into_iter().skip(config.warnings.len());
    warnings.extend(over.map(|w| ConfigProblem::new(&config.source, w)));
    warnings.extend(
        venue
            .into_iter()
            .map(|w| ConfigProblem::new(&config.source, w)),
    );
    if json {
        print_json(&serde_json::json!({
            "ok": true, "timeout_secs": config.settings.timeout.as_secs_f64(), "steps": kinds,
            "warnings": warnings, "env_overrides": config.env_overrides,
        }));
    } else {
        outln!(
            "ok: {} steps ({}), global timeout {}s",
            kinds.len(),
            kinds.join(" -> "),
            config.settings.timeout.as_secs_f64()
        );
        print_env_overrides(&config.env_overrides);
        for w in &warnings {
            outln_wrapped(&format!("warning: {w}"));
        }
    }
    0
}
