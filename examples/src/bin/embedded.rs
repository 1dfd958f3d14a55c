//! A pipeline chosen in code, no TOML: build each step from its config type, run the shutdown when the
//! program decides to (here: after a short trading session), print the report, exit with its code.
//!
//! `cargo run -p shutdown-examples --bin embedded`

// Link the built-in steps (not needed for building them in code, but `shutdownctl steps` style
// lookups by kind would need it).
extern crate shutdown_steps as _;

use std::time::Duration;

use shutdown_core::{Node, OnError, Pipeline, PipelineStep, Reason, Shutdown, StepConfig};
use shutdown_examples::notify::NotifyConfig;
use shutdown_paper::{PaperNode, Scenario};
use shutdown_steps::cancel::CancelConfig;
use shutdown_steps::close::CloseConfig;
use shutdown_steps::halt::HaltConfig;
use shutdown_steps::verify::{OnUnprotected, VerifyConfig};

fn step(config: &dyn StepConfig, node: &Node) -> PipelineStep {
    match config.build(node) {
        Ok(step) => PipelineStep::from_boxed(step),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(shutdown_core::exit_code::INVALID_CONFIG);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scenario = Scenario::from_toml(
        "[[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n\
         [[positions]]\nid = \"p1\"\ninstrument = \"BTC-PERP\"\nside = \"buy\"\nquantity = 1\nentry_price = 64000\n\
         [[connections]]\nid = \"ws\"\nvenue = \"paper\"\ndead_man_armed = true\n",
        "embedded",
    )
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(shutdown_core::exit_code::INVALID_CONFIG)
    });
    let paper = PaperNode::new(&scenario);
    let node = paper.node();
    let verify = VerifyConfig {
        on_unprotected: OnUnprotected::PlaceStop,
        ..VerifyConfig::default()
    };
    let notify = NotifyConfig {
        message: "embedded node stopping".into(),
        path: None,
        delay_secs: 0.0,
    };
    let pipeline = Pipeline::new(Duration::from_secs(10))
        .push(step(&HaltConfig::default(), &node).timeout(Duration::from_secs(1)))
        .push(
            step(&CancelConfig::default(), &node)
                .critical(true)
                .timeout(Duration::from_secs(4)),
        )
        .push(step(&verify, &node).critical(true).on_error(OnError::Abort))
        .push(step(&notify, &node))
        .push(step(&CloseConfig::default(), &node));
    let shutdown = Shutdown::new(pipeline, node);
    let handle = shutdown.handle();
    let trading = tokio::spawn(shutdown_examples::strategy::make_markets(
        paper.clone(),
        handle.clone(),
        "BTC-PERP".into(),
        scenario.instruments[0].mark_price,
        Duration::from_millis(5),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle.trigger(Reason::Api);
    let placed = trading.await.unwrap_or(0);
    let report = shutdown.run().await;
    println!("placed {placed} orders, then:");
    print!("{report}");
    std::process::exit(report.exit_code);
}
