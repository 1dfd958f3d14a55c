//! Helpers: a scenario, a pipeline from TOML, a run.

use shutdown_core::EnvOverrides;
use shutdown_core::{PipelineConfig, Report, Shutdown};
use shutdown_paper::{PaperNode, Scenario};

pub const MARKET: &str = r#"
[[instruments]]
symbol = "BTC-PERP"
mark_price = 65000

[[instruments]]
symbol = "ETH-PERP"
mark_price = 3000

[[connections]]
id = "ws-1"
venue = "paper"
dead_man_armed = true
"#;

pub fn scenario(extra: &str) -> Scenario {
    Scenario::from_toml(&format!("{MARKET}\n{extra}"), "test scenario").expect("valid scenario")
}

pub async fn run(pipeline_toml: &str, paper: &PaperNode) -> Report {
    let node = paper.node();
    let config = PipelineConfig::from_toml(pipeline_toml, "test.toml", EnvOverrides::None)
        .expect("valid config");
    let pipeline = config.build(&node).expect("pipeline builds");
    Shutdown::new(pipeline, node).run().await
}

pub fn ids(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn order(id: &str, instrument: &str, side: &str, kind: &str, qty: &str, extra: &str) -> String {
    format!(
        "[[orders]]\nclient_id = \"{id}\"\ninstrument = \"{instrument}\"\nside = \"{side}\"\norder_type = \"{kind}\"\nquantity = {qty}\nstatus = \"new\"\n{extra}\n"
    )
}

pub fn position(id: &str, instrument: &str, side: &str, qty: &str) -> String {
    format!(
        "[[positions]]\nid = \"{id}\"\ninstrument = \"{instrument}\"\nside = \"{side}\"\nquantity = {qty}\nentry_price = 1\n"
    )
}
