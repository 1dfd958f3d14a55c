//! `close`: for each venue connection, in parallel: disarm the dead-man's switch, log out, disconnect.

use shutdown_core::StepDefaults;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::words;
use serde::{Deserialize, Serialize};
use shutdown_core::domain::LogoutEffect;
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::{Connections, PositionBook};
use shutdown_core::out_of_range;
use shutdown_core::{Counter, Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};
use tokio::task::JoinSet;

use tokio::time::Instant;

use shutdown_core::retry::{Backoff, retry, work_deadline};

use crate::verify::VerifySummary;

shutdown_core::step_options! {
    /// Options of `close`.
    pub struct CloseConfig {
        /// Disarm the dead-man's switch (cancel-on-disconnect, countdown cancel-all) before
        /// disconnecting, so the venue does not cancel the protective stops after exit. A switch
        /// that stays armed fires when the process exits: every position is then reported
        /// unprotected at exit.
        pub disarm_dead_man: bool = true,
        /// Log the session out before disconnecting.
        pub logout: bool = true,
        /// Budget of each connection (they close in parallel).
        pub connection_timeout_secs: f64 = 2.0,
    }
}

impl StepConfig for CloseConfig {
    fn validate(&self) -> Vec<OptionError> {
        let t = self.connection_timeout_secs;
        out_of_range("connection_timeout_secs", t, 0.001, 86_400.0)
            .into_iter()
            .collect()
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Close {
            config: self.clone(),
            connections: node.connections()?,
            // Optional: with it, the positions a switch left armed exposes are named.
            positions: node.positions().ok(),
        }))
    }
}

/// What happened to one connection.
#[derive(Debug, Clone, Default, Serialize)]
struct ConnectionResult {
    id: String,
    venue: String,
    dead_man_was_armed: bool,
    disarmed: bool,
    /// How it was disarmed: `disarm`, or `logout` where a clean logout ends the session without
    /// firing the switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    disarmed_by: Option<&'static str>,
    /// What a logout does to the switch on this venue.
    #[serde(skip)]
    logout_effect: LogoutEffect,
    logged_out: bool,
    disconnected: bool,
    /// It was down before `close` reached it, its switch armed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    down_before_close: bool,
    error: Option<String>,
}

/// The `close` step.
pub struct Close {
    config: CloseConfig,
    connections: Arc<dyn Connections>,
    positions: Option<Arc<dyn PositionBook>>,
}

fn add_error(r: &mut ConnectionResult, message: String) {
    r.error = Some(match r.error.take() {
        Some(earlier) => format!("{earlier}; {message}"),
        None => message,
    });
}

const BACKOFF: Backoff = Backoff {
    retries: 3,
    initial: Duration::from_millis(50),
    max: Duration::from_millis(500),
};

async fn close_one(
    connections: Arc<dyn Connections>,
    config: CloseConfig,
    mut r: ConnectionResult,
    deadline: Instant,
) -> ConnectionResult {
    let id = r.id.clone();
    // Where a clean logout ends the session without firing the switch, it is the way left when
    // the disarm fails.
    let logout_disarms = config.logout && r.logout_effect == LogoutEffect::Disarms;
    if r.dead_man_was_armed && config.disarm_dead_man {
        match retry(&id, BACKOFF, deadline, || connections.disarm_dead_man(&id))
            .await
            .0
        {
            Ok(()) => {
                r.disarmed = true;
                r.disarmed_by = Some("disarm");
            }
            Err(e) if logout_disarms => {
                add_error(
                    &mut r,
                    format!(
                        "cannot disarm the dead-man's switch ({e}); logging out, which ends the session without firing it"
                    ),
                );
            }
            Err(e) => {
                // Disconnecting now would fire the switch at once; exiting fires it anyway.
                r.error = Some(format!(
                    "cannot disarm the dead-man's switch ({e}): when this process exits, the venue cancels every resting order, stops included"
                ));
                return r;
            }
        }
    }
    let armed = r.dead_man_was_armed && !r.disarmed;
    if config.logout {
        match retry(&id, BACKOFF, deadline, || connections.logout(&id))
            .await
            .0
        {
            Ok(()) => {
                r.logged_out = true;
                if armed && r.logout_effect == LogoutEffect::Disarms {
                    r.disarmed = true;
                    r.disarmed_by = Some("logout");
                    // The logout did what the disarm could not.
                    r.error = None;
                }
                if armed && r.logout_effect == LogoutEffect::Fires {
                    add_error(&mut r, "the logout fired the armed dead-man's switch: the venue cancelled every resting order, stops included".into());
                }
            }
            Err(e) => add_error(&mut r, format!("logout failed: {e}")),
        }
    }
    match retry(&id, BACKOFF, deadline, || connections.disconnect(&id))
        .await
        .0
    {
        Ok(()) => r.disconnected = true,
        Err(e) => add_error(&mut r, format!("disconnect failed: {e}")),
    }
    r
}

impl Close {
    /// What an armed switch means: every resting order goes when the process exits, stops
    /// included, so every open position is unprotected at exit.
    async fn exposed(&self, armed: &[&str], out: StepOutput, deadline: Instant) -> StepOutput {
        let switches = armed.join(", ");
        let read = match &self.positions {
            Some(book) => Some(
                retry("positions", BACKOFF, deadline, || book.positions())
                    .await
                    .0,
            ),
            None => None,
        };
        match read {
            Some(Ok(positions)) => {
                let ids: Vec<&str> = positions.iter().map(|p| p.id.as_str()).collect();
                let n = ids.len();
                let out = out
                    .detail("unprotected_at_exit", &ids)
                    .count(Counter::PositionsUnprotected, n as u64);
                match n {
                    0 => out.problem(format!("dead-man's switch left armed ({switches}): the venue cancels every resting order when this process exits")),
                    _ => out.problem(format!("dead-man's switch left armed ({switches}): the venue cancels every resting order, stops included, when this process exits; {n} position{} unprotected at exit: {}", if n == 1 { " is" } else { "s are" }, ids.join(", "))),
                }
            }
            // Which positions are exposed is unknown: so is the count.
            _ => out.problem(format!("dead-man's switch left armed ({switches}): the venue cancels every resting order, stops included, when this process exits; every open position is unprotected at exit (the positions could not be read)")),
        }
        .detail("switches_armed_at_exit", armed)
    }
}

#[async_trait]
impl ShutdownStep for Close {
    fn kind(&self) -> &'static str {
        "close"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn if_not_done(&self) -> Option<String> {
        Some("venue connections were not closed cleanly: an armed dead-man's switch (cancel-on-disconnect) cancels resting orders, protective stops included, when this process exits".into())
    }

    /// After the connections close, `close` has the last word on protection: a switch that stays
    /// armed takes every stop with it.
    fn counts(&self) -> &'static [Counter] {
        &[Counter::PositionsUnprotected]
    }

    fn plan(&self) -> Vec<String> {
        let mut plan = Vec::new();
        if self.config.disarm_dead_man {
            plan.push("disarm each armed dead-man's switch first".to_owned());
        } else {
            plan.push("leave dead-man's switches armed: the venue cancels resting orders, stops included, on disconnect".to_owned());
        }
        if self.config.logout {
            plan.push("log out".into());
        }
        plan.push(format!(
            "disconnect; every connection in parallel, {}s each",
            self.config.connection_timeout_secs
        ));
        plan
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let list = self.connections.connections().await?;
        let deadline = work_deadline(ctx.deadline);
        let per = Duration::from_secs_f64(self.config.connection_timeout_secs.max(0.001));
        let mut set = JoinSet::new();
        for c in list.iter().filter(|c| c.connected) {
            let base = ConnectionResult {
                id: c.id.clone(),
                venue: c.venue.clone(),
                dead_man_was_armed: c.dead_man_armed,
                logout_effect: c.logout,
                ..Default::default()
            };
            let connections = self.connections.clone();
            let config = self.config.clone();
            // Every call of close_one is bounded by `limit`, so the connection is too.
            let limit = (Instant::now() + per).min(deadline);
            set.spawn(close_one(connections, config, base, limit));
        }
        // A connection already down with its switch armed: the venue dropped it (or ended the
        // session) and the switch fired, or, a countdown, fires once the heartbeats stop.
        let mut results: Vec<ConnectionResult> = (list.iter())
            .filter(|c| !c.connected && c.dead_man_armed)
            .map(|c| ConnectionResult {
                id: c.id.clone(),
                venue: c.venue.clone(),
                dead_man_was_armed: true,
                disconnected: true,
                down_before_close: true,
                error: Some("down before close with its dead-man's switch armed: the venue cancelled, or cancels when its countdown lapses, every resting order it held then, stops included".into()),
                ..Default::default()
            })
            .collect();
        while let Some(joined) = set.join_next().await {
            if let Ok(r) = joined {
                results.push(r);
            }
        }
        results.sort_by(|a, b| a.id.cmp(&b.id));
        let armed: Vec<&str> = (results.iter())
            .filter(|r| r.dead_man_was_armed && !r.disarmed && !r.down_before_close)
            .map(|r| r.id.as_str())
            .collect();
        let down: Vec<&str> = (results.iter())
            .filter(|r| r.down_before_close)
            .map(|r| r.id.as_str())
            .collect();
        let closed = results.iter().filter(|r| r.disconnected).count();
        let disarmed = results.iter().filter(|r| r.disarmed).count();
        let mut summary = format!(
            "{} of {} closed, {} disarmed",
            closed,
            words::count(results.len(), "connection"),
            words::count(disarmed, "dead-man's switch").replace("switchs", "switches")
        );
        if !armed.is_empty() {
            summary.push_str(&format!(
                "; {} still armed: it fires at exit",
                words::count(armed.len(), "switch").replace("switchs", "switches")
            ));
        }
        let mut out = StepOutput::new()
            .detail("connections", &results)
            .summary(summary);
        if !down.is_empty() {
            // What the venue cancelled when, and what was placed since, are not known here: the
            // count of positions unprotected at exit is unknown (null), whatever `verify` judged.
            out = out.problem(format!(
                "{} down before close with its dead-man's switch armed ({}): the venue cancelled, or cancels, the orders resting then, stops included; which positions keep a stop at exit is not known",
                words::count(down.len(), "connection"),
                down.join(", ")
            ));
            if !armed.is_empty() {
                out = self.exposed(&armed, out, deadline).await;
            }
        } else if armed.is_empty() {
            // Nothing fires at exit: protection stands as `verify` judged it.
            if let Some(verified) = ctx.results.get::<VerifySummary>() {
                out = out.count(Counter::PositionsUnprotected, verified.unprotected as u64);
            }
        } else {
            out = self.exposed(&armed, out, deadline).await;
        }
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.id)))
            .collect();
        if failed.is_empty() {
            Ok(out)
        } else {
            Err(StepError::new(failed.join("; ")).with_output(out))
        }
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(5.0, false);

shutdown_core::register_step! {
    kind: "close",
    summary: "Disarm dead-man's switches, log out and disconnect every venue connection, in parallel.",
    config: CloseConfig,
    requires: [Connections],
    defaults: DEFAULTS,
}
