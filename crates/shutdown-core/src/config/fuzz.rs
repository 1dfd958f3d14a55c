//! The config parser against arbitrary input: it never panics and always answers, with a config or
//! with problems that each name their origin.

use proptest::prelude::*;

use super::{EnvOverrides, PipelineConfig};

/// Lines that look like a pipeline config, so that the parser is driven past the TOML syntax.
fn config_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "timeout_secs",
        "log_level",
        "signals",
        "report_path",
        "trader_id",
        "cancel_orders",
        "kind",
        "name",
        "critical",
        "on_error",
        "enabled",
        "max_in_flight",
        "rate_per_sec",
        "pushgateway_url",
        "push_timeout_secs",
        "job",
        "steps",
        "metrics",
        "x",
    ]);
    let value = prop::sample::select(vec![
        "1",
        "0",
        "-1",
        "1e300",
        "nan",
        "inf",
        "\"halt\"",
        "\"cancel\"",
        "\"verify\"",
        "true",
        "[]",
        "[\"SIGTERM\"]",
        "{}",
        "\"\"",
        "\"abort\"",
        "3.5",
        "\"http://u:p@h\"",
        "9999999999999999999999",
    ]);
    let line = prop_oneof![
        (key.clone(), value).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("[[steps]]".to_owned()),
        Just("[metrics]".to_owned()),
        key.prop_map(|k| format!("[{k}]")),
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = PipelineConfig::from_toml_in(&text, "fuzz.toml", EnvOverrides::None, crate::testing::registry());
    }

    #[test]
    fn config_like_text_is_a_config_or_named_problems(text in config_like()) {
        match PipelineConfig::from_toml_in(&text, "fuzz.toml", EnvOverrides::None, crate::testing::registry()) {
            Ok(config) => prop_assert!(!config.steps.is_empty()),
            Err(errors) => {
                prop_assert!(!errors.problems.is_empty());
                for p in &errors.problems {
                    prop_assert!(p.origin == "fuzz.toml", "{p}");
                    prop_assert!(p.to_string().len() < 2000, "{p}");
                }
            }
        }
    }
}
