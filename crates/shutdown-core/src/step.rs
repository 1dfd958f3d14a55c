//! The `ShutdownStep` trait and what a step receives (`StepContext`) and returns (`StepOutput`, `StepError`).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::StepReport;
use crate::trading::{Counter, Node};
use crate::trigger::Reason;

/// The trader id of a pipeline whose config names none.
pub const DEFAULT_TRADER_ID: &str = "trader-001";

/// What a step gets when no config and no code say otherwise.
///
/// ```
/// use shutdown_core::StepDefaults;
/// const CANCEL: StepDefaults = StepDefaults::new(10.0, true);
/// assert_eq!(CANCEL.timeout.as_secs(), 10);
/// assert!(!StepDefaults::DEFAULT.critical);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDefaults {
    /// The step's own timeout.
    pub timeout: Duration,
    /// Whether it runs after a second signal.
    pub critical: bool,
}

impl StepDefaults {
    /// 5 s, not critical.
    pub const DEFAULT: StepDefaults = StepDefaults::new(5.0, false);

    /// A timeout of `timeout_secs` seconds (to the millisecond), critical or not.
    pub const fn new(timeout_secs: f64, critical: bool) -> Self {
        Self {
            timeout: Duration::from_millis((timeout_secs * 1000.0) as u64),
            critical,
        }
    }
}

/// One step of a shutdown pipeline.
///
/// Cross-cutting concerns (timeout, tracing span, error policy, panics) belong to the runner; a step
/// only does its own work and says what happened.
///
/// ```
/// use async_trait::async_trait;
/// use shutdown_core::{ShutdownStep, StepContext, StepError, StepOutput};
///
/// struct Notify;
///
/// #[async_trait]
/// impl ShutdownStep for Notify {
///     fn kind(&self) -> &'static str {
///         "notify"
///     }
///     fn plan(&self) -> Vec<String> {
///         vec!["post a message to the operators' channel".into()]
///     }
///     async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
///         Ok(StepOutput::new().detail("reason", ctx.reason.to_string()))
///     }
/// }
/// ```
#[async_trait]
pub trait ShutdownStep: Send + Sync + 'static {
    /// The kind this step was registered under (`halt`, `cancel`, ...).
    fn kind(&self) -> &'static str;

    /// Its timeout and whether it is critical, when neither the config nor the code says: the same
    /// values the kind is registered with (`register_step!`'s `defaults`), so that a step built in
    /// code gets what it would get from TOML. By default 5 s, not critical.
    fn defaults(&self) -> StepDefaults {
        StepDefaults::DEFAULT
    }

    /// What the step would do, one line each, without side effects (for `plan` and `dry-run`). By
    /// default, one line naming the kind: say more when there is more to say.
    fn plan(&self) -> Vec<String> {
        vec![format!("run the `{}` step", self.kind())]
    }

    /// Do the work. Return before `ctx.deadline`; watch `ctx.cancel`, which fires when the shutdown is
    /// forced (the runner abandons the step then anyway).
    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError>;

    /// What it means for the node when this step does not get done (skipped after a second signal, cut
    /// short, or not run after an abort or a forced exit). The runner adds it to the report as a
    /// problem, so the operator reads the consequence, not only the outcome.
    fn if_not_done(&self) -> Option<String> {
        None
    }

    /// What the step counts for the metrics (orders cancelled, positions unprotected...). A count a
    /// step declares here and does not give (it was cut short, skipped or never ran) is reported
    /// as unknown, never as 0.
    fn counts(&self) -> &'static [Counter] {
        &[]
    }
}

/// What a step receives when it runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct StepContext {
    /// Why the node is shutting down.
    pub reason: Reason,
    /// The step's name in the pipeline.
    pub name: String,
    /// When this step's budget ends (its own timeout, capped by what is left of the global one).
    pub deadline: Instant,
    /// Fires when the shutdown is forced (third signal or global deadline).
    pub cancel: CancellationToken,
    /// The node's roles.
    pub node: Node,
    /// Results handed from earlier steps to later ones.
    pub results: SharedResults,
    /// The node's trader id.
    pub trader_id: String,
    /// The shutdown receipt so far: reason, start, and the report entries of the steps before this one.
    pub receipt: Receipt,
    /// A dry run: steps that write outside the process (to Redis, say) must not.
    pub dry_run: bool,
    /// Values the embedding program or the operator's tool handed to the steps (see
    /// [`crate::Shutdown::with_extension`]).
    pub extensions: Extensions,
    /// What the step has learned so far: kept in the report if the step is cut short.
    pub partial: Partial,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("reason", &self.reason)
            .field("name", &self.name)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// The context of a step named `name` run on its own, outside a pipeline (a test, a benchmark,
    /// a tool): reason `api`, nothing before it, its own cancellation token.
    pub fn new(name: impl Into<String>, node: Node, deadline: Instant) -> Self {
        Self {
            reason: Reason::Api,
            name: name.into(),
            deadline,
            cancel: CancellationToken::new(),
            node,
            results: SharedResults::default(),
            trader_id: DEFAULT_TRADER_ID.to_owned(),
            receipt: Receipt::default(),
            dry_run: false,
            extensions: Extensions::default(),
            partial: Partial::default(),
        }
    }

    /// The value of type `T` handed to the steps at run time, if one was.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// Time left before this step's deadline.
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The shutdown receipt so far, built on demand (most steps never need it), rendered as JSON text:
/// the steps' details (every cancelled order id, every position's coverage) cost their text, not a
/// tree of JSON values.
#[derive(Clone)]
pub struct Receipt(Arc<dyn Fn() -> Box<RawValue> + Send + Sync>);

impl Receipt {
    /// A receipt from a function that renders it.
    pub fn new(render: impl Fn() -> Box<RawValue> + Send + Sync + 'static) -> Self {
        Self(Arc::new(render))
    }

    /// A fixed receipt (for steps run outside a pipeline, and tests).
    pub fn fixed(value: serde_json::Value) -> Self {
        let raw =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self::new(move || raw.clone())
    }

    /// The receipt as JSON text: trader id, reason, start, budget, and the steps so far.
    pub fn to_raw(&self) -> Box<RawValue> {
        (self.0)()
    }

    /// The receipt as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_str(self.to_raw().get()).unwrap_or(serde_json::Value::Null)
    }
}

impl Default for Receipt {
    fn default() -> Self {
        Self::new(|| RawValue::NULL.to_owned())
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt")
    }
}

/// Typed values handed to the steps at run time, one per type (as `http::Extensions`): where Redis
/// is, a client the node built, anything a custom step needs without a global.
#[derive(Clone, Default)]
pub struct Extensions {
    map: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// Add a value; replaces one of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        Arc::make_mut(&mut self.map).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was added.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} values)", self.map.len())
    }
}

/// Where a dry run may write files: a step that would write a file elsewhere (the `flush` fallback)
/// writes it under this directory in a dry run. The operator's tool hands it to the steps as an
/// extension; without one, a dry run writes under the system's temporary directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunDir(pub std::path::PathBuf);

impl DryRunDir {
    /// The directory a dry run of this context may write to.
    pub fn of(ctx: &StepContext) -> std::path::PathBuf {
        match ctx.extension::<DryRunDir>() {
            Some(dir) => dir.0.clone(),
            None => std::env::temp_dir().join(format!("shutdown-dry-run-{}", std::process::id())),
        }
    }
}

/// A typed blackboard on which a step leaves results for later steps (cancel for verify, say).
#[derive(Clone, Default)]
pub struct SharedResults {
    inner: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl SharedResults {
    /// Store a value; replaces one of the same type.
    pub fn insert<T: Any + Send + Sync>(&self, value: T) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of this type left by an earlier step.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }
}

/// What a step has learned so far, published as it goes: when the step is cut short (its budget
/// ends, the shutdown is forced or hurried, it panics), the runner reports this instead of nothing,
/// so a timed-out `cancel` still names the orders left working.
///
/// ```
/// use shutdown_core::{Counter, StepOutput};
/// use shutdown_core::Partial;
/// let partial = Partial::default();
/// partial.detail("still_working", ["o-1", "o-2"]);
/// partial.count(Counter::OrdersOrphaned, 2);
/// assert_eq!(partial.take().counts[&Counter::OrdersOrphaned], 2);
/// ```
#[derive(Clone, Default)]
pub struct Partial(Arc<Mutex<StepOutput>>);

impl Partial {
    fn lock(&self) -> std::sync::MutexGuard<'_, StepOutput> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set a detail (replacing one of the same key).
    pub fn detail(&self, key: &str, value: impl Serialize) {
        self.lock().details.insert(key.to_owned(), to_json(value));
    }

    /// Set a count (replacing the one published before). If the step is cut short, the report
    /// keeps it as a lower bound (`at_least`): publish what is certain, an order with a cancel in
    /// flight counted neither cancelled nor still working.
    pub fn count(&self, counter: Counter, value: u64) {
        self.lock().counts.insert(counter, value);
    }

    /// Set the problems known so far (replacing the ones published before).
    pub fn problems(&self, problems: Vec<String>) {
        self.lock().problems = problems;
    }

    /// Say what the step has done so far, in one line for a person.
    pub fn summary(&self, summary: impl Into<String>) {
        self.lock().summary = Some(summary.into());
    }

    /// What moves as the step makes progress: its counts and its summary.
    pub(crate) fn progress(&self) -> (BTreeMap<Counter, u64>, Option<String>) {
        let out = self.lock();
        (out.counts.clone(), out.summary.clone())
    }

    /// What was published, leaving nothing behind.
    pub fn take(&self) -> StepOutput {
        std::mem::take(&mut *self.lock())
    }

    /// `entry`, the report entry of a step cut short, with what it published: one attempt, and
    /// its counts unknown, since they may have moved after they were published (requests were in
    /// flight); what it had counted is kept as what the true number is at least.
    pub(crate) fn cut_short(&self, entry: StepReport) -> StepReport {
        let mut out = self.take();
        let at_least = std::mem::take(&mut out.counts);
        StepReport {
            at_least,
            ..StepOutput { attempts: 1, ..out }.into_report(entry)
        }
    }
}

impl fmt::Debug for Partial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Partial").field(&*self.lock()).finish()
    }
}

/// What a step that ran to its end reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Structured details for the report.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// How many attempts the step's own work took (1 when it does not retry).
    pub attempts: u32,
    /// Problems found that do not make the step fail but make the shutdown degraded
    /// (an unprotected position in `report` mode, say).
    pub problems: Vec<String>,
    /// Counts for the metrics (see [`ShutdownStep::counts`]).
    pub counts: BTreeMap<Counter, u64>,
    /// What the step did, in one line for a person ("cancelled 3, kept 2 stops, 0 left working").
    pub summary: Option<String>,
}

impl StepOutput {
    /// An empty output with one attempt.
    pub fn new() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// `entry`, the report entry of a step that ran, with what the step gave.
    pub(crate) fn into_report(self, entry: StepReport) -> StepReport {
        StepReport {
            attempts: self.attempts,
            details: self.details,
            problems: self.problems,
            summary: self.summary,
            counts: (self.counts.into_iter())
                .map(|(c, n)| (c, Some(n)))
                .collect(),
            ..entry
        }
    }

    /// Add a detail; values that fail to serialise are recorded as their error text.
    pub fn detail(mut self, key: &str, value: impl Serialize) -> Self {
        self.details.insert(key.to_owned(), to_json(value));
        self
    }

    /// Set the number of attempts.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Record a problem that degrades the shutdown without failing the step.
    pub fn problem(mut self, problem: impl Into<String>) -> Self {
        self.problems.push(problem.into());
        self
    }

    /// Give a count for the metrics.
    pub fn count(mut self, counter: Counter, value: u64) -> Self {
        self.counts.insert(counter, value);
        self
    }

    /// Say what the step did, in one line for a person.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }
}

/// Why a step failed, with what it gathered before failing.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    /// What went wrong.
    pub message: String,
    /// What the step gathered before it failed: details, attempts, problems, counts as far as it
    /// got, and what it did in one line.
    pub output: StepOutput,
}

impl StepError {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            output: StepOutput::new(),
        }
    }

    /// Say what the step did before it failed, in one line for a person.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.output = self.output.summary(summary);
        self
    }

    /// Add a detail.
    pub fn detail(mut self, key: &str, value: impl Serialize) -> Self {
        self.output = self.output.detail(key, value);
        self
    }

    /// Set the number of attempts.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.output.attempts = attempts;
        self
    }

    /// Keep what an output holds (a step that gathered results, then judged them a failure).
    pub fn with_output(mut self, output: StepOutput) -> Self {
        let mine = &mut self.output;
        mine.summary = output.summary.or(mine.summary.take());
        mine.details.extend(output.details);
        mine.attempts = output.attempts;
        mine.problems.extend(output.problems);
        mine.counts.extend(output.counts);
        self
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

impl From<crate::trading::roles::RoleError> for StepError {
    fn from(e: crate::trading::roles::RoleError) -> Self {
        StepError::new(e.to_string())
    }
}

fn to_json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| serde_json::Value::String(e.to_string()))
}
