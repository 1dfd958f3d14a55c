//! What a node does: follow the command stream (reading the halts at start and after every
//! reconnect), halt its trading gate, trigger its pipeline on `shutdown`, acknowledge, report its
//! heartbeat, and hold the start gate while a halt covers it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shutdown_core::node::TradingGate;
use shutdown_core::{Reason, ShutdownHandle, TradingHold};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::operator::halts;
use super::wire::{Ack, Action, Command, Halt, NodeRecord, Scope, now_rfc3339};
use super::{ACK_TTL_SECS, host_name, keys};
use crate::target::{Connection, RedisError, RedisTarget};

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
            shutdown_core::secs(timeout)
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
