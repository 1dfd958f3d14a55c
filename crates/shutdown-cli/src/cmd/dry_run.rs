//! `shutdownctl dry-run`: the pipeline against a scenario on the paper venue; nothing leaves the
//! process unless `--redis` says where.

use std::path::Path;

use shutdown_core::{PipelineConfig, Report, Shutdown, exit_code};
use shutdown_paper::{PaperNode, Scenario};

use super::load;
use crate::PaperRun;
use crate::output::{fail, out, outln, outln_wrapped, print_json};

/// The config and the scenario, each checked; the exit code already reported when one is invalid.
pub(super) fn inputs(
    config_path: &Path,
    scenario_path: &Path,
    json: bool,
) -> Result<(PipelineConfig, Scenario), i32> {
    let config = load(config_path, json)?;
    let scenario =
        Scenario::load(scenario_path).map_err(|e| fail(json, exit_code::INVALID_CONFIG, &e))?;
    Ok((config, scenario))
}

/// The runtime of a simulated run: one thread, a paused clock that jumps to the next timer, so the
/// same inputs give the same report and minutes at the venue's pace take a moment.
pub(super) fn simulated_runtime(json: bool) -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| fail(json, 1, format!("cannot start the runtime: {e}")))
}

pub(crate) fn run(run: &PaperRun, redis: Option<&str>) -> i32 {
    let (json, seed) = (run.json, run.seed);
    let (config, scenario) = match inputs(&run.config, &run.scenario, json) {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    let paper = PaperNode::with_seed(&scenario, seed.unwrap_or(scenario.seed));
    let node = paper.node();
    let mut pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => {
            return fail(json, exit_code::INVALID_CONFIG, &e);
        }
    };
    // A dry run leaves nothing behind: no report file.
    pipeline.settings.report_path = None;
    // Without real I/O the whole run is simulated (see `simulated_runtime`). With --redis, Redis
    // needs real time: the run is then real, and not repeatable.
    let simulated = redis.is_none();
    let built = match simulated {
        true => simulated_runtime(json),
        false => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(json, 1, format!("cannot start the runtime: {e}"))),
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut shutdown = Shutdown::new(pipeline, node)
        .dry_run(true)
        .poll_in_place(simulated);
    if let Some(url) = redis {
        #[cfg(feature = "redis")]
        match shutdown_redis::RedisTarget::parse(url) {
            Ok(target) => shutdown = shutdown.with_extension(target),
            Err(e) => {
                return fail(json, exit_code::INVALID_CONFIG, format!("--redis: {e}"));
            }
        }
        #[cfg(not(feature = "redis"))]
        return fail(
            json,
            2,
            format!("--redis {url}: this build has no Redis support (feature `redis` is off)"),
        );
    }
    let wall = std::time::Instant::now();
    let report: Report = runtime.block_on(shutdown.run());
    let wall = wall.elapsed().as_secs_f64();
    // The paper venue knows the truth: check every claim of the report against it.
    let audit = paper.audit(&report);
    // Safe: every order that is not a protective stop gone, every position protected; and still
    // so once the process has exited.
    let safe_after = paper.safe_after().filter(|_| !audit.truth.at_risk());
    let profile = scenario.venue.profile;
    let warnings = shutdown_steps::fit::warnings(&config, &super::venue_of(&scenario));
    if json {
        let mut out = serde_json::to_value(&report).unwrap_or_default();
        out["audit"] = serde_json::json!({ "ok": audit.ok, "discrepancies": audit.discrepancies });
        out["simulated"] = serde_json::json!(simulated);
        out["venue"] = serde_json::json!({
            "profile": profile, "safe_after": safe_after, "warnings": warnings,
        });
        print_json(&out);
    } else {
        out!("{report}");
        if simulated {
            outln!(
                "simulated: {:.3}s at the venue's pace, in {wall:.3}s of wall time",
                report.duration
            );
        }
        outln_wrapped(&format!(
            "venue: {profile} (rules: docs/venues.md); {}",
            safe_words(safe_after, &audit.truth)
        ));
        for w in &warnings {
            outln_wrapped(&format!("warning: {w}"));
        }
        outln!("{audit}");
    }
    if audit.ok {
        report.exit_code
    } else {
        // A report the venue contradicts is a bug, not a shutdown outcome.
        1
    }
}

/// When the book was safe, or what keeps it from being safe at exit.
fn safe_words(safe_after: Option<f64>, truth: &shutdown_paper::Truth) -> String {
    match safe_after {
        Some(secs) => format!("safe after {secs:.3}s"),
        None => format!(
            "not safe at exit: {} unprotected, {} left working",
            count(truth.unprotected.len(), "position"),
            count(truth.orphaned.len(), "order")
        ),
    }
}

fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}
