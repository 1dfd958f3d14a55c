//! The native half of `GracefulShutdownHandler`: the pipeline built from the config for the Python
//! node, run once by the Rust runner, escalated by signals, its report handed back as JSON.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use shutdown_core::EnvOverrides;
use shutdown_core::domain::LastKnown;
use shutdown_core::{
    Level, Node, Pipeline, PipelineConfig, Reason, Report, Shutdown, ShutdownHandle, Signal,
};
use shutdown_metrics::MetricsSink;
use shutdown_redis::{RedisReportSink, RedisTarget, RestoreOptions, RunMarker};
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
    /// Where the report goes in Redis, when the node has Redis.
    redis: Option<(RedisTarget, Arc<RedisReportSink>)>,
    /// The run marker set by `restore`, cleared by a final report.
    marker: Arc<Mutex<Option<RunMarker>>>,
    /// What the node knew when it last stopped, as `restore` found it: what a start gate compares
    /// the venue with.
    last_known: Arc<Mutex<Option<LastKnown>>>,
    trader_id: String,
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
    /// Build the pipeline of `text` for the node `adapter` speaks for, with the roles it names;
    /// with `redis_url` (named `redis_source` in errors), the report goes to Redis too.
    #[new]
    #[pyo3(signature = (adapter, text, origin, roles, redis_url=None, redis_source="REDIS_URL"))]
    fn new(
        adapter: Py<PyAny>,
        text: &str,
        origin: &str,
        roles: Vec<String>,
        redis_url: Option<&str>,
        redis_source: &str,
    ) -> PyResult<Self> {
        let config = parse_config(text, origin)?;
        crate::logging::init(&config.log_level);
        let bridge = Arc::new(Bridge::new(adapter));
        let node = roles::node(&bridge, &roles).map_err(PyValueError::new_err)?;
        let pipeline = config
            .build(&node)
            .map_err(|e| ConfigError::new_err(e.to_string()))?;
        let trader_id = config.settings.trader_id.clone();
        let metrics = MetricsSink::new(&config.settings.metrics, &trader_id);
        let redis = match redis_url.filter(|u| !u.is_empty()) {
            None => None,
            Some(url) => {
                let bad = |e: String| ConfigError::new_err(format!("{redis_source}: {e}"));
                let target = RedisTarget::parse(url).map_err(|e| bad(e.0))?;
                let sink = RedisReportSink::new(
                    target.clone(),
                    &trader_id,
                    REPORTS_KEPT,
                    REDIS_TIMEOUT,
                    FALLBACK_DIR,
                )
                .map_err(|e| bad(e.to_string()))?;
                Some((target, Arc::new(sink)))
            }
        };
        Ok(Self {
            pipeline: Arc::new(pipeline),
            node,
            handle: ShutdownHandle::new(),
            bridge,
            metrics,
            redis,
            marker: Arc::new(Mutex::new(None)),
            last_known: Arc::new(Mutex::new(None)),
            trader_id,
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

    /// At start: the last snapshot and how the previous shutdown ended (clean, not clean, no
    /// previous run, cannot tell), from Redis and the fallback directory; then the run marker is
    /// set, and cleared by this run's final report. Resolves to the findings as JSON.
    fn restore<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let options = RestoreOptions {
            redis: self.redis.as_ref().map(|(t, _)| t.clone()),
            trader_id: self.trader_id.clone(),
            key_prefix: None,
            fallback_dir: PathBuf::from(FALLBACK_DIR),
            timeout: REDIS_TIMEOUT,
        };
        let marker = self.marker.clone();
        let last_known = self.last_known.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if !options.fallback_dir.exists() {
                // The marker file lives there too: a node's first start makes it.
                std::fs::create_dir_all(&options.fallback_dir).map_err(|e| {
                    PyValueError::new_err(format!("{}: {e}", options.fallback_dir.display()))
                })?;
            }
            let (restored, set) = shutdown_redis::restore_and_mark_running(&options)
                .await
                .map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
            *marker.lock().unwrap_or_else(PoisonError::into_inner) = Some(set);
            *last_known.lock().unwrap_or_else(PoisonError::into_inner) = restored.last_known();
            let mut json = serde_json::to_value(&restored)
                .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
            json["summary"] = serde_json::Value::String(restored.summary());
            Ok(json.to_string())
        })
    }

    /// Run the start gate of `text` (a pipeline of `reconcile`, `verify`, `resume`...; `origin`
    /// names it in errors) on the running loop: the venue compared with what `restore` found, every
    /// difference handled, the trading gate opened only when nothing is left. Resolves to the
    /// gate's report as JSON (exit code 0: the gate opened).
    fn start_gate<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        origin: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let config = parse_config(text, origin)?;
        let pipeline = config
            .build(&self.node)
            .map_err(|e| ConfigError::new_err(e.to_string()))?;
        let last = self
            .last_known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(last) = last else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "no start gate without knowing the last run: call restore() first (it found no snapshot it can trust: the gate would have nothing to compare the venue with)",
            ));
        };
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        self.bridge.bind_loop(locals.clone());
        let gate = Shutdown::new(pipeline, self.node.clone()).with_extension(last);
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, async move {
            Ok(gate.run_start_gate().await.to_json_line())
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

/// Where the run marker, the report kept when Redis is down and the flush step's file go (the flush
/// step's default).
const FALLBACK_DIR: &str = "shutdown-fallback";
/// Reports kept in Redis.
const REPORTS_KEPT: usize = 20;
/// Connect and response timeout of the Redis calls outside the steps.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

impl Handler {
    fn shutdown(&self) -> Shutdown {
        let mut shutdown = Shutdown::new(self.pipeline.clone(), self.node.clone())
            .with_handle(self.handle.clone())
            .exit_on_force(self.exit_on_force.load(Ordering::Relaxed));
        if let Some(metrics) = &self.metrics {
            shutdown = shutdown.with_sink(Arc::new(metrics.clone()));
        }
        if let Some((_, sink)) = &self.redis {
            shutdown = shutdown.with_sink(sink.clone());
        }
        // The run marker clears itself once the report is final.
        if let Some(marker) = self
            .marker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            shutdown = shutdown.with_sink(Arc::new(marker));
        }
        shutdown
    }
}
