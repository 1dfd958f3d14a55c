//! The final report in Redis (`{prefix}:shutdown:last` and a capped history), or in the fallback file.

use std::path::PathBuf;
use std::time::Duration;

use shutdown_core::FileSink;
use shutdown_core::errors::SinkError;
use shutdown_core::{Report, ReportSink};

use crate::fallback;
use crate::keys::{InvalidKeyPrefix, Keys};
use crate::target::RedisTarget;

/// Writes the final report to Redis; when Redis cannot take it, to `<fallback_dir>/<trader_id>-report.json`.
#[derive(Debug)]
pub struct RedisReportSink {
    target: RedisTarget,
    keys: Keys,
    history: usize,
    timeout: Duration,
    fallback_dir: PathBuf,
}

impl RedisReportSink {
    /// A sink for `target` under `key_prefix`, keeping `history` reports; every wait bounded by
    /// `timeout`.
    pub fn new(
        target: RedisTarget,
        key_prefix: &str,
        history: usize,
        timeout: Duration,
        fallback_dir: impl Into<PathBuf>,
    ) -> Result<Self, InvalidKeyPrefix> {
        Ok(Self {
            target,
            keys: Keys::new(key_prefix)?,
            history: history.max(1),
            timeout,
            fallback_dir: fallback_dir.into(),
        })
    }

    fn to_redis(&self, json: &str) -> Result<(), String> {
        let mut con = self
            .target
            .connect_blocking(self.timeout)
            .map_err(|e| e.0)?;
        let cap = isize::try_from(self.history).unwrap_or(isize::MAX) - 1;
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.keys.last_report())
            .arg(json)
            .ignore()
            .cmd("LPUSH")
            .arg(self.keys.history())
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(self.keys.history())
            .arg(0)
            .arg(cap)
            .ignore()
            .query::<()>(&mut con)
            .map_err(|e| self.target.error("cannot write the report to", &e).0)
    }
}

impl ReportSink for RedisReportSink {
    fn name(&self) -> String {
        format!("redis {}", self.target.shown())
    }

    /// A connect and one transaction, each bounded by the sink's timeout, then the fallback file.
    fn timeout(&self) -> Duration {
        self.timeout * 2 + Duration::from_millis(500)
    }

    fn write(&self, report: &Report) -> Result<(), SinkError> {
        self.write_encoded(report, &report.to_json_line())
    }

    /// The report's one JSON encoding goes to Redis as it is (no copy of its own).
    fn write_encoded(&self, report: &Report, json: &str) -> Result<(), SinkError> {
        match self.to_redis(json) {
            Ok(()) => Ok(()),
            Err(redis_error) => {
                let path = fallback::report_path(&self.fallback_dir, &report.trader_id);
                let kept = std::fs::create_dir_all(&self.fallback_dir)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        FileSink::new(&path)
                            .write(report)
                            .map_err(|e| e.to_string())
                    });
                Err(SinkError::Remote(match kept {
                    Ok(()) => format!("{redis_error}; the report is in {}", path.display()),
                    Err(e) => format!("{redis_error}; and the fallback failed: {e}"),
                }))
            }
        }
    }
}
