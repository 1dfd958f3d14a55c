//! The registry holds exactly the built-in kinds of this crate.

use shutdown_core::Registry;

#[test]
fn the_built_in_kinds_are_registered_sorted() {
    let registry = Registry::global().expect("no duplicate kinds");
    assert_eq!(registry.kind_names(), ["cancel", "close", "halt", "verify"]);
    for reg in registry.registrations() {
        assert!(!reg.summary.is_empty());
        for o in reg.options {
            assert!(!o.doc.is_empty(), "{}.{} is undocumented", reg.kind, o.name);
        }
    }
}

#[test]
fn every_documented_option_is_a_field_with_the_documented_default() {
    let registry = Registry::global().expect("no duplicate kinds");
    let drift: Vec<String> = registry.registrations().flat_map(|r| r.drift()).collect();
    assert!(drift.is_empty(), "{drift:#?}");
}
