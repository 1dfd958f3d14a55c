//! What a dry-run flushes to Redis, and `restore` and `report` reading it back, against a real server.

use shutdown_testkit::redis_server::RedisServer;

use super::{Command, PIPELINE, ctl, text};

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
