//! `shutdownctl fleet halt|resume|shutdown|status`: the fleet kill switch, through Redis.

use std::io::IsTerminal;
use std::time::Duration;

use shutdown_redis::fleet::{self, Acks, Action, FleetStatus, Issued, Scope};

use super::runtime;
use crate::output::{fail, outln, outln_wrapped, print_json};
use crate::{FleetArgs, FleetCommand};

const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn run(command: FleetCommand) -> i32 {
    match command {
        FleetCommand::Halt(args) => send(Action::Halt, args),
        FleetCommand::Resume(args) => send(Action::Resume, args),
        FleetCommand::Shutdown(args) => send(Action::Shutdown, args),
        FleetCommand::Status {
            redis,
            trader_id,
            json,
        } => status(redis.as_deref(), trader_id.as_deref(), json),
    }
}

/// `user@host`, for the halt's "by".
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", fleet::host_name())
}

fn target(redis: Option<&str>, json: bool) -> Result<shutdown_redis::RedisTarget, i32> {
    match crate::redis_target(redis) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(fail(json, 2, "give --redis URL (or set REDIS_URL)")),
        Err(e) => Err(fail(json, 2, e)),
    }
}

/// Ask on a terminal before a command covers every node; `true` to go on.
fn confirmed(action: Action) -> bool {
    if !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!("{} EVERY node of the fleet? type yes: ", action.as_str());
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

fn send(action: Action, args: FleetArgs) -> i32 {
    let json = args.json;
    let target = match target(args.redis.as_deref(), json) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let scope = match args.trader_id {
        Some(id) => Scope::Trader(id),
        None => Scope::All,
    };
    let wait = match args.wait {
        Some(s) if !(0.0..=3600.0).contains(&s) => {
            return fail(json, 2, format!("--wait {s}: expected 0 to 3600 seconds"));
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    if scope == Scope::All && !args.yes && !confirmed(action) {
        return fail(
            json,
            1,
            "not confirmed; nothing sent (give --yes to skip the question)",
        );
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let issued = match rt.block_on(fleet::issue(
        &target,
        action,
        scope,
        &operator(),
        &args.note,
        TIMEOUT,
    )) {
        Ok(i) => i,
        Err(e) => return fail(json, 1, e),
    };
    let acks = match wait {
        Some(w) => match rt.block_on(fleet::wait_for_acks(&target, &issued.command, w, TIMEOUT)) {
            Ok(a) => Some(a),
            Err(e) => return fail(json, 1, e),
        },
        None => None,
    };
    let code = match &acks {
        Some(a) if !a.missing.is_empty() => 1,
        _ => 0,
    };
    if json {
        print_json(&serde_json::json!({
            "ok": code == 0,
            "command": issued.command,
            "id": issued.id,
            "replicas": issued.replicas,
            "acks": acks,
            "exit_code": code,
        }));
    } else {
        say_issued(&issued, acks.as_ref());
    }
    code
}

fn say_issued(issued: &Issued, acks: Option<&Acks>) {
    let c = &issued.command;
    outln_wrapped(&format!(
        "fleet {} of {} written (version {}, entry {}){}",
        c.action.as_str(),
        c.scope,
        c.version,
        issued.id,
        match issued.replicas {
            0 => String::new(),
            n => format!("; {n} replica(s) have it"),
        }
    ));
    let Some(acks) = acks else {
        outln!("nodes acknowledge as they read it: see `shutdownctl fleet status`");
        return;
    };
    for (node, ack) in &acks.acked {
        outln_wrapped(&format!("  {node}: {}", ack.outcome));
    }
    if acks.missing.is_empty() && acks.acked.is_empty() {
        outln!("no live node is covered: nobody to acknowledge (see `shutdownctl fleet status`)");
    } else if acks.missing.is_empty() {
        outln!(
            "every live node covered acknowledged ({})",
            acks.acked.len()
        );
    } else {
        outln_wrapped(&format!(
            "NOT acknowledged by {} live node(s): {}",
            acks.missing.len(),
            acks.missing.join(", ")
        ));
    }
}

fn status(redis: Option<&str>, trader_id: Option<&str>, json: bool) -> i32 {
    let target = match target(redis, json) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut status = match rt.block_on(fleet::status(&target, TIMEOUT)) {
        Ok(s) => s,
        Err(e) => return fail(json, 1, e),
    };
    if let Some(id) = trader_id {
        status.halts.retain(|h| h.scope.covers(id));
        status.nodes.retain(|(n, _)| n.trader_id == id);
    }
    if json {
        print_json(&serde_json::json!({
            "ok": true,
            "version": status.version,
            "halts": status.halts,
            "nodes": status.nodes.iter().map(|(n, live)| {
                let mut v = serde_json::to_value(n).unwrap_or_default();
                v["live"] = serde_json::Value::Bool(*live);
                v
            }).collect::<Vec<_>>(),
        }));
    } else {
        say_status(&status);
    }
    0
}

fn say_status(status: &FleetStatus) {
    if status.halts.is_empty() {
        outln!(
            "no halt in force (latest command: version {})",
            status.version
        );
    }
    for h in &status.halts {
        outln_wrapped(&format!("HALT: {h}"));
    }
    let live = status.nodes.iter().filter(|(_, l)| *l).count();
    outln!("{} node(s) seen, {live} live", status.nodes.len());
    for (n, is_live) in &status.nodes {
        let ack = n.last_ack.as_ref().map_or_else(
            || "no acknowledgement".to_owned(),
            |a| format!("acked version {}: {}", a.version, a.outcome),
        );
        outln_wrapped(&format!(
            "  {} ({}) {} {}; {ack}",
            n.node,
            n.trader_id,
            if *is_live { "live" } else { "gone" },
            if n.halted {
                "halted"
            } else {
                "trading allowed"
            },
        ));
    }
}
