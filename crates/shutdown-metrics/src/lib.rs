//! Prometheus metrics of a shutdown. A dying process cannot be scraped, so [`MetricsSink`] pushes them
//! to a Pushgateway and/or writes a node_exporter textfile when the report is final.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `shutdown_total` | counter | `reason`, `outcome` |
//! | `shutdown_duration_seconds` | gauge | |
//! | `shutdown_step_duration_seconds` | gauge | `step`, `outcome` |
//! | `shutdown_orders_cancelled_total` | counter | |
//! | `shutdown_orders_orphaned` | gauge | |
//! | `shutdown_positions_unprotected` | gauge | |
//! | `shutdown_state_unknown` | gauge | `count` (`orders_cancelled`, `orders_orphaned`, `positions_unprotected`) |
//! | `shutdown_exit_code` | gauge | |
//! | `shutdown_problems` | gauge | |
//!
//! Every metric carries the grouping labels `job` and `trader_id` on the Pushgateway, and as
//! labels in the textfile.

use std::path::PathBuf;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use shutdown_core::MetricsConfig;
use shutdown_core::errors::SinkError;
use shutdown_core::redact::{redact_url, scrub};
use shutdown_core::{Counter, Report, ReportSink};

/// The metrics of one report, in the Prometheus text format.
pub fn encode(report: &Report, const_labels: &[(&str, &str)]) -> Result<String, String> {
    let labels = const_labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let registry = Registry::new_custom(None, Some(labels)).map_err(|e| e.to_string())?;
    let err = |e: prometheus::Error| e.to_string();

    let total = IntCounterVec::new(
        Opts::new(
            "shutdown_total",
            "Shutdowns, by what started them and how they ended.",
        ),
        &["reason", "outcome"],
    )
    .map_err(err)?;
    total
        .with_label_values(&[&report.reason.to_string(), &report.outcome.to_string()])
        .inc();
    let duration = Gauge::new(
        "shutdown_duration_seconds",
        "Seconds from the shutdown request to the final report.",
    )
    .map_err(err)?;
    duration.set(report.duration);
    let exit = Gauge::new(
        "shutdown_exit_code",
        "Exit code of the shutdown (0 clean, 10 degraded, 11 aborted, 12 forced).",
    )
    .map_err(err)?;
    exit.set(f64::from(report.exit_code));
    let steps = GaugeVec::new(
        Opts::new(
            "shutdown_step_duration_seconds",
            "Seconds each step took, by step name and outcome.",
        ),
        &["step", "outcome"],
    )
    .map_err(err)?;
    for s in &report.steps {
        steps
            .with_label_values(&[s.name.as_str(), &s.outcome.to_string()])
            .set(s.duration);
    }
    let cancelled = IntCounter::new(
        "shutdown_orders_cancelled_total",
        "Orders the shutdown cancelled (at least this many when shutdown_state_unknown says so).",
    )
    .map_err(err)?;
    cancelled.inc_by(report.count(Counter::OrdersCancelled).known);
    let orphaned = Gauge::new(
        "shutdown_orders_orphaned",
        "Orders left working that the shutdown could not cancel (at least this many when shutdown_state_unknown says so).",
    )
    .map_err(err)?;
    orphaned.set(report.count(Counter::OrdersOrphaned).known as f64);
    let unprotected = Gauge::new(
        "shutdown_positions_unprotected",
        "Open positions left without protective stop coverage (at least this many when shutdown_state_unknown says so).",
    )
    .map_err(err)?;
    unprotected.set(report.count(Counter::PositionsUnprotected).known as f64);
    let unknown = GaugeVec::new(
        Opts::new(
            "shutdown_state_unknown",
            "1 when a step that counts this (orders orphaned, positions unprotected...) could not say for sure: the gauge holds what it had counted (a step cut short) and the true number may be higher.",
        ),
        &["count"],
    )
    .map_err(err)?;
    for counter in Counter::ALL {
        let is_unknown = report.count(counter).unknown;
        unknown
            .with_label_values(&[counter.name()])
            .set(if is_unknown { 1.0 } else { 0.0 });
    }

    let problems = Gauge::new(
        "shutdown_problems",
        "Problems the shutdown reported (unprotected positions, orphans, steps left undone and what that means).",
    )
    .map_err(err)?;
    problems.set(report.steps.iter().map(|s| s.problems.len()).sum::<usize>() as f64);

    for c in [
        Box::new(total) as Box<dyn prometheus::core::Collector>,
        Box::new(duration),
        Box::new(exit),
        Box::new(steps),
        Box::new(cancelled),
        Box::new(orphaned),
        Box::new(unprotected),
        Box::new(unknown),
        Box::new(problems),
    ] {
        registry.register(c).map_err(err)?;
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .map_err(err)?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Pushes the final report's metrics to a Pushgateway and/or writes them to a textfile.
#[derive(Clone)]
pub struct MetricsSink {
    pushgateway_url: Option<String>,
    textfile_path: Option<PathBuf>,
    timeout: Duration,
    job: String,
    trader_id: String,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink")
            .field(
                "pushgateway_url",
                &self.pushgateway_url.as_deref().map(redact_url),
            )
            .field("textfile_path", &self.textfile_path)
            .field("timeout", &self.timeout)
            .field("job", &self.job)
            .field("trader_id", &self.trader_id)
            .finish()
    }
}

impl MetricsSink {
    /// A sink for `[metrics]`; `None` when it names neither a Pushgateway nor a textfile.
    pub fn new(config: &MetricsConfig, trader_id: &str) -> Option<Self> {
        if config.pushgateway_url.is_none() && config.textfile_path.is_none() {
            return None;
        }
        Some(Self {
            pushgateway_url: config.pushgateway_url.clone(),
            textfile_path: config.textfile_path.clone(),
            timeout: config.push_timeout,
            job: config.job.clone(),
            trader_id: trader_id.to_owned(),
        })
    }

    fn push(&self, url: &str, body: &str) -> Result<(), String> {
        let target = format!(
            "{url}/metrics/job/{}/trader_id/{}",
            self.job, self.trader_id
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.timeout))
            .build()
            .into();
        agent
            .put(&target)
            .header("Content-Type", "text/plain; version=0.0.4")
            .send(body)
            .map(|_| ())
            .map_err(|e| {
                // Neither the URL nor the client's error may show a password given in the URL.
                let shown = redact_url(&target);
                scrub(&format!("push to {shown} failed: {e}"), url)
            })
    }
}

impl ReportSink for MetricsSink {
    fn name(&self) -> String {
        "metrics".into()
    }

    /// The push, bounded by `push_timeout_secs`, then the textfile.
    fn timeout(&self) -> Duration {
        self.timeout + Duration::from_millis(500)
    }

    fn write(&self, report: &Report) -> Result<(), SinkError> {
        let mut errors = Vec::new();
        if let Some(url) = &self.pushgateway_url {
            // The Pushgateway adds job and trader_id from the URL (grouping key).
            match encode(report, &[]) {
                Ok(body) => {
                    if let Err(e) = self.push(url, &body) {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(path) = &self.textfile_path {
            let written = encode(
                report,
                &[("job", &self.job), ("trader_id", &self.trader_id)],
            )
            .and_then(|body| {
                shutdown_core::write_atomic(path, body.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            });
            if let Err(e) = written {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Remote(errors.join("; ")))
        }
    }
}
