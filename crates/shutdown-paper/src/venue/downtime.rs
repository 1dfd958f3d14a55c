//! A restart on the paper venue: what the node knew when it stopped, what happened at the venue
//! while it was down (the scenario's `[downtime]`), and the list of changes that made, for tests to
//! hold a start gate's findings against.

use std::collections::BTreeMap;

use serde::Serialize;
use shutdown_core::domain::{LastKnown, Order, OrderStatus, PositionSide, Residence, Side};

use super::{PaperNode, State, apply_fill, fill_order};
use crate::scenario::{Downtime, PositionSpec, Scenario};

/// One change the downtime made at the venue, named as a start gate should find it: `kind` is
/// `order_filled`, `order_vanished`, `stop_gone`, `unknown_order` or `position_changed`; `id` the
/// order's client id, or the instrument of a position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// What kind of change.
    pub kind: &'static str,
    /// The order's client id, or the position's instrument.
    pub id: String,
}

fn gone(o: &Order) -> &'static str {
    if o.is_protective() {
        "stop_gone"
    } else {
        "order_vanished"
    }
}

/// Cancel a working order; the change it makes, if it was working.
fn cancel(s: &mut State, id: &str) -> Option<Change> {
    let o = s.orders.get_mut(id)?;
    if !o.status.is_live() {
        return None;
    }
    o.status = OrderStatus::Cancelled;
    Some(Change {
        kind: gone(o),
        id: id.to_owned(),
    })
}

/// Whether a stop of this side fires at `mark`.
fn fires(o: &Order, mark: rust_decimal::Decimal) -> bool {
    match (o.order_type.is_stop(), o.trigger_price) {
        (true, Some(t)) => match o.side {
            Side::Sell => mark <= t,
            Side::Buy => mark >= t,
        },
        _ => false,
    }
}

/// Each position's side and size, by instrument and position side.
fn book_positions(s: &State) -> BTreeMap<(String, PositionSide), (Side, rust_decimal::Decimal)> {
    (s.positions.values())
        .map(|p| {
            (
                (p.instrument.clone(), p.position_side),
                (p.side, p.quantity),
            )
        })
        .collect()
}

impl PaperNode {
    /// What the node knows now, as its shutdown's snapshot would keep it: every order and the open
    /// positions.
    pub fn last_known(&self) -> LastKnown {
        LastKnown {
            taken_at: None,
            orders: self.all_orders(),
            positions: self.open_positions(),
        }
    }

    /// A node restarting after the scenario's `[downtime]`: the venue as the downtime left it, the
    /// trading gate halted (nothing trades before the start gate opens it), what the node knew when
    /// it stopped, and the changes the downtime made.
    pub fn restarted(scenario: &Scenario, seed: u64) -> (PaperNode, LastKnown, Vec<Change>) {
        let node = PaperNode::with_seed(scenario, seed);
        let last = node.last_known();
        let mut changes = node.apply_downtime(&scenario.downtime);
        // An order the node was cancelling when it stopped that still works is not the node's
        // working order any more: the start gate must name it.
        for o in last
            .orders
            .iter()
            .filter(|o| o.status == OrderStatus::PendingCancel)
        {
            if node
                .get_order(&o.client_id)
                .is_some_and(|now| now.status.is_live())
            {
                changes.push(Change {
                    kind: "unknown_order",
                    id: o.client_id.clone(),
                });
            }
        }
        changes.sort();
        changes.dedup();
        node.lock().halted = true;
        (node, last, changes)
    }

    /// The venue a node finds when it starts again after a run of its own: the book its last
    /// snapshot holds (the venue as the node left it), then the scenario's `[downtime]`, with the
    /// trading gate halted. The scenario gives everything else (instruments, connections, venue
    /// behaviour). Downtime entries naming orders the snapshot lacks change nothing.
    pub fn resumed(scenario: &Scenario, last: &LastKnown) -> (PaperNode, Vec<Change>) {
        let mut left = scenario.clone();
        left.generate = None;
        left.orders = last.orders.clone();
        left.positions = (last.positions.iter())
            .map(|p| PositionSpec {
                id: p.id.clone(),
                instrument: p.instrument.clone(),
                side: p.side,
                position_side: p.position_side,
                quantity: p.quantity,
                entry_price: p.entry_price,
            })
            .collect();
        let node = PaperNode::new(&left);
        let changes = node.apply_downtime(&scenario.downtime);
        node.lock().halted = true;
        (node, changes)
    }

    /// Apply a downtime (see [`Downtime`]); the changes it made, sorted.
    pub fn apply_downtime(&self, d: &Downtime) -> Vec<Change> {
        let mut s = self.lock();
        let before = book_positions(&s);
        let mut changes = Vec::new();
        // The process that held local orders is gone, and they with it.
        let local: Vec<String> = (s.orders.values())
            .filter(|o| o.residence == Residence::Local && o.status.is_live())
            .map(|o| o.client_id.clone())
            .collect();
        for id in local {
            if let Some(o) = s.orders.remove(&id) {
                changes.push(Change { kind: gone(&o), id });
            }
        }
        for id in &d.cancelled {
            changes.extend(cancel(&mut s, id));
        }
        if d.dead_man_fired {
            let live: Vec<String> = (s.orders.values())
                .filter(|o| o.status.is_live())
                .map(|o| o.client_id.clone())
                .collect();
            let wiped = live.len();
            for id in live {
                changes.extend(cancel(&mut s, &id));
            }
            s.events.push(format!(
                "downtime: a dead-man's switch fired: {wiped} orders cancelled"
            ));
        }
        for id in &d.filled {
            if fill_order(&mut s, id) {
                changes.push(Change {
                    kind: "order_filled",
                    id: id.clone(),
                });
            }
        }
        for m in &d.marks {
            s.marks.insert(m.symbol.clone(), m.mark_price);
            for p in s.positions.values_mut() {
                if p.instrument == m.symbol {
                    p.mark_price = m.mark_price;
                }
            }
            // Stops fire in the order the price reaches them: the nearest trigger first.
            let mut fired: Vec<(rust_decimal::Decimal, String)> = (s.orders.values())
                .filter(|o| o.instrument == m.symbol && o.status.is_resting())
                .filter(|o| fires(o, m.mark_price))
                .map(|o| {
                    (
                        (o.trigger_price.unwrap_or_default() - m.mark_price).abs(),
                        o.client_id.clone(),
                    )
                })
                .collect();
            fired.sort();
            fired.reverse();
            for (_, id) in fired {
                if fill_order(&mut s, &id) {
                    changes.push(Change {
                        kind: "order_filled",
                        id,
                    });
                }
            }
        }
        for o in &d.orders {
            let mut o = o.clone();
            o.residence = Residence::Venue;
            o.venue_id = Some(format!("v-{}", s.next_id));
            s.next_id += 1;
            if o.status == OrderStatus::Filled {
                let qty = o.quantity;
                o.filled_quantity = qty;
                apply_fill(&mut s, &o, qty);
            } else if o.status.is_live() {
                changes.push(Change {
                    kind: "unknown_order",
                    id: o.client_id.clone(),
                });
            }
            s.orders.insert(o.client_id.clone(), o);
        }
        let after = book_positions(&s);
        let mut keys: Vec<&(String, PositionSide)> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if before.get(k) != after.get(k) {
                changes.push(Change {
                    kind: "position_changed",
                    id: k.0.clone(),
                });
            }
        }
        changes.sort();
        changes.dedup();
        changes
    }
}
