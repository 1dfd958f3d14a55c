//! The protection rule: which resting orders protect a position, and whether they cover it.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use rust_decimal::Decimal;
use serde::Serialize;
use shutdown_core::domain::{Order, OrderType, Position, PositionSide, Residence, Side};

/// Options of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct CoverageRules {
    /// Covered quantity may fall short of the position by this much (one lot step). It forgives a
    /// shortfall of cover, never the absence of a stop.
    pub quantity_tolerance: Decimal,
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

/// Why `o` (an exit-like order on the position's instrument) cannot protect a position of `side`
/// at `mark`; `None` when it can.
fn unfit(side: Side, o: &Order, mark: Decimal) -> Option<&'static str> {
    if o.side == side {
        Some("same side as the position: it would add to it")
    } else if !o.order_type.is_stop() {
        Some("a take-profit does not protect")
    } else if !(o.reduce_only || o.close_position) {
        Some("not reduce-only: it could open a new position")
    } else if !o.status.is_resting() {
        Some("not resting at the venue (pending, cancelled, rejected or done)")
    } else if o.residence == Residence::Local {
        Some("held only by this process: it vanishes on exit")
    } else if o.trigger_price.is_some_and(|t| t <= Decimal::ZERO) {
        Some("trigger at or below zero: it never fires")
    } else if crossed(side, o, mark) {
        Some("trigger already crossed: it protects nothing")
    } else if !limit_fills(o) {
        Some("its limit would not let it fill once triggered")
    } else if !o.close_position && o.remaining() <= Decimal::ZERO {
        Some("nothing left to fill")
    } else {
        None
    }
}

/// What is left of each stop's quantity, and which close-position stops are taken, as positions
/// are judged one after the other: a stop is counted once.
#[derive(Debug, Default)]
struct Allocation<'a> {
    left: HashMap<&'a str, Decimal>,
    whole_taken: HashSet<&'a str>,
}

/// Judge `position` against `orders` at the reference price `mark`, taking from `alloc` what its
/// stops have left.
fn judge<'a>(
    position: &Position,
    mark: Decimal,
    orders: impl IntoIterator<Item = &'a Order>,
    rules: &CoverageRules,
    alloc: &mut Allocation<'a>,
) -> Coverage {
    let mut covered = Decimal::ZERO;
    let mut stops = Vec::new();
    let mut rejected = Vec::new();
    let mut eligible: Vec<&'a Order> = Vec::new();
    for o in orders.into_iter().filter(|o| same_position(position, o)) {
        let exit_like = o.order_type.is_stop()
            || matches!(
                o.order_type,
                OrderType::TakeProfit | OrderType::TakeProfitLimit
            );
        if !exit_like {
            continue;
        }
        match unfit(position.side, o, mark) {
            Some(why) => rejected.push(Rejected {
                client_id: o.client_id.clone(),
                why,
            }),
            None => eligible.push(o),
        }
    }
    // A close-position stop closes the position whole: one is enough, and it spares the others.
    let whole = (eligible.iter())
        .find(|o| o.close_position && !alloc.whole_taken.contains(o.client_id.as_str()));
    if let Some(o) = whole {
        alloc.whole_taken.insert(o.client_id.as_str());
        stops.push(o.client_id.clone());
    } else {
        for o in eligible.iter().filter(|o| !o.close_position) {
            let need = position.quantity - covered;
            if need <= Decimal::ZERO {
                break;
            }
            let left = (alloc.left)
                .entry(o.client_id.as_str())
                .or_insert_with(|| o.remaining());
            let take = (*left).min(need);
            if take > Decimal::ZERO {
                *left -= take;
                covered += take;
                stops.push(o.client_id.clone());
            }
        }
    }
    let whole = whole.is_some();
    if whole {
        covered = covered.max(position.quantity);
    }
    Coverage {
        // The tolerance forgives a shortfall of cover, never the absence of a stop.
        protected: whole
            || (!stops.is_empty() && covered + rules.quantity_tolerance >= position.quantity),
        covered,
        stops,
        rejected,
    }
}

/// Judge one `position` against `orders` at the reference price `mark`, on its own.
///
/// Counted: opposite side, stop type, reduce-only or close-position, resting at the venue (not in
/// transition, not held by the process), a positive trigger on the loss side of `mark` and not
/// already crossed, a stop-limit whose limit lets it fill; by remaining quantity. Protected when a
/// close-position stop counts, or the counted quantity reaches the position (within the tolerance).
pub fn coverage<'a>(
    position: &Position,
    mark: Decimal,
    orders: impl IntoIterator<Item = &'a Order>,
    rules: &CoverageRules,
) -> Coverage {
    judge(position, mark, orders, rules, &mut Allocation::default())
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

/// Judge every position against the book, each at its own mark price. A stop is counted once: its
/// quantity goes to the positions it can protect in id order (several records on one instrument,
/// hedge legs), stops in client id order. Orders are indexed by instrument first, so the cost is
/// linear in positions plus orders. Verdicts come back in the order of `positions`.
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
    for book in by_instrument.values_mut() {
        book.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    }
    let mut in_id_order: Vec<usize> = (0..positions.len()).collect();
    in_id_order.sort_by(|a, b| positions[*a].id.cmp(&positions[*b].id));
    let mut alloc = Allocation::default();
    let mut verdicts: Vec<Option<Coverage>> = vec![None; positions.len()];
    for i in in_id_order {
        let p = &positions[i];
        let book = by_instrument
            .get(p.instrument.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        verdicts[i] = Some(judge(
            p,
            p.mark_price,
            book.iter().copied(),
            rules,
            &mut alloc,
        ));
    }
    verdicts.into_iter().flatten().collect()
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

/// A stop-limit fills once triggered only if its limit is at or beyond its trigger in the exit
/// direction: a sell's at or below, a buy's at or above.
fn limit_fills(o: &Order) -> bool {
    match (o.order_type, o.limit_price, o.trigger_price) {
        (OrderType::StopLimit, Some(limit), Some(trigger)) => match o.side {
            Side::Sell => limit <= trigger,
            Side::Buy => limit >= trigger,
        },
        (OrderType::StopLimit, _, _) => false,
        _ => true,
    }
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
