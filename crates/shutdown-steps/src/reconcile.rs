//! `reconcile`: at start, compare the venue with what the node last knew (its last snapshot) and
//! handle every difference by its policy before the trading gate opens.
//!
//! Differences: orders that filled or vanished while the node was away, protective stops that are
//! gone (a dead-man's switch fired, a cancel-on-disconnect, a stop held by the process that died
//! with it), working orders the node never knew (placed by hand), positions that changed, opened or
//! closed. A difference whose policy is `halt`, or whose remedy failed, or whose state the venue
//! would not tell, is a problem of the step: the start gate ends degraded and `resume` keeps the
//! gate halted.

use shutdown_core::StepDefaults;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shutdown_core::domain::{
    LastKnown, Order, OrderStatus, Position, PositionSide, Residence, Side,
};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::{OrderGateway, PositionBook};
use shutdown_core::retry::{retry, work_deadline};
use shutdown_core::{Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};
use tokio::time::Instant;

use crate::coverage::{CoverageRules, coverage};
use crate::venue::{self, Action, BACKOFF, Pacer, Remedy, read_book};
use crate::words;

/// What to do about a difference in orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPolicy {
    /// Name it in the report; the gate may open.
    Report,
    /// Keep the trading gate halted until an operator has looked.
    Halt,
}

impl shutdown_core::OptionType for OrderPolicy {
    const NAME: &'static str = "\"report\" | \"halt\"";
}

/// What to do about a difference that touches a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionPolicy {
    /// Name it in the report; the gate may open.
    Report,
    /// Place a reduce-only stop for what the position now lacks.
    ReplaceStop,
    /// Exit the position with a reduce-only market order.
    Flatten,
    /// Keep the trading gate halted until an operator has looked.
    Halt,
}

impl shutdown_core::OptionType for PositionPolicy {
    const NAME: &'static str = "\"report\" | \"replace_stop\" | \"flatten\" | \"halt\"";
}

shutdown_core::step_options! {
    /// Options of `reconcile`.
    pub struct ReconcileConfig {
        /// An order the node knew as working filled (wholly or partly) while it was away.
        pub on_order_filled: OrderPolicy = OrderPolicy::Report,
        /// An order the node knew as working is cancelled, expired or unknown at the venue (not a
        /// protective stop: see on_stop_gone).
        pub on_order_vanished: OrderPolicy = OrderPolicy::Report,
        /// A working order at the venue the node did not hold as working: never known (placed by
        /// hand, or by another process), known as done, or being cancelled when the node stopped.
        pub on_unknown_order: OrderPolicy = OrderPolicy::Halt,
        /// A protective stop the node knew is no longer resting (a dead-man's switch or
        /// cancel-on-disconnect wiped it, or it was held by the process): report it, place a stop
        /// again for what its position now lacks (at the old trigger when it is still on the loss
        /// side, else stop_distance_pct from the mark), exit the position, or keep the gate halted.
        pub on_stop_gone: PositionPolicy = PositionPolicy::ReplaceStop,
        /// A position is not what the node knew (size or side changed, opened or closed): report
        /// it, place a stop for what it now lacks, exit it, or keep the gate halted.
        pub on_position_changed: PositionPolicy = PositionPolicy::Report,
        /// Distance from the mark price, in percent, of a stop placed when the old trigger cannot
        /// be used.
        pub stop_distance_pct: f64 = 1.0,
    }
}

impl StepConfig for ReconcileConfig {
    fn validate(&self) -> Vec<OptionError> {
        let pct = self.stop_distance_pct;
        if pct > 0.0 && pct < 100.0 {
            return Vec::new();
        }
        vec![OptionError {
            key: Some("stop_distance_pct".into()),
            message: format!("must be above 0 and below 100, found {pct:?}"),
        }]
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Reconcile {
            config: self.clone(),
            orders: node.orders()?,
            positions: node.positions()?,
        }))
    }
}

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// A working order filled, wholly or partly.
    OrderFilled,
    /// A working order is cancelled, expired or unknown at the venue.
    OrderVanished,
    /// A protective stop is no longer resting.
    StopGone,
    /// A working order the node did not hold as working (never known, known as done, or being
    /// cancelled when it stopped).
    UnknownOrder,
    /// A position changed size or side, opened or closed.
    PositionChanged,
    /// The venue would not say what became of an order.
    StateUnknown,
}

/// One difference between what the node knew and what the venue holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// What kind.
    pub kind: DiffKind,
    /// The order's client id or the position's id.
    pub id: String,
    /// Instrument.
    pub instrument: String,
    /// As the node knew it.
    pub was: String,
    /// As the venue has it now.
    pub now: String,
    /// The policy applied (`report`, `replace_stop`, `flatten`, `halt`).
    pub policy: String,
    /// What was done, if anything was.
    pub action: Option<String>,
    /// Whether it is handled; one that is not keeps the trading gate halted.
    pub handled: bool,
}

/// The `reconcile` step.
pub struct Reconcile {
    config: ReconcileConfig,
    orders: Arc<dyn OrderGateway>,
    positions: Arc<dyn PositionBook>,
}

/// Order lookups sent at once.
const LOOKUPS_IN_FLIGHT: usize = 8;

fn describe_order(o: &Order) -> String {
    let what = if o.is_protective() {
        format!("{:?} stop", o.side).to_lowercase()
    } else {
        format!("{:?} {:?}", o.side, o.order_type).to_lowercase()
    };
    if o.close_position {
        return format!(
            "{what} closing the whole position ({})",
            serde_plain(o.status)
        );
    }
    format!(
        "{what} {} of {} ({})",
        o.remaining(),
        o.quantity,
        serde_plain(o.status)
    )
}

fn describe_position(p: Option<&Position>) -> String {
    match p {
        Some(p) => match p.side {
            Side::Buy => format!("long {}", p.quantity),
            Side::Sell => format!("short {}", p.quantity),
        },
        None => "flat".into(),
    }
}

fn key(p: &Position) -> (String, PositionSide) {
    (p.instrument.clone(), p.position_side)
}

/// Whether the node held this order as working: live, and not being cancelled.
fn held_working(o: &Order) -> bool {
    o.status.is_live() && o.status != OrderStatus::PendingCancel
}

/// A position-touching difference: the key of the position it concerns and the trigger to reuse.
struct Wanted {
    policy: PositionPolicy,
    trigger: Option<Decimal>,
}

impl Reconcile {
    /// Positions and open orders, freshly read.
    async fn read(&self, deadline: Instant) -> Result<(Vec<Position>, Vec<Order>), StepError> {
        read_book(&*self.positions, &*self.orders, deadline).await
    }

    /// What became of the known working orders missing from the open orders.
    async fn look_up(
        &self,
        missing: &[&Order],
        deadline: Instant,
    ) -> Vec<Result<Option<Order>, String>> {
        let mut found = Vec::with_capacity(missing.len());
        for batch in missing.chunks(LOOKUPS_IN_FLIGHT) {
            if Instant::now() >= deadline {
                found.extend(
                    batch
                        .iter()
                        .map(|_| Err("not looked up before the step's deadline".to_owned())),
                );
                continue;
            }
            let done = futures_util::future::join_all(batch.iter().map(|o| async {
                if o.residence == Residence::Local {
                    // Held by the process that stopped: gone with it, the venue never had it.
                    return Ok(None);
                }
                let (r, _) = retry(&o.client_id, BACKOFF, deadline, || {
                    self.orders.order(&o.client_id)
                })
                .await;
                r.map_err(|e| e.to_string())
            }))
            .await;
            found.extend(done);
        }
        found
    }

    /// Every difference in orders, with the positions they touch.
    fn order_differences(
        &self,
        known: &[&Order],
        open: &HashMap<&str, &Order>,
        looked_up: &HashMap<&str, Result<Option<Order>, String>>,
        wanted: &mut BTreeMap<(String, PositionSide, Side), Wanted>,
    ) -> Vec<Difference> {
        let mut diffs = Vec::new();
        for o in known {
            let (kind, now) = match open.get(o.client_id.as_str()) {
                // Being cancelled when the node stopped, and working still: an unknown order.
                Some(_) if !held_working(o) => continue,
                Some(v) if v.filled_quantity > o.filled_quantity => {
                    (DiffKind::OrderFilled, describe_order(v))
                }
                Some(_) => continue,
                None => match looked_up.get(o.client_id.as_str()) {
                    Some(Ok(Some(v))) if v.status == OrderStatus::Filled => {
                        (DiffKind::OrderFilled, describe_order(v))
                    }
                    Some(Ok(Some(v))) if v.status.is_live() => continue,
                    Some(Ok(v)) => {
                        let now = match (v, o.residence) {
                            (_, Residence::Local) => "gone with the process that held it".into(),
                            (Some(v), _) => describe_order(v),
                            (None, _) => "not at the venue".into(),
                        };
                        match o.is_protective() {
                            true => (DiffKind::StopGone, now),
                            false => (DiffKind::OrderVanished, now),
                        }
                    }
                    Some(Err(e)) => (DiffKind::StateUnknown, format!("cannot tell: {e}")),
                    None => (DiffKind::StateUnknown, "not looked up".into()),
                },
            };
            let policy = match kind {
                DiffKind::OrderFilled => serde_plain(self.config.on_order_filled),
                DiffKind::OrderVanished => serde_plain(self.config.on_order_vanished),
                DiffKind::StateUnknown => "halt".to_owned(),
                _ => serde_plain(self.config.on_stop_gone),
            };
            if kind == DiffKind::StopGone {
                // The stop protected the opposite side's position on its instrument.
                let slot = (o.instrument.clone(), o.position_side, o.side.opposite());
                let w = wanted.entry(slot).or_insert(Wanted {
                    policy: self.config.on_stop_gone,
                    trigger: None,
                });
                w.policy = stronger(w.policy, self.config.on_stop_gone);
                w.trigger = w.trigger.or(o.trigger_price);
            }
            diffs.push(Difference {
                kind,
                id: o.client_id.clone(),
                instrument: o.instrument.clone(),
                was: describe_order(o),
                now,
                handled: policy == "report",
                policy,
                action: None,
            });
        }
        diffs
    }
}

/// Of two policies for one position, the one that does more: flatten over a stop over a report.
/// `halt` is kept per difference, not per position.
fn stronger(a: PositionPolicy, b: PositionPolicy) -> PositionPolicy {
    let rank = |p| match p {
        PositionPolicy::Report | PositionPolicy::Halt => 0,
        PositionPolicy::ReplaceStop => 1,
        PositionPolicy::Flatten => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The step's report so far.
fn publish(ctx: &StepContext, diffs: &[Difference]) {
    ctx.partial.detail("differences", diffs);
    ctx.partial
        .detail("unhandled", diffs.iter().filter(|d| !d.handled).count());
}

#[async_trait]
impl ShutdownStep for Reconcile {
    fn kind(&self) -> &'static str {
        "reconcile"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn if_not_done(&self) -> Option<String> {
        Some("the venue was not compared with the last snapshot: what changed while the node was down is unknown".into())
    }

    fn plan(&self) -> Vec<String> {
        let c = &self.config;
        vec![
            "read positions and open orders at the venue, and ask after each working order of the last snapshot that is no longer open".into(),
            format!(
                "filled while away: {}; vanished: {}; unknown to the node: {}; stop gone: {}; position changed: {}",
                serde_plain(c.on_order_filled),
                serde_plain(c.on_order_vanished),
                serde_plain(c.on_unknown_order),
                serde_plain(c.on_stop_gone),
                serde_plain(c.on_position_changed)
            ),
            "an order the venue will not account for keeps the gate halted".into(),
        ]
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let Some(last) = ctx.extension::<LastKnown>() else {
            return Err(StepError::new(
                "nothing to compare the venue with: the node handed over no last snapshot (LastKnown; an empty one on a first start)",
            ));
        };
        let deadline = work_deadline(ctx.deadline);
        let start = Instant::now();
        let (positions, open_orders) = self.read(deadline).await?;
        let known: Vec<&Order> = last.orders.iter().filter(|o| o.status.is_live()).collect();
        let open: HashMap<&str, &Order> = open_orders
            .iter()
            .map(|o| (o.client_id.as_str(), o))
            .collect();
        let missing: Vec<&Order> = (known.iter().copied())
            .filter(|o| !open.contains_key(o.client_id.as_str()))
            .collect();
        // Lookups get two thirds of the time; the rest is for the remedies.
        let lookup_deadline = start + deadline.saturating_duration_since(start) * 2 / 3;
        let found = self.look_up(&missing, lookup_deadline).await;
        let looked_up: HashMap<&str, Result<Option<Order>, String>> = missing
            .iter()
            .map(|o| o.client_id.as_str())
            .zip(found)
            .collect();
        let mut wanted = BTreeMap::new();
        let mut diffs = self.order_differences(&known, &open, &looked_up, &mut wanted);
        // Working at the venue, and not working as the node knew it: never known, known as done,
        // or being cancelled when the node stopped (a cancel lost in flight).
        let as_known: HashMap<&str, &Order> = last
            .orders
            .iter()
            .map(|o| (o.client_id.as_str(), o))
            .collect();
        let mut unknown: Vec<(&Order, String)> = (open_orders.iter())
            .filter_map(|o| match as_known.get(o.client_id.as_str()) {
                None => Some((o, "never known to the node".to_owned())),
                Some(k) if held_working(k) => None,
                Some(k) => Some((o, format!("{} as the node knew it", describe_order(k)))),
            })
            .collect();
        unknown.sort_by(|a, b| a.0.client_id.cmp(&b.0.client_id));
        for (o, was) in unknown {
            diffs.push(Difference {
                kind: DiffKind::UnknownOrder,
                id: o.client_id.clone(),
                instrument: o.instrument.clone(),
                was,
                now: describe_order(o),
                policy: serde_plain(self.config.on_unknown_order),
                action: None,
                handled: self.config.on_unknown_order == OrderPolicy::Report,
            });
        }
        // Positions, by instrument and position side.
        let before: BTreeMap<(String, PositionSide), &Position> =
            last.positions.iter().map(|p| (key(p), p)).collect();
        let after: BTreeMap<(String, PositionSide), &Position> =
            positions.iter().map(|p| (key(p), p)).collect();
        let mut keys: Vec<&(String, PositionSide)> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        let policy = self.config.on_position_changed;
        for k in keys {
            let (was, now) = (before.get(k).copied(), after.get(k).copied());
            let same = match (was, now) {
                (Some(a), Some(b)) => a.side == b.side && a.quantity == b.quantity,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(p) = now {
                let w = wanted.entry((k.0.clone(), k.1, p.side)).or_insert(Wanted {
                    policy,
                    trigger: None,
                });
                w.policy = stronger(w.policy, policy);
            }
            diffs.push(Difference {
                kind: DiffKind::PositionChanged,
                id: now.or(was).map(|p| p.id.clone()).unwrap_or_default(),
                instrument: k.0.clone(),
                was: describe_position(was),
                now: describe_position(now),
                policy: serde_plain(policy),
                action: None,
                handled: policy == PositionPolicy::Report
                    || now.is_none() && policy != PositionPolicy::Halt,
            });
        }
        publish(&ctx, &diffs);
        // Remedies, one per position, against the venue's orders as they are now, at the venue's
        // documented rate.
        let rules = CoverageRules::default();
        let pacer = Pacer::new(self.orders.cancel_rules().requests_per_sec);
        let mut done: HashMap<(String, PositionSide, Side), Remedy> = HashMap::new();
        for ((instrument, position_side, side), w) in &wanted {
            let action = match w.policy {
                PositionPolicy::ReplaceStop => Action::PlaceStop {
                    distance_pct: self.config.stop_distance_pct,
                    trigger: w.trigger,
                },
                PositionPolicy::Flatten => Action::Flatten,
                PositionPolicy::Report | PositionPolicy::Halt => continue,
            };
            let slot = (instrument.clone(), *position_side, *side);
            let Some(p) = positions.iter().find(|p| {
                &p.instrument == instrument && p.position_side == *position_side && p.side == *side
            }) else {
                done.insert(
                    slot,
                    Remedy::nothing("nothing to do: no such position at the venue".into()),
                );
                continue;
            };
            let c = coverage(p, p.mark_price, &open_orders, &rules);
            let remedy = match (action, c.protected) {
                (Action::PlaceStop { .. }, true) => {
                    Remedy::nothing(format!("nothing to do: covered by {}", c.stops.join(", ")))
                }
                _ => {
                    venue::send(
                        &*self.orders,
                        &pacer,
                        action,
                        p,
                        p.quantity - c.covered,
                        venue::id_prefix(&ctx),
                        deadline,
                    )
                    .await
                }
            };
            done.insert(slot, remedy);
        }
        for d in &mut diffs {
            let slot = match d.kind {
                DiffKind::StopGone => last
                    .orders
                    .iter()
                    .find(|o| o.client_id == d.id)
                    .map(|o| (o.instrument.clone(), o.position_side, o.side.opposite())),
                DiffKind::PositionChanged => positions
                    .iter()
                    .find(|p| p.id == d.id)
                    .map(|p| (key(p).0, p.position_side, p.side)),
                _ => None,
            };
            let Some(r) = slot.and_then(|s| done.get(&s)) else {
                continue;
            };
            d.action = Some(r.text.clone());
            // Only a difference whose own policy asked for the remedy is settled by it: one under
            // `halt` still waits for an operator, one under `report` was handled by being named.
            if matches!(d.policy.as_str(), "replace_stop" | "flatten") {
                d.handled = r.settled();
            }
        }
        publish(&ctx, &diffs);
        let unhandled = diffs.iter().filter(|d| !d.handled).count();
        let acted = diffs.iter().filter(|d| d.action.is_some()).count();
        let mut out = StepOutput::new()
            .summary(match diffs.len() {
                0 => "the venue matches the last snapshot".to_owned(),
                n => format!(
                    "{}: {acted} acted on, {unhandled} left for an operator",
                    words::count(n, "difference")
                ),
            })
            .detail("differences", &diffs)
            .detail("unhandled", diffs.iter().filter(|d| !d.handled).count());
        for d in diffs.iter().filter(|d| !d.handled) {
            let kind = serde_plain(d.kind);
            let why = match (&d.action, d.policy.as_str()) {
                (Some(a), _) => a.clone(),
                (None, "halt") => "policy halt".into(),
                (None, _) => "not handled".into(),
            };
            out = out.problem(format!(
                "{kind} {} ({}: {} -> {}): {why}; the gate stays halted",
                d.id, d.instrument, d.was, d.now
            ));
        }
        Ok(out)
    }
}

/// A unit enum's serde name.
fn serde_plain(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(10.0, true);

shutdown_core::register_step! {
    kind: "reconcile",
    summary: "At start: compare the venue with the last snapshot (fills, vanished orders, stops gone, orders never known, changed positions) and handle each difference by its policy.",
    config: ReconcileConfig,
    requires: [OrderGateway, PositionBook],
    defaults: DEFAULTS,
}
