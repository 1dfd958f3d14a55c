//! The protection rule: which resting orders protect a position, and whether they cover it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rust_decimal::Decimal;
use serde::Serialize;
use shutdown_core::domain::{Order, OrderType, Position, PositionSide, Residence, Side};

/// Options of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoverageRules {
    /// Covered quantity may fall short of the position by this much (one lot step).
    pub quantity_tolerance: Decimal,
    /// Count stops held only by this process (they vanish when it exits; off by default).
    pub count_local_stops: bool,
}

impl Default for CoverageRules {
    fn default() -> Self {
        Self {
            quantity_tolerance: Decimal::ZERO,
            count_local_stops: false,
        }
    }
}

/// Why an order on the position's instrument does not protect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The order.
    pub client_id: String,
    /// Why it does not count.
    pub why: &'static str,
}

/// The verdict on one position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Whether the position is protected.
    pub protected: bool,
    /// Quantity covered by counted stops (the whole position when a close-position stop counts).
    pub covered: Decimal,
    /// The stops counted.
    pub stops: Vec<String>,
    /// Orders on the instrument that looked like protection but are not, with the reason.
    pub rejected: Vec<Rejected>,
}

/// Whether `order` belongs to the same position (instrument, and position side in hedge mode).
pub fn same_position(position: &Position, order: &Order) -> bool {
    order.instrument == position.instrument
        && (position.position_side == PositionSide::Both
            || order.position_side == position.position_side)
}

/// Judge `position` against `orders` at the reference price `mark`.
///
/// Counted: opposite side, stop type, reduce-only or close-position, live, resting at the venue
/// (unless local stops count), triggering on the loss side of `mark` and not already crossed; by
/// remaining quantity. Protected when the counted quantity reaches the position (within the
/// tolerance) or a close-position stop counts.
pub fn coverage<'a>(
    position: &Position,
    mark: Decimal,
    orders: impl IntoIterator<Item = &'a Order>,
    rules: &CoverageRules,
) -> Coverage {
    let mut covered = Decimal::ZERO;
    let mut whole = false;
    let mut stops = Vec::new();
    let mut rejected = Vec::new();
    for o in orders.into_iter().filter(|o| same_position(position, o)) {
        let is_exit_like = o.order_type.is_stop()
            || matches!(
                o.order_type,
                OrderType::TakeProfit | OrderType::TakeProfitLimit
            );
        if !is_exit_like {
            continue;
        }
        let why = if o.side == position.side {
            Some("same side as the position: it would add to it")
        } else if !o.order_type.is_stop() {
            Some("a take-profit does not protect")
        } else if !(o.reduce_only || o.close_position) {
            Some("not reduce-only: it could open a new position")
        } else if !o.status.is_live() {
            Some("not working at the venue")
        } else if o.residence == Residence::Local && !rules.count_local_stops {
            Some("held only by this process: it vanishes on exit")
        } else if crossed(position.side, o, mark) {
            Some("trigger already crossed: it protects nothing")
        } else if !o.close_position && o.remaining() <= Decimal::ZERO {
            Some("nothing left to fill")
        } else {
            None
        };
        match why {
            Some(why) => rejected.push(Rejected {
                client_id: o.client_id.clone(),
                why,
            }),
            None => {
                stops.push(o.client_id.clone());
                if o.close_position {
                    whole = true;
                } else {
                    covered += o.remaining();
                }
            }
        }
    }
    if whole {
        covered = covered.max(position.quantity);
    }
    Coverage {
        protected: whole || covered + rules.quantity_tolerance >= position.quantity,
        covered,
        stops,
        rejected,
    }
}

/// FNV-1a: instrument symbols are short and not attacker-chosen, so a fast hash beats SipHash here.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Judge every position against the book, each at its own mark price: orders are indexed by instrument
/// first, so the cost is linear in positions plus orders.
pub fn judge_book(
    positions: &[Position],
    orders: &[Order],
    rules: &CoverageRules,
) -> Vec<Coverage> {
    let mut by_instrument: FastMap<&str, Vec<&Order>> = FastMap::default();
    for o in orders {
        by_instrument
            .entry(o.instrument.as_str())
            .or_default()
            .push(o);
    }
    positions
        .iter()
        .map(|p| {
            let book = by_instrument
                .get(p.instrument.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            coverage(p, p.mark_price, book.iter().copied(), rules)
        })
        .collect()
}

/// Live protective stops whose position is gone: they protect nothing and may open a position.
pub fn orphan_stops<'a>(positions: &[Position], orders: &'a [Order]) -> Vec<&'a Order> {
    let mut sides: FastMap<&str, Vec<PositionSide>> = FastMap::default();
    for p in positions {
        sides
            .entry(p.instrument.as_str())
            .or_default()
            .push(p.position_side);
    }
    orders
        .iter()
        .filter(|o| o.is_protective() && o.status.is_live())
        .filter(|o| {
            !sides.get(o.instrument.as_str()).is_some_and(|ps| {
                ps.iter()
                    .any(|s| *s == PositionSide::Both || *s == o.position_side)
            })
        })
        .collect()
}

/// A stop protecting a long sells below the mark; one protecting a short buys above it.
fn crossed(position_side: Side, order: &Order, mark: Decimal) -> bool {
    match (order.trigger_price, order.order_type) {
        (Some(trigger), _) => match position_side {
            Side::Buy => trigger >= mark,
            Side::Sell => trigger <= mark,
        },
        // A trailing stop without a trigger follows the price at its distance.
        (None, OrderType::TrailingStop) => false,
        (None, _) => true,
    }
}
