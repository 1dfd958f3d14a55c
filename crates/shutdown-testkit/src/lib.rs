//! Test steps for signal and escalation tests: `sleep` waits in async time, `block` blocks its thread.
//!
//! Each step prints `step-started NAME` and `step-finished NAME` on stdout, so a test can wait for a
//! step to be running before it sends the next signal.

pub mod otlp;
pub mod process;
pub mod pushgateway;
pub mod redis_server;
pub mod redis_topology;

/// Wait (at most 10 s) until the server `child` writes a line containing `ready` to `output` (its
/// stdout or stderr); a child that exits first, or never says it, is killed and its lines returned.
fn wait_ready(
    mut child: std::process::Child,
    output: impl std::io::Read + Send + 'static,
    ready: &'static str,
) -> Result<std::process::Child, String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            if line.to_lowercase().contains(ready) {
                let _ = tx.send(Ok(()));
            }
            seen.push(line);
        }
        // The child exited (its port taken, say) before it was ready.
        let _ = tx.send(Err(seen.join("\n")));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(child),
        other => {
            // Do not leave the server behind when it never became ready.
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{other:?}"))
        }
    }
}

use shutdown_core::StepDefaults;
use std::io::Write;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use shutdown_core::errors::MissingRole;
use shutdown_core::{
    Node, OptionDoc, ShutdownStep, StepConfig, StepContext, StepError, StepOutput,
};

fn say(event: &str, name: &str) {
    let mut out = std::io::stdout().lock();
    // A test that reads these lines needs them now, not at exit.
    let _ = writeln!(out, "{event} {name}");
    let _ = out.flush();
}

const SECS: &[OptionDoc] = &[OptionDoc::new(
    "secs",
    "float",
    "1.0",
    "How long the step takes.",
)];

fn default_secs() -> f64 {
    1.0
}

/// Options of `sleep` and `block`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationConfig {
    /// Seconds the step takes.
    #[serde(default = "default_secs")]
    pub secs: f64,
}

/// Waits `secs` in async time (a slow but well-behaved step).
#[derive(Debug)]
pub struct Sleep(Duration);

/// Blocks its thread for `secs` (a badly behaved step stuck in a blocking call).
#[derive(Debug)]
pub struct Block(Duration);

/// Options of `sleep`.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct SleepConfig(DurationConfig);

/// Options of `block`.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct BlockConfig(DurationConfig);

impl StepConfig for SleepConfig {
    fn build(&self, _: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Sleep(Duration::from_secs_f64(self.0.secs))))
    }
}

impl StepConfig for BlockConfig {
    fn build(&self, _: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Block(Duration::from_secs_f64(self.0.secs))))
    }
}

#[async_trait]
impl ShutdownStep for Sleep {
    fn kind(&self) -> &'static str {
        "sleep"
    }
    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }
    fn plan(&self) -> Vec<String> {
        vec![format!("wait {:?}", self.0)]
    }
    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        say("step-started", &ctx.name);
        tokio::time::sleep(self.0).await;
        say("step-finished", &ctx.name);
        Ok(StepOutput::new().detail("slept_secs", self.0.as_secs_f64()))
    }
}

#[async_trait]
impl ShutdownStep for Block {
    fn kind(&self) -> &'static str {
        "block"
    }
    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }
    fn plan(&self) -> Vec<String> {
        vec![format!("block the thread for {:?}", self.0)]
    }
    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        say("step-started", &ctx.name);
        std::thread::sleep(self.0);
        say("step-finished", &ctx.name);
        Ok(StepOutput::new())
    }
}

/// The test steps' timeout and criticality, registered and in code.
const DEFAULTS: StepDefaults = StepDefaults::new(10.0, false);

shutdown_core::register_step! {
    kind: "sleep",
    summary: "Test step: wait in async time.",
    config: SleepConfig,
    options: SECS,
    requires: [],
    defaults: DEFAULTS,
}

shutdown_core::register_step! {
    kind: "block",
    summary: "Test step: block the thread, as a step stuck in a blocking call would.",
    config: BlockConfig,
    options: SECS,
    requires: [],
    defaults: DEFAULTS,
}
