//! Restore at start: the last snapshot (Redis or the fallback file, whichever is newer) and whether the
//! previous shutdown was clean; then mark the node as running.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shutdown_core::Report;

use crate::fallback;
use crate::keys::Keys;
use crate::snapshot::{Snapshot, parse_time};
use crate::store::{mark_running, read_snapshot};
use crate::target::RedisTarget;

/// Where to look.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where Redis is; `None` to read only the fallback file.
    pub redis: Option<RedisTarget>,
    /// Trader id.
    pub trader_id: String,
    /// Key prefix (the trader id when `None`).
    pub key_prefix: Option<String>,
    /// Fallback directory of the flush step.
    pub fallback_dir: PathBuf,
    /// Connect and response timeout.
    pub timeout: Duration,
}

/// How the previous shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviousShutdown {
    /// Its snapshot was completed.
    Clean,
    /// The node stopped without completing a snapshot (crash, SIGKILL, forced exit): reconcile with the venue.
    Unclean,
    /// No trace of a previous run.
    None,
}

/// Where the snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSource {
    /// Redis.
    Redis,
    /// The fallback file.
    File,
}

/// What restore found.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// How the previous shutdown ended.
    pub previous_shutdown: PreviousShutdown,
    /// The snapshot to resume from.
    pub snapshot: Option<Snapshot>,
    /// Where it came from.
    pub source: Option<SnapshotSource>,
    /// The final report of the previous shutdown, if one was kept.
    pub last_report: Option<Report>,
    /// Why Redis could not be read, if it could not.
    pub redis_error: Option<String>,
}

impl Restored {
    /// One line for logs and `shutdownctl restore`.
    pub fn summary(&self) -> String {
        let what = match self.previous_shutdown {
            PreviousShutdown::Clean => "previous shutdown was clean",
            PreviousShutdown::Unclean => {
                "previous shutdown was NOT clean: reconcile orders and positions with the venue"
            }
            PreviousShutdown::None => "no previous shutdown recorded",
        };
        match (&self.snapshot, self.source) {
            (Some(s), Some(src)) => format!(
                "{what}; snapshot of {} from {} ({} orders, {} positions, {} accounts, {} strategies)",
                s.taken_at,
                match src {
                    SnapshotSource::Redis => "redis",
                    SnapshotSource::File => "the fallback file",
                },
                s.orders.len(),
                s.positions.len(),
                s.accounts.len(),
                s.strategies.len()
            ),
            _ => what.to_owned(),
        }
    }
}

async fn from_redis(
    options: &RestoreOptions,
    keys: &Keys,
) -> Result<(Option<Snapshot>, Option<bool>, Option<Report>), String> {
    let Some(target) = &options.redis else {
        return Err("no Redis URL given".into());
    };
    let mut con = target
        .connect(options.timeout, options.timeout)
        .await
        .map_err(|e| e.0)?;
    let (snapshot, clean) = read_snapshot(&mut con, keys)
        .await
        .map_err(|e| target.scrub(&format!("{}: {e}", target.shown())))?;
    let last: Option<String> = redis::cmd("GET")
        .arg(keys.last_report())
        .query_async(&mut con)
        .await
        .map_err(|e| target.error("cannot read the last report from", &e).0)?;
    Ok((
        snapshot,
        clean,
        last.and_then(|r| serde_json::from_str(&r).ok()),
    ))
}

/// Find the last snapshot and how the previous shutdown ended. Reads only; see [`restore_and_mark_running`].
pub async fn restore(options: &RestoreOptions) -> Result<Restored, String> {
    let keys = Keys::new(options.key_prefix.as_deref().unwrap_or(&options.trader_id))
        .map_err(|e| e.to_string())?;
    let (redis_snapshot, marker, mut last_report, redis_error) =
        match from_redis(options, &keys).await {
            Ok((s, c, r)) => (s, c, r, None),
            Err(e) => (None, None, None, Some(e)),
        };
    let file = fallback::read(&options.fallback_dir, &options.trader_id)?;
    if last_report.is_none() {
        let path = fallback::report_path(&options.fallback_dir, &options.trader_id);
        last_report = shutdown_core::report::read_report(&path).ok();
    }
    let newer_file = match (&redis_snapshot, &file) {
        (Some(r), Some(f)) => parse_time(&f.snapshot.taken_at) > parse_time(&r.taken_at),
        (None, Some(_)) => true,
        _ => false,
    };
    let (snapshot, source, previous) = if newer_file {
        // The file is written only by a controlled shutdown whose Redis write failed.
        (
            file.map(|f| f.snapshot),
            Some(SnapshotSource::File),
            PreviousShutdown::Clean,
        )
    } else if let Some(s) = redis_snapshot {
        let previous = if marker == Some(true) {
            PreviousShutdown::Clean
        } else {
            PreviousShutdown::Unclean
        };
        (Some(s), Some(SnapshotSource::Redis), previous)
    } else {
        let previous = match marker {
            Some(_) => PreviousShutdown::Unclean,
            None => PreviousShutdown::None,
        };
        (None, None, previous)
    };
    Ok(Restored {
        previous_shutdown: previous,
        snapshot,
        source,
        last_report,
        redis_error,
    })
}

/// [`restore`], then mark the node as running so that a crash from now on is seen at the next start.
pub async fn restore_and_mark_running(options: &RestoreOptions) -> Result<Restored, String> {
    let restored = restore(options).await?;
    if let Some(target) = &options.redis {
        let keys = Keys::new(options.key_prefix.as_deref().unwrap_or(&options.trader_id))
            .map_err(|e| e.to_string())?;
        let mut con = target
            .connect(options.timeout, options.timeout)
            .await
            .map_err(|e| e.0)?;
        mark_running(&mut con, &keys)
            .await
            .map_err(|e| target.scrub(&format!("{}: {e}", target.shown())))?;
    }
    Ok(restored)
}
