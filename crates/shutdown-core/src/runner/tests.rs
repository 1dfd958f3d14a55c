//! Unit tests of the runner, in paused tokio time.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use super::*;
use crate::Shutdown;
use crate::pipeline::Pipeline;
use crate::report::{FileSink, ReportSink};
use crate::trading::roles::Node;

use crate::ShutdownStep;
use crate::pipeline::{OnError, PipelineStep};
use crate::report::{Outcome, StepOutcome};
use crate::signal::Signal;
use crate::testing::{Behaviour, Log, blocker, step};
use crate::trading::Counter;
use crate::trigger::ShutdownHandle;
use crate::trigger::{Level, Reason};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn outcomes(report: &Report) -> Vec<(String, StepOutcome)> {
    report
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.outcome))
        .collect()
}

fn pair(name: &str, o: StepOutcome) -> (String, StepOutcome) {
    (name.to_owned(), o)
}

#[tokio::test(start_paused = true)]
async fn steps_run_in_the_order_written_and_a_clean_run_exits_0() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("a", Behaviour::Ok, &log)).name("a"))
        .push(PipelineStep::new(step("b", Behaviour::Sleep(secs(1)), &log)).name("b"))
        .push(PipelineStep::new(step("c", Behaviour::Ok, &log)).name("c"));
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(
        log.lines(),
        [
            "a:start:api",
            "a:end",
            "b:start:api",
            "b:end",
            "c:start:api",
            "c:end"
        ]
    );
    assert_eq!(report.outcome, Outcome::Clean);
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.reason, Reason::Api);
    assert!((report.step("b").unwrap().duration - 1.0).abs() < 0.01);
}

#[tokio::test(start_paused = true)]
async fn a_step_times_out_on_its_own_budget_and_the_next_still_runs() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(
            PipelineStep::new(step("slow", Behaviour::Sleep(secs(100)), &log))
                .name("slow")
                .timeout(secs(2)),
        )
        .push(PipelineStep::new(step("next", Behaviour::Ok, &log)).name("next"));
    let start = tokio::time::Instant::now();
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(
        outcomes(&report),
        [
            pair("slow", StepOutcome::TimedOut),
            pair("next", StepOutcome::Succeeded)
        ]
    );
    assert_eq!(report.outcome, Outcome::Degraded);
    assert_eq!(report.exit_code, 10);
    assert!(
        report.steps[0]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 2s")
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_gets_no_more_than_what_is_left_of_the_global_budget() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(5))
        .push(PipelineStep::new(step("first", Behaviour::Sleep(secs(3)), &log)).name("first"))
        .push(
            PipelineStep::new(step("long", Behaviour::Sleep(secs(60)), &log))
                .name("long")
                .timeout(secs(10)),
        )
        .push(PipelineStep::new(step("last", Behaviour::Ok, &log)).name("last"));
    let start = tokio::time::Instant::now();
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(
        start.elapsed(),
        secs(5),
        "the second step had 2 s, not its own 10 s"
    );
    assert_eq!(
        outcomes(&report),
        [
            pair("first", StepOutcome::Succeeded),
            pair("long", StepOutcome::TimedOut),
            pair("last", StepOutcome::NotRun),
        ]
    );
    assert_eq!(report.outcome, Outcome::Forced);
    assert_eq!(report.exit_code, 12);
    assert_eq!(report.forced_by, Some(Reason::Deadline));
    assert!(!log.lines().iter().any(|l| l.starts_with("last")));
    let long = report.step("long").unwrap();
    assert_eq!(long.budget, 2.0);
    assert_eq!(
        long.error.as_deref(),
        Some("global deadline of 5s reached while the step ran")
    );
    assert_eq!(
        report.step("last").unwrap().error.as_deref(),
        Some("global deadline reached, shutdown forced")
    );
}

#[tokio::test(start_paused = true)]
async fn abort_stops_the_pipeline_and_continue_does_not() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("soft", Behaviour::Fail("soft failure"), &log)).name("soft"))
        .push(
            PipelineStep::new(step("hard", Behaviour::Fail("hard failure"), &log))
                .name("hard")
                .on_error(OnError::Abort),
        )
        .push(PipelineStep::new(step("after", Behaviour::Ok, &log)).name("after"));
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(
        outcomes(&report),
        [
            pair("soft", StepOutcome::Failed),
            pair("hard", StepOutcome::Failed),
            pair("after", StepOutcome::NotRun),
        ]
    );
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.exit_code, 11);
    assert_eq!(report.steps[0].error.as_deref(), Some("soft failure"));
    assert_eq!(report.steps[0].attempts, 3);
    assert!(report.steps[2].error.as_deref().unwrap().contains("`hard`"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_is_a_failed_step_not_a_crashed_shutdown() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("bad", Behaviour::Panic, &log)).name("bad"))
        .push(PipelineStep::new(step("after", Behaviour::Ok, &log)).name("after"));
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(
        outcomes(&report),
        [
            pair("bad", StepOutcome::Panicked),
            pair("after", StepOutcome::Succeeded)
        ]
    );
    assert!(
        report.steps[0]
            .error
            .as_deref()
            .unwrap()
            .contains("boom in bad")
    );
    assert_eq!(report.exit_code, 10);
}

#[tokio::test(start_paused = true)]
async fn after_the_second_signal_only_critical_steps_run() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(300))
        .push(
            PipelineStep::new(step("slow", Behaviour::Sleep(secs(100)), &log))
                .name("slow")
                .timeout(secs(200)),
        )
        .push(
            PipelineStep::new(step("cancel", Behaviour::Sleep(secs(1)), &log))
                .name("cancel")
                .critical(true),
        )
        .push(PipelineStep::new(step("notify", Behaviour::Ok, &log)).name("notify"))
        .push(
            PipelineStep::new(step("flush", Behaviour::Ok, &log))
                .name("flush")
                .critical(true),
        );
    let shutdown = Shutdown::new(pipeline, Node::new());
    let handle = shutdown.handle();
    assert_eq!(
        handle.escalate(Reason::Signal(Signal::Term)),
        Level::Graceful
    );
    let run = tokio::spawn(shutdown.run());
    tokio::time::sleep(secs(10)).await;
    assert_eq!(handle.escalate(Reason::Signal(Signal::Term)), Level::Hurry);
    let report = run.await.unwrap();
    assert_eq!(
        outcomes(&report),
        [
            pair("slow", StepOutcome::Skipped),
            pair("cancel", StepOutcome::Succeeded),
            pair("notify", StepOutcome::Skipped),
            pair("flush", StepOutcome::Succeeded),
        ]
    );
    assert!(
        (report.duration - 11.0).abs() < 0.5,
        "took {}",
        report.duration
    );
    assert_eq!(
        report.step("notify").unwrap().problems,
        ["notify left undone"]
    );
    assert_eq!(report.step("slow").unwrap().problems, ["slow left undone"]);
    let error = |name| report.step(name).unwrap().error.as_deref();
    assert_eq!(
        error("slow"),
        Some("interrupted: second signal, non-critical steps are skipped")
    );
    assert_eq!(
        error("notify"),
        Some("skipped: second signal, non-critical steps are skipped")
    );
    assert!(report.step("cancel").unwrap().problems.is_empty());
    assert_eq!(report.reason, Reason::Signal(Signal::Term));
    assert_eq!(report.outcome, Outcome::Degraded);
    assert!(!log.lines().contains(&"slow:end".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn the_third_signal_forces_at_once_while_a_step_hangs() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(300))
        .push(
            PipelineStep::new(step("hang", Behaviour::Sleep(secs(250)), &log))
                .name("hang")
                .critical(true)
                .timeout(secs(260)),
        )
        .push(
            PipelineStep::new(step("flush", Behaviour::Ok, &log))
                .name("flush")
                .critical(true),
        );
    let shutdown = Shutdown::new(pipeline, Node::new());
    let handle = shutdown.handle();
    handle.escalate(Reason::Signal(Signal::Int));
    let run = tokio::spawn(shutdown.run());
    tokio::time::sleep(secs(1)).await;
    handle.escalate(Reason::Signal(Signal::Int));
    tokio::time::sleep(secs(1)).await;
    let start = tokio::time::Instant::now();
    assert_eq!(handle.escalate(Reason::Signal(Signal::Int)), Level::Force);
    let report = run.await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        outcomes(&report),
        [
            pair("hang", StepOutcome::TimedOut),
            pair("flush", StepOutcome::NotRun)
        ]
    );
    assert_eq!(report.exit_code, 12);
    assert_eq!(report.forced_by, Some(Reason::Signal(Signal::Int)));
    assert!(
        report.steps[0]
            .error
            .as_deref()
            .unwrap()
            .contains("forced by SIGINT")
    ); // Each signal is in the report, at the time it came (the first before the run started).
    let escalations: Vec<(Level, Reason, f64)> = (report.escalations.iter())
        .map(|e| (e.level, e.reason.clone(), e.offset))
        .collect();
    assert_eq!(
        escalations,
        [
            (Level::Graceful, Reason::Signal(Signal::Int), 0.0),
            (Level::Hurry, Reason::Signal(Signal::Int), 1.0),
            (Level::Force, Reason::Signal(Signal::Int), 2.0)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_triggers_coalesce_into_one_run() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("only", Behaviour::Sleep(secs(1)), &log)).name("only"));
    let shutdown = Shutdown::new(pipeline, Node::new());
    let handle = shutdown.handle();
    let run = tokio::spawn(shutdown.run_when_requested());
    let triggers: Vec<_> = [Reason::Fleet, Reason::Api, Reason::Fleet]
        .into_iter()
        .map(|r| {
            let h = handle.clone();
            tokio::spawn(async move { h.trigger(r) })
        })
        .collect();
    let mut started = 0;
    for t in triggers {
        started += usize::from(t.await.unwrap());
    }
    let report = run.await.unwrap();
    assert_eq!(started, 1, "exactly one trigger starts the shutdown");
    let starts = log
        .lines()
        .iter()
        .filter(|l| l.starts_with("only:start"))
        .count();
    assert_eq!(starts, 1);
    assert!(report.reason == Reason::Fleet || report.reason == Reason::Api);
}

#[tokio::test(start_paused = true)]
async fn the_reason_and_results_reach_later_steps() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("give", Behaviour::Give(42), &log)).name("give"))
        .push(PipelineStep::new(step("take", Behaviour::Take, &log)).name("take"));
    let shutdown = Shutdown::new(pipeline, Node::new());
    shutdown.handle().trigger(Reason::Signal(Signal::Term));
    let report = shutdown.run().await;
    assert_eq!(report.step("take").unwrap().details["took"], 42);
    assert_eq!(log.lines()[0], "give:start:SIGTERM");
    assert_eq!(log.lines()[2], "take:start:SIGTERM");
}

#[tokio::test(start_paused = true)]
async fn a_problem_degrades_and_a_disabled_step_does_not() {
    let log = Log::default();
    let disabled = PipelineStep::new(step("off", Behaviour::Panic, &log))
        .name("off")
        .enabled(false);
    let pipeline = Pipeline::new(secs(30))
        .push(disabled)
        .push(PipelineStep::new(step("ok", Behaviour::Ok, &log)).name("ok"));
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(report.outcome, Outcome::Clean);
    assert_eq!(report.steps[0].outcome, StepOutcome::Skipped);
    assert!(
        report.steps[0].problems.is_empty(),
        "a disabled step is not a consequence"
    );
    assert!(
        !log.lines().iter().any(|l| l.starts_with("off:")),
        "the disabled step never ran"
    );

    // A disabled step that judges the node's safety (it counts) leaves its count unknown.
    let disabled = PipelineStep::new(step("count-off", Behaviour::Ok, &log))
        .name("off")
        .enabled(false);
    let report = Shutdown::new(Pipeline::new(secs(30)).push(disabled), Node::new())
        .run()
        .await;
    assert_eq!(report.outcome, Outcome::Degraded);
    assert_eq!(report.steps[0].problems, ["count-off left undone"]);
    assert!(report.count(Counter::OrdersOrphaned).unknown);

    let pipeline = Pipeline::new(secs(30)).push(
        PipelineStep::new(step(
            "p",
            Behaviour::Problem("position BTC unprotected"),
            &log,
        ))
        .name("p"),
    );
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
    assert_eq!(report.steps[0].problems, ["position BTC unprotected"]);
    assert_eq!(report.outcome, Outcome::Degraded);
}

#[tokio::test(start_paused = true)]
async fn the_report_goes_to_every_sink_and_a_failing_sink_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let log = Log::default();
    let mut pipeline =
        Pipeline::new(secs(30)).push(PipelineStep::new(step("a", Behaviour::Ok, &log)).name("a"));
    pipeline.settings.report_path = Some(path.clone());
    let report = Shutdown::new(pipeline, Node::new())
        .with_sink(Arc::new(FileSink::new(dir.path().join("missing/r.json"))))
        .run()
        .await;
    let on_disk = crate::report::read_report(&path).unwrap();
    assert_eq!(on_disk.steps, report.steps);
    assert_eq!(
        on_disk.sink_errors, report.sink_errors,
        "the file names the sink that failed before it"
    );
    assert_eq!(report.sink_errors.len(), 1);
    assert!(report.sink_errors[0].contains("missing/r.json"));
}

#[tokio::test(start_paused = true)]
async fn a_step_receives_the_receipt_of_the_steps_before_it() {
    let log = Log::default();
    let mut pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("a", Behaviour::Problem("stop left open"), &log)).name("a"))
        .push(PipelineStep::new(step("b", Behaviour::ReadReceipt, &log)).name("b"));
    pipeline.settings.trader_id = "desk-7".into();
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    let receipt = &report.step("b").unwrap().details["receipt"];
    assert_eq!(receipt["trader_id"], "desk-7");
    assert_eq!(receipt["reason"], "api");
    assert_eq!(receipt["timeout_secs"], 30.0);
    assert_eq!(receipt["started_at"], report.started_at.as_str());
    let steps = receipt["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "only the steps before it: {receipt}");
    assert_eq!(steps[0]["name"], "a");
    assert_eq!(steps[0]["problems"][0], "stop left open");
}

/// A sink that hands each report to a channel.
struct ChannelSink(tokio::sync::mpsc::UnboundedSender<Report>);

impl ReportSink for ChannelSink {
    fn name(&self) -> String {
        "channel".into()
    }
    fn write(&self, report: &Report) -> Result<(), crate::report::SinkError> {
        (self.0.send(report.clone())).map_err(|e| crate::report::SinkError::Remote(e.to_string()))
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_future_does_not_stop_the_shutdown_half_way() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("a", Behaviour::Sleep(secs(1)), &log)).name("a"))
        .push(PipelineStep::new(step("b", Behaviour::Ok, &log)).name("b"));
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = Shutdown::new(pipeline, Node::new()).with_sink(Arc::new(ChannelSink(tx)));
    let run = tokio::spawn(shutdown.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.lines(), ["a:start:api"]);
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let report = reports.recv().await.unwrap();
    assert_eq!(
        log.lines(),
        ["a:start:api", "a:end", "b:start:api", "b:end"]
    );
    assert_eq!(report.outcome, Outcome::Clean);
}

/// Runs `shutdown` until its blocking step holds its thread, does `then` with the handle, and returns
/// the report, which must come while the step still blocks; then lets the step go.
async fn report_while_blocked(
    shutdown: Shutdown,
    started: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
    then: impl FnOnce(&ShutdownHandle),
) -> Report {
    let handle = shutdown.handle();
    let run = tokio::spawn(shutdown.run());
    tokio::task::spawn_blocking(move || started.recv())
        .await
        .unwrap()
        .unwrap();
    then(&handle);
    let report = tokio::time::timeout(secs(20), run)
        .await
        .expect("the report came while the step still held its thread")
        .unwrap();
    release.send(()).unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_holding_its_thread_is_abandoned_after_its_timeout_and_the_next_still_runs() {
    let log = Log::default();
    let (block, started, release) = blocker();
    let pipeline = Pipeline::new(secs(30))
        .push(
            PipelineStep::new(step("stuck", block, &log))
                .name("stuck")
                .timeout(Duration::from_millis(200)),
        )
        .push(PipelineStep::new(step("next", Behaviour::Ok, &log)).name("next"));
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = Shutdown::new(pipeline, Node::new()).with_sink(Arc::new(ChannelSink(tx)));
    let report = report_while_blocked(shutdown, started, release, |_| {}).await;
    assert_eq!(reports.recv().await.unwrap().steps, report.steps);
    // Given its thread back, the abandoned runner reports nothing and runs nothing more: the sink's
    // channel closes (the last runner is gone) without a second report.
    let after = tokio::time::timeout(secs(20), reports.recv()).await;
    assert!(matches!(after, Ok(None)), "{after:?}");
    assert_eq!(
        log.lines()
            .iter()
            .filter(|l| l.starts_with("next:start"))
            .count(),
        1
    );
    assert_eq!(
        outcomes(&report),
        [
            pair("stuck", StepOutcome::TimedOut),
            pair("next", StepOutcome::Succeeded)
        ]
    );
    assert_eq!(report.exit_code, 10);
    let error = report.steps[0].error.as_deref().unwrap();
    assert!(error.contains("timed out after 0.2s"), "{error}");
    assert!(
        error.contains("held its thread (a blocking call or a long computation)"),
        "{error}"
    );
    assert!(report.steps[0].duration >= 0.2, "{report:?}");
    assert_eq!(report.steps[0].problems, ["stuck left undone"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_async_step_cut_at_its_deadline_is_never_said_to_hold_its_thread() {
    // Each poll is handed to the blocking pool and wakes itself at once: at the deadline a poll is
    // nearly always queued or a few microseconds into its run, which is no blocking call.
    for run in 0..20 {
        let log = Log::default();
        let pipeline = Pipeline::new(secs(30)).push(
            PipelineStep::new(step("busy", Behaviour::Busy, &log))
                .name("busy")
                .timeout(Duration::from_millis(20)),
        );
        let report = Shutdown::new(pipeline, Node::new()).run().await;
        assert_eq!(report.steps[0].outcome, StepOutcome::TimedOut);
        let error = report.steps[0].error.as_deref().unwrap();
        assert!(error.contains("timed out after 0.02s"), "{error}");
        assert!(!error.contains("held its thread"), "run {run}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_ends_the_shutdown_while_a_step_holds_its_thread() {
    let log = Log::default();
    let (block, started, release) = blocker();
    let pipeline = Pipeline::new(secs(300))
        .push(
            PipelineStep::new(step("stuck", block, &log))
                .name("stuck")
                .critical(true)
                .timeout(secs(200)),
        )
        .push(PipelineStep::new(step("flush", Behaviour::Ok, &log)).name("flush"));
    let shutdown = Shutdown::new(pipeline, Node::new());
    let report = report_while_blocked(shutdown, started, release, |h| {
        h.force(Reason::Signal(Signal::Int))
    })
    .await;
    assert_eq!(
        outcomes(&report),
        [
            pair("stuck", StepOutcome::TimedOut),
            pair("flush", StepOutcome::NotRun)
        ]
    );
    assert_eq!(report.exit_code, 12);
    assert_eq!(report.forced_by, Some(Reason::Signal(Signal::Int)));
    let error = report.steps[0].error.as_deref().unwrap();
    assert!(error.contains("forced by SIGINT"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_abandons_a_non_critical_step_holding_its_thread() {
    let log = Log::default();
    let (block, started, release) = blocker();
    let pipeline = Pipeline::new(secs(300))
        .push(
            PipelineStep::new(step("stuck", block, &log))
                .name("stuck")
                .timeout(secs(200)),
        )
        .push(PipelineStep::new(step("optional", Behaviour::Ok, &log)).name("optional"))
        .push(
            PipelineStep::new(step("flush", Behaviour::Ok, &log))
                .name("flush")
                .critical(true)
                .timeout(secs(200)),
        );
    let shutdown = Shutdown::new(pipeline, Node::new());
    let report = report_while_blocked(shutdown, started, release, |h| {
        h.hurry(Reason::Signal(Signal::Int))
    })
    .await;
    assert_eq!(
        outcomes(&report),
        [
            pair("stuck", StepOutcome::Skipped),
            pair("optional", StepOutcome::Skipped),
            pair("flush", StepOutcome::Succeeded)
        ]
    );
    assert_eq!(report.exit_code, 10);
    assert!(log.lines().contains(&"flush:end".to_owned()));
}

/// A sink that hands each report to a std channel, for tests that wait from a plain thread (a
/// runtime whose workers are all held cannot fire a timer).
struct StdChannelSink(Mutex<std::sync::mpsc::Sender<Report>>);

impl ReportSink for StdChannelSink {
    fn name(&self) -> String {
        "std channel".into()
    }
    fn write(&self, report: &Report) -> Result<(), crate::report::SinkError> {
        let tx = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (tx.send(report.clone())).map_err(|e| crate::report::SinkError::Remote(e.to_string()))
    }
}

fn std_channel_sink() -> (Arc<StdChannelSink>, std::sync::mpsc::Receiver<Report>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (Arc::new(StdChannelSink(Mutex::new(tx))), rx)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_step_after_a_slow_one_still_ends_at_the_global_deadline() {
    let log = Log::default();
    let (block, _started, release) = blocker();
    let pipeline = Pipeline::new(ms(1200))
        .push(
            PipelineStep::new(step("slow", Behaviour::Sleep(ms(1000)), &log))
                .name("slow")
                .timeout(secs(10)),
        )
        .push(
            PipelineStep::new(step("stuck", block, &log))
                .name("stuck")
                .timeout(secs(10)),
        );
    let (sink, reports) = std_channel_sink();
    let start = std::time::Instant::now();
    let run = tokio::spawn(Shutdown::new(pipeline, Node::new()).with_sink(sink).run());
    // Waits on this thread (the test's own, not a runtime worker).
    let report = reports
        .recv_timeout(secs(10))
        .expect("the report arrives at the global deadline");
    let took = start.elapsed();
    release.send(()).unwrap();
    assert!(took < ms(1200 + 500), "the report took {took:?}");
    assert_eq!(
        outcomes(&report),
        [
            pair("slow", StepOutcome::Succeeded),
            pair("stuck", StepOutcome::TimedOut)
        ]
    );
    assert_eq!(report.exit_code, 12);
    assert_eq!(report.forced_by, Some(Reason::Deadline));
    assert_eq!(run.await.unwrap().steps, report.steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_keeps_the_supervision_of_later_steps() {
    let log = Log::default();
    let (first, first_started, first_release) = blocker();
    let (block, _started, release) = blocker();
    let pipeline = Pipeline::new(secs(30))
        .push(PipelineStep::new(step("first", first, &log)).name("first"))
        .push(
            PipelineStep::new(step("stuck", block, &log))
                .name("stuck")
                .timeout(ms(300)),
        )
        .push(PipelineStep::new(step("last", Behaviour::Ok, &log)).name("last"));
    let (sink, reports) = std_channel_sink();
    let run = tokio::spawn(Shutdown::new(pipeline, Node::new()).with_sink(sink).run());
    tokio::task::spawn_blocking(move || first_started.recv())
        .await
        .unwrap()
        .unwrap();
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    first_release.send(()).unwrap();
    let report = reports
        .recv_timeout(secs(10))
        .expect("the report arrives though nobody awaits the run");
    release.send(()).unwrap();
    assert_eq!(
        outcomes(&report),
        [
            pair("first", StepOutcome::Succeeded),
            pair("stuck", StepOutcome::TimedOut),
            pair("last", StepOutcome::Succeeded)
        ]
    );
    assert_eq!(report.exit_code, 10);
}

/// `count` steps that each block their thread for good (until the test ends), then one that works.
fn blocking_pipeline(count: usize, log: &Log) -> (Pipeline, Vec<std::sync::mpsc::Sender<()>>) {
    let mut pipeline = Pipeline::new(secs(30));
    let mut releases = Vec::new();
    for i in 0..count {
        let (block, _started, release) = blocker();
        releases.push(release);
        pipeline = pipeline.push(
            PipelineStep::new(step("stuck", block, log))
                .name(format!("stuck-{i}"))
                .timeout(ms(200)),
        );
    }
    let pipeline = pipeline.push(PipelineStep::new(step("last", Behaviour::Ok, log)).name("last"));
    (pipeline, releases)
}

fn assert_every_blocked_step_was_given_up_on(report: &Report, count: usize) {
    let expected: Vec<_> = (0..count)
        .map(|i| pair(&format!("stuck-{i}"), StepOutcome::TimedOut))
        .chain([pair("last", StepOutcome::Succeeded)])
        .collect();
    assert_eq!(outcomes(report), expected);
    assert_eq!(report.exit_code, 10);
    assert!(
        report.duration < 0.2 * count as f64 + 1.0,
        "took {}s",
        report.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_blocking_steps_than_worker_threads_are_each_given_up_on() {
    let log = Log::default();
    let (pipeline, releases) = blocking_pipeline(3, &log);
    let (sink, reports) = std_channel_sink();
    let _run = tokio::spawn(Shutdown::new(pipeline, Node::new()).with_sink(sink).run());
    let report = reports.recv_timeout(secs(10)).expect("a report");
    drop(releases);
    assert_every_blocked_step_was_given_up_on(&report, 3);
}

#[test]
fn blocking_steps_are_given_up_on_on_a_current_thread_runtime() {
    let log = Log::default();
    let (pipeline, releases) = blocking_pipeline(2, &log);
    let (sink, reports) = std_channel_sink();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let thread = std::thread::spawn(move || {
        runtime.block_on(Shutdown::new(pipeline, Node::new()).with_sink(sink).run())
    });
    let report = reports.recv_timeout(secs(10)).expect("a report");
    drop(releases);
    assert_every_blocked_step_was_given_up_on(&report, 2);
    assert_eq!(thread.join().unwrap().steps, report.steps);
}

/// A sink that holds its thread until the test lets it go, and says how long the runner may wait.
struct StuckSink {
    release: Mutex<std::sync::mpsc::Receiver<()>>,
    timeout: Duration,
}

impl ReportSink for StuckSink {
    fn name(&self) -> String {
        "stuck".into()
    }
    fn write(&self, _: &Report) -> Result<(), crate::report::SinkError> {
        let release = self.release.lock().unwrap_or_else(|e| e.into_inner());
        let _ = release.recv();
        Ok(())
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_never_answers_is_named_and_the_outcome_stays_the_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let log = Log::default();
    let mut pipeline =
        Pipeline::new(secs(30)).push(PipelineStep::new(step("a", Behaviour::Ok, &log)).name("a"));
    pipeline.settings.report_path = Some(path.clone());
    let (release, held) = std::sync::mpsc::channel();
    let stuck = StuckSink {
        release: Mutex::new(held),
        timeout: ms(300),
    };
    let (sink, reports) = std_channel_sink();
    let run = tokio::spawn(
        Shutdown::new(pipeline, Node::new())
            .with_sink(Arc::new(stuck))
            .with_sink(sink)
            .run(),
    );
    // The other sinks are not held up by the stuck one, and the file is there before either.
    let first = reports.recv_timeout(secs(10)).expect("a report");
    assert_eq!(first.outcome, Outcome::Clean);
    assert!(path.exists(), "the report file is written first");
    let report = run.await.unwrap();
    release.send(()).unwrap();
    assert_eq!(report.outcome, Outcome::Clean);
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.sink_errors.len(), 1, "{:?}", report.sink_errors);
    assert!(
        report.sink_errors[0].starts_with("stuck: no answer within 0.3s"),
        "{:?}",
        report.sink_errors
    );
    let on_disk = crate::report::read_report(&path).unwrap();
    assert_eq!(
        on_disk.sink_errors, report.sink_errors,
        "the file is rewritten to name it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_cut_at_the_global_deadline_leaves_the_outcome_the_pipelines_too() {
    // The steps take the budget to its last moments: the stuck sink is cut by the deadline (given
    // the least time past it), not by its own timeout. Same rule: named, the exit code unchanged.
    let log = Log::default();
    let pipeline = Pipeline::new(ms(2500)).push(
        PipelineStep::new(step("a", Behaviour::Sleep(ms(1100)), &log))
            .name("a")
            .timeout(secs(2)),
    );
    let (release, held) = std::sync::mpsc::channel();
    let stuck = StuckSink {
        release: Mutex::new(held),
        timeout: secs(30),
    };
    let report = Shutdown::new(pipeline, Node::new())
        .with_sink(Arc::new(stuck))
        .run()
        .await;
    release.send(()).unwrap();
    assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
    assert_eq!((report.outcome, report.exit_code), (Outcome::Clean, 0));
    assert_eq!(report.sink_errors.len(), 1, "{:?}", report.sink_errors);
    let error = &report.sink_errors[0];
    // What was left of the budget, worded as the report words seconds: three decimals at most.
    let within = (error.strip_prefix("stuck: no answer within "))
        .and_then(|rest| rest.split_once("s (its timeout, capped by what was left"))
        .map(|(n, _)| n)
        .unwrap_or_else(|| panic!("{error}"));
    let left: f64 = within.parse().unwrap();
    assert!((1.0..=1.4).contains(&left), "{error}");
    assert!(
        within.split('.').nth(1).is_none_or(|d| d.len() <= 3),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_report_file_that_cannot_be_written_goes_to_a_fallback_file() {
    let log = Log::default();
    let trader = format!("fallback-test-{}", std::process::id());
    let fallback = std::env::temp_dir().join(format!("shutdown-report-{trader}.json"));
    let _ = std::fs::remove_file(&fallback);
    let mut pipeline =
        Pipeline::new(secs(30)).push(PipelineStep::new(step("a", Behaviour::Ok, &log)).name("a"));
    pipeline.settings.report_path = Some("/nonexistent-dir/x/report.json".into());
    pipeline.settings.trader_id = trader.clone();
    let report = Shutdown::new(pipeline, Node::new()).run().await;
    let kept = crate::report::read_report(&fallback).unwrap();
    std::fs::remove_file(&fallback).unwrap();
    assert_eq!(kept.trader_id, trader);
    assert_eq!(kept.steps, report.steps);
    assert_eq!(report.sink_errors.len(), 1);
    let error = &report.sink_errors[0];
    assert!(error.contains("/nonexistent-dir/x/report.json"), "{error}");
    assert!(error.contains(&fallback.display().to_string()), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_step_cut_short_keeps_what_it_published_and_an_unknown_count_is_unknown() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(30))
        .push(
            PipelineStep::new(step("count-cut", Behaviour::PublishThenHang, &log))
                .name("cut")
                .timeout(secs(2)),
        )
        .push(PipelineStep::new(step("count-hurried", Behaviour::Ok, &log)).name("never"));
    let shutdown = Shutdown::new(pipeline, Node::new());
    let handle = shutdown.handle();
    let run = tokio::spawn(shutdown.run());
    tokio::time::sleep(secs(1)).await;
    handle.hurry(Reason::Signal(Signal::Int));
    let report = run.await.unwrap();
    let cut = report.step("cut").unwrap();
    assert_eq!(cut.outcome, StepOutcome::Skipped, "{cut:?}");
    assert_eq!(
        cut.details["still_working"],
        serde_json::json!(["o-1", "o-2"])
    );
    assert_eq!(
        cut.counts[&Counter::OrdersOrphaned],
        None,
        "requests were in flight: the count it published may have moved"
    );
    assert_eq!(
        cut.problems,
        ["2 orders still working", "count-cut left undone"]
    );
    let never = report.step("never").unwrap();
    assert_eq!(never.outcome, StepOutcome::Skipped);
    assert_eq!(
        never.counts[&Counter::OrdersOrphaned],
        None,
        "unknown, not 0"
    );
    assert_eq!(cut.at_least[&Counter::OrdersOrphaned], 2);
    // What was counted is kept as what it is, a lower bound, beside the unknown flag.
    let count = report.count(Counter::OrdersOrphaned);
    assert_eq!((count.known, count.unknown), (2, true));
    let json = report.to_json_line();
    assert!(
        json.contains(r#""counts":{"orders_orphaned":null},"at_least":{"orders_orphaned":2}"#),
        "{json}"
    );
}

/// A step that confirms one more order every second for `seconds`, publishing its count.
struct Confirming {
    seconds: u64,
}

#[async_trait::async_trait]
impl ShutdownStep for Confirming {
    fn kind(&self) -> &'static str {
        "confirming"
    }
    async fn run(&self, ctx: crate::StepContext) -> Result<crate::StepOutput, crate::StepError> {
        for n in 1..=self.seconds {
            tokio::time::sleep(secs(1)).await;
            ctx.partial.count(Counter::OrdersCancelled, n);
        }
        Ok(crate::StepOutput::new().summary("confirmed"))
    }
}

/// Run `pipeline` telling a socket the test owns; what systemd would have heard, in order.
async fn notifications(pipeline: Pipeline) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let shutdown = Shutdown::new(pipeline, Node::new())
        .with_notifier(Some(crate::systemd::Notifier::at(&path)))
        .poll_in_place(true);
    shutdown.run().await;
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = socket.recv(&mut buf) {
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    heard
}

fn systemd_pipeline(step: impl ShutdownStep, critical: bool) -> Pipeline {
    let mut pipeline = Pipeline::new(secs(60)).push(
        PipelineStep::new(step)
            .name("cancel")
            .critical(critical)
            .timeout(secs(30)),
    );
    pipeline.settings.systemd.progress_interval = secs(1);
    pipeline
}

#[tokio::test(start_paused = true)]
async fn systemd_hears_stopping_a_status_per_step_and_the_outcome() {
    let log = Log::default();
    let pipeline = Pipeline::new(secs(60))
        .push(PipelineStep::new(step("a", Behaviour::Ok, &log)).name("a"))
        .push(PipelineStep::new(step("b", Behaviour::Ok, &log)).name("b"));
    assert_eq!(
        notifications(pipeline).await,
        [
            "STOPPING=1\nSTATUS=shutting down (api): 2 steps",
            "STATUS=step 1/2 a: started",
            "STATUS=step 2/2 b: started",
            "STATUS=shutdown clean (exit 0)",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_critical_step_that_progresses_gets_more_time_and_a_stalled_one_does_not() {
    let extend = "EXTEND_TIMEOUT_USEC=2000000";
    let progressing = notifications(systemd_pipeline(Confirming { seconds: 3 }, true)).await;
    assert_eq!(
        progressing[1..],
        [
            "STATUS=step 1/1 cancel: started".to_owned(),
            format!("STATUS=step 1/1 cancel: running\n{extend}"),
            format!("STATUS=step 1/1 cancel: running\n{extend}"),
            "STATUS=shutdown clean (exit 0)".to_owned(),
        ],
        "{progressing:#?}"
    );
    let log = Log::default();
    let stalled = step(
        "cancel",
        Behaviour::Sleep(Duration::from_millis(3500)),
        &log,
    );
    let stalled = notifications(systemd_pipeline(stalled, true)).await;
    assert_eq!(
        stalled[1..],
        [
            "STATUS=step 1/1 cancel: started",
            "STATUS=step 1/1 cancel: running",
            "STATUS=step 1/1 cancel: running",
            "STATUS=step 1/1 cancel: running",
            "STATUS=shutdown clean (exit 0)",
        ],
        "{stalled:#?}"
    );
    // A non-critical step is told about but never extended: a second signal would skip it anyway.
    let plain = notifications(systemd_pipeline(Confirming { seconds: 3 }, false)).await;
    assert!(plain.iter().all(|m| !m.contains("EXTEND")), "{plain:#?}");
}

#[test]
fn a_service_manager_that_never_reads_never_holds_up_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let _deaf = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // Twenty steps: far more notifications than the kernel queues for a listener that never reads.
    std::thread::spawn(move || {
        let log = Log::default();
        let pipeline = (0..20).fold(Pipeline::new(secs(60)), |p, i| {
            p.push(PipelineStep::new(step("s", Behaviour::Ok, &log)).name(format!("s{i}")))
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let shutdown = Shutdown::new(pipeline, Node::new())
            .with_notifier(Some(crate::systemd::Notifier::at(&path)))
            .poll_in_place(true);
        let report = runtime.block_on(shutdown.run());
        let _ = done_tx.send(report.exit_code);
    });
    let code = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the shutdown finished though nobody read its notifications");
    assert_eq!(code, 0);
}

#[test]
fn a_runtime_shut_down_under_a_running_shutdown_still_leaves_its_report_in_every_sink() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let log = Log::default();
    let pipeline = Pipeline::new(secs(60))
        .push(PipelineStep::new(step("slow", Behaviour::Sleep(secs(60)), &log)).name("slow"));
    let (sink, reports) = std_channel_sink();
    let flushed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flushed.clone();
    let shutdown = Shutdown::new(pipeline, Node::new())
        .with_sink(sink)
        .on_exit("flag", move || {
            f.store(true, std::sync::atomic::Ordering::SeqCst)
        });
    let handle = rt.handle().clone();
    let caller = std::thread::spawn(move || handle.block_on(shutdown.run()));
    let deadline = std::time::Instant::now() + secs(10);
    while !log.lines().iter().any(|l| l.starts_with("slow:start")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::yield_now();
    }
    // The node's runtime goes away mid-step (its owner dropped it).
    drop(rt);
    let report = caller.join().unwrap();
    assert_eq!(report.outcome, Outcome::Forced);
    let sent = reports
        .recv_timeout(secs(5))
        .expect("the other sink has the report");
    assert_eq!(sent.outcome, Outcome::Forced);
    assert_eq!(outcomes(&sent), vec![pair("slow", StepOutcome::TimedOut)]);
    assert!(
        flushed.load(std::sync::atomic::Ordering::SeqCst),
        "the exit flushes ran"
    );
}
