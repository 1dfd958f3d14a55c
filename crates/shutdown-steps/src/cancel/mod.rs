//! `cancel`: cancel working orders by id, keeping protective stops, confirmed from the venue's order state.

use shutdown_core::StepDefaults;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::venue::open_orders;
use crate::words;
use serde::{Deserialize, Serialize};
use shutdown_core::domain::{Order, OrderStatus, Residence};
use shutdown_core::errors::RoleError;
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::{CancelRules, MassCancelAck, MassCancelScope, OrderGateway, StateSource};
use shutdown_core::out_of_range;
use shutdown_core::{Counter, Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};
use tokio::time::Instant;

use shutdown_core::retry::{Backoff, retry, work_deadline};

mod requests;
mod tally;

use crate::venue::Pacer;
use requests::{Answer, Sender, bounded, confirm_gone};
pub use tally::Fill;
use tally::{PUBLISH_EVERY, Tally};

shutdown_core::step_options! {
    /// Options of `cancel`.
    pub struct CancelConfig {
        /// Leave reduce-only and close-position stops resting (they protect open positions after
        /// exit).
        pub keep_protective_stops: bool = true,
        /// Cancel requests in flight at once.
        pub max_in_flight: usize = 8,
        /// Cancel requests per second, to stay under the venue's rate limit; never above the limit
        /// the venue documents (its node says); 0 to pace at that limit, or not at all when it
        /// says none.
        pub rate_per_sec: f64 = 0.0,
        /// Retries of one cancel after a transient or rate-limited answer.
        pub retries: u32 = 5,
        /// First retry delay in milliseconds; doubles each retry (jittered), at most 2 s.
        pub backoff_ms: u64 = 100,
        /// Rounds of list-then-cancel before the orders still open are reported as orphans.
        pub max_rounds: u32 = 5,
        /// Use the venue's mass cancel (one instrument at a time where the venue asks for one),
        /// when it can spare protective stops (or when keep_protective_stops = false), for as long
        /// as it takes orders; then cancel what is left by id. It also cancels orders of the account
        /// this node did not place. Every cancel is still confirmed from order state.
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

/// How many orders a problem line names; the details name every one.
const NAMED_IN_PROBLEMS: usize = 100;

impl Cancel {
    /// Whether the venue's mass cancel may be used: asked for, and it spares the stops or they
    /// may go. When asked for and refused, why.
    fn mass_cancel_use(&self, rules: &CancelRules) -> Result<bool, &'static str> {
        if !self.config.use_mass_cancel {
            return Ok(false);
        }
        match &rules.mass_cancel {
            None => Err("the venue has no mass cancel; cancelled by id"),
            Some(m) if m.spares_stops || !self.config.keep_protective_stops => Ok(true),
            Some(_) => Err("the venue's mass cancel takes protective stops too; cancelled by id"),
        }
    }

    /// One mass cancel per instrument of `orders` where the venue asks for one, else one.
    fn mass_scopes(&self, rules: &CancelRules, orders: &[&Order]) -> Vec<MassCancelScope> {
        let per_instrument = rules.mass_cancel.as_ref().is_some_and(|m| m.per_instrument);
        let instruments: Vec<Option<String>> = match per_instrument {
            true => (orders.iter().map(|o| o.instrument.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(Some)
                .collect(),
            false => vec![None],
        };
        (instruments.into_iter())
            .map(|instrument| MassCancelScope {
                keep_protective_stops: self.config.keep_protective_stops,
                instrument,
            })
            .collect()
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
        let rules = self.orders.cancel_rules();
        let mut plan = vec![format!(
            "cancel every working order by id{}{}",
            match rules.batch_size {
                0 | 1 => String::new(),
                n => format!(" (batches of up to {n} of one instrument)"),
            },
            if c.keep_protective_stops {
                ", keeping reduce-only/close-position stops"
            } else {
                ", protective stops included"
            }
        )];
        match self.mass_cancel_use(&rules) {
            Ok(true) => {
                plan.push("start with the venue's mass cancel where it spares stops".into())
            }
            Ok(false) => {}
            Err(why) => plan.push(format!(
                "use the venue's mass cancel where it spares stops: {why}"
            )),
        }
        let rate = match (c.rate_per_sec, rules.requests_per_sec) {
            (r, Some(l)) if r > 0.0 && r > l => {
                format!(", {l} per second (the venue's documented limit)")
            }
            (r, _) if r > 0.0 => format!(", {r} per second"),
            (_, Some(r)) => format!(", {r} per second (the venue's documented limit)"),
            _ => String::new(),
        };
        plan.push(format!(
            "at most {} in flight{rate}, {} retries from {} ms, up to {} rounds; report what stays open",
            c.max_in_flight, c.retries, c.backoff_ms, c.max_rounds
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
        let rules = self.orders.cancel_rules();
        // Never above the venue's documented limit: on some venues one request over it ends the
        // session, and an armed cancel-on-disconnect with it.
        let rate = match (self.config.rate_per_sec, rules.requests_per_sec) {
            (r, Some(limit)) if r > 0.0 => Some(r.min(limit)),
            (r, None) if r > 0.0 => Some(r),
            (_, limit) => limit,
        };
        let sender = Sender {
            orders: self.orders.clone(),
            backoff,
            pacer: Arc::new(Pacer::new(rate)),
            deadline,
        };
        let mut tally = Tally::default();
        let mut book = Book::default();
        let mut mass = MassLog::new(self.mass_cancel_use(&rules));
        let mut rounds = 0;
        let mut list_error: Option<String> = None;
        // The orders a mass-cancel was sent for, until the next listing says which went; each
        // with whether it was pending cancel already.
        let mut mass_targets: Vec<(String, bool)> = Vec::new();
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
                open_orders(&*self.orders)
            })
            .await;
            match listed {
                Ok(open) => book.take(open, |o| self.is_target(o)),
                Err(e) if rounds == 0 => {
                    // Nothing is known of the venue's book: the orphan count is unknown, not 0.
                    return Err(self.unlisted(&ctx, e.to_string(), attempts).await);
                }
                Err(e) => {
                    // Cannot confirm from the venue: every earlier target not confirmed gone is an orphan.
                    list_error = Some(format!("cannot list open orders to confirm: {e}"));
                    book.targets.retain(|o| !tally.gone(&o.client_id));
                }
            }
            if rounds == 0 {
                started_with = book.targets.iter().map(|o| o.client_id.clone()).collect();
            }
            let before = std::mem::take(&mut mass_targets);
            if !before.is_empty() {
                self.mass_took(before, &book, &sender, &mut tally).await;
            }
            tally.account_for(&started_with, &book.targets);
            tally.publish(&ctx, &book.targets, 0);
            ctx.partial.detail("kept_stops", &book.kept_stops);
            ctx.partial.detail("local_orders", &book.local);
            if book.targets.is_empty()
                || rounds >= self.config.max_rounds
                || Instant::now() >= deadline
                || list_error.is_some()
            {
                break;
            }
            let to_send: Vec<&Order> = (book.targets.iter())
                .filter(|o| !tally.awaiting(o))
                .collect();
            if to_send.is_empty() {
                // Every order left is being cancelled by the venue: look again in a moment.
                tokio::time::sleep_until((Instant::now() + backoff.initial).min(deadline)).await;
                continue;
            }
            rounds += 1;
            let scopes: Vec<MassCancelScope> = (self.mass_scopes(&rules, &to_send).into_iter())
                .filter(|s| mass.worth_sending(s))
                .collect();
            if scopes.is_empty() {
                let jobs = batches(&to_send, rules.batch_size);
                self.by_id(&sender, jobs, &ctx, &book.targets, &mut tally)
                    .await;
                continue;
            }
            let covered = |o: &Order| {
                (scopes.iter()).any(|s| s.instrument.as_ref().is_none_or(|i| *i == o.instrument))
            };
            mass_targets = (to_send.iter())
                .filter(|o| covered(o))
                .map(|o| (o.client_id.clone(), o.status == OrderStatus::PendingCancel))
                .collect();
            let cap = rules.mass_cancel.as_ref().and_then(|m| m.max_orders);
            let in_flight = self.config.max_in_flight.max(1);
            mass.send(&sender, scopes, in_flight, &mut tally, cap).await;
            // Confirm from order state: list again; what is left goes by id.
        }
        // Orders that left the listing without an answer that says how: their state says
        // cancelled or filled (a position moved), or they stay named unknown.
        let unread = book.with_instruments(tally.unknown.iter().cloned());
        if !unread.is_empty() {
            let in_flight = self.config.max_in_flight.max(1);
            confirm_gone(&sender, unread, in_flight, &mut tally).await;
        }
        let end = End {
            rounds,
            list_error,
            mass: mass.detail(),
        };
        match self.report(&ctx, tally, book, end) {
            (out, None) => Ok(out),
            (out, Some(message)) => Err(StepError::new(message).with_output(out)),
        }
    }
}

impl Cancel {
    /// After a mass cancel, the next listing says what it took: an order now pending cancel was
    /// accepted; each order gone from the listing is confirmed cancelled or filled from its state.
    async fn mass_took(
        &self,
        before: Vec<(String, bool)>,
        book: &Book,
        sender: &Sender,
        tally: &mut Tally,
    ) {
        let pending: BTreeSet<&str> = (book.targets.iter())
            .filter(|o| o.status == OrderStatus::PendingCancel)
            .map(|o| o.client_id.as_str())
            .collect();
        let accepted = (before.iter()).filter(|(id, was)| !was && pending.contains(id.as_str()));
        for (id, _) in accepted {
            tally.accepted.insert(id.clone());
        }
        let listed: BTreeSet<&str> = book.targets.iter().map(|o| o.client_id.as_str()).collect();
        let gone = (before.into_iter())
            .map(|(id, _)| id)
            .filter(|id| !listed.contains(id.as_str()));
        let gone = book.with_instruments(gone);
        let in_flight = self.config.max_in_flight.max(1);
        confirm_gone(sender, gone, in_flight, tally).await;
    }

    /// One round by id: each job (one order, or a batch of one instrument's) a request,
    /// `max_in_flight` at a time, until the work deadline; the counts published as answers come.
    async fn by_id(
        &self,
        sender: &Sender,
        jobs: Vec<Vec<String>>,
        ctx: &StepContext,
        targets: &[Order],
        tally: &mut Tally,
    ) {
        let in_flight = self.config.max_in_flight.max(1);
        // Orders whose request is out, and answers so far.
        let out = AtomicUsize::new(0);
        let (mut done, gone_before) = (0usize, tally.gone_count());
        let send = |mut ids: Vec<String>| {
            out.fetch_add(ids.len(), Ordering::Relaxed);
            let sender = sender.clone();
            async move {
                let n = ids.len();
                let answers = match n {
                    1 => sender.one(ids.swap_remove(0)).await,
                    _ => sender.batch(ids).await,
                };
                (n, answers)
            }
        };
        let answer = |(n, answers): (usize, Vec<Answer>)| {
            out.fetch_sub(n, Ordering::Relaxed);
            for (id, fate, attempts) in answers {
                tally.record(id, fate, attempts);
                done += 1;
                if done % PUBLISH_EVERY == 0 {
                    tally.publish(ctx, targets, out.load(Ordering::Relaxed));
                }
            }
            // Every target was working when listed; those not confirmed gone since, less the
            // cancels in flight, are known still working.
            let gone = tally.gone_count() - gone_before;
            let in_flight = out.load(Ordering::Relaxed);
            tally.publish_counts(ctx, targets.len().saturating_sub(gone + in_flight));
        };
        // No new request past the work deadline: what is left is reported, not started.
        bounded(jobs, in_flight, sender.deadline, send, answer).await;
        tally.publish(ctx, targets, 0);
    }

    /// The step's report from what it learned, and why it failed if it did: orders left working.
    fn report(
        &self,
        ctx: &StepContext,
        mut tally: Tally,
        book: Book,
        end: End,
    ) -> (StepOutput, Option<String>) {
        let End {
            rounds,
            list_error,
            mass,
        } = end;
        // An order the last listing shows pending cancel, after the cancel this step sent: the
        // venue accepted it and has not done it yet. It cancels or fills; it is not left working.
        let (pending, targets): (Vec<Order>, Vec<Order>) = match list_error {
            None => (book.targets.into_iter()).partition(|o| tally.awaiting(o)),
            Some(_) => (Vec::new(), book.targets),
        };
        let pending: Vec<&str> = pending.iter().map(|o| o.client_id.as_str()).collect();
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
            .detail("cancel_pending", &pending)
            .detail("orphaned", &orphans)
            .detail("kept_stops", &book.kept_stops)
            .detail("local_orders", &book.local)
            .detail("rounds", rounds)
            .detail("requests", tally.requests)
            .detail("mass_cancel", mass)
            .count(Counter::OrdersCancelled, tally.cancelled.len() as u64)
            .summary(format!(
                "cancelled {}, {} filled during the shutdown{}{}, kept {}{}, {} {}",
                tally.cancelled.len(),
                tally.already_filled.len(),
                match tally.unknown.len() {
                    0 => String::new(),
                    n => format!(", {n} gone without an answer that says how"),
                },
                match pending.len() {
                    0 => String::new(),
                    n => format!(", {n} pending cancel at the venue"),
                },
                words::count(book.kept_stops.len(), "stop"),
                match book.local.len() {
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
        if !pending.is_empty() {
            out = out.problem(format!(
                "{} pending cancel at the venue when last listed: the venue accepted the cancel and had not done it (see cancel_pending)",
                words::count(pending.len(), "order")
            ));
        }
        if orphans.is_empty() {
            return (out, None);
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
        (out, Some(message))
    }
}

/// How the rounds ended, for the report.
struct End {
    rounds: u32,
    /// The last listing failed: what is left is not confirmed gone.
    list_error: Option<String>,
    mass: serde_json::Value,
}

/// What the listings said: the targets of the latest (the listing itself is not kept: a book of
/// 10k orders would otherwise be held two or three times over), and what the step leaves alone.
#[derive(Default)]
struct Book {
    targets: Vec<Order>,
    kept_stops: BTreeSet<String>,
    /// Orders held only by this process: not at the venue, gone when the process exits.
    local: BTreeSet<String>,
    /// Each target's instrument, from the listing it was first seen in.
    instrument_of: BTreeMap<String, String>,
}

impl Book {
    /// Take a listing: its targets replace the last ones.
    fn take(&mut self, open: Vec<Order>, is_target: impl Fn(&Order) -> bool) {
        self.targets.clear();
        for o in open {
            if is_target(&o) {
                (self.instrument_of.entry(o.client_id.clone()))
                    .or_insert_with(|| o.instrument.clone());
                self.targets.push(o);
            } else if o.status.is_live() && o.residence == Residence::Local {
                self.local.insert(o.client_id);
            } else if o.status.is_live() {
                self.kept_stops.insert(o.client_id);
            }
        }
    }

    /// Each client id with its instrument (for the reads by instrument).
    fn with_instruments(&self, ids: impl Iterator<Item = String>) -> Vec<(String, String)> {
        ids.map(|id| {
            let instrument = self.instrument_of.get(&id).cloned().unwrap_or_default();
            (id, instrument)
        })
        .collect()
    }
}

/// The requests of one round by id: batches of up to `size` orders of one instrument, or one
/// order each.
fn batches(orders: &[&Order], size: usize) -> Vec<Vec<String>> {
    if size <= 1 {
        return orders.iter().map(|o| vec![o.client_id.clone()]).collect();
    }
    let mut by_instrument: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in orders {
        by_instrument
            .entry(o.instrument.as_str())
            .or_default()
            .push(o.client_id.clone());
    }
    (by_instrument.into_values())
        .flat_map(|ids| ids.chunks(size).map(<[String]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// The mass cancels sent, for the report, and where another is worth sending.
struct MassLog {
    /// The mass cancel may be used.
    allowed: bool,
    /// The scopes (instruments) a mass cancel went to, each with whether it took as many orders as
    /// one call may: then more may be left for another.
    sent: BTreeMap<Option<String>, bool>,
    refused: Option<&'static str>,
    calls: usize,
    acknowledged: usize,
    errors: Vec<String>,
}

impl MassLog {
    fn new(allowed: Result<bool, &'static str>) -> Self {
        Self {
            allowed: allowed == Ok(true),
            sent: BTreeMap::new(),
            refused: allowed.err(),
            calls: 0,
            acknowledged: 0,
            errors: Vec::new(),
        }
    }

    /// Whether to send a mass cancel for `scope`: allowed, and never sent there, or the last one
    /// took as many orders as a call may. What a mass cancel left without a cap, it spares: those
    /// go by id.
    fn worth_sending(&self, scope: &MassCancelScope) -> bool {
        self.allowed
            && self
                .sent
                .get(&scope.instrument)
                .is_none_or(|capped| *capped)
    }

    /// Send the mass cancels, `in_flight` at a time; each counts as a request.
    async fn send(
        &mut self,
        sender: &Sender,
        scopes: Vec<MassCancelScope>,
        in_flight: usize,
        tally: &mut Tally,
        cap: Option<usize>,
    ) {
        let mass = |scope: MassCancelScope| {
            let sender = sender.clone();
            async move { (sender.mass(&scope).await, scope.instrument) }
        };
        let answer = |(ack, instrument): (Result<MassCancelAck, RoleError>, Option<String>)| {
            self.calls += 1;
            tally.requests += 1;
            let capped = matches!((&ack, cap), (Ok(a), Some(max)) if a.count >= max);
            self.sent.insert(instrument.clone(), capped);
            match ack {
                Ok(a) => self.acknowledged += a.count,
                Err(e) if self.errors.len() < NAMED_IN_PROBLEMS => {
                    self.errors.push(match instrument {
                        Some(i) => format!("{i}: {e}"),
                        None => e.to_string(),
                    })
                }
                Err(_) => {}
            }
        };
        bounded(scopes, in_flight, sender.deadline, mass, answer).await;
    }

    fn detail(&self) -> serde_json::Value {
        match (self.refused, self.calls) {
            (Some(why), _) => serde_json::json!({ "error": why }),
            (None, 0) => serde_json::Value::Null,
            (None, calls) => serde_json::json!({
                "calls": calls, "acknowledged": self.acknowledged, "errors": self.errors,
            }),
        }
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
