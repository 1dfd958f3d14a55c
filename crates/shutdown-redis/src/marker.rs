//! The run marker: set when a node starts (in a local file always, and in Redis when it is
//! configured), cleared only once the node's shutdown report is final. A start that finds it knows
//! the last run never finished its shutdown, whatever else it finds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shutdown_core::errors::SinkError;
use shutdown_core::{Report, ReportSink};

use crate::keys::Keys;
use crate::target::RedisTarget;

/// Which run a marker stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Its process id.
    pub pid: u32,
}

impl RunInfo {
    fn now() -> Self {
        Self {
            started_at: crate::snapshot::now_rfc3339(),
            pid: std::process::id(),
        }
    }
}

/// The marker file of `trader_id` under `dir`.
pub fn marker_path(dir: &Path, trader_id: &str) -> PathBuf {
    dir.join(format!("{trader_id}-running.json"))
}

/// Read the marker file: `None` when there is none; an error names the file.
pub fn read_file(dir: &Path, trader_id: &str) -> Result<Option<RunInfo>, String> {
    let path = marker_path(dir, trader_id);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a run marker: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The marker of a running node. Add it to the shutdown as a report sink: once the report is final
/// it keeps it beside the marker (`<trader_id>-report.json`, which restore reads) and clears itself.
#[derive(Debug)]
pub struct RunMarker {
    path: PathBuf,
    /// Where the final report is kept beside it, for the next start to read.
    report: PathBuf,
    redis: Option<(RedisTarget, Keys)>,
    timeout: Duration,
}

impl RunMarker {
    /// Set the marker: the file under `dir` (created if need be) and, when `redis` is given, its key.
    pub async fn set(
        dir: &Path,
        trader_id: &str,
        redis: Option<(RedisTarget, Keys)>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let info = RunInfo::now();
        let bytes = serde_json::to_vec(&info).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = marker_path(dir, trader_id);
        shutdown_core::write_atomic(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if let Some((target, keys)) = &redis {
            let mut con = target.connect(timeout, timeout).await.map_err(|e| e.0)?;
            redis::cmd("SET")
                .arg(keys.running())
                .arg(String::from_utf8_lossy(&bytes).as_ref())
                .query_async::<()>(&mut con)
                .await
                .map_err(|e| target.error("cannot set the run marker at", &e).0)?;
        }
        Ok(Self {
            path,
            report: crate::fallback::report_path(dir, trader_id),
            redis,
            timeout,
        })
    }
}

impl ReportSink for RunMarker {
    fn name(&self) -> String {
        match &self.redis {
            Some((target, _)) => format!("run marker {} and {}", self.path.display(), target),
            None => format!("run marker {}", self.path.display()),
        }
    }

    /// The report is final: keep it beside the marker, and clear the marker.
    fn write(&self, report: &Report) -> Result<(), SinkError> {
        self.write_encoded(report, &report.to_json_line())
    }

    /// As `write`, keeping the report's one JSON encoding as it is.
    fn write_encoded(&self, _: &Report, json: &str) -> Result<(), SinkError> {
        let mut errors = Vec::new();
        if let Err(e) = shutdown_core::write_atomic(&self.report, json.as_bytes()) {
            errors.push(format!(
                "cannot write report to {}: {e}",
                self.report.display()
            ));
        }
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("cannot remove {}: {e}", self.path.display()));
        }
        if let Some((target, keys)) = &self.redis {
            let cleared = target.connect_blocking(self.timeout).and_then(|mut con| {
                redis::cmd("DEL")
                    .arg(keys.running())
                    .query::<()>(&mut con)
                    .map_err(|e| target.error("cannot clear the run marker at", &e))
            });
            if let Err(e) = cleared {
                errors.push(e.0);
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(SinkError::Remote(errors.join("; "))),
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout * 2 + Duration::from_millis(500)
    }
}
