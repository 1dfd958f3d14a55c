//! The registry holds exactly the built-in kinds of this crate.

use shutdown_core::Registry;

#[test]
fn the_built_in_kinds_are_registered_sorted() {
    let registry = Registry::global().expect("no duplicate kinds");
    assert_eq!(
        registry.kind_names(),
        ["cancel", "close", "halt", "reconcile", "resume", "verify"]
    );
    for reg in registry.registrations() {
        assert!(!reg.summary.is_empty());
        for o in (reg.options)() {
            assert!(!o.doc.is_empty(), "{}.{} is undocumented", reg.kind, o.name);
        }
    }
}

#[test]
fn every_documented_option_is_a_field_with_the_documented_default() {
    let registry = Registry::global().expect("no duplicate kinds");
    for reg in registry.registrations() {
        let docs = (reg.options)();
        let names: Vec<&str> = docs.iter().map(|o| o.name).collect();
        assert_eq!(names, (reg.fields)(), "{}: documented = read", reg.kind);
        // An empty table gives what is documented: each default, written back, parses to it.
        let empty = (reg.parse)(&Default::default())
            .map(|c| format!("{c:?}"))
            .unwrap();
        for o in &docs {
            let table = format!(
                "[[steps]]\nkind = \"{}\"\n{} = {}\n",
                reg.kind, o.name, o.default
            );
            if o.default == "none" {
                continue;
            }
            let config = shutdown_core::PipelineConfig::from_toml(
                &table,
                "doc.toml",
                shutdown_core::EnvOverrides::None,
            )
            .unwrap_or_else(|e| panic!("{}.{} = {}: {e}", reg.kind, o.name, o.default));
            assert_eq!(
                format!("{:?}", config.steps[0].config),
                empty,
                "{}.{}",
                reg.kind,
                o.name
            );
        }
    }
}

#[test]
fn option_values_out_of_range_are_refused_at_validate_all_at_once() {
    let toml = "[[steps]]\nkind = \"cancel\"\nrate_per_sec = 1e-300\nmax_in_flight = 0\n\
                [[steps]]\nkind = \"verify\"\nstop_distance_pct = 100\n\
                [[steps]]\nkind = \"close\"\nconnection_timeout_secs = 1e300\n";
    let err = shutdown_core::PipelineConfig::from_toml(
        toml,
        "node.toml",
        shutdown_core::EnvOverrides::None,
    )
    .unwrap_err();
    let problems: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "node.toml: step 1 (cancel): `max_in_flight`: must be a whole number from 1 to 10000, found 0",
            "node.toml: step 1 (cancel): `rate_per_sec`: must be a finite number from 0.01 to 1000000, found 1e-300",
            "node.toml: step 2 (verify): `stop_distance_pct`: must be above 0 and below 100, found 100.0",
            "node.toml: step 3 (close): `connection_timeout_secs`: must be a finite number from 0.001 to 86400, found 1e300",
        ]
    );
}
