//! Restore at start: the last snapshot (Redis or the fallback file, whichever is newer) and how the
//! previous shutdown ended (clean, not clean, no previous run, or cannot tell); then set the run
//! marker.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shutdown_core::Report;
use shutdown_core::domain::LastKnown;

use crate::fallback;
use crate::keys::Keys;
use crate::marker::{self, RunInfo, RunMarker};
use crate::snapshot::{Snapshot, parse_time};
use crate::store::read_snapshot;
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

/// How the previous shutdown ended, as far as the evidence goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviousShutdown {
    /// The last run's shutdown finished, and its report says clean.
    Clean,
    /// The last run did not finish its shutdown (its run marker is still set: crash, SIGKILL), or
    /// finished it short of clean, or left a snapshot without a final report: reconcile with the
    /// venue.
    Unclean,
    /// No trace of a previous run.
    None,
    /// The evidence cannot be read (Redis unreachable, a file unreadable or missing): say so rather
    /// than guess.
    Unknown,
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
    /// Which evidence that verdict rests on, in words.
    pub why: String,
    /// The snapshot to resume from.
    pub snapshot: Option<Snapshot>,
    /// Where it came from.
    pub source: Option<SnapshotSource>,
    /// The final report of the previous shutdown, if one was kept.
    pub last_report: Option<Report>,
    /// Why Redis could not be read, if it could not.
    pub redis_error: Option<String>,
    /// Why a local file could not be read, if one could not.
    pub file_error: Option<String>,
}

impl Restored {
    /// What a start gate compares the venue with (see `reconcile`): the last snapshot's orders and
    /// positions; an empty book when there was no previous run; `None` when there is no snapshot to
    /// go by though there may have been a run (the evidence cannot be read, or an unclean run left
    /// none). With `None`, a node should not take the venue's book as its own on its own word: an
    /// empty book makes every working order at the venue an unknown order, which keeps the gate
    /// halted by default.
    pub fn last_known(&self) -> Option<LastKnown> {
        match (&self.snapshot, self.previous_shutdown) {
            (Some(s), _) => Some(LastKnown {
                taken_at: Some(s.taken_at.clone()),
                orders: s.orders.clone(),
                positions: s.positions.clone(),
            }),
            (None, PreviousShutdown::None) => Some(LastKnown::default()),
            (None, _) => None,
        }
    }

    /// One line for logs and `shutdownctl restore`.
    pub fn summary(&self) -> String {
        let what = match self.previous_shutdown {
            PreviousShutdown::Clean => "previous shutdown was clean",
            PreviousShutdown::Unclean => {
                "previous shutdown was NOT clean: reconcile orders and positions with the venue"
            }
            PreviousShutdown::None => "no previous shutdown recorded",
            PreviousShutdown::Unknown => {
                "cannot tell how the previous shutdown ended: reconcile with the venue before trading"
            }
        };
        let snapshot = match (&self.snapshot, self.source) {
            (Some(s), Some(src)) => format!(
                "; snapshot of {} from {} ({} orders, {} positions, {} accounts, {} strategies)",
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
            _ => String::new(),
        };
        format!("{what} ({}){snapshot}", self.why)
    }
}

/// What Redis holds of the previous run.
#[derive(Default)]
struct FromRedis {
    snapshot: Option<Snapshot>,
    running: Option<RunInfo>,
    last_report: Option<Report>,
}

async fn from_redis(
    target: &RedisTarget,
    options: &RestoreOptions,
    keys: &Keys,
) -> Result<FromRedis, String> {
    let mut con = target
        .connect(options.timeout, options.timeout)
        .await
        .map_err(|e| e.0)?;
    let (snapshot, _) = read_snapshot(&mut con, keys)
        .await
        .map_err(|e| target.scrub(&format!("{}: {e}", target.shown())))?;
    let (running, last): (Option<String>, Option<String>) = redis::pipe()
        .cmd("GET")
        .arg(keys.running())
        .cmd("GET")
        .arg(keys.last_report())
        .query_async(&mut con)
        .await
        .map_err(|e| {
            target
                .error("cannot read the run marker and the last report from", &e)
                .0
        })?;
    fn parse<T: serde::de::DeserializeOwned>(
        key: String,
        text: Option<String>,
    ) -> Result<Option<T>, String> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| format!("Redis key {key} holds no valid value: {e}"))
        })
        .transpose()
    }
    Ok(FromRedis {
        snapshot,
        running: parse(keys.running(), running)?,
        last_report: parse(keys.last_report(), last)?,
    })
}

/// Find the last snapshot and how the previous shutdown ended, from every source there is; never a
/// guess: evidence that cannot be read makes the verdict [`PreviousShutdown::Unknown`]. Reads only;
/// see [`restore_and_mark_running`]. An error only for a key prefix that cannot be.
pub async fn restore(options: &RestoreOptions) -> Result<Restored, String> {
    let keys = Keys::new(options.key_prefix.as_deref().unwrap_or(&options.trader_id))
        .map_err(|e| e.to_string())?;
    let (redis, redis_error) = match &options.redis {
        Some(target) => match from_redis(target, options, &keys).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let dir = &options.fallback_dir;
    let mut file_errors = Vec::new();
    fn kept<T>(errors: &mut Vec<String>, read: Result<Option<T>, String>) -> Option<T> {
        read.unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    }
    if !dir.is_dir() {
        file_errors.push(format!(
            "the fallback directory {} does not exist",
            dir.display()
        ));
    }
    let running_file = kept(&mut file_errors, marker::read_file(dir, &options.trader_id));
    let file = kept(&mut file_errors, fallback::read(dir, &options.trader_id));
    let report_path = fallback::report_path(dir, &options.trader_id);
    let report_file = kept(
        &mut file_errors,
        match shutdown_core::read_report(&report_path) {
            Ok(r) => Ok(Some(r)),
            Err(shutdown_core::errors::ReadReportError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        },
    );
    let file_error = (!file_errors.is_empty()).then(|| file_errors.join("; "));
    let redis = redis.unwrap_or_default();

    // The newest snapshot and the newest final report, wherever they are.
    let newer_file = match (&redis.snapshot, &file) {
        (Some(r), Some(f)) => parse_time(&f.snapshot.taken_at) > parse_time(&r.taken_at),
        (None, Some(_)) => true,
        _ => false,
    };
    let (snapshot, source) = match newer_file {
        true => (file.map(|f| f.snapshot), Some(SnapshotSource::File)),
        false => {
            let source = redis.snapshot.as_ref().map(|_| SnapshotSource::Redis);
            (redis.snapshot, source)
        }
    };
    let last_report = match (redis.last_report, report_file) {
        (Some(r), Some(f)) => Some(if parse_time(&f.started_at) > parse_time(&r.started_at) {
            f
        } else {
            r
        }),
        (r, f) => r.or(f),
    };

    let (previous, why) = if let Some(run) = running_file.as_ref().or(redis.running.as_ref()) {
        let place = if running_file.is_some() {
            "in its local file"
        } else {
            "in Redis"
        };
        (
            PreviousShutdown::Unclean,
            format!(
                "the run started {} (pid {}) is still marked running {place}: it never finished its shutdown",
                run.started_at, run.pid
            ),
        )
    } else if let Some(e) = &redis_error {
        // Without Redis, a missing local marker proves nothing: the last run may have been on another host.
        (
            PreviousShutdown::Unknown,
            format!("Redis cannot be read ({e})"),
        )
    } else if let (None, Some(e)) = (&options.redis, &file_error) {
        (PreviousShutdown::Unknown, e.clone())
    } else if let Some(r) = &last_report {
        match r.outcome {
            shutdown_core::Outcome::Clean => (
                PreviousShutdown::Clean,
                format!("the shutdown of {} finished clean", r.started_at),
            ),
            other => (
                PreviousShutdown::Unclean,
                format!(
                    "the shutdown of {} finished {other} (exit {})",
                    r.started_at, r.exit_code
                ),
            ),
        }
    } else if let Some(s) = &snapshot {
        (
            PreviousShutdown::Unclean,
            format!(
                "a snapshot of {} without a final report: the shutdown that took it did not finish",
                s.taken_at
            ),
        )
    } else {
        (
            PreviousShutdown::None,
            "no run marker, report or snapshot".to_owned(),
        )
    };
    Ok(Restored {
        previous_shutdown: previous,
        why,
        snapshot,
        source,
        last_report,
        redis_error,
        file_error,
    })
}

/// [`restore`], then set the run marker so that a crash from now on is seen at the next start. Add
/// the returned marker to the shutdown as a report sink: it clears itself when the report is final.
pub async fn restore_and_mark_running(
    options: &RestoreOptions,
) -> Result<(Restored, RunMarker), String> {
    let restored = restore(options).await?;
    let keys = Keys::new(options.key_prefix.as_deref().unwrap_or(&options.trader_id))
        .map_err(|e| e.to_string())?;
    let redis = options.redis.clone().map(|t| (t, keys));
    let marker = RunMarker::set(
        &options.fallback_dir,
        &options.trader_id,
        redis,
        options.timeout,
    )
    .await?;
    Ok((restored, marker))
}
