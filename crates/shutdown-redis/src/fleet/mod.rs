//! The fleet kill switch: a persisted halt per scope and a command stream, acknowledged per node.
//!
//! An operator ([`issue`], `shutdownctl fleet`) writes, in one transaction, the halt state of a
//! scope (the whole fleet, or one trader id: who, when, why, a version) and a command (`halt`,
//! `resume`, `shutdown`) on a Redis Stream. A node runs a [`FleetSwitch`]: at start and after every
//! reconnect it reads the halt state, then reads the stream from the last command it saw, so a node
//! that was away (restarting, disconnected, partitioned) still halts as soon as it is back. It
//! halts its trading gate on `halt` and `shutdown`, triggers its pipeline with reason `fleet` on
//! `shutdown`, and acknowledges each command that covers it with its outcome. While a halt covers
//! it, its [`TradingHold`](shutdown_core::TradingHold) keeps the start gate's `resume` from opening the gate.
//!
//! Every fleet key lives in one hash slot of its own (`{shutdown-fleet}:...`), so the transaction
//! holds on Redis Cluster; the operator waits for a replica to take it (`WAIT`), so a Sentinel
//! failover right after does not lose it.
//!
//! One job a file: `wire.rs` says what goes through Redis (actions, scopes, commands, acks, node
//! records); `operator.rs` is what an operator does (issue a command, read the state, wait for the
//! acknowledgements); `follower.rs` is what a node does (follow the stream, halt, acknowledge).

mod follower;
mod operator;
mod wire;

pub use follower::{FleetOptions, FleetState, FleetSwitch};
pub use operator::{Acks, FleetStatus, Issued, acks, halts, issue, status, wait_for_acks};
pub use wire::{Ack, Action, Command, Halt, NodeRecord, Scope};

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
pub(crate) const ACK_TTL_SECS: u64 = 7 * 24 * 3600;
/// How many commands the stream keeps (approximately).
pub(crate) const STREAM_MAXLEN: u64 = 10_000;

/// This host's name (`localhost` when it cannot be read): in node ids, and in who issued a command.
pub fn host_name() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
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
