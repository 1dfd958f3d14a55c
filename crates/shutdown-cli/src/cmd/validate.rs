//! `shutdownctl validate`: `ok` and exit 0, or every problem and exit 78.

use std::path::Path;

use super::load;
use crate::output::{outln, print_env_overrides, print_json};

pub(crate) fn run(path: &Path, json: bool) -> i32 {
    let config = match load(path, json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let kinds: Vec<&str> = config.steps.iter().map(|s| s.registration.kind).collect();
    if json {
        print_json(&serde_json::json!({
            "ok": true, "timeout_secs": config.settings.timeout.as_secs_f64(), "steps": kinds, "warnings": config.warnings,
            "env_overrides": config.env_overrides,
        }));
    } else {
        outln!(
            "ok: {} steps ({}), global timeout {}s",
            kinds.len(),
            kinds.join(" -> "),
            config.settings.timeout.as_secs_f64()
        );
        print_env_overrides(&config.env_overrides);
        for w in &config.warnings {
            outln!("warning: {w}");
        }
    }
    0
}
