//! What `cancel` learns of each order, kept until the report: cancelled, filled, unknown, the
//! attempts and errors, and the counts published as it goes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use shutdown_core::domain::{Order, OrderStatus};
use shutdown_core::{Counter, StepContext};

/// Cancels answered between two publications of the orders still working (each costs a pass over
/// the listing); the counts are published at every answer.
pub(super) const PUBLISH_EVERY: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) cancelled: BTreeSet<String>,
    pub(super) already_filled: BTreeSet<String>,
    /// What each order in `already_filled` filled, as its state last read said.
    pub(super) fills: BTreeMap<String, Fill>,
    pub(super) unknown: BTreeSet<String>,
    /// Orders whose cancel the venue accepted without saying it is done.
    pub(super) accepted: BTreeSet<String>,
    pub(super) attempts: BTreeMap<String, u32>,
    pub(super) errors: BTreeMap<String, String>,
    pub(super) requests: u64,
}

impl Tally {
    pub(super) fn record(&mut self, id: String, fate: Result<Fate, String>, attempts: u32) {
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
            Ok(Fate::Pending) => {
                self.accepted.insert(id);
            }
            Err(e) => {
                self.errors.insert(id, e);
            }
        }
    }
}

impl Tally {
    /// Whether the venue accepted a cancel of `o` and, as listed, has not done it yet: not sent
    /// again, and not left working.
    pub(super) fn awaiting(&self, o: &Order) -> bool {
        o.status == OrderStatus::PendingCancel && self.accepted.contains(&o.client_id)
    }

    /// Whether the venue confirmed the order gone (cancelled or filled).
    pub(super) fn gone(&self, id: &str) -> bool {
        self.cancelled.contains(id) || self.already_filled.contains(id)
    }

    /// After a listing: each order of the first listing that left it without an answer that says
    /// how (its cancel failed, or was accepted and not yet confirmed) is unknown until its state is
    /// read; one listed again is not.
    pub(super) fn account_for(&mut self, started_with: &BTreeSet<String>, targets: &[Order]) {
        let listed: BTreeSet<&str> = targets.iter().map(|o| o.client_id.as_str()).collect();
        self.unknown.retain(|id| !listed.contains(id.as_str()));
        let gone = (started_with.iter())
            .filter(|id| !listed.contains(id.as_str()) && !self.gone(id))
            .cloned()
            .collect::<Vec<_>>();
        self.unknown.extend(gone);
    }

    /// Publish the counts so far: orders cancelled, and `working`, those known still working.
    pub(super) fn publish_counts(&self, ctx: &StepContext, working: usize) {
        ctx.partial
            .count(Counter::OrdersCancelled, self.cancelled.len() as u64);
        ctx.partial.count(Counter::OrdersOrphaned, working as u64);
    }

    /// How many orders the venue confirmed gone.
    pub(super) fn gone_count(&self) -> usize {
        self.cancelled.len() + self.already_filled.len()
    }

    /// Publish what is known so far, for a report of a step cut short: the orders still working
    /// as last listed (less those confirmed gone since), and the counts, as lower bounds: an order
    /// with a cancel among the `in_flight` is counted neither cancelled nor still working.
    pub(super) fn publish(&self, ctx: &StepContext, targets: &[Order], in_flight: usize) {
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

/// What became of one order after its cancel.
pub(super) enum Fate {
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
    pub(super) fn of(o: &Order) -> Fill {
        Fill {
            client_id: o.client_id.clone(),
            instrument: o.instrument.clone(),
            side: o.side,
            quantity: o.filled_quantity,
        }
    }
}
