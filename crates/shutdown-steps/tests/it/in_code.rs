//! A pipeline built in code behaves as the same pipeline from TOML: the same settings (the kinds'
//! registered timeouts and criticality), the same plan, the same report under a second signal.

use std::time::Duration;

use shutdown_core::EnvOverrides;
use shutdown_core::{
    Pipeline, PipelineConfig, PipelineStep, Reason, Report, Shutdown, ShutdownHandle, StepConfig,
};
use shutdown_paper::PaperNode;
use shutdown_steps::cancel::CancelConfig;
use shutdown_steps::close::CloseConfig;
use shutdown_steps::halt::HaltConfig;
use shutdown_steps::verify::VerifyConfig;

use crate::support::{order, position, scenario};

fn paper() -> PaperNode {
    PaperNode::new(&scenario(&format!(
        "{}{}{}",
        position("p", "BTC-PERP", "buy", "1"),
        order(
            "bid",
            "BTC-PERP",
            "buy",
            "limit",
            "1",
            "limit_price = 60000"
        ),
        order(
            "stop",
            "BTC-PERP",
            "sell",
            "stop_market",
            "1",
            "trigger_price = 60000\nreduce_only = true"
        ),
    )))
}

fn from_toml(paper: &PaperNode) -> Pipeline {
    let toml = "timeout_secs = 30\n[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\n\
                [[steps]]\nkind = \"verify\"\n[[steps]]\nkind = \"close\"\n";
    PipelineConfig::from_toml(toml, "in-code.toml", EnvOverrides::None)
        .unwrap()
        .build(&paper.node())
        .unwrap()
}

fn in_code(paper: &PaperNode) -> Pipeline {
    let node = paper.node();
    let configs: Vec<Box<dyn StepConfig>> = vec![
        Box::new(HaltConfig::default()),
        Box::new(CancelConfig::default()),
        Box::new(VerifyConfig::default()),
        Box::new(CloseConfig::default()),
    ];
    configs
        .iter()
        .fold(Pipeline::new(Duration::from_secs(30)), |p, c| {
            p.push(PipelineStep::from_boxed(c.build(&node).unwrap()))
        })
}

/// Run `pipeline` with the second signal already given: only critical steps run.
fn hurried(pipeline: Pipeline, paper: &PaperNode) -> Report {
    let handle = ShutdownHandle::new();
    handle.trigger(Reason::Api);
    handle.hurry(Reason::Api);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let shutdown = Shutdown::new(pipeline, paper.node())
        .with_handle(handle)
        .poll_in_place(true);
    runtime.block_on(shutdown.run())
}

#[test]
fn steps_built_in_code_get_their_kinds_defaults_and_behave_as_from_toml() {
    let (a, b) = (paper(), paper());
    let (toml, code) = (from_toml(&a), in_code(&b));
    let settings = |p: &Pipeline| {
        p.steps
            .iter()
            .map(|s| s.settings.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(settings(&toml), settings(&code));
    let cancel = &code.steps[1].settings;
    assert!(
        cancel.critical,
        "an in-code cancel must be critical, as from TOML"
    );
    assert_eq!(cancel.timeout, Duration::from_secs(10));
    let plans = |p: &Pipeline| {
        (p.steps.iter())
            .map(|s| s.step.as_ref().unwrap().plan())
            .collect::<Vec<_>>()
    };
    assert_eq!(plans(&toml), plans(&code));
    // After a second signal, the critical steps (cancel, verify) still run in both.
    let (r1, r2) = (hurried(toml, &a), hurried(code, &b));
    let outcomes = |r: &Report| {
        (r.steps.iter())
            .map(|s| (s.name.clone(), s.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&r1), outcomes(&r2));
    assert_eq!(r1.step("cancel").unwrap().outcome.to_string(), "succeeded");
    assert_eq!(r1.step("halt").unwrap().outcome.to_string(), "skipped");
    assert_eq!(r1.exit_code, r2.exit_code);
    assert_eq!(
        a.get_order("bid").unwrap().status,
        b.get_order("bid").unwrap().status
    );
}
