//! The real `shutdownctl` binary: every command, its output and its exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(args)
        .current_dir(root())
        .env_remove("SHUTDOWN_TIMEOUT_SECS")
        .env_remove("SHUTDOWNCTL_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shutdownctl")
}

/// `shutdownctl dry-run CONFIG --scenario SCENARIO` with both written to a temp dir, plus `extra`
/// arguments.
fn dry_run_texts(config: &str, scenario: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (
        dir.path().join("config.toml"),
        dir.path().join("scenario.toml"),
    );
    std::fs::write(&c, config).unwrap();
    std::fs::write(&s, scenario).unwrap();
    let mut args = vec![
        "dry-run",
        c.to_str().unwrap(),
        "--scenario",
        s.to_str().unwrap(),
    ];
    args.extend(extra);
    ctl(&args)
}

/// A file of the repository, as text.
fn shipped(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const PIPELINE: &str = "examples/configs/pipeline.toml";

#[test]
fn steps_lists_every_kind_with_its_options() {
    let out = ctl(&["steps", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "cancel",
            "close",
            "flush",
            "halt",
            "reconcile",
            "resume",
            "verify"
        ]
    );
    let cancel = &v[0]["options"];
    assert!(
        cancel
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "keep_protective_stops" && o["default"] == "true")
    );
    let human = text(&ctl(&["steps"]).stdout);
    assert!(human.contains("keep_protective_stops (bool, default true)"));
    assert!(human.lines().all(|l| l.chars().count() <= 80), "{human}");
}

#[test]
fn validate_says_ok_or_lists_every_problem_with_exit_78() {
    let out = ctl(&["validate", PIPELINE]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("ok: 5 steps (halt -> cancel -> verify -> flush -> close)")
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "timeout_secs = -1\n[[steps]]\nkind = \"cancle\"\n[[steps]]\nkind = \"halt\"\nretries = \"x\"\n").unwrap();
    let out = ctl(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("3 configuration problems"), "{err}");
    assert!(
        err.contains("bad.toml: `timeout_secs`: must be a finite number"),
        "{err}"
    );
    assert!(
        err.contains(
            "bad.toml: step 1 (cancle): `kind`: unknown step kind `cancle`; did you mean `cancel`?"
        ),
        "{err}"
    );
    assert!(err.contains("bad.toml: step 2 (halt): `retries`:"), "{err}");

    let out = ctl(&["validate", "--json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 3);
    assert_eq!(v["problems"][1]["step"]["index"], 1);
    assert_eq!(v["problems"][1]["key"], "kind");
}

#[test]
fn validate_explains_missing_files_directories_and_broken_toml() {
    let out = ctl(&["validate", "nope.toml"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("nope.toml: cannot read"));
    let out = ctl(&["validate", "examples"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("examples: is a directory"));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "timeout_secs = \n").unwrap();
    let out = ctl(&["validate", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid TOML") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn plan_weighs_the_budget_against_the_grace_period() {
    let out = ctl(&["plan", PIPELINE, "--grace-period", "60"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(
        s.contains("budget: steps 20s, critical 15s, global 20s, grace period 60s"),
        "{s}"
    );
    assert!(!s.contains("warning"), "{s}");
    // The report's sinks and the exit flushes get 2.4 s after the deadline at most.
    assert!(
        s.contains("exits by 22.4s at worst (20s + 2.4s after the deadline"),
        "{s}"
    );
    assert!(s.contains("grace period 60s leaves 37.6s"), "{s}");
    let out = ctl(&["plan", PIPELINE, "--grace-period", "20", "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("later than the 20s grace period"), "{s}");
    assert!(s.contains("grace period 20s is 2.4s short"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    let out = ctl(&["plan", PIPELINE, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][1]["kind"], "cancel");
    assert_eq!(v["steps"][1]["critical"], true);
    assert_eq!(v["timeout_secs"], 20.0);
}

#[test]
fn plan_k8s_gives_the_grace_period_the_budget_needs() {
    let out = ctl(&["plan", PIPELINE, "--k8s", "--pre-stop", "0", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 20 s global + 2.4 s after the deadline (the worst case `plan` prints), rounded up; no preStop.
    assert_eq!(v["kubernetes"]["termination_grace_period_seconds"], 23);
    let manifest = v["kubernetes"]["manifest"].as_str().unwrap();
    assert!(
        manifest.contains("terminationGracePeriodSeconds: 23\n"),
        "{manifest}"
    );
    assert!(
        !manifest.contains("lifecycle:"),
        "no hook asked: {manifest}"
    );
    let out = ctl(&["plan", PIPELINE, "--k8s", "--pre-stop", "5"]);
    assert!(text(&out.stdout).contains("terminationGracePeriodSeconds: 28\n"));
    assert!(text(&out.stdout).contains("command: [\"sleep\", \"5\"]"));
    // Without --k8s, --pre-stop means nothing: refused.
    assert_eq!(
        ctl(&["plan", PIPELINE, "--pre-stop", "5"]).status.code(),
        Some(2)
    );
}

#[test]
fn plan_and_validate_name_the_environment_variables_in_effect_but_not_their_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["validate", PIPELINE])
        .current_dir(root())
        .env("SHUTDOWN_STEPS__FLUSH__URL", "redis://:hunter2@cache:6379")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("from the environment: SHUTDOWN_STEPS__FLUSH__URL"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn plan_applies_environment_overrides() {
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["plan", PIPELINE, "--json"])
        .current_dir(root())
        .env("SHUTDOWN_TIMEOUT_SECS", "9")
        .env("SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS", "3.5")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timeout_secs"], 9.0);
    assert_eq!(v["steps"][1]["name"], "cancel");
    assert_eq!(v["steps"][1]["timeout_secs"], 3.5);
    assert_eq!(
        v["env_overrides"],
        serde_json::json!([
            "SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS",
            "SHUTDOWN_TIMEOUT_SECS"
        ])
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("more than the global 9s"))
    );
}

fn dry_run(scenario: &str, seed: &str) -> (i32, serde_json::Value) {
    let out = ctl(&[
        "dry-run",
        PIPELINE,
        "--scenario",
        scenario,
        "--json",
        "--seed",
        seed,
    ]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    for key in ["started_at", "duration"] {
        v[key] = serde_json::Value::Null;
    }
    for s in v["steps"].as_array_mut().unwrap() {
        s["duration"] = serde_json::Value::Null;
    }
    v
}

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
fn report_prints_a_report_file_and_human_output_fits_80_columns() {
    let (_, v) = dry_run("examples/scenarios/basic.toml", "1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&["report", "--file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(s.starts_with("shutdown clean (exit 0)"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    let out = ctl(&["report", "--file", "missing.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.json"));
}

#[test]
fn every_shipped_scenario_reads_in_80_columns_saying_what_each_step_did_and_every_problem_in_full()
{
    for scenario in ["basic", "busy", "hostile", "adversarial"] {
        let path = format!("examples/scenarios/{scenario}.toml");
        let out = ctl(&["dry-run", PIPELINE, "--scenario", &path, "--seed", "1"]);
        let s = text(&out.stdout);
        assert!(
            s.lines().all(|l| l.chars().count() <= 80),
            "{scenario}:\n{s}"
        );
        let (_, v) = dry_run(&path, "1");
        for step in v["steps"].as_array().unwrap() {
            let name = step["name"].as_str().unwrap();
            if step["outcome"] == "succeeded" {
                let did = step["summary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: no summary"));
                let first = did.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                assert!(
                    s.contains(&first),
                    "{scenario}: {name}'s summary {did:?} not shown:\n{s}"
                );
            }
            // Every problem, whole (its words in order, whatever the wrapping).
            let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
            for p in step["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(step["error"].as_str().map(|_| &step["error"]))
            {
                let p = p
                    .as_str()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                assert!(
                    flat.contains(&p),
                    "{scenario}: {name}: {p:?} not in full:\n{s}"
                );
            }
        }
    }
}

#[test]
fn report_draws_the_timeline_in_80_columns_and_as_an_svg_whose_bars_are_the_report() {
    let (_, v) = dry_run("examples/scenarios/adversarial.toml", "1");
    let dir = tempfile::tempdir().unwrap();
    let (file, svg) = (dir.path().join("report.json"), dir.path().join("t.svg"));
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&[
        "report",
        "--file",
        file.to_str().unwrap(),
        "--timeline",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let timeline: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.starts_with("timeline:"))
        .collect();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(timeline.len(), steps.len() + 2, "{s}");
    assert!(timeline.iter().all(|l| l.chars().count() <= 80), "{s}");
    // The cancel step failed: its bar says so.
    assert!(
        timeline[2].contains("cancel") && timeline[2].contains('!'),
        "{s}"
    );

    // The SVG: every step's bar and budget frame where the report puts them, on an axis from
    // x = 170 (time 0) to 770 (the global deadline, which this run stayed inside).
    let doc = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&doc).expect("well-formed SVG");
    let timeout = v["timeout_secs"].as_f64().unwrap();
    let x = |t: f64| 170.0 + t / timeout * 600.0;
    let attr = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let find = |class: &str, step: &str| {
        doc.descendants()
            .find(|n| n.attribute("class") == Some(class) && n.attribute("data-step") == Some(step))
            .unwrap_or_else(|| panic!("no {class} for {step}"))
    };
    for step in steps {
        let name = step["name"].as_str().unwrap();
        let (offset, duration, budget) = (
            step["offset"].as_f64().unwrap(),
            step["duration"].as_f64().unwrap(),
            step["budget"].as_f64().unwrap(),
        );
        let bar = find("bar", name);
        assert!((attr(bar, "x") - x(offset)).abs() < 0.01, "{name}");
        assert!(
            (attr(bar, "width") - (x(offset + duration) - x(offset))).abs() < 0.01,
            "{name}"
        );
        assert_eq!(bar.attribute("data-outcome"), step["outcome"].as_str());
        let frame = find("budget", name);
        assert!(
            (attr(frame, "width") - (x(offset + budget) - x(offset))).abs() < 0.01,
            "{name}"
        );
        assert!(budget > 0.0 && offset >= 0.0, "{name}: {step}");
    }
    let deadline = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("deadline"))
        .unwrap();
    assert!((attr(deadline, "x1") - 770.0).abs() < 0.01);
    // Steps follow one another: each starts after the one before it started.
    let offsets: Vec<f64> = steps
        .iter()
        .map(|s| s["offset"].as_f64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");

    // Signals: a second one at 1 s and a force at 2.5 s are marked in both pictures.
    let mut v = v.clone();
    v["escalations"] = serde_json::json!([
        {"level": "graceful", "reason": "SIGTERM", "offset": 0.0},
        {"level": "hurry", "reason": "SIGINT", "offset": 1.0},
        {"level": "force", "reason": "SIGINT", "offset": 2.5}
    ]);
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&[
        "report",
        "--file",
        file.to_str().unwrap(),
        "--timeline",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    let row = s
        .lines()
        .find(|l| l.starts_with("  escalations"))
        .expect(&s);
    // Columns: 19 before the axis, 56 for the 20 s to the deadline.
    let col = |t: f64| 19 + (t / timeout * 56.0).round() as usize;
    assert_eq!(row.chars().nth(col(1.0)), Some('H'), "{row}");
    assert_eq!(row.chars().nth(col(2.5)), Some('F'), "{row}");
    let doc = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&doc).unwrap();
    let lines: Vec<(Option<&str>, f64)> = (doc.descendants())
        .filter(|n| n.attribute("class") == Some("escalation"))
        .map(|n| (n.attribute("data-level"), attr(n, "x1")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].0, Some("hurry"));
    assert!((lines[0].1 - x(1.0)).abs() < 0.01 && (lines[1].1 - x(2.5)).abs() < 0.01);
}

#[test]
fn completions_for_each_shell_and_a_man_page_cover_every_command() {
    let commands = [
        "validate",
        "plan",
        "dry-run",
        "reconcile",
        "report",
        "restore",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ctl(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for c in commands {
            assert!(script.contains(c), "{shell} completion lacks {c}");
        }
    }
    let out = ctl(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ctl(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = text(&out.stdout);
    assert!(page.contains(".TH shutdownctl 1"), "{page}");
    for c in commands {
        assert!(
            page.contains(&c.replace('-', "\\-")),
            "the man page lacks {c}"
        );
    }
}

#[test]
fn report_exit_code_hands_on_the_exit_code_the_report_records() {
    let (code, v) = dry_run("examples/scenarios/hostile.toml", "3");
    assert_eq!(code, 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let path = file.to_str().unwrap();
    // Without the flag, printing a degraded report succeeded: exit 0.
    assert_eq!(ctl(&["report", "--file", path]).status.code(), Some(0));
    let out = ctl(&["report", "--file", path, "--exit-code"]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("shutdown degraded (exit 10)"));
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
fn reconcile_dry_runs_the_start_gate_names_every_change_and_keeps_the_gate_halted_on_a_stranger() {
    let args = [
        "reconcile",
        "examples/configs/start.toml",
        "--scenario",
        "examples/scenarios/downtime.toml",
    ];
    let out = ctl(&args);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("start gate degraded (exit 10)"), "{s}");
    assert!(s.contains("! unknown_order manual-1 (ETH-PERP)"), "{s}");
    assert!(
        s.contains("gate: halted; the downtime made 4 changes"),
        "{s}"
    );
    assert!(s.contains("audit: report matches the venue"), "{s}");
    let mut json = args.to_vec();
    json.push("--json");
    let out = ctl(&json);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["gate_open"].as_bool(), v["audit"]["ok"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(v["reason"], "start");
    assert_eq!(v["downtime_changes"].as_array().unwrap().len(), 4);
    // The same inputs, the same report.
    let again: serde_json::Value = serde_json::from_slice(&ctl(&json).stdout).unwrap();
    assert_eq!(without_timings(v), without_timings(again));
    // With strangers only reported, the gate opens.
    let config = shipped("examples/configs/start.toml").replace(
        "on_unknown_order = \"halt\"",
        "on_unknown_order = \"report\"",
    );
    let scenario = shipped("examples/scenarios/downtime.toml");
    let dir = tempfile::tempdir().unwrap();
    let (c, sc) = (dir.path().join("start.toml"), dir.path().join("s.toml"));
    std::fs::write(&c, config).unwrap();
    std::fs::write(&sc, scenario).unwrap();
    let out = ctl(&[
        "reconcile",
        c.to_str().unwrap(),
        "--scenario",
        sc.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("gate: open"));
}

#[test]
fn a_downtime_that_names_an_order_the_scenario_lacks_is_refused() {
    let out = dry_run_texts(&shipped(PIPELINE), "[downtime]\nfilled = [\"nope\"]\n", &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("downtime.filled: no order \"nope\" in the scenario"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn color_is_chosen_by_flag_and_no_color_turns_it_off() {
    let run = |args: &[&str], no_color: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shutdownctl"));
        cmd.args(args).current_dir(root());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(10));
        let err = text(&out.stderr);
        assert!(err.contains("step failed"), "{err}");
        err.contains('\u{1b}')
    };
    let hostile = [
        "dry-run",
        PIPELINE,
        "--scenario",
        "examples/scenarios/hostile.toml",
    ];
    // The log shows with -v (without, a dry-run's output is its report alone).
    let with = |color: &'static str| {
        let mut a = vec!["-v", "--color", color];
        a.extend(hostile);
        a
    };
    assert!(
        run(&with("always"), false),
        "--color always colours the log"
    );
    assert!(!run(&with("never"), false), "--color never does not");
    // stderr is a pipe here, so auto means no colour; NO_COLOR wins over auto too.
    assert!(!run(&[&["-v"][..], &hostile[..]].concat(), false));
    assert!(!run(&with("auto"), true));
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "steps",
        "validate",
        "plan",
        "dry-run",
        "reconcile",
        "report",
        "restore",
        "fleet",
        "fleet halt",
        "fleet resume",
        "fleet shutdown",
        "fleet status",
        "completions",
        "man",
    ] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let out = ctl(&args);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("Example"), "{cmd}");
    }
}

mod redis {
    use shutdown_testkit::redis_server::RedisServer;

    use super::{PIPELINE, ctl, text};

    fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
        let socket = server.dir.path().join("redis.sock");
        let out = std::process::Command::new("redis-cli")
            .arg("-s")
            .arg(&socket)
            .args(args)
            .output()
            .expect("redis-cli is installed with redis-server");
        text(&out.stdout)
    }

    #[test]
    fn dry_run_with_redis_flushes_there_and_restore_reads_it_back() {
        let server = RedisServer::start();
        let out = ctl(&[
            "dry-run",
            PIPELINE,
            "--scenario",
            "examples/scenarios/basic.toml",
            "--json",
            "--redis",
            &server.url,
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let flush = &v["steps"][3];
        assert_eq!(flush["kind"], "flush");
        assert!(
            flush["details"]["written_to"]
                .as_str()
                .unwrap()
                .starts_with("redis "),
            "{flush:#}"
        );
        assert_eq!(
            redis_cli(&server, &["HLEN", "{trader-001}:orders"]).trim(),
            "6",
            "5 orders and the stop verify placed"
        );

        // A snapshot without a final report: the shutdown that took it did not finish.
        let out = ctl(&["restore", "--redis", &server.url, "--json"]);
        assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["previous_shutdown"], "unclean");
        assert!(
            r["why"]
                .as_str()
                .unwrap()
                .contains("without a final report"),
            "{r:#}"
        );
        assert_eq!(r["source"], "redis");
        assert_eq!(r["counts"][1], 2);

        // With the final report a node's sink keeps, the shutdown finished clean.
        let (_, report) = super::dry_run("examples/scenarios/basic.toml", "7");
        redis_cli(
            &server,
            &["SET", "{trader-001}:shutdown:last", &report.to_string()],
        );
        let out = ctl(&["restore", "--redis", &server.url]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(text(&out.stdout).starts_with("previous shutdown was clean"));

        // A node that started and then died: its run marker is still set.
        let marker = r#"{"started_at":"2026-01-01T00:00:00Z","pid":42}"#;
        redis_cli(&server, &["SET", "{trader-001}:shutdown:running", marker]);
        let out = ctl(&["restore", "--redis", &server.url]);
        assert_eq!(out.status.code(), Some(10));
        assert!(text(&out.stdout).starts_with("previous shutdown was NOT clean"));
    }

    #[test]
    fn report_reads_the_last_report_from_redis() {
        let server = RedisServer::start();
        let out = ctl(&["report", "--redis", &server.url]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("no shutdown report recorded for trader-001"));
        let (_, v) = super::dry_run("examples/scenarios/basic.toml", "7");
        redis_cli(
            &server,
            &["SET", "{trader-001}:shutdown:last", &v.to_string()],
        );
        let out = ctl(&["report", "--redis", &server.url]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("shutdown clean (exit 0)"));
    }

    #[test]
    fn report_needs_a_source() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
            .arg("report")
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("give --file PATH, or --redis URL"));
    }
}

#[test]
fn the_config_reference_lists_every_registered_option() {
    let out = ctl(&["steps", "--markdown"]);
    assert_eq!(out.status.code(), Some(0));
    let generated = text(&out.stdout);
    let doc = shipped("docs/config.md");
    assert!(
        doc.contains(generated.trim()),
        "docs/config.md is out of date: regenerate its step sections with `shutdownctl steps --markdown`"
    );
    assert!(generated.contains("### `flush`") && generated.contains("| `keep_protective_stops` |"));
}

mod fleet {
    use std::time::Duration;

    use shutdown_core::{Reason, ShutdownHandle};
    use shutdown_redis::{FleetOptions, FleetSwitch};
    use shutdown_testkit::redis_server::RedisServer;

    use super::{ctl, text};

    #[test]
    fn fleet_halt_waits_for_the_acknowledgements_and_names_a_node_that_gives_none() {
        let server = RedisServer::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = ShutdownHandle::new();
        let switch = rt
            .block_on(FleetSwitch::start(
                &shutdown_redis::RedisTarget::parse(&server.url).unwrap(),
                FleetOptions::new("trader-007")
                    .node_id("n1")
                    .heartbeat(Duration::from_millis(500)),
                handle.clone(),
                None,
            ))
            .unwrap();
        let url = server.url.as_str();
        let out = ctl(&[
            "fleet",
            "halt",
            "--redis",
            url,
            "--trader-id",
            "trader-007",
            "--note",
            "drill",
            "--wait",
            "10",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("fleet halt of trader trader-007 written (version 1"),
            "{stdout}"
        );
        assert!(
            stdout.contains("n1: halt held (no trading gate to halt"),
            "{stdout}"
        );
        assert!(
            stdout.contains("every live node covered acknowledged (1)"),
            "{stdout}"
        );
        assert!(!switch.state().halts.is_empty());

        let out = ctl(&["fleet", "status", "--redis", url, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["halts"][0]["note"], "drill");
        assert_eq!(status["nodes"][0]["node"], "n1");
        assert_eq!(status["nodes"][0]["live"], true);
        assert_eq!(status["nodes"][0]["halted"], true);
        let out = ctl(&[
            "fleet",
            "status",
            "--redis",
            url,
            "--trader-id",
            "trader-008",
            "--json",
        ]);
        let other: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            other["nodes"],
            serde_json::json!([]),
            "not that trader's node"
        );
        assert_eq!(other["halts"], serde_json::json!([]), "nor its halt");
        let out = ctl(&["fleet", "status", "--redis", url]);
        assert!(
            text(&out.stdout).contains("HALT: halt of trader trader-007 by "),
            "{}",
            text(&out.stdout)
        );

        let out = ctl(&[
            "fleet", "shutdown", "--redis", url, "--all", "--yes", "--wait", "10",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let reason = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), handle.requested()).await
            })
            .unwrap();
        assert_eq!(reason, Reason::Fleet);

        // A node that stops reading is named, and the exit code says so.
        drop(switch);
        let out = ctl(&[
            "fleet", "resume", "--redis", url, "--all", "--yes", "--wait", "0.2", "--json",
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["acks"]["missing"][0], "n1");
        assert_eq!(json["exit_code"], 1);
    }

    /// `shutdownctl ARGS` on a terminal (`script` gives it a pseudo-terminal), typing `typed`.
    fn on_a_terminal(args: &str, typed: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("script")
            .args([
                "-qec",
                &format!("{} {args}", env!("CARGO_BIN_EXE_shutdownctl")),
                "/dev/null",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script (util-linux) is installed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(typed.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn on_a_terminal_a_command_for_every_node_waits_for_yes() {
        let server = RedisServer::start();
        let target = shutdown_redis::RedisTarget::parse(&server.url).unwrap();
        let version = || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(shutdown_redis::fleet::status(
                &target,
                Duration::from_secs(2),
            ))
            .unwrap()
            .version
        };
        let args = format!("fleet halt --redis {} --all", server.url);
        let out = on_a_terminal(&args, "no\n");
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains("halt EVERY node of the fleet? type yes:"),
            "{said}"
        );
        assert!(said.contains("not confirmed; nothing sent"), "{said}");
        assert_eq!(version(), 0, "nothing written");
        let out = on_a_terminal(&args, "yes\n");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert_eq!(version(), 1);
    }

    #[test]
    fn waiting_with_no_live_node_says_nobody_was_there_to_acknowledge() {
        let server = RedisServer::start();
        let out = ctl(&[
            "fleet",
            "halt",
            "--redis",
            &server.url,
            "--trader-id",
            "nobody",
            "--wait",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            text(&out.stdout).contains("no live node is covered"),
            "{}",
            text(&out.stdout)
        );
    }

    #[test]
    fn fleet_commands_need_a_scope_and_a_redis() {
        let out = ctl(&["fleet", "halt", "--redis", "redis://127.0.0.1:1/"]);
        assert_eq!(out.status.code(), Some(2), "a scope is required");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
            .args(["fleet", "status", "--json"])
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["ok"], false);
        assert!(json["error"].as_str().unwrap().contains("--redis"));
        let out = ctl(&[
            "fleet",
            "halt",
            "--redis",
            "redis://127.0.0.1:1/",
            "--all",
            "--yes",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("cannot connect to redis://127.0.0.1:1/"),
            "{}",
            text(&out.stderr)
        );
    }
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

/// A dry-run's JSON without its one wall-clock field.
fn without_start(mut v: serde_json::Value) -> String {
    v["started_at"] = serde_json::Value::Null;
    v.to_string()
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
fn plan_warns_when_a_safety_step_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("no-close.toml");
    std::fs::write(
        &config,
        "[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"close\"\nenabled = false\n",
    )
    .unwrap();
    let out = ctl(&[
        "plan",
        config.to_str().unwrap(),
        "--json",
        "--deny-warnings",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("step 2 (close) is disabled") && warnings.contains("dead-man's switch"),
        "{warnings}"
    );
}

#[test]
fn a_config_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipeline.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Nobody writes to the FIFO: reading it would wait forever.
    for path in [fifo.to_str().unwrap(), "/dev/null"] {
        let out = ctl(&["validate", path]);
        assert_eq!(out.status.code(), Some(78), "{path}");
        let err = text(&out.stderr);
        assert!(err.contains("is not a regular file"), "{err}");
    }
}

#[test]
fn restore_says_cannot_tell_with_exit_1_when_its_evidence_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("redis+unix://{}/nobody.sock", dir.path().display());
    let fallback = dir.path().join("fallback");
    std::fs::create_dir_all(&fallback).unwrap();
    let fallback = fallback.to_str().unwrap();
    let out = ctl(&["restore", "--redis", &gone, "--fallback-dir", fallback]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("cannot tell how the previous shutdown ended"));
    let missing = dir.path().join("missing");
    let out = ctl(&["restore", "--fallback-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("does not exist"),
        "{}",
        text(&out.stdout)
    );
    // An empty directory and no Redis: no previous run.
    let out = Command::new(env!("CARGO_BIN_EXE_shutdownctl"))
        .args(["restore", "--fallback-dir", fallback])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("no previous shutdown recorded"));
}

#[test]
fn every_help_fits_80_columns() {
    let commands: &[&[&str]] = &[
        &[],
        &["steps"],
        &["validate"],
        &["plan"],
        &["dry-run"],
        &["reconcile"],
        &["report"],
        &["restore"],
        &["fleet"],
        &["fleet", "halt"],
        &["fleet", "resume"],
        &["fleet", "shutdown"],
        &["fleet", "status"],
        &["completions"],
        &["man"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = ctl(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = text(&out.stdout);
        let widest = help.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(
            widest <= 80,
            "`shutdownctl {}` is {widest} columns wide:\n{help}",
            args.join(" ")
        );
    }
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
