//! Unit tests of configuration parsing and validation.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::pipeline::{DEFAULT_TIMEOUT_SECS, OnError};
use crate::signal::Signal;
use crate::step::DEFAULT_TRADER_ID;

fn parse(toml: &str) -> Result<PipelineConfig, ConfigErrors> {
    PipelineConfig::from_toml_in(
        toml,
        "node.toml",
        EnvOverrides::None,
        crate::testing::registry(),
    )
}

fn problems(toml: &str) -> Vec<String> {
    parse(toml)
        .expect_err("config should be invalid")
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn kinds(cfg: &PipelineConfig) -> Vec<(&str, bool)> {
    cfg.steps
        .iter()
        .map(|s| (s.registration.kind, s.enabled))
        .collect()
}

#[test]
fn the_seed_compact_form_builds_the_default_pipeline_with_its_switches() {
    let cfg = parse(
        "timeout_secs = 30.0\ncancel_orders = true\nverify_stop_losses = false\nflush_cache = true\nlog_level = \"info\"\n",
    )
    .unwrap();
    assert_eq!(
        kinds(&cfg),
        [
            ("halt", true),
            ("cancel", true),
            ("verify", false),
            ("flush", true),
            ("close", true)
        ]
    );
    assert_eq!(cfg.settings.timeout, Duration::from_secs(30));
    assert_eq!(cfg.steps[1].settings.timeout, Duration::from_secs(10));
    assert!(
        cfg.steps[1].settings.critical,
        "cancel is critical by default"
    );
    assert!(!cfg.steps[0].settings.critical, "halt is not");
    assert_eq!(cfg.settings.signals, [Signal::Term, Signal::Int]);
}

#[test]
fn an_empty_file_is_the_compact_form_with_every_default() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg.steps.len(), 5);
    assert!(cfg.steps.iter().all(|s| s.enabled));
    assert_eq!(cfg.settings.timeout.as_secs_f64(), DEFAULT_TIMEOUT_SECS);
    assert_eq!(cfg.settings.trader_id, DEFAULT_TRADER_ID);
}

#[test]
fn steps_keep_their_order_names_and_settings() {
    let cfg = parse(
        r#"
timeout_secs = 20
signals = ["SIGTERM", "hup"]
report_path = "/tmp/r.json"
trader_id = "desk-7"

[[steps]]
kind = "cancel"
timeout_secs = 4.5
on_error = "abort"
max_in_flight = 16

[[steps]]
kind = "halt"
name = "gate"
critical = true
enabled = false
"#,
    )
    .unwrap();
    assert_eq!(kinds(&cfg), [("cancel", true), ("halt", false)]);
    assert_eq!(cfg.steps[0].settings.on_error, OnError::Abort);
    assert_eq!(cfg.steps[0].settings.timeout, Duration::from_secs_f64(4.5));
    assert_eq!(cfg.steps[1].settings.name, "gate");
    assert!(cfg.steps[1].settings.critical);
    assert_eq!(cfg.settings.signals, [Signal::Term, Signal::Hup]);
    assert_eq!(cfg.settings.trader_id, "desk-7");
    assert_eq!(
        cfg.settings.report_path.as_deref(),
        Some(std::path::Path::new("/tmp/r.json"))
    );
}

#[test]
fn environment_overrides_win_over_the_file() {
    let vars = HashMap::from([
        ("SHUTDOWN_TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ("SHUTDOWN_LOG_LEVEL".to_owned(), "debug".to_owned()),
        ("SHUTDOWN_SIGNALS".to_owned(), "SIGTERM,SIGQUIT".to_owned()),
        ("OTHER_TIMEOUT_SECS".to_owned(), "1".to_owned()),
    ]);
    let cfg = PipelineConfig::from_toml_in(
        "timeout_secs = 30.0\n",
        "node.toml",
        EnvOverrides::Vars(vars),
        crate::testing::registry(),
    )
    .unwrap();
    assert_eq!(cfg.settings.timeout, Duration::from_secs(5));
    assert_eq!(cfg.log_level, "debug");
    assert_eq!(cfg.settings.signals, [Signal::Term, Signal::Quit]);
    assert_eq!(
        cfg.env_overrides,
        [
            "SHUTDOWN_LOG_LEVEL",
            "SHUTDOWN_SIGNALS",
            "SHUTDOWN_TIMEOUT_SECS"
        ]
    );
}

#[test]
fn a_bad_environment_override_is_named_by_its_variable() {
    let vars = HashMap::from([("SHUTDOWN_TIMEOUT_SECS".to_owned(), "soon".to_owned())]);
    let err = PipelineConfig::from_toml_in(
        "",
        "node.toml",
        EnvOverrides::Vars(vars),
        crate::testing::registry(),
    )
    .unwrap_err();
    assert_eq!(
        err.problems[0].to_string(),
        "environment variable SHUTDOWN_TIMEOUT_SECS: `timeout_secs`: expected a number of seconds, found string \"soon\""
    );
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    assert_eq!(
        problems("timeout_sec = 3\n"),
        [
            "node.toml: `timeout_sec`: unknown key `timeout_sec`; did you mean `timeout_secs`? (known: cancel_orders, flush_cache, log_level, metrics, report_path, signals, steps, systemd, timeout_secs, trader_id, verify_stop_losses)"
        ]
    );
    let p = problems("[[steps]]\nkind = \"cancel\"\nmax_inflight = 3\n");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("node.toml: step 1 (cancel): `max_inflight`: unknown option"),
        "{p:?}"
    );
    assert!(p[0].contains("did you mean `max_in_flight`?"), "{p:?}");
    let p = problems("[[steps]]\nkind = \"cancel\"\ncritcal = true\n");
    assert!(p[0].contains("did you mean `critical`?"), "{p:?}");
}

#[test]
fn an_unknown_kind_lists_the_known_kinds_sorted_and_the_closest() {
    let p = problems("[[steps]]\nkind = \"cancle\"\nname = \"c1\"\n");
    assert_eq!(
        p,
        [
            "node.toml: step 1 (c1): `kind`: unknown step kind `cancle`; did you mean `cancel`? (known: cancel, close, flush, halt, verify)"
        ]
    );
    let p = problems("[[steps]]\nname = \"x\"\n");
    assert!(p[0].contains("step 1 (x): `kind`: missing"), "{p:?}");
}

#[test]
fn wrong_types_are_named_with_what_was_expected() {
    let p = problems(
        "timeout_secs = \"soon\"\nlog_level = 3\n[[steps]]\nkind = \"cancel\"\ncritical = \"yes\"\non_error = \"explode\"\nmax_in_flight = \"many\"\n",
    );
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(
        p.contains(
            &"node.toml: `timeout_secs`: expected a number of seconds, found string \"soon\""
                .to_owned()
        ),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("node.toml: `log_level`: expected a string")),
        "{p:#?}"
    );
    assert!(
        p.contains(
            &"node.toml: step 1 (cancel): `critical`: expected true or false, found string \"yes\""
                .to_owned()
        ),
        "{p:#?}"
    );
    assert!(p.contains(&"node.toml: step 1 (cancel): `on_error`: expected one of \"continue\", \"abort\", found \"explode\"".to_owned()), "{p:#?}");
    assert!(
        p.iter()
            .any(|m| m.starts_with("node.toml: step 1 (cancel): `max_in_flight`:")),
        "{p:#?}"
    );
}

#[test]
fn timeouts_must_be_finite_and_positive() {
    for bad in ["0", "-1.5", "inf", "nan", "1e9"] {
        let p = problems(&format!(
            "[[steps]]\nkind = \"halt\"\ntimeout_secs = {bad}\n"
        ));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert!(
            p[0].starts_with("node.toml: step 1 (halt): `timeout_secs`: must be a finite number"),
            "{p:?}"
        );
        let p = problems(&format!("timeout_secs = {bad}\n"));
        assert!(
            p[0].starts_with("node.toml: `timeout_secs`: must be"),
            "{p:?}"
        );
    }
}

#[test]
fn duplicate_names_and_an_empty_pipeline_are_errors() {
    let p = problems("[[steps]]\nkind = \"cancel\"\n[[steps]]\nkind = \"cancel\"\n");
    assert_eq!(
        p,
        [
            "node.toml: step 2 (cancel): `name`: duplicate step name `cancel` (also step 1); give each step a unique `name`"
        ]
    );
    assert_eq!(
        problems("steps = []\n"),
        ["node.toml: `steps`: the pipeline has no steps"]
    );
}

#[test]
fn compact_switches_next_to_steps_are_errors() {
    let p = problems("cancel_orders = false\n[[steps]]\nkind = \"cancel\"\n");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("`cancel_orders`: belongs to the compact form"),
        "{p:?}"
    );
    assert!(
        p[0].contains("`enabled = false` on the `cancel` step"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"
timeout_secs = 0
bogus = 1
[[steps]]
kind = "nope"
[[steps]]
kind = "halt"
timeout_secs = -2
[[steps]]
kind = "halt"
"#,
    );
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn a_step_timeout_longer_than_the_global_one_is_a_warning() {
    let cfg = parse("timeout_secs = 5\n[[steps]]\nkind = \"cancel\"\ntimeout_secs = 8\n").unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    let w = cfg.warnings[0].to_string();
    assert!(w.starts_with("node.toml: step 1 (cancel): `timeout_secs`: 8s is longer than the global timeout_secs (5s)"), "{w}");
}

#[test]
fn invalid_toml_gives_line_and_column() {
    let p = problems("timeout_secs = 30\n[[steps]\nkind = \"halt\"\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("node.toml: invalid TOML:"), "{p:?}");
    assert!(p[0].contains("line 2"), "{p:?}");
}

#[test]
fn bad_signals_and_trader_ids_are_errors() {
    let p = problems("signals = [\"SIGTERM\", \"SIGKILLME\"]\ntrader_id = \"a b\"\n");
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|m| m.contains("unknown signal \"SIGKILLME\"")));
    assert!(
        p.iter()
            .any(|m| m.contains("`trader_id`: must be 1 to 64 characters"))
    );
}

#[test]
fn load_names_the_file_for_missing_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let err = PipelineConfig::load_in(dir.path(), EnvOverrides::None, crate::testing::registry())
        .unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    let missing = dir.path().join("nope.toml");
    let err = PipelineConfig::load_in(&missing, EnvOverrides::None, crate::testing::registry())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&missing.display().to_string()) && text.contains("cannot read"),
        "{text}"
    );
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "timeout_secs = 7\n").unwrap();
    let cfg =
        PipelineConfig::load_in(&file, EnvOverrides::None, crate::testing::registry()).unwrap();
    assert_eq!(cfg.source, file.display().to_string());
    assert_eq!(cfg.settings.timeout, Duration::from_secs(7));
}

#[test]
fn build_fails_when_an_enabled_step_needs_a_missing_role() {
    let cfg = parse("[[steps]]\nkind = \"cancel\"\n[[steps]]\nkind = \"halt\"\nenabled = false\n")
        .unwrap();
    let err = cfg.build(&Node::new()).unwrap_err();
    assert_eq!(
        err.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "node.toml: step 1 (cancel): step kind `cancel` needs the order gateway role, which this node does not provide"
        ]
    );
    let cfg = parse("[[steps]]\nkind = \"verify\"\n").unwrap();
    let pipeline = cfg.build(&Node::new()).unwrap();
    assert_eq!(pipeline.steps.len(), 1);
}

#[test]
fn the_metrics_table_is_validated_and_overridable() {
    let cfg = parse("[metrics]\npushgateway_url = \"http://pgw:9091/\"\ntextfile_path = \"/tmp/s.prom\"\npush_timeout_secs = 1.5\n").unwrap();
    assert_eq!(
        cfg.settings.metrics.pushgateway_url.as_deref(),
        Some("http://pgw:9091")
    );
    assert_eq!(
        cfg.settings.metrics.push_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(cfg.settings.metrics.job, "shutdown");
    let p = problems("[metrics]\npushgateway = \"http://x\"\npush_timeout_secs = 0\n");
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("`metrics.push_timeout_secs`: must be"),
        "{p:?}"
    );
    assert!(
        p[1].contains(
            "`metrics.pushgateway`: unknown key `pushgateway`; did you mean `pushgateway_url`?"
        ),
        "{p:?}"
    );
    let vars = HashMap::from([(
        "SHUTDOWN_METRICS__PUSHGATEWAY_URL".to_owned(),
        "http://pgw2:9091".to_owned(),
    )]);
    let cfg = PipelineConfig::from_toml_in(
        "",
        "node.toml",
        EnvOverrides::Vars(vars),
        crate::testing::registry(),
    )
    .unwrap();
    assert_eq!(
        cfg.settings.metrics.pushgateway_url.as_deref(),
        Some("http://pgw2:9091")
    );
    let vars = HashMap::from([(
        "SHUTDOWN_METRICS__PUSHGATEWAY_URL".to_owned(),
        "pgw2:9091".to_owned(),
    )]);
    let err = PipelineConfig::from_toml_in(
        "",
        "node.toml",
        EnvOverrides::Vars(vars),
        crate::testing::registry(),
    )
    .unwrap_err();
    assert!(
        err.problems[0]
            .origin
            .contains("SHUTDOWN_METRICS__PUSHGATEWAY_URL"),
        "{err}"
    );
}

fn with_vars(toml: &str, vars: &[(&str, &str)]) -> Result<PipelineConfig, ConfigErrors> {
    let vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    PipelineConfig::from_toml_in(
        toml,
        "node.toml",
        EnvOverrides::Vars(vars),
        crate::testing::registry(),
    )
}

const TWO_STEPS: &str = "[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\nname = \"cancel-by-id\"\ntimeout_secs = 10\n";

#[test]
fn a_step_is_overridden_by_name_from_the_environment() {
    let cfg = with_vars(
        TWO_STEPS,
        &[
            ("SHUTDOWN_STEPS__CANCEL_BY_ID__TIMEOUT_SECS", "15"),
            ("SHUTDOWN_STEPS__CANCEL_BY_ID__MAX_IN_FLIGHT", "3"),
            ("SHUTDOWN_STEPS__halt__critical", "true"),
            ("SHUTDOWN_TIMEOUT_SECS", "40"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.settings.timeout, Duration::from_secs(40));
    assert_eq!(cfg.steps[1].settings.timeout, Duration::from_secs(15));
    assert_eq!(
        cfg.env_overrides,
        [
            "SHUTDOWN_STEPS__CANCEL_BY_ID__MAX_IN_FLIGHT",
            "SHUTDOWN_STEPS__CANCEL_BY_ID__TIMEOUT_SECS",
            "SHUTDOWN_STEPS__halt__critical",
            "SHUTDOWN_TIMEOUT_SECS"
        ]
    );
    assert!(cfg.steps[0].settings.critical);
    let options = format!("{:?}", cfg.steps[1].config);
    assert!(options.contains("max_in_flight: Some(3)"), "{options}");
}

#[test]
fn a_bad_step_override_is_named_by_its_variable() {
    let err = with_vars(
        TWO_STEPS,
        &[
            ("SHUTDOWN_STEPS__CANCEL_BY_ID__TIMEOUT_SECS", "soon"),
            ("SHUTDOWN_STEPS__CANCEL_BY_ID__MAX_INFLIGHT", "3"),
            ("SHUTDOWN_STEPS__CANCLE__TIMEOUT_SECS", "3"),
            ("SHUTDOWN_STEPS__HALT", "3"),
        ],
    )
    .unwrap_err();
    let problems: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.starts_with(
            "environment variable SHUTDOWN_STEPS__CANCLE__TIMEOUT_SECS: unknown step name `CANCLE`"
        ) && p.contains("(known: CANCEL_BY_ID, HALT)")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with(
            "environment variable SHUTDOWN_STEPS__HALT: expected SHUTDOWN_STEPS__<STEP NAME>__<KEY>"
        )),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with(
            "environment variable SHUTDOWN_STEPS__CANCEL_BY_ID__TIMEOUT_SECS: step 2 (cancel-by-id)"
        ) && p.contains("found string \"soon\"")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with(
            "environment variable SHUTDOWN_STEPS__CANCEL_BY_ID__MAX_INFLIGHT: step 2 (cancel-by-id)"
        ) && p.contains("did you mean `max_in_flight`")),
        "{problems:#?}"
    );
}

#[test]
fn a_step_override_needs_steps_written_as_tables() {
    let err = with_vars(
        "cancel_orders = true\n",
        &[("SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS", "3")],
    )
    .unwrap_err();
    assert!(
        err.problems[0].to_string().starts_with(
            "environment variable SHUTDOWN_STEPS__CANCEL__TIMEOUT_SECS: overrides a step by name, and this config has no [[steps]]"
        ),
        "{err:?}"
    );
}

#[test]
fn only_a_regular_file_of_bounded_size_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A FIFO nobody writes to would block a read forever.
    let err =
        PipelineConfig::load_in(&fifo, EnvOverrides::None, crate::testing::registry()).unwrap_err();
    assert!(err.to_string().contains("is not a regular file"), "{err}");
    let err = PipelineConfig::load_in("/dev/null", EnvOverrides::None, crate::testing::registry())
        .unwrap_err();
    assert!(
        err.to_string().contains("/dev/null: is not a regular file"),
        "{err}"
    );
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    let err =
        PipelineConfig::load_in(&big, EnvOverrides::None, crate::testing::registry()).unwrap_err();
    assert!(
        err.to_string()
            .contains("more than a pipeline config may be"),
        "{err}"
    );
}

#[test]
fn names_are_bounded_and_long_values_are_cut_in_messages() {
    let long = "n".repeat(10_000);
    let p = problems(&format!("[[steps]]\nkind = \"halt\"\nname = \"{long}\"\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("must be at most 64 printable characters"),
        "{p:?}"
    );
    assert!(
        p[0].chars().count() < 400,
        "{} characters",
        p[0].chars().count()
    );
    let p = problems(&format!("trader_id = \"{long}\"\n"));
    assert!(
        p[0].chars().count() < 300,
        "{} characters",
        p[0].chars().count()
    );
}

#[test]
fn every_variable_goes_the_same_way_and_one_that_names_nothing_is_named() {
    let cfg = with_vars(
        "[metrics]\npushgateway_url = \"http://pgw:9091\"\n",
        &[
            ("SHUTDOWN_METRICS__JOB", "desk"),
            ("SHUTDOWN_TRADER_ID", "desk-9"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.settings.metrics.job, "desk");
    assert_eq!(cfg.settings.trader_id, "desk-9");
    let err = with_vars(
        "",
        &[
            ("SHUTDOWN_TIMEOUT_SEC", "5"),
            ("SHUTDOWN_METRICS__JOB", "a b"),
        ],
    )
    .unwrap_err();
    let p: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p.contains(&"environment variable SHUTDOWN_METRICS__JOB: `metrics.job`: must be 1 to 64 characters of letters, digits, `-`, `_` or `.`, found \"a b\"".to_owned()),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|m| m.starts_with("environment variable SHUTDOWN_TIMEOUT_SEC: `timeout_sec`: unknown key `timeout_sec`; did you mean `timeout_secs`?")),
        "{p:#?}"
    );
}

#[test]
fn a_password_in_a_pushgateway_url_never_shows_in_a_problem() {
    let p = problems("[metrics]\npushgateway_url = \"ftp://ops:s3cret@pgw:9091\"\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(!p[0].contains("s3cret"), "{p:?}");
    assert!(p[0].contains("ftp://ops:***@pgw:9091"), "{p:?}");
}

#[test]
fn the_systemd_table_sets_the_progress_interval_and_its_mistakes_are_named() {
    let cfg = parse("[systemd]\nprogress_interval_secs = 2.5\n").unwrap();
    assert_eq!(
        cfg.settings.systemd.progress_interval,
        Duration::from_millis(2500)
    );
    assert_eq!(
        parse("timeout_secs = 10\n")
            .unwrap()
            .settings
            .systemd
            .progress_interval,
        Duration::from_secs(5)
    );
    let p = problems("[systemd]\nprogress_interval = 2\n");
    assert!(
        p[0].contains("`systemd.progress_interval`: unknown key")
            && p[0].contains("progress_interval_secs"),
        "{p:?}"
    );
    let p = problems("systemd = 3\n");
    assert!(
        p[0].contains("expected a [systemd] table, found integer 3"),
        "{p:?}"
    );
}
