//! The native half of `GracefulShutdownHandler`: the pipeline built from the config for the Python
//! node, run once by the Rust runner, escalated by signals, its report handed back as JSON.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use shutdown_core::config::EnvOverrides;
use shutdown_core::{
    Level, Node, Pipeline, PipelineConfig, Reason, Report, Shutdown, ShutdownHandle, Signal,
};
use shutdown_metrics::MetricsSink;
use tokio::sync::OnceCell;

use crate::bridge::Bridge;
use crate::{ConfigError, roles};

/// A pipeline bound to one Python node; it runs once.
#[pyclass(module = "nautilus_shutdown._native", frozen)]
pub(crate) struct Handler {
    pipeline: Arc<Pipeline>,
    node: Node,
    handle: ShutdownHandle,
    bridge: Arc<Bridge>,
    metrics: Option<MetricsSink>,
    /// The report of the one run, once it ends; later callers get the same one.
    report: Arc<OnceCell<Report>>,
    exit_on_force: AtomicBool,
}

/// Validate the TOML text of a pipeline (`origin` names it in errors); every problem at once.
pub(crate) fn parse_config(text: &str, origin: &str) -> PyResult<PipelineConfig> {
    PipelineConfig::from_toml(text, origin, EnvOverrides::Process)
        .map_err(|e| ConfigError::new_err(e.to_string()))
}

/// A reason as the report names it: `api`, `fleet`, or a signal (`SIGTERM`, `SIGINT`, ...).
fn reason(name: &str) -> PyResult<Reason> {
    match name {
        "api" => Ok(Reason::Api),
        "fleet" => Ok(Reason::Fleet),
        other => Signal::from_str(other).map(Reason::Signal).map_err(|_| {
            PyValueError::new_err(format!(
                "reason: expected \"signal\", \"api\", \"fleet\" or a signal name such as \"SIGTERM\", found {other:?}"
            ))
        }),
    }
}

#[pymethods]
impl Handler {
    /// Build the pipeline of `text` for the node `adapter` speaks for, with the roles it names.
    #[new]
    fn new(adapter: Py<PyAny>, text: &str, origin: &str, roles: Vec<String>) -> PyResult<Self> {
        let config = parse_config(text, origin)?;
        crate::logging::init(&config.log_level);
        let bridge = Arc::new(Bridge::new(adapter));
        let node = roles::node(&bridge, &roles).map_err(PyValueError::new_err)?;
        let pipeline = config
            .build(&node)
            .map_err(|e| ConfigError::new_err(e.to_string()))?;
        let metrics = MetricsSink::new(&config.settings.metrics, &config.settings.trader_id);
        Ok(Self {
            pipeline: Arc::new(pipeline),
            node,
            handle: ShutdownHandle::new(),
            bridge,
            metrics,
            report: Arc::new(OnceCell::new()),
            exit_on_force: AtomicBool::new(false),
        })
    }

    /// Exit the process on a force (third signal, global deadline), and by the global deadline at
    /// the latest: for a live node whose signals this handler owns.
    fn set_exit_on_force(&self, exit: bool) {
        self.exit_on_force.store(exit, Ordering::Relaxed);
    }

    /// The global budget, in seconds.
    #[getter]
    fn timeout_secs(&self) -> f64 {
        self.pipeline.settings.timeout.as_secs_f64()
    }

    /// The steps, in order: `(name, kind, budget seconds, critical, enabled)`.
    fn steps(&self) -> Vec<(String, String, f64, bool, bool)> {
        (self.pipeline.steps.iter())
            .map(|s| {
                let t = &s.settings;
                let kind = t.kind.to_owned();
                (
                    t.name.clone(),
                    kind,
                    t.timeout.as_secs_f64(),
                    t.critical,
                    s.enabled,
                )
            })
            .collect()
    }

    /// Run the shutdown (once: a later call awaits the same run) on the running event loop, for
    /// `reason`; resolves to the report's JSON.
    fn run<'py>(&self, py: Python<'py>, reason_name: &str) -> PyResult<Bound<'py, PyAny>> {
        let why = reason(reason_name)?;
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        self.bridge.bind_loop(locals.clone());
        self.handle.trigger(why);
        let shutdown = self.shutdown();
        let once = self.report.clone();
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, async move {
            let report = once.get_or_init(|| shutdown.run()).await;
            Ok(report.to_json_line())
        })
    }

    /// A signal: the first requests the shutdown, the second hurries it, the third forces it.
    /// Returns the level reached: `graceful`, `hurry` or `force`.
    fn escalate(&self, signal: &str) -> PyResult<&'static str> {
        let signal = Signal::from_str(signal)
            .map_err(|_| PyValueError::new_err(format!("unknown signal {signal:?}")))?;
        Ok(match self.handle.escalate(Reason::Signal(signal)) {
            Level::Running => "running",
            Level::Graceful => "graceful",
            Level::Hurry => "hurry",
            Level::Force => "force",
        })
    }

    /// Whether a shutdown has been requested (by a signal or a run).
    fn is_shutdown_requested(&self) -> bool {
        self.handle.is_shutdown_requested()
    }
}

impl Handler {
    fn shutdown(&self) -> Shutdown {
        let mut shutdown = Shutdown::new(self.pipeline.clone(), self.node.clone())
            .with_handle(self.handle.clone())
            .exit_on_force(self.exit_on_force.load(Ordering::Relaxed));
        if let Some(metrics) = &self.metrics {
            shutdown = shutdown.with_sink(Arc::new(metrics.clone()));
        }
        shutdown
    }
}
