//! One module per command.

pub(crate) mod docs;
pub(crate) mod dry_run;
#[cfg(feature = "redis")]
pub(crate) mod fleet;
pub(crate) mod k8s;
pub(crate) mod plan;
pub(crate) mod reconcile;
pub(crate) mod report;
#[cfg(feature = "redis")]
pub(crate) mod restore;
pub(crate) mod steps;
pub(crate) mod validate;

use std::path::Path;
#[cfg(feature = "redis")]
use std::path::PathBuf;
#[cfg(feature = "redis")]
use std::time::Duration;

use shutdown_core::{PipelineConfig, exit_code};
use shutdown_paper::{PaperNode, Scenario};
#[cfg(feature = "redis")]
use shutdown_redis::RestoreOptions;

#[cfg(feature = "redis")]
use crate::RedisArgs;
use crate::output::print_json;

pub(crate) fn load(config: &Path, json: bool) -> Result<PipelineConfig, i32> {
    PipelineConfig::load(config).map_err(|e| {
        if json {
            print_json(&serde_json::json!({
                "ok": false, "error": e.to_string(), "exit_code": exit_code::INVALID_CONFIG,
                "problems": e.problems,
            }));
        } else {
            eprintln!("error: {e}");
        }
        exit_code::INVALID_CONFIG
    })
}

/// The venue a scenario describes, as the fit checks see it: its profile's rules, its book, its
/// connections.
pub(crate) fn venue_of(scenario: &Scenario) -> shutdown_steps::fit::Venue {
    use shutdown_core::node::OrderGateway;
    let paper = PaperNode::new(scenario);
    shutdown_steps::fit::Venue::new(
        scenario.venue.profile.name(),
        paper.cancel_rules(),
        &paper.all_orders(),
        paper.connection_states(),
    )
}

/// The warnings of `config` on `scenario`'s venue; the exit code already reported when the
/// scenario cannot be read.
pub(crate) fn fit_warnings(
    config: &PipelineConfig,
    scenario: Option<&Path>,
    json: bool,
) -> Result<Vec<String>, i32> {
    let Some(path) = scenario else {
        return Ok(Vec::new());
    };
    let scenario = Scenario::load(path)
        .map_err(|e| crate::output::fail(json, exit_code::INVALID_CONFIG, &e))?;
    Ok(shutdown_steps::fit::warnings(config, &venue_of(&scenario)))
}

pub(crate) fn empty_scenario() -> Scenario {
    Scenario::from_toml("", "empty")
        .unwrap_or_else(|e| unreachable!("the empty scenario is valid: {e}"))
}

#[cfg(feature = "redis")]
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            1
        })
}

/// Where to look for the last snapshot and report; exit code 2 when the Redis URL is invalid.
#[cfg(feature = "redis")]
pub(crate) fn restore_options(
    redis: &RedisArgs,
    fallback_dir: PathBuf,
) -> Result<RestoreOptions, i32> {
    let target = redis.target().map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    Ok(RestoreOptions {
        redis: target,
        trader_id: redis.trader_id.clone(),
        key_prefix: redis.key_prefix.clone(),
        fallback_dir,
        timeout: Duration::from_secs(5),
    })
}
