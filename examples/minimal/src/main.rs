//! The smallest whole node: `minimal_node CONFIG SCENARIO` trades on the paper venue and on SIGTERM
//! runs the pipeline of CONFIG (built-in steps and its own `announce`); `minimal_node validate ...`
//! and the other operator's commands know its kinds.
extern crate shutdown_steps as _; // halt, cancel, verify, close

use async_trait::async_trait;
use shutdown_core::errors::MissingRole;
use shutdown_core::{Node, PipelineConfig, Shutdown, ShutdownStep, StepConfig, StepDefaults};
use shutdown_core::{StepContext, StepError, StepOutput};
use shutdown_paper::{PaperNode, Scenario};

use serde::{Deserialize, Serialize};

shutdown_core::step_options! {
    /// The node's own step, `announce`: its options (declared once), and the step itself.
    struct Announce {
        /// What to print when the node stops.
        text: String = String::new(),
    }
}

impl StepConfig for Announce {
    fn build(&self, _: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl ShutdownStep for Announce {
    fn kind(&self) -> &'static str {
        "announce"
    }
    async fn run(&self, _: StepContext) -> Result<StepOutput, StepError> {
        println!("announce: {}", self.text);
        Ok(StepOutput::new().summary(format!("announced {:?}", self.text)))
    }
}

shutdown_core::register_step! { kind: "announce", summary: "Print a line when the node stops.",
config: Announce, requires: [], defaults: StepDefaults::new(1.0, false) }

async fn node(config: &str, scenario: &str) -> Result<(), Box<dyn std::error::Error>> {
    let node = PaperNode::new(&Scenario::load(scenario)?).node();
    let pipeline = PipelineConfig::load(config)?.build(&node)?;
    let shutdown = Shutdown::new(pipeline, node).exit_process(true);
    let _signals = shutdown.listen_signals()?;
    println!("ready");
    shutdown.run_when_requested().await; // exits the process with the report's exit code
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| shutdown_cli::is_command(a)) {
        return shutdown_cli::main_from(args); // before any runtime: the commands start their own
    }
    let [_, config, scenario] = args.as_slice() else {
        eprintln!("usage: minimal_node CONFIG SCENARIO");
        return std::process::ExitCode::from(2);
    };
    let ran = tokio::runtime::Runtime::new().map_err(Into::into);
    if let Err(e) = ran.and_then(|rt| rt.block_on(node(config, scenario))) {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(78);
    }
    std::process::ExitCode::SUCCESS
}
