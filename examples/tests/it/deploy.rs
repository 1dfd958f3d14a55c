//! What the node offers its operator and its service manager: its commands, systemd, Kubernetes.

use super::*;

#[test]
fn the_node_binary_offers_the_operator_commands_with_its_own_step_kinds() {
    let node = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trading_node"))
            .args(args)
            .current_dir(root())
            .env_remove("SHUTDOWN_TIMEOUT_SECS")
            .output()
            .unwrap()
    };
    // Its config uses `notify`, which `shutdownctl` does not link; the node binary does.
    let out = node(&["validate", "examples/configs/node.toml"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("notify"), "{said}");
    let out = node(&["steps", "--json"]);
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "notify")
    );
    let out = node(&["plan", "examples/configs/node.toml", "--grace-period", "30"]);
    assert_eq!(out.status.code(), Some(0));
    // A dry run of its own pipeline: its custom step says nothing on stdout, which is JSON alone.
    let out = node(&[
        "dry-run",
        "examples/configs/node.toml",
        "--scenario",
        "examples/scenarios/basic.toml",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notify = step_of_kind(&report, "notify");
    assert_eq!(notify["summary"], "would post \"trader-001 is stopping\"");
    // Anything else is the node itself, with its own usage.
    let out = node(&["only-one-argument"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: trading_node CONFIG SCENARIO"));
}

#[test]
fn under_systemd_the_node_says_ready_stopping_each_step_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The service manager: reads as it comes, until the node has exited.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listening = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut heard, mut buf) = (Vec::new(), [0u8; 512]);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            while let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            heard
        })
    };
    std::fs::write(dir.path().join("node.toml"), shipped_config()).unwrap();
    let mut cmd = command(dir.path(), None, None);
    cmd.env("NOTIFY_SOCKET", &path);
    let mut node = Proc::spawn(cmd);
    node.wait_line("ready");
    node.signal(Signal::SIGTERM);
    let (code, _) = node.wait_exit(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let heard = listening.join().unwrap();
    assert_eq!(code, Some(0), "{}", node.stderr());
    // Before READY=1, the start gate's progress, with no STOPPING.
    let ready = heard.iter().position(|m| m == "READY=1").expect("READY=1");
    assert_eq!(heard[0], "STATUS=start gate: 3 steps", "{heard:#?}");
    assert!(
        heard[..ready].iter().all(|m| !m.contains("STOPPING")),
        "{heard:#?}"
    );
    assert_eq!(heard[ready - 1], "STATUS=start gate clean (exit 0)");
    let after: Vec<&str> = heard[ready + 1..].iter().map(String::as_str).collect();
    assert_eq!(
        after,
        [
            "STOPPING=1\nSTATUS=shutting down (SIGTERM): 6 steps",
            "STATUS=step 1/6 halt: started",
            "STATUS=step 2/6 cancel: started",
            "STATUS=step 3/6 verify: started",
            "STATUS=step 4/6 notify: started",
            "STATUS=step 5/6 flush: started",
            "STATUS=step 6/6 close: started",
            "STATUS=shutdown clean (exit 0)",
        ],
        "everything heard: {heard:#?}"
    );
}

/// `trading_node plan examples/configs/node.toml ARGS...`
fn plan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trading_node"))
        .args(["plan", "examples/configs/node.toml"])
        .args(args)
        .current_dir(root())
        .env_remove("SHUTDOWN_TIMEOUT_SECS")
        .output()
        .unwrap()
}

#[test]
fn the_shipped_kubernetes_manifest_is_what_plan_generates_and_its_grace_period_fits() {
    let shipped =
        std::fs::read_to_string(root().join("examples/kubernetes/trading-node.yaml")).unwrap();
    let out = plan(&["--k8s"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        shipped,
        "examples/kubernetes/trading-node.yaml is out of date: regenerate it with \
         `trading_node plan examples/configs/node.toml --k8s > examples/kubernetes/trading-node.yaml`"
    );
    // What a YAML reader makes of it (python3-yaml, which scripts/test.sh installs).
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::fs::File::open(root().join("examples/kubernetes/trading-node.yaml")).unwrap())
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let pod = &manifest["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let container = &pod["containers"][0];
    assert_eq!(
        container["lifecycle"]["preStop"]["exec"]["command"],
        serde_json::json!(["sleep", "2"])
    );
    assert_eq!(manifest["spec"]["strategy"]["type"], "Recreate");
    // The budget it pins is the config's, and the grace period covers it and the preStop.
    let json = plan(&["--k8s", "--json"]);
    let budget: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        container["env"][0],
        serde_json::json!({"name": "SHUTDOWN_TIMEOUT_SECS", "value": budget["timeout_secs"].as_f64().unwrap().to_string()})
    );
    assert_eq!(
        budget["kubernetes"]["termination_grace_period_seconds"],
        grace
    );
    assert!(grace as f64 >= 2.0 + budget["timeout_secs"].as_f64().unwrap() + 2.0);
    let fits = plan(&[
        "--k8s",
        "--deny-warnings",
        "--grace-period",
        &grace.to_string(),
    ]);
    assert_eq!(
        fits.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fits.stderr)
    );
    let short = plan(&[
        "--k8s",
        "--deny-warnings",
        "--grace-period",
        &(grace - 1).to_string(),
    ]);
    assert_eq!(short.status.code(), Some(1));
    let warning = String::from_utf8_lossy(&short.stderr);
    assert!(
        warning.contains(&format!(
            "terminationGracePeriodSeconds {} is too short: the pod needs {grace}",
            grace - 1
        )),
        "{warning}"
    );
}

#[test]
fn the_shipped_systemd_unit_is_valid_and_its_stop_timeout_fits_the_pipeline() {
    let unit =
        std::fs::read_to_string(root().join("examples/systemd/trading-node.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("KillSignal=SIGTERM"));
    // The stop timeout covers the pipeline's budget with headroom, as `plan` judges it.
    let stop: u64 = (unit.lines())
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    let out = plan(&["--grace-period", &stop.to_string(), "--deny-warnings"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // systemd's own check, where systemd is installed; the unit points at the binary just built.
    let Ok(check) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit file's syntax is not checked here");
        return;
    };
    assert!(check.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("trading-node.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/trading_node",
            env!("CARGO_BIN_EXE_trading_node"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
