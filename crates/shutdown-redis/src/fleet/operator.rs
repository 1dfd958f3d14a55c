//! What an operator does: issue a command (the halt state and the stream entry, in one transaction),
//! read the fleet's state, and wait for the nodes' acknowledgements.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::wire::{Ack, Action, Command, Halt, NodeRecord, Scope, json_err, now_rfc3339};
use super::{STREAM_MAXLEN, keys};
use crate::target::{Connection, RedisError, RedisTarget};

/// What an operator's command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// The command as written.
    pub command: Command,
    /// Its stream entry id.
    pub id: String,
    /// How many replicas had it when the operator returned (`WAIT`); 0 without replicas.
    pub replicas: i64,
}

/// Write a command: the scope's halt state (set for `halt` and `shutdown`, cleared for `resume`)
/// and the stream entry, in one transaction; then wait up to `timeout` for one replica to have it.
pub async fn issue(
    target: &RedisTarget,
    action: Action,
    scope: Scope,
    by: &str,
    note: &str,
    timeout: Duration,
) -> Result<Issued, RedisError> {
    let mut con = target.connect(timeout, timeout).await?;
    let fail = |e: redis::RedisError| target.error("cannot write the fleet command to", &e);
    let version: u64 = redis::cmd("INCR")
        .arg(keys::VERSION)
        .query_async(&mut con)
        .await
        .map_err(fail)?;
    let command = Command {
        action,
        scope: scope.clone(),
        by: by.to_owned(),
        at: now_rfc3339(),
        note: note.to_owned(),
        version,
    };
    let json = serde_json::to_string(&command).map_err(json_err)?;
    let mut tx = redis::pipe();
    tx.atomic();
    match action {
        Action::Halt | Action::Shutdown => {
            tx.cmd("HSET")
                .arg(keys::HALTS)
                .arg(scope.key())
                .arg(&json)
                .ignore();
        }
        Action::Resume => {
            tx.cmd("HDEL").arg(keys::HALTS).arg(scope.key()).ignore();
        }
    }
    tx.cmd("XADD")
        .arg(keys::COMMANDS)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAXLEN)
        .arg("*")
        .arg("command")
        .arg(&json);
    let (id,): (String,) = tx.query_async(&mut con).await.map_err(fail)?;
    let replicas = match target.mode() {
        // A cluster's WAIT goes to every master; the fleet's one slot has one, found by key.
        crate::RedisMode::Cluster => 0,
        _ => replicate(&mut con, timeout).await,
    };
    Ok(Issued {
        command,
        id,
        replicas,
    })
}

/// `WAIT 1` when the server has replicas: how many have the writes so far (0 when there are none).
async fn replicate(con: &mut Connection, timeout: Duration) -> i64 {
    let role: redis::RedisResult<(String, i64, Vec<redis::Value>)> =
        redis::cmd("ROLE").query_async(con).await;
    match role {
        Ok((role, _, replicas)) if role == "master" && !replicas.is_empty() => {}
        _ => return 0,
    }
    redis::cmd("WAIT")
        .arg(1)
        .arg(timeout.as_millis() as u64)
        .query_async::<i64>(con)
        .await
        .unwrap_or(0)
}

/// The halts in force, by scope.
pub async fn halts(con: &mut Connection) -> Result<BTreeMap<Scope, Halt>, redis::RedisError> {
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::HALTS)
        .query_async(con)
        .await?;
    Ok(raw
        .into_iter()
        .filter_map(|(scope, json)| match serde_json::from_str::<Halt>(&json) {
            Ok(h) => Some((Scope::from_key(&scope), h)),
            Err(e) => {
                tracing::warn!(%scope, error = %e, "ignoring a malformed fleet halt");
                None
            }
        })
        .collect())
}

/// The fleet as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// The halts in force.
    pub halts: Vec<Halt>,
    /// Every node seen, with whether it is live (by the server's clock).
    pub nodes: Vec<(NodeRecord, bool)>,
    /// The latest command's version (0 before any).
    pub version: u64,
}

/// Read the halt state and every node seen.
pub async fn status(target: &RedisTarget, timeout: Duration) -> Result<FleetStatus, RedisError> {
    let mut con = target.connect(timeout, timeout).await?;
    read_status(&mut con)
        .await
        .map_err(|e| target.error("cannot read the fleet from", &e))
}

async fn read_status(con: &mut Connection) -> Result<FleetStatus, redis::RedisError> {
    let halts = halts(con).await?.into_values().collect();
    let (version, raw, now): (Option<u64>, BTreeMap<String, String>, (u64, u64)) = redis::pipe()
        .cmd("GET")
        .arg(keys::VERSION)
        .cmd("HGETALL")
        .arg(keys::NODES)
        .cmd("TIME")
        .query_async(con)
        .await?;
    let now_ms = now.0 * 1000 + now.1 / 1000;
    let mut nodes: Vec<(NodeRecord, bool)> = raw
        .values()
        .filter_map(|json| serde_json::from_str::<NodeRecord>(json).ok())
        .map(|n| {
            let live = n.is_live(now_ms);
            (n, live)
        })
        .collect();
    nodes.sort_by(|a, b| (&a.0.trader_id, &a.0.node).cmp(&(&b.0.trader_id, &b.0.node)));
    Ok(FleetStatus {
        halts,
        nodes,
        version: version.unwrap_or(0),
    })
}

/// Who has acknowledged a command, among the live nodes it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Acks {
    /// Node id -> its acknowledgement.
    pub acked: BTreeMap<String, Ack>,
    /// Live nodes covered by the command that have not acknowledged it.
    pub missing: Vec<String>,
}

/// The acknowledgements of `command` so far, and the live nodes it covers that have not given one.
pub async fn acks(
    target: &RedisTarget,
    command: &Command,
    timeout: Duration,
) -> Result<Acks, RedisError> {
    let mut con = target.connect(timeout, timeout).await?;
    read_acks(&mut con, command)
        .await
        .map_err(|e| target.error("cannot read the fleet from", &e))
}

async fn read_acks(con: &mut Connection, command: &Command) -> Result<Acks, redis::RedisError> {
    let status = read_status(con).await?;
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::acks(command.version))
        .query_async(con)
        .await?;
    let acked: BTreeMap<String, Ack> = raw
        .into_iter()
        .filter_map(|(node, json)| Some((node, serde_json::from_str(&json).ok()?)))
        .collect();
    let missing = status
        .nodes
        .iter()
        .filter(|(n, live)| *live && command.scope.covers(&n.trader_id))
        .filter(|(n, _)| !acked.contains_key(&n.node))
        .map(|(n, _)| n.node.clone())
        .collect();
    Ok(Acks { acked, missing })
}

/// Wait until every live node covered by `command` has acknowledged it, or `wait` is up; polls.
pub async fn wait_for_acks(
    target: &RedisTarget,
    command: &Command,
    wait: Duration,
    timeout: Duration,
) -> Result<Acks, RedisError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut con = target.connect(timeout, timeout).await?;
    loop {
        let acks = read_acks(&mut con, command)
            .await
            .map_err(|e| target.error("cannot read the fleet from", &e))?;
        if acks.missing.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(acks);
        }
        tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
        )
        .await;
    }
}
