//! `shutdownctl fleet`: ask running nodes to shut down, through Redis (the fleet kill switch).

use std::time::Duration;

use super::runtime;
use crate::output::outln;

pub(crate) fn run(redis: Option<&str>, trader_id: Option<String>, note: String) -> i32 {
    let redis = match crate::redis_target(redis) {
        Ok(Some(redis)) => redis,
        Ok(None) => {
            eprintln!("error: give --redis URL (or set REDIS_URL)");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let target = trader_id.unwrap_or_else(|| "*".into());
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let command = shutdown_redis::FleetCommand {
        target: target.clone(),
        note,
    };
    match rt.block_on(shutdown_redis::fleet::send(
        &redis,
        &command,
        Duration::from_secs(5),
    )) {
        Ok(0) => {
            eprintln!(
                "error: no node is listening on {}",
                shutdown_redis::fleet::CHANNEL
            );
            1
        }
        Ok(n) => {
            let who = if target == "*" {
                "every node".to_owned()
            } else {
                target
            };
            outln!("sent to {n} listening node(s); asked {who} to shut down");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
