//! OpenTelemetry traces of a shutdown.
//!
//! [`TraceSink`] is a report sink: when the shutdown's report is final it turns it into one span
//! for the shutdown and one child span per step, with their real start and end times, then flushes
//! the tracer provider (bounded by the sink's timeout). Each step's span carries its outcome as the
//! span status (error for a step that did not do its job, with its error as the message), its
//! counters (`count.orders_cancelled`, ...; an unknown count is left out, never 0), its kind,
//! budget and attempts; the shutdown's span carries the reason, outcome, exit code and each
//! escalation as an event.
//!
//! Why from the report and not from the log's spans: a step that blocks its thread keeps its span
//! open for ever, so a forced exit would lose exactly the span that explains it. The report is what
//! the runner knows when it gives up: the step's span ends at the force, with status error
//! `interrupted: ...`. The sink runs on every exit path that writes other sinks, forced ones
//! included.
//!
//! ```no_run
//! # #[cfg(feature = "otlp")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! # let (pipeline, node) = (shutdown_core::Pipeline::default(), shutdown_core::Node::new());
//! let provider = shutdown_otel::otlp_provider("http://otel-collector:4318/v1/traces")?;
//! let shutdown = shutdown_core::Shutdown::new(pipeline, node)
//!     .with_sink(Arc::new(shutdown_otel::TraceSink::new(provider)));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "otlp"))]
//! # fn main() {}
//! ```

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use shutdown_core::ReportSink;
use shutdown_core::errors::SinkError;
use shutdown_core::{Outcome, Report, StepOutcome};

#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "otlp")]
pub use otlp::otlp_provider;

/// The instrumentation scope of the spans.
pub const SCOPE: &str = "shutdown";

/// A report sink that exports the shutdown as spans.
#[derive(Debug)]
pub struct TraceSink {
    provider: SdkTracerProvider,
    timeout: Duration,
}

impl TraceSink {
    /// Export through `provider` (its exporter and processor as the node set them up); the spans
    /// are flushed before the sink returns, within 2 s (see [`TraceSink::timeout`]).
    pub fn new(provider: SdkTracerProvider) -> Self {
        Self {
            provider,
            timeout: Duration::from_secs(2),
        }
    }

    /// How long the export may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// When the report's pipeline started; now when its timestamp cannot be read.
fn started(report: &Report) -> SystemTime {
    time::OffsetDateTime::parse(
        &report.started_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(SystemTime::from)
    .unwrap_or_else(|_| SystemTime::now())
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// Record `report` as spans on `tracer`: the shutdown, then each step as its child.
pub fn record<T>(tracer: &T, report: &Report)
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let start = started(report);
    let mut attributes = vec![
        KeyValue::new("trader_id", report.trader_id.clone()),
        KeyValue::new("reason", report.reason.to_string()),
        KeyValue::new("outcome", report.outcome.to_string()),
        KeyValue::new("exit_code", i64::from(report.exit_code)),
        KeyValue::new("timeout_secs", report.timeout_secs),
    ];
    if let Some(by) = &report.forced_by {
        attributes.push(KeyValue::new("forced_by", by.to_string()));
    }
    let mut root = tracer
        .span_builder("shutdown")
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .with_attributes(attributes)
        .start(tracer);
    root.set_status(match report.outcome {
        Outcome::Clean => Status::Ok,
        other => Status::error(format!("shutdown {other} (exit {})", report.exit_code)),
    });
    for e in &report.escalations {
        root.add_event_with_timestamp(
            "escalation",
            start + secs(e.offset),
            vec![
                KeyValue::new("level", format!("{:?}", e.level).to_lowercase()),
                KeyValue::new("reason", e.reason.to_string()),
            ],
        );
    }
    let cx = Context::current_with_span(root);
    for (i, s) in report.steps.iter().enumerate() {
        let step_start = start + secs(s.offset);
        let mut attributes = vec![
            KeyValue::new("step", s.name.clone()),
            KeyValue::new("kind", s.kind.clone()),
            KeyValue::new("index", (i + 1) as i64),
            KeyValue::new("outcome", s.outcome.to_string()),
            KeyValue::new("critical", s.critical),
            KeyValue::new("budget_secs", s.budget),
            KeyValue::new("attempts", i64::from(s.attempts)),
        ];
        for (counter, count) in &s.counts {
            if let Some(n) = count {
                attributes.push(KeyValue::new(
                    format!("count.{}", counter.name()),
                    i64::try_from(*n).unwrap_or(i64::MAX),
                ));
            }
        }
        if let Some(summary) = &s.summary {
            attributes.push(KeyValue::new("summary", summary.clone()));
        }
        if !s.problems.is_empty() {
            attributes.push(KeyValue::new("problems", s.problems.join("; ")));
        }
        let mut span = tracer
            .span_builder(format!("step {}", s.name))
            .with_start_time(step_start)
            .with_attributes(attributes)
            .start_with_context(tracer, &cx);
        span.set_status(match s.outcome {
            StepOutcome::Succeeded => Status::Ok,
            // Not run on purpose (disabled, or skipped after a second signal): not an error of
            // the step, and the shutdown's own status says what it cost.
            StepOutcome::Skipped | StepOutcome::NotRun => Status::Unset,
            other => Status::error(s.error.clone().unwrap_or_else(|| other.to_string())),
        });
        span.end_with_timestamp(step_start + secs(s.duration));
    }
    cx.span().end_with_timestamp(start + secs(report.duration));
}

impl ReportSink for TraceSink {
    fn name(&self) -> String {
        "opentelemetry traces".into()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn write(&self, report: &Report) -> Result<(), SinkError> {
        record(&self.provider.tracer(SCOPE), report);
        self.provider
            .force_flush()
            .map_err(|e| SinkError::Remote(format!("cannot export the spans: {e}")))
    }
}
