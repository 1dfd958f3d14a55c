//! The fleet kill switch: one command on Redis pub/sub asks every node (or one trader) to shut down.
//!
//! A node runs [`FleetSwitch::start`] beside its signal handler; `shutdownctl fleet` (or [`send`])
//! publishes. The request reaches the node's [`ShutdownHandle`] as reason `fleet` and coalesces with
//! signals and API calls: the pipeline still runs once.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shutdown_core::{Reason, ShutdownHandle};
use tokio::task::JoinHandle;

use crate::target::{RedisError, RedisTarget};

/// The pub/sub channel of fleet commands.
pub const CHANNEL: &str = "shutdown:fleet";

/// A fleet command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCommand {
    /// `*` for every node, or one trader id.
    pub target: String,
    /// Why, for the logs.
    pub note: String,
}

impl FleetCommand {
    fn applies_to(&self, trader_id: &str) -> bool {
        self.target == "*" || self.target == trader_id
    }
}

/// Publish a command; returns how many nodes were listening.
pub async fn send(
    target: &RedisTarget,
    command: &FleetCommand,
    timeout: Duration,
) -> Result<usize, RedisError> {
    let mut con = target.connect(timeout, timeout).await?;
    let payload = serde_json::to_string(command).map_err(|e| RedisError(e.to_string()))?;
    redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(payload)
        .query_async::<usize>(&mut con)
        .await
        .map_err(|e| target.error("cannot publish to", &e))
}

/// A node's subscription to fleet commands; stops when dropped.
#[derive(Debug)]
pub struct FleetSwitch {
    task: JoinHandle<()>,
}

impl Drop for FleetSwitch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FleetSwitch {
    /// Subscribe (returns once the subscription is active), then trigger `handle` with reason
    /// `fleet` when a command names `trader_id` or every node. A lost connection is re-established
    /// with backoff (1 s to 30 s), logged each time.
    pub async fn start(
        target: &RedisTarget,
        trader_id: &str,
        handle: ShutdownHandle,
        timeout: Duration,
    ) -> Result<FleetSwitch, RedisError> {
        let target = target.clone();
        let pubsub = subscribe(&target, timeout).await?;
        let trader_id = trader_id.to_owned();
        let task = tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            let mut backoff = Duration::from_secs(1);
            loop {
                if let Some(p) = pubsub.take() {
                    let mut messages = p.into_on_message();
                    while let Some(msg) = messages.next().await {
                        backoff = Duration::from_secs(1);
                        match serde_json::from_slice::<FleetCommand>(msg.get_payload_bytes()) {
                            Ok(cmd) if cmd.applies_to(&trader_id) => {
                                tracing::warn!(target = %cmd.target, note = %cmd.note, "fleet kill switch: shutdown requested");
                                handle.trigger(Reason::Fleet);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "ignoring a malformed fleet command")
                            }
                        }
                    }
                    tracing::error!("fleet kill switch: subscription lost; reconnecting");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match subscribe(&target, timeout).await {
                    Ok(p) => pubsub = Some(p),
                    Err(e) => tracing::error!(error = %e, "fleet kill switch: cannot resubscribe"),
                }
            }
        });
        Ok(FleetSwitch { task })
    }
}

async fn subscribe(
    target: &RedisTarget,
    timeout: Duration,
) -> Result<redis::aio::PubSub, RedisError> {
    let mut p = target.pubsub(timeout).await?;
    match tokio::time::timeout(timeout, p.subscribe(CHANNEL)).await {
        Ok(Ok(())) => Ok(p),
        Ok(Err(e)) => Err(target.error("cannot subscribe at", &e)),
        Err(_) => Err(RedisError(format!(
            "cannot subscribe at {}: no answer within {timeout:?}",
            target.shown()
        ))),
    }
}
