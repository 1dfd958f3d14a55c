//! `shutdownctl restore`: whether the previous shutdown was clean and what its last snapshot holds
//! (reads only). Exits 0 clean (or no previous run), 10 not clean, 1 when it cannot tell.

use std::path::PathBuf;

use shutdown_redis::PreviousShutdown;

use super::{restore_options, runtime};
use crate::RedisArgs;
use crate::output::{fail, outln, outln_wrapped, print_json};

pub(crate) fn run(redis: &RedisArgs, fallback_dir: PathBuf, json: bool) -> i32 {
    let options = match restore_options(redis, fallback_dir) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(shutdown_redis::restore(&options)) {
        Ok(r) => {
            if json {
                print_json(&serde_json::json!({
                    "previous_shutdown": r.previous_shutdown,
                    "why": r.why,
                    "source": r.source,
                    "taken_at": r.snapshot.as_ref().map(|s| s.taken_at.clone()),
                    "counts": r.snapshot.as_ref().map(|s| s.counts()),
                    "last_report_outcome": r.last_report.as_ref().map(|l| l.outcome),
                    "redis_error": r.redis_error,
                    "file_error": r.file_error,
                    "summary": r.summary(),
                }));
            } else {
                outln_wrapped(&r.summary());
                if let Some(e) = &r.redis_error {
                    outln_wrapped(&format!("redis: {e}"));
                }
                if let Some(e) = &r.file_error {
                    outln_wrapped(&format!("files: {e}"));
                }
                if let Some(l) = &r.last_report {
                    outln!(
                        "last report: {} (exit {}) at {}",
                        l.outcome,
                        l.exit_code,
                        l.started_at
                    );
                }
            }
            match r.previous_shutdown {
                PreviousShutdown::Clean | PreviousShutdown::None => 0,
                PreviousShutdown::Unclean => 10,
                PreviousShutdown::Unknown => 1,
            }
        }
        Err(e) => fail(json, 1, &e),
    }
}
