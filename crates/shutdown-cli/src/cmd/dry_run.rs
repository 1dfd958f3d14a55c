//! `shutdownctl dry-run`: the pipeline against a scenario on the paper venue; nothing leaves the
//! process unless `--redis` says where.

use std::path::Path;

use shutdown_core::{Report, Shutdown, exit_code};
use shutdown_paper::{PaperNode, Scenario};

use super::load;
use crate::output::{out, outln, print_json};

pub(crate) fn run(
    config_path: &Path,
    scenario_path: &Path,
    seed: Option<u64>,
    json: bool,
    redis: Option<&str>,
) -> i32 {
    let config = match load(config_path, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let scenario = match Scenario::load(scenario_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID_CONFIG;
        }
    };
    let paper = PaperNode::with_seed(&scenario, seed.unwrap_or(scenario.seed));
    let node = paper.node();
    let mut pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID_CONFIG;
        }
    };
    // A dry run leaves nothing behind: no report file.
    pipeline.settings.report_path = None;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let mut shutdown = Shutdown::new(pipeline, node).dry_run(true);
    if let Some(url) = redis {
        match shutdown_redis::RedisTarget::parse(url) {
            Ok(target) => shutdown = shutdown.with_extension(target),
            Err(e) => {
                eprintln!("error: --redis: {e}");
                return exit_code::INVALID_CONFIG;
            }
        }
    }
    let report: Report = runtime.block_on(shutdown.run());
    // The paper venue knows the truth: check every claim of the report against it.
    let audit = paper.audit(&report);
    if json {
        let mut out = serde_json::to_value(&report).unwrap_or_default();
        out["audit"] = serde_json::json!({ "ok": audit.ok, "discrepancies": audit.discrepancies });
        print_json(&out);
    } else {
        out!("{report}");
        outln!("{audit}");
    }
    if audit.ok {
        report.exit_code
    } else {
        // A report the venue contradicts is a bug, not a shutdown outcome.
        1
    }
}
