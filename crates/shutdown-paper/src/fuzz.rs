//! The scenario parser against arbitrary input: it never panics, and a scenario it accepts builds a
//! paper node.

use proptest::prelude::*;

use crate::{PaperNode, Scenario};

/// Text that looks like a scenario, so that the checks after the TOML syntax are reached.
fn scenario_like() -> impl Strategy<Value = String> {
    let table = prop::sample::select(vec![
        "[[instruments]]",
        "[[orders]]",
        "[[positions]]",
        "[[connections]]",
        "[venue]",
        "[generate]",
    ]);
    let key = prop::sample::select(vec![
        "symbol",
        "mark_price",
        "client_id",
        "instrument",
        "side",
        "order_type",
        "quantity",
        "status",
        "limit_price",
        "trigger_price",
        "reduce_only",
        "id",
        "entry_price",
        "venue",
        "orders",
        "positions",
        "unprotected",
        "cache_entries",
        "latency_ms",
        "transient_failure_rate",
        "filled_quantity",
        "seed",
    ]);
    let value = prop::sample::select(vec![
        "\"B\"",
        "\"o-1\"",
        "\"buy\"",
        "\"sell\"",
        "\"limit\"",
        "\"stop_market\"",
        "\"new\"",
        "1",
        "0",
        "-1",
        "2.5",
        "100",
        "200001",
        "1e400",
        "true",
        "\"x\"",
    ]);
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        table.prop_map(str::to_owned),
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Scenario::from_toml(&String::from_utf8_lossy(&bytes), "fuzz.toml");
    }

    #[test]
    fn an_accepted_scenario_builds_a_node(text in scenario_like()) {
        if let Ok(scenario) = Scenario::from_toml(&text, "fuzz.toml") {
            let node = PaperNode::new(&scenario);
            prop_assert!(node.all_orders().len() <= crate::scenario::MAX_GENERATED_ORDERS + 30);
        }
    }
}
