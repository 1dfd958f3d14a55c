//! `steps` and `validate`: the registered kinds, and what a config file may say.

use super::*;

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
