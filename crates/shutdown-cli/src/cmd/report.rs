//! `shutdownctl report`: the last shutdown report, from a file a node wrote or from Redis.

use std::path::{Path, PathBuf};

#[cfg(feature = "redis")]
use super::{restore_options, runtime};
use crate::RedisArgs;
use crate::output::{fail, out, print_json};
use crate::timeline;

/// How to show the report.
pub(crate) struct View {
    pub json: bool,
    pub exit_code: bool,
    pub timeline: bool,
    pub svg: Option<PathBuf>,
}

pub(crate) fn run(file: Option<&Path>, redis: &RedisArgs, view: &View) -> i32 {
    let json = view.json;
    let found = match file {
        Some(path) => shutdown_core::read_report(path).map_err(|e| e.to_string()),
        None => match from_redis(redis, json) {
            Ok(found) => found,
            Err(code) => return code,
        },
    };
    match found {
        Ok(r) => {
            if json {
                print_json(&r);
            } else {
                out!("{r}");
                if view.timeline {
                    out!("{}", timeline::text(&r));
                }
            }
            if let Some(path) = &view.svg
                && let Err(e) = std::fs::write(path, timeline::svg(&r))
            {
                return fail(json, 1, format!("cannot write {}: {e}", path.display()));
            }
            if view.exit_code { r.exit_code } else { 0 }
        }
        Err(e) => fail(json, 1, &e),
    }
}

/// The last report recorded in Redis (`--redis`, or `REDIS_URL`); `Err` is the exit code.
#[cfg(feature = "redis")]
fn from_redis(redis: &RedisArgs, json: bool) -> Result<Result<shutdown_core::Report, String>, i32> {
    let options = match restore_options(redis, PathBuf::from("shutdown-fallback")) {
        Ok(o) if o.redis.is_some() => o,
        Ok(_) => {
            return Err(fail(
                json,
                2,
                "give --file PATH, or --redis URL (or set REDIS_URL)",
            ));
        }
        Err(code) => return Err(code),
    };
    let rt = runtime()?;
    Ok(rt
        .block_on(shutdown_redis::restore(&options))
        .and_then(|r| match (r.last_report, r.redis_error) {
            (Some(report), _) => Ok(report),
            (None, Some(e)) => Err(e),
            (None, None) => Err(format!(
                "no shutdown report recorded for {}",
                redis.trader_id
            )),
        }))
}

/// Without Redis support, only a file can be read.
#[cfg(not(feature = "redis"))]
fn from_redis(_: &RedisArgs, json: bool) -> Result<Result<shutdown_core::Report, String>, i32> {
    Err(fail(
        json,
        2,
        "give --file PATH (this build reads no report from Redis: feature `redis` is off)",
    ))
}
