//! `dry-run`: the pipeline on the paper venue, its report and its audit.

use super::*;

#[test]
fn dry_run_runs_the_pipeline_on_the_paper_venue_and_is_repeatable() {
    let (code, a) = dry_run("examples/scenarios/basic.toml", "7");
    assert_eq!(code, 0, "{a:#}");
    assert_eq!(a["outcome"], "clean");
    let verify = &a["steps"][2];
    assert_eq!(verify["kind"], "verify");
    let eth = verify["details"]["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "eth-short")
        .unwrap();
    assert!(
        eth["action"]
            .as_str()
            .unwrap()
            .starts_with("placed stop shutdown-stop-eth-short for 4")
    );
    let (_, b) = dry_run("examples/scenarios/basic.toml", "7");
    assert_eq!(without_timings(a), without_timings(b));
}

#[test]
fn dry_run_of_a_hostile_venue_is_degraded_and_names_the_orphan() {
    let (code, v) = dry_run("examples/scenarios/hostile.toml", "3");
    assert_eq!(code, 10);
    assert_eq!(v["outcome"], "degraded");
    assert_eq!(
        v["steps"][1]["details"]["orphaned"][0]["client_id"],
        "stuck-1"
    );
}

#[test]
fn dry_run_names_a_broken_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-scenario.toml");
    std::fs::write(
        &bad,
        "[[positions]]\nid = \"p\"\ninstrument = \"X\"\nside = \"up\"\n",
    )
    .unwrap();
    let out = ctl(&["dry-run", PIPELINE, "--scenario", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad-scenario.toml: invalid scenario") && err.contains("line 4"),
        "{err}"
    );
}

#[test]
fn with_json_a_failure_is_a_json_object_on_stdout_as_well_as_a_line_on_stderr() {
    let out = dry_run_texts(
        &shipped(PIPELINE),
        "[[positions]]\nid = \"p\"\ninstrument = \"X\"\nside = \"up\"\n",
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(78));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 78);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("scenario.toml: invalid scenario"), "{error}");
    assert!(text(&out.stderr).contains(error), "{}", text(&out.stderr));

    let out = ctl(&["report", "--file", "missing.json", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (v["ok"].as_bool(), v["exit_code"].as_i64()),
        (Some(false), Some(1))
    );
    assert!(v["error"].as_str().unwrap().contains("missing.json"));
}

#[test]
fn a_cancel_cut_short_on_a_large_book_still_accounts_for_every_order() {
    let out = dry_run_texts(
        "timeout_secs = 10\n[[steps]]\nkind = \"cancel\"\ntimeout_secs = 0.5\nmax_in_flight = 32\n",
        "[[instruments]]\nsymbol = \"BTC-PERP\"\nmark_price = 65000\n[venue]\nlatency_ms = 1\n[generate]\norders = 50000\npositions = 0\n",
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &report["steps"][0];
    let count = |key: &str| step["details"][key].as_array().map_or(0, Vec::len);
    // Whether the step ended by itself (orphaned) or was cut short (still_working), every order
    // is cancelled, filled or named as left working, and the count says how many are left.
    let left = count("orphaned") + count("still_working");
    assert_eq!(
        count("cancelled") + count("already_filled") + left,
        50_000,
        "{}",
        step["error"]
    );
    assert!(left > 0, "the budget is too short for 50,000 cancels");
    // Cut short, the step had requests in flight: its count is unknown; ended by itself, exact.
    let expected = match step["outcome"].as_str() {
        Some("timed_out") => serde_json::Value::Null,
        _ => serde_json::json!(left),
    };
    assert_eq!(step["counts"]["orders_orphaned"], expected);
}

#[test]
fn a_dry_run_with_redis_down_writes_nothing_where_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let config = root().join(PIPELINE);
    let scenario = root().join("examples/scenarios/basic.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["dry-run", config.to_str().unwrap(), "--scenario"])
        .arg(&scenario)
        .args(["--json", "--redis"])
        .arg(format!("redis+unix://{}", sock.display()))
        .current_dir(dir.path())
        .env_remove("SHUTDOWN_TIMEOUT_SECS")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let flush = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "flush")
        .unwrap();
    let file = flush["details"]["fallback_file"]
        .as_str()
        .unwrap_or_default();
    assert!(
        file.starts_with(std::env::temp_dir().to_str().unwrap()),
        "{flush:#}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the dry run wrote where it ran: {left:?}");
    std::fs::remove_dir_all(std::path::Path::new(file).parent().unwrap()).unwrap();
}

#[test]
fn every_dry_run_audits_its_report_against_the_venue() {
    for scenario in ["basic", "busy", "hostile", "adversarial"] {
        let path = format!("examples/scenarios/{scenario}.toml");
        let (code, v) = dry_run(&path, "1");
        assert_eq!(v["audit"]["ok"], true, "{scenario}: {:#}", v["audit"]);
        assert_eq!(v["audit"]["discrepancies"], serde_json::json!([]));
        assert_eq!(code, v["exit_code"].as_i64().unwrap() as i32);
        let out = ctl(&["dry-run", PIPELINE, "--scenario", &path, "--seed", "1"]);
        assert!(
            text(&out.stdout).contains("audit: report matches the venue"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn twenty_dry_runs_of_each_shipped_scenario_give_the_same_report() {
    for scenario in ["basic", "busy", "hostile", "adversarial"] {
        let path = format!("examples/scenarios/{scenario}.toml");
        let (_, first) = dry_run(&path, "42");
        assert_eq!(first["simulated"], true);
        let first = without_start(first);
        for run in 1..20 {
            let (_, again) = dry_run(&path, "42");
            assert_eq!(without_start(again), first, "{scenario}: run {run} differs");
        }
    }
}

#[test]
fn a_dry_run_reports_the_time_the_venue_would_take_without_taking_it() {
    let out = dry_run_texts(
        "timeout_secs = 300\n[[steps]]\nkind = \"cancel\"\ntimeout_secs = 290\nrate_per_sec = 50\n",
        "[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n[venue]\nlatency_ms = 5\nrate_limit_per_sec = 50\n[generate]\norders = 10000\npositions = 0\n",
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // 10,000 cancels at 50 a second: 200 s at the venue.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("simulated: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let secs: f64 = line["simulated: ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((199.0..201.0).contains(&secs), "{line}");
}

#[test]
fn a_human_dry_run_prints_its_report_alone_and_the_log_only_when_asked() {
    let args = [
        "dry-run",
        "examples/configs/pipeline.toml",
        "--scenario",
        "examples/scenarios/hostile.toml",
    ];
    let out = ctl(&args);
    assert_eq!(out.status.code(), Some(10));
    // A step failed: the report says so, once; no log line says it again.
    let report = text(&out.stdout);
    assert!(
        report.contains("could not be cancelled: stuck-1"),
        "{report}"
    );
    assert_eq!(text(&out.stderr), "", "nothing on stderr without -v");
    let verbose = ctl(&[&["-v"][..], &args[..]].concat());
    let log = text(&verbose.stderr);
    assert!(log.contains("step failed") && log.contains("INFO"), "{log}");
    let without_timing = |s: &str| -> String {
        let lines = s.lines().filter(|l| !l.starts_with("simulated:"));
        lines.collect::<Vec<_>>().join("\n")
    };
    assert_eq!(
        without_timing(&text(&verbose.stdout)),
        without_timing(&report),
        "-v adds the log, not to the output"
    );
}
