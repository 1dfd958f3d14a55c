//! The fleet kill switch: a persisted halt per scope and a command stream, acknowledged per node.
//!
//! An operator ([`issue`], `shutdownctl fleet`) writes, in one transaction, the halt state of a
//! scope (the whole fleet, or one trader id: who, when, why, a version) and a command (`halt`,
//! `resume`, `shutdown`) on a Redis Stream. A node runs a [`FleetSwitch`]: at start and after every
//! reconnect it reads the halt state, then reads the stream from the last command it saw, so a node
//! that was away (restarting, disconnected, partitioned) still halts as soon as it is back. It
//! halts its trading gate on `halt` and `shutdown`, triggers its pipeline with reason `fleet` on
//! `shutdown`, and acknowledges each command that covers it with its outcome. While a halt covers
//! it, its [`TradingHold`] keeps the start gate's `resume` from opening the gate.
//!
//! Every fleet key lives in one hash slot of its own (`{shutdown-fleet}:...`), so the transaction
//! holds on Redis Cluster; the operator waits for a replica to take it (`WAIT`), so a Sentinel
//! failover right after does not lose it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shutdown_core::node::TradingGate;
use shutdown_core::{Reason, ShutdownHandle, TradingHold};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::target::{Connection, RedisError, RedisTarget};

/// The hash slot of every fleet key.
pub const TAG: &str = "{shutdown-fleet}";

/// The fleet's keys.
pub mod keys {
    /// The halt state: a hash of scope (`*` or a trader id) -> [`super::Halt`] as JSON.
    pub const HALTS: &str = "{shutdown-fleet}:halts";
    /// The version counter: every command takes the next version.
    pub const VERSION: &str = "{shutdown-fleet}:version";
    /// The command stream: one entry per command, field `command` = [`super::Command`] as JSON.
    pub const COMMANDS: &str = "{shutdown-fleet}:commands";
    /// The nodes seen: a hash of node id -> [`super::NodeRecord`] as JSON.
    pub const NODES: &str = "{shutdown-fleet}:nodes";

    /// The acknowledgements of one command: a hash of node id -> [`super::Ack`] as JSON.
    pub fn acks(version: u64) -> String {
        format!("{{shutdown-fleet}}:acks:{version}")
    }
}

/// How long acknowledgements are kept.
const ACK_TTL_SECS: u64 = 7 * 24 * 3600;
/// How many commands the stream keeps (approximately).
const STREAM_MAXLEN: u64 = 10_000;

/// What a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Stop trading (halt the trading gate); the node keeps running.
    Halt,
    /// Clear the halt of this scope.
    Resume,
    /// Halt, and run the shutdown pipeline (reason `fleet`).
    Shutdown,
}

impl Action {
    /// `halt`, `resume` or `shutdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Halt => "halt",
            Action::Resume => "resume",
            Action::Shutdown => "shutdown",
        }
    }
}

/// Which nodes a command or a halt covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every node.
    All,
    /// The nodes of one trader id.
    Trader(String),
}

impl Scope {
    /// `*` or the trader id (the field of the halt hash).
    pub fn key(&self) -> &str {
        match self {
            Scope::All => "*",
            Scope::Trader(id) => id,
        }
    }

    fn from_key(key: &str) -> Self {
        match key {
            "*" => Scope::All,
            id => Scope::Trader(id.to_owned()),
        }
    }

    /// Whether a node of `trader_id` is covered.
    pub fn covers(&self, trader_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Trader(id) => id == trader_id,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("every node"),
            Scope::Trader(id) => write!(f, "trader {id}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Scope::from_key(&String::deserialize(d)?))
    }
}

/// One command, as written on the stream (and, for `halt` and `shutdown`, as the scope's halt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// What is asked.
    pub action: Action,
    /// Which nodes.
    pub scope: Scope,
    /// Who asked (user@host).
    pub by: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Why: the operator's note.
    pub note: String,
    /// The command's version: increases with every command.
    pub version: u64,
}

/// A halt in force: the command that set it.
pub type Halt = Command;

/// `halt of trader trader-007 by ops@desk at 2026-11-26T23:40:00Z (version 7): venue incident`
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} by {} at {} (version {}): {}",
            self.action.as_str(),
            self.scope,
            self.by,
            self.at,
            self.version,
            if self.note.is_empty() {
                "no note"
            } else {
                &self.note
            }
        )
    }
}

/// A node's acknowledgement of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command's version.
    pub version: u64,
    /// What the node did: `halted`, `halted; shutting down`, `halt cleared`, `still halted: ...`,
    /// or `halt failed: ...`.
    pub outcome: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// A node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id (unique per process).
    pub node: String,
    /// Its trader id.
    pub trader_id: String,
    /// When it last reported (milliseconds since the Unix epoch, the Redis server's clock).
    pub seen_ms: u64,
    /// How often it reports (milliseconds); it counts as live while seen within three of these.
    pub heartbeat_ms: u64,
    /// Whether a halt covers it.
    pub halted: bool,
    /// Its last acknowledgement.
    pub last_ack: Option<Ack>,
}

impl NodeRecord {
    /// Seen within three heartbeats of `now_ms` (the server's clock).
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.seen_ms) <= 3 * self.heartbeat_ms.max(1)
    }
}

fn json_err(e: serde_json::Error) -> RedisError {
    RedisError::may_heal(format!("malformed fleet record: {e}"))
}

fn now_rfc3339() -> String {
    crate::snapshot::now_rfc3339()
}

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

/// This host's name (`localhost` when it cannot be read): in node ids, and in who issued a command.
pub fn host_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().trim().to_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// How a node follows the fleet.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetOptions {
    /// The node's trader id.
    pub trader_id: String,
    /// The node's id: unique per process (default `TRADER@HOST:PID`).
    pub node_id: String,
    /// How often the node reports itself (default 2 s); also how long one stream read blocks.
    pub heartbeat: Duration,
    /// Connect and response timeout (default 2 s).
    pub timeout: Duration,
}

impl FleetOptions {
    /// Defaults for a node of `trader_id`.
    pub fn new(trader_id: &str) -> Self {
        Self {
            trader_id: trader_id.to_owned(),
            node_id: format!("{trader_id}@{}:{}", host_name(), std::process::id()),
            heartbeat: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
        }
    }

    /// Another node id (tests, several nodes in one process).
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Another heartbeat.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Another connect and response timeout (also the bound on halting the trading gate).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A node's view of the fleet: the halts covering it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetState {
    /// The halts in force that cover this node (fleet-wide first).
    pub halts: Vec<Halt>,
    /// Whether a `shutdown` command or halt reached the node.
    pub shutdown: bool,
}

impl FleetState {
    /// Why the node may not trade, if a halt covers it.
    pub fn why(&self) -> Option<String> {
        self.halts.first().map(|h| format!("fleet {h}"))
    }
}

/// A node following the fleet; stops when dropped.
#[derive(Debug)]
pub struct FleetSwitch {
    task: JoinHandle<()>,
    state: watch::Receiver<FleetState>,
}

impl Drop for FleetSwitch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Halt `gate` and read it back, within `timeout` (a venue that does not answer must not stop the
/// node from following, and reporting itself to, the fleet): `halted` only when the gate says so.
async fn halt_confirmed(gate: &dyn TradingGate, timeout: Duration) -> String {
    let halting = async {
        gate.halt().await.map_err(|e| format!("halt failed: {e}"))?;
        match gate.is_halted().await {
            Ok(true) => Ok("halted".to_owned()),
            Ok(false) => Err("halt failed: the trading gate still reports open".to_owned()),
            Err(e) => Ok(format!(
                "halted (not confirmed: cannot read the gate back: {e})"
            )),
        }
    };
    match tokio::time::timeout(timeout, halting).await {
        Ok(Ok(said)) | Ok(Err(said)) => said,
        Err(_) => format!(
            "halt failed: the trading gate did not answer within {}",
            shutdown_core::report::secs(timeout)
        ),
    }
}

/// A stream entry: its id and its fields and values, flat.
type Entry = (String, Vec<String>);
/// One stream's part of an `XREAD` reply: its key and its entries.
type StreamReply = (String, Vec<Entry>);

struct Follower {
    target: RedisTarget,
    options: FleetOptions,
    handle: ShutdownHandle,
    gate: Option<Arc<dyn TradingGate>>,
    state: watch::Sender<FleetState>,
    /// The last stream entry seen.
    last_id: String,
    last_ack: Option<Ack>,
}

impl FleetSwitch {
    /// Read the halt state (returns once it is read and applied, so a halted node knows before it
    /// trades), then follow the command stream in a task: reconnecting with backoff (200 ms to 5 s)
    /// after any loss, reading the halt state again and the commands missed meanwhile.
    ///
    /// With a `gate`, a halt covering the node halts it; `resume` never opens it (the node decides,
    /// e.g. through its start gate, which [`FleetSwitch::hold`] keeps closed while a halt covers
    /// it). A `shutdown` triggers `handle` with reason `fleet`.
    pub async fn start(
        target: &RedisTarget,
        options: FleetOptions,
        handle: ShutdownHandle,
        gate: Option<Arc<dyn TradingGate>>,
    ) -> Result<FleetSwitch, RedisError> {
        let (tx, rx) = watch::channel(FleetState::default());
        let mut follower = Follower {
            target: target.clone(),
            options,
            handle,
            gate,
            state: tx,
            last_id: String::new(),
            last_ack: None,
        };
        let con = follower
            .connect()
            .await
            .map_err(|e| target.error("cannot follow the fleet at", &e))?;
        let task = tokio::spawn(async move { follower.follow(Some(con)).await });
        Ok(FleetSwitch { task, state: rx })
    }

    /// The halts covering this node now.
    pub fn state(&self) -> FleetState {
        self.state.borrow().clone()
    }

    /// A receiver that changes with the halts covering this node.
    pub fn watch(&self) -> watch::Receiver<FleetState> {
        self.state.clone()
    }

    /// A hold for the start gate: while a halt covers the node, `resume` keeps the gate halted.
    pub fn hold(&self) -> TradingHold {
        let state = self.state.clone();
        TradingHold::new(move || state.borrow().why())
    }
}

impl Follower {
    /// Connect, take the stream position (first time only), read the halts and apply them.
    async fn connect(&mut self) -> Result<Connection, redis::RedisError> {
        let timeout = self.options.timeout;
        let block = self.options.heartbeat;
        let mut con = self
            .target
            .connect(timeout, timeout + block)
            .await
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "connect", e.0)))?;
        if self.last_id.is_empty() {
            // Commands before this point are in the halt state read next.
            let last: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(keys::COMMANDS)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut con)
                .await?;
            self.last_id = last
                .first()
                .map_or_else(|| "0-0".into(), |(id, _)| id.clone());
        }
        let covering = self.covering(&mut con, None).await?;
        if let Some(newest) = covering.iter().max_by_key(|h| h.version).cloned() {
            self.apply(&newest, covering, &mut con).await?;
        } else {
            self.publish_with(covering, false);
        }
        self.heartbeat(&mut con).await?;
        Ok(con)
    }

    async fn follow(&mut self, mut con: Option<Connection>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Some(c) = con.take() {
                let e = self.read(c).await;
                tracing::error!(error = %self.target.scrub(&e.to_string()), "fleet: connection lost; reconnecting");
            }
            tokio::time::sleep(backoff).await;
            match self.connect().await {
                Ok(c) => {
                    backoff = Duration::from_millis(200);
                    tracing::info!("fleet: reconnected");
                    con = Some(c);
                }
                Err(e) => {
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    tracing::warn!(error = %self.target.scrub(&e.to_string()), "fleet: cannot reconnect");
                }
            }
        }
    }

    /// Read commands until the connection fails.
    async fn read(&mut self, mut con: Connection) -> redis::RedisError {
        loop {
            let reply: redis::RedisResult<Option<Vec<StreamReply>>> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(100)
                .arg("BLOCK")
                .arg(self.options.heartbeat.as_millis() as u64)
                .arg("STREAMS")
                .arg(keys::COMMANDS)
                .arg(&self.last_id)
                .query_async(&mut con)
                .await;
            let entries = match reply {
                Ok(r) => r.into_iter().flatten().flat_map(|(_, e)| e),
                Err(e) => return e,
            };
            for (id, fields) in entries.collect::<Vec<_>>() {
                let json = fields
                    .chunks(2)
                    .find(|kv| kv[0] == "command")
                    .and_then(|kv| kv.get(1));
                match json.map(|j| serde_json::from_str::<Command>(j)) {
                    Some(Ok(cmd)) if cmd.scope.covers(&self.options.trader_id) => {
                        if let Err(e) = self.on_command(&cmd, &mut con).await {
                            // Not taken: read again from the same entry after reconnecting.
                            return e;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => tracing::warn!(%id, "fleet: ignoring a malformed command"),
                }
                self.last_id = id;
            }
            if let Err(e) = self.heartbeat(&mut con).await {
                return e;
            }
        }
    }

    async fn on_command(
        &mut self,
        cmd: &Command,
        con: &mut Connection,
    ) -> Result<(), redis::RedisError> {
        tracing::warn!(action = cmd.action.as_str(), scope = %cmd.scope, by = %cmd.by, note = %cmd.note, version = cmd.version, "fleet command");
        let resumed = (cmd.action == Action::Resume).then_some(&cmd.scope);
        let covering = self.covering(con, resumed).await?;
        self.apply(cmd, covering, con).await
    }

    /// The halts covering this node: those in Redis, and those the node holds that Redis no longer
    /// has, unless `resumed` is their scope. A halt is cleared only by a `resume` the node reads:
    /// one that vanished with Redis's data (a restart without persistence, a failover to a replica
    /// that never had it) stays until an operator resumes.
    async fn covering(
        &self,
        con: &mut Connection,
        resumed: Option<&Scope>,
    ) -> Result<Vec<Halt>, redis::RedisError> {
        let mut covering: Vec<Halt> = halts(con)
            .await?
            .into_values()
            .filter(|h| h.scope.covers(&self.options.trader_id))
            .collect();
        for held in &self.state.borrow().halts {
            if resumed != Some(&held.scope) && !covering.iter().any(|h| h.scope == held.scope) {
                tracing::error!(scope = %held.scope, version = held.version,
                    "fleet: a halt this node holds is gone from Redis without a resume; it stays until an operator resumes");
                covering.push(held.clone());
            }
        }
        Ok(covering)
    }

    /// Act on `cmd` given the halts covering the node now, then acknowledge it. An acknowledgement
    /// that cannot be written is an error: the command is read and acknowledged again after the
    /// reconnect (acting on it again is harmless: every action is idempotent).
    async fn apply(
        &mut self,
        cmd: &Command,
        covering: Vec<Halt>,
        con: &mut Connection,
    ) -> Result<(), redis::RedisError> {
        let shutdown =
            cmd.action == Action::Shutdown || covering.iter().any(|h| h.action == Action::Shutdown);
        let halted = !covering.is_empty();
        let mut outcome = if halted {
            match &self.gate {
                Some(gate) => halt_confirmed(&**gate, self.options.timeout).await,
                None => "halt held (no trading gate to halt: the node's own code stops)".to_owned(),
            }
        } else {
            "halt cleared".to_owned()
        };
        if halted && cmd.action == Action::Resume {
            outcome = format!("still halted: {}", covering[0].scope);
        }
        if shutdown {
            outcome.push_str("; shutting down");
            self.handle.trigger(Reason::Fleet);
        }
        self.publish_with(covering, shutdown);
        let ack = Ack {
            version: cmd.version,
            outcome,
            at: now_rfc3339(),
        };
        tracing::warn!(version = ack.version, outcome = %ack.outcome, "fleet: acknowledged");
        self.last_ack = Some(ack.clone());
        // The node's record first: once its acknowledgement is there, `fleet status` says what
        // the node now holds.
        self.heartbeat(con).await?;
        let json = serde_json::to_string(&ack)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "json", e.to_string())))?;
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(keys::acks(cmd.version))
            .arg(&self.options.node_id)
            .arg(json)
            .ignore()
            .cmd("EXPIRE")
            .arg(keys::acks(cmd.version))
            .arg(ACK_TTL_SECS)
            .ignore()
            .query_async::<()>(con)
            .await
    }

    /// Tell the node the halts covering it now; once a shutdown reached it, it stays said.
    fn publish_with(&mut self, mut covering: Vec<Halt>, shutdown: bool) {
        covering.sort_by_key(|h| (h.scope != Scope::All, h.version));
        let state = FleetState {
            halts: covering,
            shutdown: shutdown || self.state.borrow().shutdown,
        };
        self.state.send_replace(state);
    }

    async fn heartbeat(&mut self, con: &mut Connection) -> Result<(), redis::RedisError> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(con).await?;
        let record = NodeRecord {
            node: self.options.node_id.clone(),
            trader_id: self.options.trader_id.clone(),
            seen_ms: secs * 1000 + micros / 1000,
            heartbeat_ms: self.options.heartbeat.as_millis() as u64,
            halted: !self.state.borrow().halts.is_empty(),
            last_ack: self.last_ack.clone(),
        };
        let json = serde_json::to_string(&record)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "json", e.to_string())))?;
        redis::cmd("HSET")
            .arg(keys::NODES)
            .arg(&self.options.node_id)
            .arg(json)
            .query_async::<()>(con)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_their_nodes_and_keys_share_one_slot() {
        assert!(Scope::All.covers("t1"));
        assert!(Scope::Trader("t1".into()).covers("t1"));
        assert!(!Scope::Trader("t1".into()).covers("t2"));
        for key in [
            keys::HALTS,
            keys::VERSION,
            keys::COMMANDS,
            keys::NODES,
            &keys::acks(7),
        ] {
            assert!(key.starts_with(TAG), "{key}");
        }
        let json = serde_json::to_string(&Scope::Trader("t1".into())).unwrap();
        assert_eq!(json, "\"t1\"");
        assert_eq!(serde_json::from_str::<Scope>("\"*\"").unwrap(), Scope::All);
    }

    #[test]
    fn a_node_is_live_within_three_heartbeats() {
        let n = NodeRecord {
            node: "n".into(),
            trader_id: "t".into(),
            seen_ms: 10_000,
            heartbeat_ms: 1000,
            halted: false,
            last_ack: None,
        };
        assert!(n.is_live(13_000));
        assert!(!n.is_live(13_001));
    }
}
