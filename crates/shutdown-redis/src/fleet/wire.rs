//! What goes through Redis: the actions, the scopes, a command (and the halt it leaves), a node's
//! acknowledgement and its record.

use serde::{Deserialize, Serialize};

use crate::target::RedisError;

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

    pub(crate) fn from_key(key: &str) -> Self {
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

pub(crate) fn json_err(e: serde_json::Error) -> RedisError {
    RedisError::may_heal(format!("malformed fleet record: {e}"))
}

pub(crate) fn now_rfc3339() -> String {
    crate::snapshot::now_rfc3339()
}
