//! The oracle: a shutdown report checked against the paper venue's truth as it will stand after the
//! process exits (an armed dead-man's switch fires, stops held only by the process vanish).
//!
//! The protection rule here is written from the venue rules (docs/venues.md), apart from the `verify`
//! step's, so that a mistake in one is caught by the other:
//! a position is protected when opposite-side, reduce-only (or close-position) stop orders, working at
//! the venue (new, partly filled, or triggered: not pending, not rejected), with a positive trigger
//! on the loss side of the mark (and, for a stop-limit, a limit that lets it fill), cover its
//! quantity; a stop's remaining quantity is allocated once, to positions in id order, and a
//! close-position stop covers one position whole.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use shutdown_core::domain::{
    Order, OrderStatus, OrderType, Position, PositionSide, Residence, Side,
};
use shutdown_core::{Counter, Report};

use crate::venue::PaperNode;
use crate::venue::downtime::Change;

/// What the venue holds once the process has exited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// Positions without protection, by id.
    pub unprotected: BTreeSet<String>,
    /// Orders still working (they can fill), by client id.
    pub working: BTreeSet<String>,
    /// Working orders that are not protective stops: left behind by the shutdown, by client id.
    pub orphaned: BTreeSet<String>,
    /// Armed dead-man's switches that fire when the process exits, by connection id.
    pub switches_firing: Vec<String>,
}

impl Truth {
    /// Whether anything is at risk once the process has exited.
    pub fn at_risk(&self) -> bool {
        !self.unprotected.is_empty() || !self.orphaned.is_empty()
    }
}

/// The audit of one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    /// The report holds no claim the venue contradicts.
    pub ok: bool,
    /// Each claim the venue contradicts, in words.
    pub discrepancies: Vec<String>,
    /// The venue's truth after exit.
    pub truth: Truth,
}

impl std::fmt::Display for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok {
            return f.write_str("audit: report matches the venue");
        }
        write!(
            f,
            "audit: {} discrepancies with the venue",
            self.discrepancies.len()
        )?;
        for d in &self.discrepancies {
            write!(f, "\n  - {d}")?;
        }
        Ok(())
    }
}

/// Whether `o` is a stop that can protect a position on the `side` opposite to its own at `mark`.
fn can_protect(o: &Order, mark: Decimal) -> bool {
    let working = matches!(
        o.status,
        OrderStatus::New | OrderStatus::PartiallyFilled | OrderStatus::Triggered
    );
    let stop = matches!(
        o.order_type,
        OrderType::StopMarket | OrderType::StopLimit | OrderType::TrailingStop
    );
    let loss_side = match (o.trigger_price, o.side) {
        // A sell stop protects a long: it must trigger below the mark, and above zero.
        (Some(t), Side::Sell) => t > Decimal::ZERO && t < mark,
        (Some(t), Side::Buy) => t > Decimal::ZERO && t > mark,
        // A trailing stop without a trigger follows the price at its distance.
        (None, _) => o.order_type == OrderType::TrailingStop,
    };
    let fills = match (o.order_type, o.limit_price, o.trigger_price) {
        (OrderType::StopLimit, Some(limit), Some(t)) => match o.side {
            Side::Sell => limit <= t,
            Side::Buy => limit >= t,
        },
        (OrderType::StopLimit, _, _) => false,
        _ => true,
    };
    working
        && stop
        && (o.reduce_only || o.close_position)
        && o.residence == Residence::Venue
        && loss_side
        && fills
        && (o.close_position || o.quantity - o.filled_quantity > Decimal::ZERO)
}

/// The positions no allocation of the stops protects.
pub(crate) fn unprotected(positions: &[Position], orders: &[Order]) -> BTreeSet<String> {
    let mut positions: Vec<&Position> = positions.iter().collect();
    positions.sort_by(|a, b| a.id.cmp(&b.id));
    let mut stops: Vec<&Order> = orders.iter().collect();
    stops.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    // What is left of each stop for the positions after this one.
    let mut left: BTreeMap<&str, Decimal> = stops
        .iter()
        .map(|o| (o.client_id.as_str(), o.quantity - o.filled_quantity))
        .collect();
    let mut used_whole: BTreeSet<&str> = BTreeSet::new();
    let mut out = BTreeSet::new();
    for p in positions {
        let fits = |o: &Order| {
            o.instrument == p.instrument
                && (p.position_side == PositionSide::Both || o.position_side == p.position_side)
                && o.side == p.side.opposite()
                && can_protect(o, p.mark_price)
        };
        let eligible: Vec<&Order> = stops.iter().copied().filter(|o| fits(o)).collect();
        let whole = (eligible.iter())
            .find(|o| o.close_position && !used_whole.contains(o.client_id.as_str()));
        if let Some(o) = whole {
            used_whole.insert(o.client_id.as_str());
            continue;
        }
        let mut need = p.quantity;
        for o in eligible.iter().filter(|o| !o.close_position) {
            let Some(have) = left.get_mut(o.client_id.as_str()) else {
                continue;
            };
            let take = (*have).min(need);
            *have -= take;
            need -= take;
            if need <= Decimal::ZERO {
                break;
            }
        }
        if need > Decimal::ZERO {
            out.insert(p.id.clone());
        }
    }
    out
}

/// Every string in a JSON value: the ids a report names.
fn strings(value: &serde_json::Value) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => {
                out.insert(s.as_str());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    out
}

impl PaperNode {
    /// The venue's truth as it will stand after the process exits.
    pub fn truth_after_exit(&self) -> Truth {
        // What the venue acknowledged it does, whether or not the process is still there.
        self.settle_all();
        let switches_firing = self.switches_left_armed();
        let before_exit: Vec<Order> = (self.all_orders().into_iter())
            .filter(|o| o.status.is_live() && o.residence == Residence::Venue)
            .collect();
        let orphaned = (before_exit.iter())
            .filter(|o| !o.is_protective())
            .map(|o| o.client_id.clone())
            .collect();
        // An armed switch cancels every resting order when this process's connection drops.
        let after_exit: Vec<Order> = match switches_firing.is_empty() {
            true => before_exit,
            false => Vec::new(),
        };
        Truth {
            unprotected: unprotected(&self.open_positions(), &after_exit),
            working: after_exit.iter().map(|o| o.client_id.clone()).collect(),
            orphaned,
            switches_firing,
        }
    }

    /// Check `report` against the venue: what it calls protected is protected after exit, what
    /// is still working is named, its counts are the truth, and its exit code is not 0 while
    /// something is at risk.
    pub fn audit(&self, report: &Report) -> Audit {
        let truth = self.truth_after_exit();
        let mut discrepancies = Vec::new();
        let json = serde_json::to_value(report).unwrap_or_default();
        let named = strings(&json);

        // Positions the report calls protected: the last verdict each position got, unless a later
        // step said it is unprotected at exit.
        let mut called_protected: BTreeMap<String, bool> = BTreeMap::new();
        for step in &report.steps {
            if let Some(list) = step.details.get("positions").and_then(|v| v.as_array()) {
                for p in list {
                    if let (Some(id), Some(protected)) =
                        (p["id"].as_str(), p["protected"].as_bool())
                    {
                        called_protected.insert(id.to_owned(), protected);
                    }
                }
            }
            if let Some(list) = step
                .details
                .get("unprotected_at_exit")
                .and_then(|v| v.as_array())
            {
                for id in list.iter().filter_map(|v| v.as_str()) {
                    called_protected.insert(id.to_owned(), false);
                }
            }
        }
        // When the report's last word on protection is "unknown", it claims no verdict.
        let judged = !report.count(Counter::PositionsUnprotected).unknown;
        for id in truth.unprotected.iter().filter(|_| judged) {
            if called_protected.get(id) == Some(&true) {
                discrepancies.push(format!(
                    "position {id} is called protected, but no stop will rest at the venue for it after exit"
                ));
            }
        }
        // A report that says it does not know what is left working claims no list of it.
        let listed = !report.count(Counter::OrdersOrphaned).unknown;
        for order in truth.working.iter().filter(|_| listed) {
            if !named.contains(order.as_str()) {
                discrepancies.push(format!(
                    "order {order} is still working at the venue and the report does not name it"
                ));
            }
        }
        for (counter, true_count) in [
            (Counter::PositionsUnprotected, truth.unprotected.len()),
            (Counter::OrdersOrphaned, truth.orphaned.len()),
        ] {
            let count = report.count(counter);
            let claimed = report.steps.iter().any(|s| s.counts.contains_key(&counter));
            if claimed && !count.unknown && count.known != true_count as u64 {
                discrepancies.push(format!(
                    "the report counts {} {}, the venue holds {true_count}",
                    count.known,
                    counter.name()
                ));
            }
        }
        for step in report.steps.iter().filter(|s| s.kind == "cancel") {
            discrepancies.extend(self.accounted_for(step));
        }
        // A remedy for a position the venue's stops already protected: on a venue that lists
        // conditional orders apart, the mark of a step that read one listing only.
        discrepancies.extend(self.duplicate_stops());
        if truth.at_risk() && report.exit_code == 0 {
            discrepancies.push(format!(
                "exit code 0 while {} positions are unprotected and {} orders are left working",
                truth.unprotected.len(),
                truth.orphaned.len()
            ));
        }
        Audit {
            ok: discrepancies.is_empty(),
            discrepancies,
            truth,
        }
    }
}

/// The lists of a `cancel` step's details that name orders, each with what it claims of them at
/// the venue: every order working when the shutdown began ends in exactly one.
const CANCEL_LISTS: [(&str, Claim); 9] = [
    ("cancelled", Claim::Cancelled),
    ("already_filled", Claim::Filled),
    ("kept_stops", Claim::Nothing),
    ("local_orders", Claim::Nothing),
    ("orphaned", Claim::Nothing),
    ("still_working", Claim::Nothing),
    ("unknown", Claim::Nothing),
    ("unconfirmed", Claim::Nothing),
    ("cancel_pending", Claim::Nothing),
];

/// What a list of the cancel step says of the orders it names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Claim {
    Cancelled,
    Filled,
    Nothing,
}

impl PaperNode {
    /// Whether the `cancel` step's report accounts for every order working at the venue when the
    /// shutdown began, in exactly one of its lists, and what it calls cancelled or filled is so.
    /// A step that published nothing (cut short before its first listing) claims no list.
    fn accounted_for(&self, step: &shutdown_core::StepReport) -> Vec<String> {
        if step.details.is_empty() {
            return Vec::new();
        }
        let mut found: BTreeMap<&str, Vec<(&str, Claim)>> = BTreeMap::new();
        for (list, claim) in CANCEL_LISTS {
            let entries = step.details.get(list).and_then(|v| v.as_array());
            for entry in entries.into_iter().flatten() {
                let id = entry.as_str().or_else(|| entry["client_id"].as_str());
                if let Some(id) = id {
                    found.entry(id).or_default().push((list, claim));
                }
            }
        }
        let orders: BTreeMap<String, Order> = (self.all_orders().into_iter())
            .map(|o| (o.client_id.clone(), o))
            .collect();
        let mut out = Vec::new();
        for id in self.working_at_start() {
            let lists = found
                .get(id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let status = orders.get(&id).map(|o| o.status);
            match lists {
                [] => out.push(format!(
                    "order {id} was working when the shutdown began, and `{}` names it in none of its lists (it is {status:?} at the venue)",
                    step.name
                )),
                [(_, Claim::Cancelled)] if status != Some(OrderStatus::Cancelled) => out.push(
                    format!("order {id} is called cancelled by `{}`, the venue holds it {status:?}", step.name),
                ),
                [(_, Claim::Filled)] if status != Some(OrderStatus::Filled) => out.push(format!(
                    "order {id} is called filled by `{}`, the venue holds it {status:?}",
                    step.name
                )),
                [_] => {}
                many => out.push(format!(
                    "order {id} is named in {} lists of `{}`: {}",
                    many.len(),
                    step.name,
                    many.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        out
    }

    /// Check a start gate's report against the venue and the changes the downtime made: the
    /// `reconcile` step names every change and no other, the gate is open exactly when the report
    /// says a step opened it, and an open gate leaves no position unprotected.
    pub fn audit_start(&self, report: &Report, changes: &[Change]) -> Audit {
        let live: Vec<Order> = (self.all_orders().into_iter())
            .filter(|o| o.status.is_live() && o.residence == Residence::Venue)
            .collect();
        let truth = Truth {
            unprotected: unprotected(&self.open_positions(), &live),
            working: live.iter().map(|o| o.client_id.clone()).collect(),
            orphaned: BTreeSet::new(),
            switches_firing: Vec::new(),
        };
        let mut discrepancies = Vec::new();
        let reconciled = report
            .steps
            .iter()
            .find(|s| s.kind == "reconcile")
            .and_then(|s| s.details.get("differences"))
            .and_then(|d| d.as_array());
        if let Some(diffs) = reconciled {
            let found: BTreeSet<(String, String)> = diffs
                .iter()
                .filter_map(|d| {
                    let kind = d["kind"].as_str()?;
                    let id = match kind {
                        "position_changed" => d["instrument"].as_str()?,
                        _ => d["id"].as_str()?,
                    };
                    Some((kind.to_owned(), id.to_owned()))
                })
                .collect();
            let made: BTreeSet<(String, String)> = changes
                .iter()
                .map(|c| (c.kind.to_owned(), c.id.clone()))
                .collect();
            // An order the report says it cannot account for (`state_unknown`) is an honest answer
            // about whatever happened to it.
            let unsure: BTreeSet<&str> = (found.iter())
                .filter(|(kind, _)| kind == "state_unknown")
                .map(|(_, id)| id.as_str())
                .collect();
            for (kind, id) in made.difference(&found) {
                if kind != "position_changed" && unsure.contains(id.as_str()) {
                    continue;
                }
                discrepancies.push(format!(
                    "the downtime made {kind} {id}, and the report does not name it"
                ));
            }
            for (kind, id) in found.difference(&made) {
                if kind == "state_unknown" {
                    continue;
                }
                discrepancies.push(format!(
                    "the report names {kind} {id}, which the downtime did not make"
                ));
            }
        }
        let opened = report.steps.iter().any(|s| {
            s.kind == "resume" && s.details.get("resumed").and_then(|v| v.as_bool()) == Some(true)
        });
        let open = !self.halted();
        if open != opened {
            discrepancies.push(match open {
                true => {
                    "the trading gate is open, and the report does not say a step opened it".into()
                }
                false => "the report says the trading gate was opened, and it is halted".into(),
            });
        }
        if open {
            for id in &truth.unprotected {
                discrepancies.push(format!("the gate opened with position {id} unprotected"));
            }
        }
        if open && report.exit_code != 0 {
            discrepancies.push(format!(
                "the gate opened, and the exit code is {}",
                report.exit_code
            ));
        }
        Audit {
            ok: discrepancies.is_empty(),
            discrepancies,
            truth,
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn position(id: &str, side: Side, qty: Decimal) -> Position {
        Position {
            id: id.into(),
            instrument: "B".into(),
            side,
            position_side: PositionSide::Both,
            quantity: qty,
            entry_price: dec!(100),
            mark_price: dec!(100),
        }
    }

    fn stop(id: &str, side: Side, qty: Decimal, trigger: Decimal) -> Order {
        Order::protective_stop(id, "B", side, qty, trigger)
    }

    #[test]
    fn a_stop_quantity_is_counted_once_across_positions() {
        let positions = [
            position("p1", Side::Buy, dec!(1)),
            position("p2", Side::Buy, dec!(1)),
        ];
        let orders = [stop("s1", Side::Sell, dec!(1), dec!(90))];
        assert_eq!(
            unprotected(&positions, &orders),
            BTreeSet::from(["p2".to_owned()])
        );
    }

    #[test]
    fn transitions_crossed_and_non_positive_triggers_and_bad_stop_limits_protect_nothing() {
        let p = [position("p", Side::Buy, dec!(1))];
        let pending = Order {
            status: OrderStatus::PendingCancel,
            ..stop("s", Side::Sell, dec!(1), dec!(90))
        };
        let crossed = stop("s", Side::Sell, dec!(1), dec!(100));
        let zero = stop("s", Side::Sell, dec!(1), dec!(0));
        let limit_above = Order {
            order_type: OrderType::StopLimit,
            limit_price: Some(dec!(95)),
            ..stop("s", Side::Sell, dec!(1), dec!(90))
        };
        let local = Order {
            residence: Residence::Local,
            ..stop("s", Side::Sell, dec!(1), dec!(90))
        };
        for o in [pending, crossed, zero, limit_above, local] {
            assert_eq!(unprotected(&p, std::slice::from_ref(&o)).len(), 1, "{o:?}");
        }
        let fine = Order {
            order_type: OrderType::StopLimit,
            limit_price: Some(dec!(89)),
            ..stop("s", Side::Sell, dec!(1), dec!(90))
        };
        assert!(unprotected(&p, &[fine]).is_empty());
    }
}
