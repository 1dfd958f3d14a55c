//! `fleet`: the kill switch and its acknowledgements, against a real Redis server.

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
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), handle.requested()).await })
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
