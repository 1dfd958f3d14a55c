//! The spans of real shutdowns, caught by an in-memory exporter.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

extern crate shutdown_steps as _;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use shutdown_core::EnvOverrides;
use shutdown_core::{
    Counter, Outcome, Pipeline, PipelineConfig, PipelineStep, Shutdown, ShutdownStep, StepContext,
    StepError, StepOutput,
};
use shutdown_otel::TraceSink;
use shutdown_paper::{PaperNode, Scenario};

/// An exporter that keeps what it took, and a provider feeding it span by span. Keep the provider
/// alive while reading the exporter: dropping it shuts the exporter down.
fn exporter() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider)
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name}: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_is_one_span_and_each_step_a_child_with_its_outcome_and_counts() {
    let scenario = Scenario::from_toml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/scenarios/basic.toml"
        ))
        .unwrap(),
        "basic.toml",
    )
    .unwrap();
    let paper = PaperNode::new(&scenario);
    let node = paper.node();
    let config = PipelineConfig::from_toml(
        "timeout_secs = 20\n[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\n[[steps]]\nkind = \"verify\"\n",
        "test.toml",
        EnvOverrides::None,
    )
    .unwrap();
    let (exporter, provider) = exporter();
    let report = Shutdown::new(config.build(&node).unwrap(), node)
        .with_sink(Arc::new(TraceSink::new(provider.clone())))
        .run()
        .await;
    assert!(report.sink_errors.is_empty(), "{:?}", report.sink_errors);
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1 + report.steps.len());
    let root = named(&spans, "shutdown");
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(
        attr(root, "outcome"),
        Some(&Value::from(report.outcome.to_string()))
    );
    assert_eq!(attr(root, "reason"), Some(&Value::from("api")));
    assert_eq!(
        root.status,
        if report.outcome == Outcome::Clean {
            Status::Ok
        } else {
            Status::error(format!(
                "shutdown {} (exit {})",
                report.outcome, report.exit_code
            ))
        }
    );
    for step in &report.steps {
        let span = named(&spans, &format!("step {}", step.name));
        assert_eq!(span.parent_span_id, root.span_context.span_id());
        assert_eq!(span.span_context.trace_id(), root.span_context.trace_id());
        assert!(span.start_time >= root.start_time && span.end_time <= root.end_time);
        assert_eq!(
            attr(span, "outcome"),
            Some(&Value::from(step.outcome.to_string()))
        );
        for (counter, count) in &step.counts {
            let key = format!("count.{}", counter.name());
            match count {
                Some(n) => assert_eq!(attr(span, &key), Some(&Value::I64(*n as i64)), "{key}"),
                None => assert_eq!(attr(span, &key), None, "an unknown count is left out"),
            }
        }
    }
    let cancel = named(&spans, "step cancel");
    assert_eq!(cancel.status, Status::Ok);
    let cancelled = report.count(Counter::OrdersCancelled).known;
    assert!(cancelled > 0);
    assert_eq!(
        attr(cancel, "count.orders_cancelled"),
        Some(&Value::I64(cancelled as i64))
    );
}

/// A step that says it started, then blocks its thread (2 s: the test's runtime waits for it at
/// the end).
struct Stuck(std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>);

#[async_trait]
impl ShutdownStep for Stuck {
    fn kind(&self) -> &'static str {
        "stuck"
    }

    async fn run(&self, _ctx: StepContext) -> Result<StepOutput, StepError> {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
        std::thread::sleep(Duration::from_secs(2));
        Ok(StepOutput::default())
    }
}

struct Quick;

#[async_trait]
impl ShutdownStep for Quick {
    fn kind(&self) -> &'static str {
        "quick"
    }

    async fn run(&self, _ctx: StepContext) -> Result<StepOutput, StepError> {
        Ok(StepOutput::default().count(Counter::OrdersCancelled, 3))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_shutdown_exports_its_spans_with_the_blocked_step_ended_at_the_force() {
    let (started_tx, started) = std::sync::mpsc::channel();
    let pipeline = Pipeline::new(Duration::from_secs(60))
        .push(PipelineStep::new(Quick).name("first").critical(true))
        .push(
            PipelineStep::new(Stuck(std::sync::Mutex::new(Some(started_tx))))
                .name("stuck")
                .critical(true)
                .timeout(Duration::from_secs(50)),
        )
        .push(PipelineStep::new(Quick).name("after").critical(true));
    let (exporter, provider) = exporter();
    let shutdown = Shutdown::new(pipeline, shutdown_core::Node::new())
        .with_sink(Arc::new(TraceSink::new(provider.clone())));
    let handle = shutdown.handle();
    let run = tokio::spawn(shutdown.run());
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the stuck step started");
    handle.force(shutdown_core::Reason::Api);
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a force ends the run")
        .unwrap();
    assert_eq!(report.outcome, Outcome::Forced);
    let spans = exporter.get_finished_spans().unwrap();
    let root = named(&spans, "shutdown");
    assert_eq!(root.status, Status::error("shutdown forced (exit 12)"));
    assert_eq!(attr(root, "forced_by"), Some(&Value::from("api")));
    assert_eq!(named(&spans, "step first").status, Status::Ok);
    assert_eq!(
        attr(named(&spans, "step first"), "count.orders_cancelled"),
        Some(&Value::I64(3))
    );
    let stuck = named(&spans, "step stuck");
    match &stuck.status {
        Status::Error { description } => {
            assert!(description.contains("interrupted"), "{description}")
        }
        other => panic!("{other:?}"),
    }
    assert!(stuck.end_time <= root.end_time);
    assert_eq!(
        attr(named(&spans, "step after"), "outcome"),
        Some(&Value::from("not_run"))
    );
    assert_eq!(named(&spans, "step after").status, Status::Unset);
}
