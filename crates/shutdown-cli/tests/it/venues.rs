//! Venue profiles from the operator's side: `validate` and `plan` with `--scenario` warn where a
//! config does not fit the venue, and a dry-run says the profile and when the book was safe.

use crate::{PIPELINE, ctl, dry_run, text};

const VENUES: [&str; 7] = [
    "binance-usdm",
    "bybit",
    "okx",
    "deribit",
    "deribit-fix",
    "kraken",
    "bitmex",
];

fn scenario(name: &str) -> String {
    format!("examples/scenarios/venues/{name}.toml")
}

/// `validate CONFIG --scenario SCENARIO --json`: its warnings, as text.
fn warnings(config: &str, scenario: &str) -> Vec<String> {
    let out = ctl(&["validate", config, "--scenario", scenario, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["warnings"].as_array().cloned().unwrap_or_default();
    list.iter().map(|w| w.to_string()).collect()
}

/// A config written to a temp dir, kept as long as the dir.
fn config(dir: &tempfile::TempDir, toml: &str) -> String {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_shipped_configs_fit_every_shipped_venue() {
    // node.toml holds the example node's own `notify` kind, which this binary does not link.
    let configs = ["pipeline", "hurried", "seed"];
    for c in configs {
        let c = format!("examples/configs/{c}.toml");
        for v in VENUES {
            let found = warnings(&c, &scenario(v));
            if v == "deribit-fix" {
                // Over FIX no config keeps the stops: a logout fires the switch, and it says so.
                assert_eq!(found.len(), 1, "{c} on {v}: {found:?}");
                assert!(found[0].contains("logout = true"), "{found:?}");
            } else {
                assert!(found.is_empty(), "{c} on {v}: {found:?}");
            }
        }
    }
}

#[test]
fn a_cancel_budget_the_venue_cannot_meet_is_named_with_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        &dir,
        "[[steps]]\nkind = \"cancel\"\ntimeout_secs = 2\n[[steps]]\nkind = \"close\"\n",
    );
    // 1,200 orders on one symbol, 10 requests a second: 60 batches of 20 need 6 s; three mass
    // cancels would take 0.3 s.
    let found = warnings(&c, &scenario("bybit"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("steps.cancel.timeout_secs = 2 cannot clear the 1200 orders working on bybit: 60 requests (batches of 20) at 10 requests a second need 6s (0.3s with use_mass_cancel = true)"),
        "{found:?}"
    );
    // With the mass cancel it fits.
    let c = config(
        &dir,
        "[[steps]]\nkind = \"cancel\"\ntimeout_secs = 2\nuse_mass_cancel = true\n",
    );
    assert!(warnings(&c, &scenario("bybit")).is_empty());
}

#[test]
fn a_rate_above_the_documented_limit_and_a_switch_left_armed_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        &dir,
        "[[steps]]\nkind = \"cancel\"\nrate_per_sec = 100\n[[steps]]\nkind = \"close\"\ndisarm_dead_man = false\n",
    );
    let found = warnings(&c, &scenario("binance-usdm")).join("\n");
    assert!(
        found.contains("steps.cancel.rate_per_sec = 100 is above the 40 requests a second binance-usdm documents"),
        "{found}"
    );
    assert!(
        found.contains("steps.close.disarm_dead_man = false leaves the switch of binance-ws armed"),
        "{found}"
    );
    // On Deribit's WebSocket a clean logout spares the orders: leaving the disarm out is fine
    // while close logs out, and not without it.
    assert!(
        warnings(&c, &scenario("deribit"))
            .iter()
            .all(|w| !w.contains("disarm"))
    );
    let c = config(
        &dir,
        "[[steps]]\nkind = \"close\"\ndisarm_dead_man = false\nlogout = false\n",
    );
    let found = warnings(&c, &scenario("deribit")).join("\n");
    assert!(
        found.contains("leaves the switch of deribit-ws armed"),
        "{found}"
    );
}

#[test]
fn plan_with_a_scenario_warns_and_deny_warnings_fails() {
    let out = ctl(&[
        "plan",
        PIPELINE,
        "--scenario",
        &scenario("deribit-fix"),
        "--deny-warnings",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("warning: steps.close.logout = true: on deribit"),
        "{stdout}"
    );
    let out = ctl(&[
        "plan",
        PIPELINE,
        "--scenario",
        &scenario("bybit"),
        "--deny-warnings",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Each step plans for what the venue offers.
    let stdout = text(&out.stdout).replace("\n        ", " ");
    assert!(
        stdout.contains("(batches of up to 20 of one instrument)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("10 per second (the venue's documented limit)"),
        "{stdout}"
    );
    let out = ctl(&["validate", PIPELINE, "--scenario", "nope.toml"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("nope.toml: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_dry_run_says_the_profile_and_when_the_book_was_safe() {
    for v in VENUES {
        let (code, out) = dry_run(&scenario(v), "1");
        assert_eq!(out["audit"]["ok"], true, "{v}: {:#}", out["audit"]);
        let profile = v.trim_end_matches("-fix");
        assert_eq!(out["venue"]["profile"], profile);
        match v {
            // Over FIX the stops go at exit: the book is never safe.
            "deribit-fix" => {
                assert_eq!(out["venue"]["safe_after"], serde_json::Value::Null);
                assert_ne!(code, 0);
            }
            _ => {
                let secs = out["venue"]["safe_after"].as_f64().unwrap_or(-1.0);
                assert!(
                    secs >= 0.0 && secs <= out["duration"].as_f64().unwrap(),
                    "{v}: {secs}"
                );
                assert_eq!(code, 0, "{v}");
            }
        }
    }
    let out = ctl(&["dry-run", PIPELINE, "--scenario", &scenario("deribit-fix")]);
    // The line as printed, wrapped at 80 columns.
    let stdout = text(&out.stdout).replace("\n  ", " ");
    assert!(
        stdout.contains("venue: deribit (rules: docs/venues.md); not safe at exit: 1 position unprotected, 0 orders left working"),
        "{stdout}"
    );
}
