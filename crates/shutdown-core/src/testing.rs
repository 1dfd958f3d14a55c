//! Test steps for the crate's own unit tests: they record what happened and misbehave on request.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::OptionDoc;
use crate::fields::field_names;
use crate::registry::{Registry, StepConfig, StepRegistration, parse_boxed};
use crate::step::StepDefaults;
use crate::step::{ShutdownStep, StepContext, StepError, StepOutput};
use crate::trading::Counter;
use crate::trading::roles::Role;
use crate::trading::roles::{MissingRole, Node};

/// A shared log of `name:event` lines.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) enum Behaviour {
    Ok,
    Sleep(Duration),
    Fail(&'static str),
    Panic,
    Problem(&'static str),
    /// Put a number in the shared results.
    Give(u32),
    /// Read the number an earlier step gave.
    Take,
    /// Put the receipt it was handed in its details.
    ReadReceipt,
    /// Hold the thread (a blocking call): say so on the first channel, then wait for the second.
    Block(Blocker),
    /// Publish what it learned (a detail, a problem, an orphan count), then take far too long.
    PublishThenHang,
    /// Busy and async, never blocking: a poll wakes itself at once, forever (a step working
    /// through a long list with many short calls).
    Busy,
}

/// The two ends a [`Behaviour::Block`] step uses; see [`blocker`].
pub(crate) struct Blocker {
    started: Mutex<std::sync::mpsc::Sender<()>>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

/// A blocking behaviour, a receiver told when it blocks, and a sender that releases it.
pub(crate) fn blocker() -> (
    Behaviour,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let blocker = Blocker {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    (Behaviour::Block(blocker), started_rx, release_tx)
}

pub(crate) struct TestStep {
    pub(crate) label: &'static str,
    pub(crate) behaviour: Behaviour,
    pub(crate) log: Log,
}

pub(crate) fn step(label: &'static str, behaviour: Behaviour, log: &Log) -> TestStep {
    TestStep {
        label,
        behaviour,
        log: log.clone(),
    }
}

#[async_trait]
impl ShutdownStep for TestStep {
    fn kind(&self) -> &'static str {
        "test"
    }

    fn plan(&self) -> Vec<String> {
        vec![format!("run {}", self.label)]
    }

    fn if_not_done(&self) -> Option<String> {
        Some(format!("{} left undone", self.label))
    }

    /// A step labelled `count...` counts orphaned orders.
    fn counts(&self) -> &'static [Counter] {
        if self.label.starts_with("count") {
            &[Counter::OrdersOrphaned]
        } else {
            &[]
        }
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        self.log
            .push(format!("{}:start:{}", self.label, ctx.reason));
        let out = match &self.behaviour {
            Behaviour::Ok => StepOutput::new(),
            Behaviour::Sleep(d) => {
                tokio::time::sleep(*d).await;
                StepOutput::new()
            }
            Behaviour::Fail(msg) => return Err(StepError::new(*msg).attempts(3)),
            Behaviour::Panic => panic!("boom in {}", self.label),
            Behaviour::Problem(p) => StepOutput::new().problem(*p),
            Behaviour::Give(n) => {
                ctx.results.insert(*n);
                StepOutput::new()
            }
            Behaviour::Block(b) => {
                let _ = b.started.lock().unwrap().send(());
                let _ = b.release.lock().unwrap().recv();
                StepOutput::new()
            }
            Behaviour::PublishThenHang => {
                ctx.partial.detail("still_working", ["o-1", "o-2"]);
                ctx.partial.count(Counter::OrdersOrphaned, 2);
                ctx.partial.problems(vec!["2 orders still working".into()]);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StepOutput::new()
            }
            Behaviour::Busy => loop {
                tokio::task::yield_now().await;
            },
            Behaviour::ReadReceipt => StepOutput::new().detail("receipt", ctx.receipt.to_json()),
            Behaviour::Take => {
                let n = ctx.results.get::<u32>().map(|n| *n);
                StepOutput::new().detail("took", n)
            }
        };
        self.log.push(format!("{}:end", self.label));
        Ok(out)
    }
}

/// Options of the registered test kinds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed to test option validation, never read
pub(crate) struct KindConfig {
    #[serde(default)]
    pub(crate) max_in_flight: Option<u32>,
    #[serde(default)]
    pub(crate) mode: Option<String>,
}

impl StepConfig for KindConfig {
    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        let _ = node;
        Ok(Box::new(step("registered", Behaviour::Ok, &Log::default())))
    }
}

pub(crate) const KIND_OPTIONS: &[OptionDoc] = &[
    OptionDoc::new("max_in_flight", "integer", "8", "concurrent requests"),
    OptionDoc::new("mode", "string", "\"a\"", "a mode"),
];

/// A registration for a test kind, not submitted: the crate's tests look kinds up in [`registry`],
/// so the global registry never sees them.
macro_rules! test_kind {
    ($name:ident, $kind:literal, [$($role:ident),*], critical: $critical:expr, timeout: $timeout:expr) => {
        static $name: StepRegistration = StepRegistration {
            kind: $kind,
            summary: concat!("test ", $kind),
            options: || KIND_OPTIONS.to_vec(),
            requires: &[$(Role::$role),*],
            defaults: StepDefaults::new($timeout, $critical),
            parse: |options| parse_boxed::<KindConfig>(options, KIND_OPTIONS),
            fields: field_names::<KindConfig>,
        };
    };
}

test_kind!(HALT, "halt", [TradingGate], critical: false, timeout: 2.0);
test_kind!(CANCEL, "cancel", [OrderGateway], critical: true, timeout: 10.0);
test_kind!(VERIFY, "verify", [], critical: true, timeout: 5.0);
test_kind!(FLUSH, "flush", [], critical: true, timeout: 5.0);
test_kind!(CLOSE, "close", [], critical: false, timeout: 5.0);

/// The kinds the crate's config tests build pipelines of: `halt`, `cancel`, `verify`, `flush` and
/// `close`, standing in for the real ones (which live in another crate).
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::from_registrations([&HALT, &CANCEL, &VERIFY, &FLUSH, &CLOSE])
            .expect("the test kinds are distinct")
    })
}
