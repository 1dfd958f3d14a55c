//! [`Shutdown`]: what runs a [`Pipeline`] once, when asked, and where its report goes. The machinery
//! that runs it is in `runner/`.

use std::sync::Arc;

use crate::after_deadline::AfterDeadline;
use crate::exit_hooks::ExitHooks;
use crate::pipeline::Pipeline;
use crate::report::deliver::Sinks;
use crate::report::{FileSink, Report, ReportSink};
use crate::runner::Job;
use crate::signals::SignalListener;
use crate::step::Extensions;
use crate::systemd::Notifier;
use crate::trading::roles::Node;
use crate::trigger::{Reason, ShutdownHandle};

/// Runs a pipeline once, when asked, and reports.
pub struct Shutdown {
    /// What the runner gets: this builder sets it up.
    job: Job,
}
impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("pipeline", &self.job.pipeline)
            .field("exit_process", &self.job.exit_process)
            .finish_non_exhaustive()
    }
}

impl Shutdown {
    /// A shutdown of `pipeline` for `node`. The report goes to the log and, when the pipeline has a
    /// `report_path`, to that file. By default [`Shutdown::run`] returns the report; see
    /// [`Shutdown::exit_process`]. Pass an `Arc<Pipeline>` to run one pipeline many times without
    /// copying it.
    pub fn new(pipeline: impl Into<Arc<Pipeline>>, node: Node) -> Self {
        let pipeline = pipeline.into();
        let sinks = Sinks {
            file: pipeline.settings.report_path.as_ref().map(FileSink::new),
            others: Vec::new(),
        };
        Self {
            job: Job {
                pipeline,
                node,
                handle: ShutdownHandle::new(),
                sinks,
                exit_process: false,
                exit_on_force: false,
                dry_run: false,
                in_place: false,
                extensions: Extensions::default(),
                notifier: Notifier::from_env(),
                exit_hooks: ExitHooks::default(),
                after: AfterDeadline::DEFAULT,
            },
        }
    }

    /// Where the service manager hears of the shutdown (`STOPPING=1`, a status per step,
    /// `EXTEND_TIMEOUT_USEC` while a critical step progresses; see [`crate::systemd`]). By default
    /// the socket `NOTIFY_SOCKET` names, if it names one; `None` to say nothing.
    pub fn with_notifier(mut self, notifier: Option<Notifier>) -> Self {
        self.job.notifier = notifier;
        self
    }

    /// A dry run: steps are told not to write outside the process (see [`crate::StepContext::dry_run`]).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.job.dry_run = dry_run;
        self
    }

    /// Poll each step on the task that supervises it instead of the runtime's blocking pool. For a
    /// simulation (a dry run on the paper venue) on a current-thread runtime with a paused clock:
    /// everything then runs on one thread in a fixed order, and the same seed gives the same run.
    /// A step that blocks its thread then blocks the whole runtime: never for a live node.
    pub fn poll_in_place(mut self, in_place: bool) -> Self {
        self.job.in_place = in_place;
        self
    }

    /// Hand a value to the steps (one per type): a step reads it with
    /// [`crate::StepContext::extension`]. The node or the operator's tool passes run-time things
    /// this way: where Redis is, a client of its own.
    pub fn with_extension<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.job.extensions.insert(value);
        self
    }

    /// Use this handle (share one with code that must trigger or observe the shutdown).
    pub fn with_handle(mut self, handle: ShutdownHandle) -> Self {
        self.job.handle = handle;
        self
    }

    /// Add a report sink. It is written after the report file and the log line, at the same time as
    /// the other added sinks, within its [`ReportSink::timeout`] and what is left of the global
    /// budget (1 s at least, taken from the headroom, when the deadline has passed); a sink that
    /// fails or does not answer in time is named in the report's `sink_errors` (and the report file
    /// is rewritten to say so).
    pub fn with_sink(mut self, sink: Arc<dyn ReportSink>) -> Self {
        self.job.sinks.others.push(sink);
        self
    }

    /// Run `flush` last: after the report is written and before the process exits (a forced exit
    /// too) or [`Shutdown::run`] returns. For what `std::process::exit` would lose: a non-blocking
    /// log writer's buffer, a metrics or trace exporter's batch. Every flush runs on a thread of
    /// its own, all at once, within [`Shutdown::exit_flush_timeout`] in all; one still running
    /// then is named on stderr and left behind.
    pub fn on_exit(
        mut self,
        name: impl Into<String>,
        flush: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        self.job.exit_hooks.push(name.into(), Arc::new(flush));
        self
    }

    /// How long the exit flushes may take together (default 1 s); it moves the latest exit after
    /// the deadline as much ([`Shutdown::after_deadline`]).
    pub fn exit_flush_timeout(mut self, bound: std::time::Duration) -> Self {
        self.job.after = self.job.after.with_exit_flushes(bound);
        self
    }

    /// What this shutdown may spend after its global deadline: the process exits by
    /// `timeout_secs` + [`AfterDeadline::worst_case`] at the latest.
    pub fn after_deadline(&self) -> AfterDeadline {
        self.job.after
    }

    /// Exit the process with the outcome's code once the report is written; and on force (third
    /// signal, global deadline), write the report and exit with 12 from a dedicated thread, even
    /// while the async runtime cannot run.
    pub fn exit_process(mut self, exit: bool) -> Self {
        self.job.exit_process = exit;
        self.job.exit_on_force = exit;
        self
    }

    /// Exit the process on force only (third signal, global deadline): the report is written and
    /// the process exits with 12 from a dedicated thread, even while the async runtime cannot run.
    /// Otherwise [`Shutdown::run`] hands the report back, for a host that has work of its own after
    /// the pipeline (a Python node that stops and disposes itself, then exits with the report's
    /// code). That work is bounded too: past the global deadline, the same thread exits the process
    /// with the report's code.
    pub fn exit_on_force(mut self, exit: bool) -> Self {
        self.job.exit_on_force = exit;
        self
    }

    /// The handle that requests, escalates and observes this shutdown.
    pub fn handle(&self) -> ShutdownHandle {
        self.job.handle.clone()
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.job.pipeline
    }

    /// Listen for the pipeline's signals until the returned listener is dropped.
    pub fn listen_signals(&self) -> std::io::Result<SignalListener> {
        SignalListener::start(&self.job.pipeline.settings.signals, self.job.handle.clone())
    }

    /// Wait for a request (signal, [`ShutdownHandle::trigger`]), then run.
    pub async fn run_when_requested(self) -> Report {
        self.job.handle.requested().await;
        self.run().await
    }

    /// Run the pipeline as a start gate: reason `start`, before the node trades. The same runner,
    /// budgets, report and exit codes; the steps (`reconcile`, `verify`, `resume`, say) compare the
    /// venue with what the node last knew ([`crate::trading::domain::LastKnown`], handed over with
    /// [`Shutdown::with_extension`]) and open the trading gate only when nothing is left outstanding.
    /// A signal during the gate escalates it as it would a shutdown.
    pub async fn run_start_gate(self) -> Report {
        self.job.handle.trigger(Reason::Start);
        self.run().await
    }

    /// Run the pipeline now (requesting the shutdown with reason `api` if nobody has).
    ///
    /// The supervision runs on a task of its own: dropping this future does not stop the shutdown
    /// half way (orders half cancelled, no snapshot); the steps are still supervised, and the report
    /// still reaches every sink.
    ///
    /// A step that blocks its thread past its budget is walked away from; it keeps a thread of the
    /// runtime's blocking pool until its call returns, so a runtime dropped afterwards waits for that
    /// call (a node that exits the process, [`Shutdown::exit_process`], does not wait).
    pub async fn run(self) -> Report {
        crate::runner::run(self.job).await
    }
}
