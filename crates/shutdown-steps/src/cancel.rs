//! `cancel`: cancel working orders by id, keeping protective stops, confirmed from the venue's order state.

use shutdown_core::StepDefaults;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::words;
use serde::{Deserialize, Serialize};
use shutdown_core::domain::{Order, OrderStatus, Residence};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::{CancelAck, MassCancelScope, OrderGateway, StateSource};
use shutdown_core::out_of_range;
use shutdown_core::{Counter, Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use shutdown_core::retry::{Backoff, retry, work_deadline};

shutdown_core::step_options! {
    /// Options of `cancel`.
    pub struct CancelConfig {
        /// Leave reduce-only and close-position stops resting (they protect open positions after
        /// exit).
        pub keep_protective_stops: bool = true,
        /// Cancel requests in flight at once.
        pub max_in_flight: usize = 8,
        /// Cancel requests per second, to stay under the venue's rate limit; 0 for no pacing.
        pub rate_per_sec: f64 = 0.0,
        /// Retries of one cancel after a transient or rate-limited answer.
        pub retries: u32 = 5,
        /// First retry delay in milliseconds; doubles each retry (jittered), at most 2 s.
        pub backoff_ms: u64 = 100,
        /// Rounds of list-then-cancel before the orders still open are reported as orphans.
        pub max_rounds: u32 = 5,
        /// Start with the venue's mass-cancel, when it can spare protective stops (or when
        /// keep_protective_stops = false); every cancel is still confirmed from order state.
        pub use_mass_cancel: bool = false,
    }
}

impl StepConfig for CancelConfig {
    fn validate(&self) -> Vec<OptionError> {
        let c = self;
        let mut problems: Vec<OptionError> = [
            out_of_range("max_in_flight", c.max_in_flight, 1, 10_000),
            out_of_range("retries", c.retries, 0, 100),
            out_of_range("backoff_ms", c.backoff_ms, 1, 60_000),
            out_of_range("max_rounds", c.max_rounds, 1, 100),
        ]
        .into_iter()
        .flatten()
        .collect();
        // 0 means no pacing; otherwise at least one request a minute.
        if c.rate_per_sec != 0.0 {
            problems.extend(out_of_range(
                "rate_per_sec",
                c.rate_per_sec,
                0.01,
                1_000_000.0,
            ));
        }
        problems
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Cancel {
            config: self.clone(),
            orders: node.orders()?,
            records: node.state().ok(),
        }))
    }
}

/// What `cancel` hands to later steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CancelSummary {
    /// Orders confirmed cancelled.
    pub cancelled: usize,
    /// Orders that filled before their cancel.
    pub already_filled: usize,
    /// Orders still working that could not be cancelled.
    pub orphaned: Vec<String>,
}

/// An order that could not be cancelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    /// Client id.
    pub client_id: String,
    /// Instrument.
    pub instrument: String,
    /// Cancel attempts made.
    pub attempts: u32,
    /// The last error, if any.
    pub error: Option<String>,
}

/// The `cancel` step.
pub struct Cancel {
    config: CancelConfig,
    orders: Arc<dyn OrderGateway>,
    /// The node's own records, to name what it believes working when the venue cannot be listed.
    records: Option<Arc<dyn StateSource>>,
}

/// An order the node's records hold as working that the venue never confirmed either way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unconfirmed {
    /// Client id.
    pub client_id: String,
    /// Instrument.
    pub instrument: String,
    /// Whether it is a protective stop (one the step would have kept).
    pub protective: bool,
}

/// Cancels answered between two publications of the orders still working (each costs a pass over
/// the listing); the counts are published at every answer.
const PUBLISH_EVERY: usize = 256;

/// How many orders a problem line names; the details name every one.
const NAMED_IN_PROBLEMS: usize = 100;

#[derive(Debug, Default)]
struct Tally {
    cancelled: BTreeSet<String>,
    already_filled: BTreeSet<String>,
    /// What each order in `already_filled` filled, as its state last read said.
    fills: BTreeMap<String, Fill>,
    unknown: BTreeSet<String>,
    attempts: BTreeMap<String, u32>,
    errors: BTreeMap<String, String>,
    requests: u64,
}

impl Tally {
    fn record(&mut self, id: String, fate: Result<Fate, String>, attempts: u32) {
        self.requests += u64::from(attempts);
        *self.attempts.entry(id.clone()).or_default() += attempts;
        match fate {
            Ok(Fate::Cancelled) => {
                self.errors.remove(&id);
                self.unknown.remove(&id);
                self.cancelled.insert(id);
            }
            Ok(Fate::Filled(fill)) => {
                self.errors.remove(&id);
                self.unknown.remove(&id);
                self.fills.insert(id.clone(), fill);
                self.already_filled.insert(id);
            }
            Ok(Fate::Unknown) => {
                self.unknown.insert(id);
            }
            Ok(Fate::Pending) => {}
            Err(e) => {
                self.errors.insert(id, e);
            }
        }
    }
}

impl Tally {
    /// Whether the venue confirmed the order gone (cancelled or filled).
    fn gone(&self, id: &str) -> bool {
        self.cancelled.contains(id) || self.already_filled.contains(id)
    }

    /// After a listing: each order of the first listing that left it without an answer that says
    /// how (its cancel failed, or was accepted and not yet confirmed) is unknown until its state is
    /// read; one listed again is not.
    fn account_for(&mut self, started_with: &BTreeSet<String>, targets: &[Order]) {
        let listed: BTreeSet<&str> = targets.iter().map(|o| o.client_id.as_str()).collect();
        self.unknown.retain(|id| !listed.contains(id.as_str()));
        let gone = (started_with.iter())
            .filter(|id| !listed.contains(id.as_str()) && !self.gone(id))
            .cloned()
            .collect::<Vec<_>>();
        self.unknown.extend(gone);
    }

    /// Publish the counts so far: orders cancelled, and `working`, those known still working.
    fn publish_counts(&self, ctx: &StepContext, working: usize) {
        ctx.partial
            .count(Counter::OrdersCancelled, self.cancelled.len() as u64);
        ctx.partial.count(Counter::OrdersOrphaned, working as u64);
    }

    /// How many orders the venue confirmed gone.
    fn gone_count(&self) -> usize {
        self.cancelled.len() + self.already_filled.len()
    }

    /// Publish what is known so far, for a report of a step cut short: the orders still working
    /// as last listed (less those confirmed gone since), and the counts, as lower bounds: an order
    /// with a cancel among the `in_flight` is counted neither cancelled nor still working.
    fn publish(&self, ctx: &StepContext, targets: &[Order], in_flight: usize) {
        let live: Vec<&str> = (targets.iter())
            .map(|o| o.client_id.as_str())
            .filter(|id| !self.gone(id))
            .collect();
        ctx.partial.detail("cancelled", &self.cancelled);
        ctx.partial.detail("already_filled", &self.already_filled);
        ctx.partial.detail("still_working", &live);
        ctx.partial.detail("unknown", &self.unknown);
        ctx.partial.summary(format!(
            "cancelled {}, {} filled during the shutdown, {} still working as last listed{}",
            self.cancelled.len(),
            self.already_filled.len(),
            live.len(),
            match in_flight {
                0 => String::new(),
                n => format!(" ({n} with a cancel in flight)"),
            }
        ));
        self.publish_counts(ctx, live.len().saturating_sub(in_flight));
        let problems = match live.len() {
            0 => Vec::new(),
            n => vec![format!(
                "{n} order{} still working at the venue when last listed (see still_working)",
                if n == 1 { "" } else { "s" }
            )],
        };
        ctx.partial.problems(problems);
    }
}

/// Spaces requests `1 / rate` apart.
struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pacer {
    /// Wait for the next slot; `false` when it would come after `deadline`.
    async fn wait(&self, deadline: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            if slot >= deadline {
                return false;
            }
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }
}

impl Cancel {
    /// Read the state of each order that left the listing after a mass-cancel, `max_in_flight` at
    /// a time until `deadline`: cancelled, filled, or unknown (not read in time).
    async fn confirm_gone(&self, gone: Vec<String>, deadline: Instant, tally: &mut Tally) {
        let mut queue = gone.into_iter();
        let mut set = JoinSet::new();
        loop {
            while set.len() < self.config.max_in_flight.max(1) && Instant::now() < deadline {
                let Some(id) = queue.next() else { break };
                let orders = self.orders.clone();
                set.spawn(async move {
                    let state = tokio::time::timeout_at(deadline, orders.order(&id)).await;
                    (id, state)
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let Ok((id, state)) = joined else { continue };
            let fate = match state {
                Ok(Ok(Some(o))) if o.status == OrderStatus::Filled => {
                    Ok(Fate::Filled(Fill::of(&o)))
                }
                Ok(Ok(Some(o))) if !o.status.is_live() => Ok(Fate::Cancelled),
                _ => Ok(Fate::Unknown),
            };
            tally.record(id, fate, 0);
        }
        // Not read before the deadline: gone from the listing, fate unknown.
        for id in queue {
            tally.record(id, Ok(Fate::Unknown), 0);
        }
    }

    /// The venue's book could not be listed before the deadline: nothing could be cancelled. The
    /// orders the node's own records hold as working are named as unconfirmed; how many are working
    /// at the venue stays unknown.
    async fn unlisted(&self, ctx: &StepContext, error: String, attempts: u32) -> StepError {
        let message = format!(
            "cannot list open orders after {}: {error}; the orders working at the venue are unknown",
            words::count(attempts as usize, "attempt")
        );
        let records = match &self.records {
            None => Err("the node has no state source".to_owned()),
            Some(records) => match tokio::time::timeout_at(ctx.deadline, records.orders()).await {
                Ok(Ok(orders)) => Ok(orders),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer before the deadline".to_owned()),
            },
        };
        let out = StepOutput::new().attempts(attempts);
        let orders = match records {
            Ok(orders) => orders,
            Err(e) => {
                let why = format!("the node's own records of its orders cannot be read: {e}");
                return StepError::new(format!("{message}; {why}")).with_output(out.problem(why));
            }
        };
        let unconfirmed: Vec<Unconfirmed> = (orders.into_iter())
            .filter(|o| o.status.is_live() && o.residence == Residence::Venue)
            .map(|o| Unconfirmed {
                protective: o.is_protective(),
                client_id: o.client_id,
                instrument: o.instrument,
            })
            .collect();
        let mut out = out
            .detail("unconfirmed", &unconfirmed)
            .summary(format!(
                "cancelled nothing: the venue's book could not be listed; {} the node holds as working unconfirmed",
                words::count(unconfirmed.len(), "order")
            ));
        if !unconfirmed.is_empty() {
            let named: Vec<&str> = (unconfirmed.iter().take(NAMED_IN_PROBLEMS))
                .map(|o| o.client_id.as_str())
                .collect();
            let more = match unconfirmed.len() - named.len() {
                0 => String::new(),
                n => format!(" and {n} more (see unconfirmed)"),
            };
            out = out.problem(format!(
                "{} the node holds as working, not confirmed cancelled at the venue: {}{more}",
                words::count(unconfirmed.len(), "order"),
                named.join(", ")
            ));
        }
        StepError::new(message).with_output(out)
    }

    /// A working order at the venue that is not a protective stop kept on purpose. An order held
    /// only by this process (emulated) is not at the venue: it goes when the process does.
    fn is_target(&self, o: &Order) -> bool {
        o.status.is_live()
            && o.residence == Residence::Venue
            && !(self.config.keep_protective_stops && o.is_protective())
    }

    /// Cancel one order (with retries) and classify the outcome from the venue's order state.
    async fn cancel_one(
        orders: Arc<dyn OrderGateway>,
        id: String,
        backoff: Backoff,
        pacer: Arc<Pacer>,
        deadline: Instant,
    ) -> (String, Result<Fate, String>, u32) {
        let (ack, attempts) = retry(&id, backoff, deadline, || {
            let orders = orders.clone();
            let pacer = pacer.clone();
            let id = id.clone();
            async move {
                if !pacer.wait(deadline).await {
                    return Err(shutdown_core::errors::RoleError::Transient(
                        "no rate budget left before the deadline".into(),
                    ));
                }
                orders.cancel(&id).await
            }
        })
        .await;
        let fate = match ack {
            Ok(CancelAck::Cancelled) => Ok(Fate::Cancelled),
            Ok(CancelAck::Pending) => Ok(Fate::Pending),
            // "Too late" or "unknown": look for the fill in the order's state.
            Ok(CancelAck::AlreadyFilled | CancelAck::UnknownOrder) => match orders.order(&id).await
            {
                Ok(Some(o)) if o.status == OrderStatus::Filled => Ok(Fate::Filled(Fill::of(&o))),
                Ok(Some(o)) if o.status == OrderStatus::Cancelled => Ok(Fate::Cancelled),
                Ok(Some(o)) if o.status.is_live() => Ok(Fate::Pending),
                Ok(_) => Ok(Fate::Unknown),
                Err(e) => Err(format!(
                    "cancel answered unknown, and the order cannot be read: {e}"
                )),
            },
            Err(e) => Err(e.to_string()),
        };
        (id, fate, attempts)
    }
}

enum Fate {
    Cancelled,
    Filled(Fill),
    Unknown,
    Pending,
}

/// An order that filled while the shutdown cancelled: a position changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fill {
    /// Client id.
    pub client_id: String,
    /// Instrument.
    pub instrument: String,
    /// Order side.
    pub side: shutdown_core::domain::Side,
    /// Quantity filled.
    pub quantity: rust_decimal::Decimal,
}

impl Fill {
    fn of(o: &Order) -> Fill {
        Fill {
            client_id: o.client_id.clone(),
            instrument: o.instrument.clone(),
            side: o.side,
            quantity: o.filled_quantity,
        }
    }
}

#[async_trait]
impl ShutdownStep for Cancel {
    fn kind(&self) -> &'static str {
        "cancel"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn counts(&self) -> &'static [Counter] {
        &[Counter::OrdersCancelled, Counter::OrdersOrphaned]
    }

    fn if_not_done(&self) -> Option<String> {
        Some("working orders may still be live at the venue: check and cancel them there".into())
    }

    fn plan(&self) -> Vec<String> {
        let c = &self.config;
        let mut plan = vec![format!(
            "cancel every working order by id{}",
            if c.keep_protective_stops {
                ", keeping reduce-only/close-position stops"
            } else {
                ", protective stops included"
            }
        )];
        if c.use_mass_cancel {
            plan.push("start with the venue's mass-cancel where it spares stops".into());
        }
        plan.push(format!(
            "at most {} in flight{}, {} retries from {} ms, up to {} rounds; report what stays open",
            c.max_in_flight,
            if c.rate_per_sec > 0.0 { format!(", {} per second", c.rate_per_sec) } else { String::new() },
            c.retries,
            c.backoff_ms,
            c.max_rounds
        ));
        plan
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let deadline = work_deadline(ctx.deadline);
        let backoff = Backoff {
            retries: self.config.retries,
            initial: Duration::from_millis(self.config.backoff_ms.max(1)),
            max: Duration::from_secs(2),
        };
        let pacer = Arc::new(Pacer {
            interval: (self.config.rate_per_sec > 0.0)
                .then(|| Duration::from_secs_f64(1.0 / self.config.rate_per_sec)),
            next: Mutex::new(Instant::now()),
        });
        let mut tally = Tally::default();
        let mut kept_stops = BTreeSet::new();
        // Orders held only by this process: not at the venue, gone when the process exits.
        let mut local = BTreeSet::new();
        let mut mass_cancel = serde_json::Value::Null;
        let mut rounds = 0;
        // The targets of the latest listing; the listing itself is not kept (a book of 10k orders
        // would otherwise be held two or three times over).
        let mut targets: Vec<Order> = Vec::new();
        let mut list_error: Option<String> = None;
        // The orders a mass-cancel was sent for, until the next listing says which went.
        let mut mass_targets: Vec<String> = Vec::new();
        // The targets of the first listing: each ends in exactly one of the report's lists.
        let mut started_with: BTreeSet<String> = BTreeSet::new();
        loop {
            // Without the first listing nothing can be done: it is asked for, paced by the
            // backoff, until the work deadline. The last listing may come after the work deadline:
            // give it until the runner's.
            let (list_backoff, list_deadline) = match rounds {
                0 => (
                    Backoff {
                        retries: u32::MAX,
                        ..backoff
                    },
                    deadline,
                ),
                _ => (backoff, ctx.deadline),
            };
            let (listed, attempts) = retry("open-orders", list_backoff, list_deadline, || {
                self.orders.open_orders()
            })
            .await;
            let open = match listed {
                Ok(o) => o,
                Err(e) if rounds == 0 => {
                    // Nothing is known of the venue's book: the orphan count is unknown, not 0.
                    return Err(self.unlisted(&ctx, e.to_string(), attempts).await);
                }
                Err(e) => {
                    // Cannot confirm from the venue: every earlier target not confirmed gone is an orphan.
                    list_error = Some(format!("cannot list open orders to confirm: {e}"));
                    std::mem::take(&mut targets)
                        .into_iter()
                        .filter(|o| {
                            !tally.cancelled.contains(&o.client_id)
                                && !tally.already_filled.contains(&o.client_id)
                        })
                        .collect()
                }
            };
            let before: Vec<String> = std::mem::take(&mut mass_targets);
            targets.clear();
            for o in open {
                if self.is_target(&o) {
                    targets.push(o);
                } else if o.status.is_live() && o.residence == Residence::Local {
                    local.insert(o.client_id);
                } else if o.status.is_live() {
                    kept_stops.insert(o.client_id);
                }
            }
            if rounds == 0 {
                started_with = targets.iter().map(|o| o.client_id.clone()).collect();
            }
            if !before.is_empty() {
                // What the mass-cancel took: each gone order's state says cancelled or filled.
                let listed: BTreeSet<&str> = targets.iter().map(|o| o.client_id.as_str()).collect();
                let gone = before
                    .into_iter()
                    .filter(|id| !listed.contains(id.as_str()));
                self.confirm_gone(gone.collect(), deadline, &mut tally)
                    .await;
            }
            tally.account_for(&started_with, &targets);
            tally.publish(&ctx, &targets, 0);
            ctx.partial.detail("kept_stops", &kept_stops);
            ctx.partial.detail("local_orders", &local);
            if targets.is_empty()
                || rounds >= self.config.max_rounds
                || Instant::now() >= deadline
                || list_error.is_some()
            {
                break;
            }
            rounds += 1;
            if rounds == 1 && self.config.use_mass_cancel {
                if self.orders.supports_mass_cancel() || !self.config.keep_protective_stops {
                    let scope = MassCancelScope {
                        keep_protective_stops: self.config.keep_protective_stops,
                        instrument: None,
                    };
                    let (ack, _) = retry("mass-cancel", backoff, deadline, || {
                        self.orders.mass_cancel(&scope)
                    })
                    .await;
                    tally.requests += 1;
                    mass_cancel = match ack {
                        Ok(a) => serde_json::json!({ "acknowledged": a.count }),
                        Err(e) => serde_json::json!({ "error": e.to_string() }),
                    };
                    mass_targets = targets.iter().map(|o| o.client_id.clone()).collect();
                    // Confirm from order state: list again and cancel what is left by id.
                    continue;
                }
                mass_cancel = serde_json::json!({ "error": "the venue has no mass-cancel that spares stops; cancelled by id" });
            }
            // At most max_in_flight tasks exist at once: a large book costs no more memory than a small one.
            let in_flight = self.config.max_in_flight.max(1);
            let mut set = JoinSet::new();
            let mut queue = targets.iter();
            let (mut done, gone_before) = (0usize, tally.gone_count());
            loop {
                // No new request past the work deadline: what is left is reported, not started.
                while set.len() < in_flight && Instant::now() < deadline {
                    let Some(order) = queue.next() else { break };
                    let orders = self.orders.clone();
                    let pacer = pacer.clone();
                    let id = order.client_id.clone();
                    set.spawn(Cancel::cancel_one(orders, id, backoff, pacer, deadline));
                }
                let Some(joined) = set.join_next().await else {
                    break;
                };
                if let Ok((id, fate, attempts)) = joined {
                    tally.record(id, fate, attempts);
                }
                // Every target was working when listed; those not confirmed gone since, less
                // the cancels in flight, are known still working.
                let gone = tally.gone_count() - gone_before;
                tally.publish_counts(&ctx, targets.len().saturating_sub(gone + set.len()));
                done += 1;
                if done % PUBLISH_EVERY == 0 {
                    tally.publish(&ctx, &targets, set.len());
                }
            }
            tally.publish(&ctx, &targets, 0);
        }
        // Orders that left the listing without an answer that says how: their state says
        // cancelled or filled (a position moved), or they stay named unknown.
        let unread: Vec<String> = tally.unknown.iter().cloned().collect();
        if !unread.is_empty() {
            let by = shutdown_core::retry::work_deadline(ctx.deadline);
            self.confirm_gone(unread, by, &mut tally).await;
        }
        // Whatever the last listing still shows as a target could not be cancelled.
        let orphans: Vec<Orphan> = targets
            .iter()
            .map(|o| Orphan {
                client_id: o.client_id.clone(),
                instrument: o.instrument.clone(),
                attempts: tally.attempts.get(&o.client_id).copied().unwrap_or(0),
                error: tally
                    .errors
                    .get(&o.client_id)
                    .cloned()
                    .or_else(|| list_error.clone()),
            })
            .collect();
        // An order confirmed cancelled by state is not "unknown".
        for id in tally.cancelled.iter().chain(&tally.already_filled) {
            tally.unknown.remove(id);
        }
        ctx.results.insert(CancelSummary {
            cancelled: tally.cancelled.len(),
            already_filled: tally.already_filled.len(),
            orphaned: orphans.iter().map(|o| o.client_id.clone()).collect(),
        });
        let max_attempts = tally.attempts.values().copied().max().unwrap_or(1).max(1);
        let mut out = StepOutput::new()
            .attempts(max_attempts)
            .detail("cancelled", &tally.cancelled)
            .detail("already_filled", &tally.already_filled)
            .detail("fills", tally.fills.values().collect::<Vec<_>>())
            .detail("unknown", &tally.unknown)
            .detail("orphaned", &orphans)
            .detail("kept_stops", &kept_stops)
            .detail("local_orders", &local)
            .detail("rounds", rounds)
            .detail("requests", tally.requests)
            .detail("mass_cancel", mass_cancel)
            .count(Counter::OrdersCancelled, tally.cancelled.len() as u64)
            .summary(format!(
                "cancelled {}, {} filled during the shutdown{}, kept {}{}, {} {}",
                tally.cancelled.len(),
                tally.already_filled.len(),
                match tally.unknown.len() {
                    0 => String::new(),
                    n => format!(", {n} gone without an answer that says how"),
                },
                words::count(kept_stops.len(), "stop"),
                match local.len() {
                    0 => String::new(),
                    n => format!(", {n} held by the process (gone at exit)"),
                },
                orphans.len(),
                match list_error {
                    None => "left working",
                    Some(_) => "not confirmed gone",
                }
            ));
        // Without a last listing, the orders named are those not confirmed gone: how many are
        // still working is not known.
        if list_error.is_none() {
            out = out.count(Counter::OrdersOrphaned, orphans.len() as u64);
        }
        if orphans.is_empty() {
            return Ok(out);
        }
        let ids: Vec<&str> = (orphans.iter().take(10))
            .map(|o| o.client_id.as_str())
            .collect();
        let more = if orphans.len() > ids.len() {
            ", ..."
        } else {
            ""
        };
        let (n, s) = (orphans.len(), if orphans.len() == 1 { "" } else { "s" });
        let message = match &list_error {
            None => format!(
                "{n} order{s} could not be cancelled: {}{more}",
                ids.join(", ")
            ),
            Some(e) => format!(
                "{e}; {n} order{s} not confirmed cancelled may still be working: {}{more}",
                ids.join(", ")
            ),
        };
        Err(StepError::new(message).with_output(out))
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(10.0, true);

shutdown_core::register_step! {
    kind: "cancel",
    summary: "Cancel working orders by id, keeping protective stops; report every order left open.",
    config: CancelConfig,
    requires: [OrderGateway],
    defaults: DEFAULTS,
}
