//! The protection rule: which resting orders protect a position, and whether they cover it.

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

/// What is left of one stop, as positions are judged one after the other: a stop is counted once.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// What is left of its remaining quantity, once a position took from it.
    left: Option<Decimal>,
    /// A close-position stop that a position took whole.
    whole_taken: bool,
}

/// Judge `position` against `book` (its instrument's orders, in client id order) at the reference
/// price `mark`, taking from `slots` (one per order of `book`) what its stops have left.
fn judge(
    position: &Position,
    mark: Decimal,
    book: &[&Order],
    rules: &CoverageRules,
    slots: &mut [Slot],
) -> Coverage {
    let mut covered = Decimal::ZERO;
    let mut stops = Vec::new();
    let mut rejected = Vec::new();
    let mut eligible: Vec<usize> = Vec::new();
    for (i, o) in book.iter().enumerate() {
        if !same_position(position, o) {
            continue;
        }
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
            None => eligible.push(i),
        }
    }
    // A close-position stop closes the position whole: one is enough, and it spares the others.
    let whole =
        (eligible.iter().copied()).find(|i| book[*i].close_position && !slots[*i].whole_taken);
    if let Some(i) = whole {
        slots[i].whole_taken = true;
        stops.push(book[i].client_id.clone());
    } else {
        for i in eligible.into_iter().filter(|i| !book[*i].close_position) {
            let need = position.quantity - covered;
            if need <= Decimal::ZERO {
                break;
            }
            let left = slots[i].left.get_or_insert_with(|| book[i].remaining());
            let take = (*left).min(need);
            if take > Decimal::ZERO {
                *left -= take;
                covered += take;
                stops.push(book[i].client_id.clone());
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
    let mut book: Vec<&Order> = orders.into_iter().collect();
    book.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut slots = vec![Slot::default(); book.len()];
    judge(position, mark, &book, rules, &mut slots)
}

/// FNV-1a: instrument symbols are short and not attacker-chosen, so a fast hash beats SipHash here.
type FastMap<K, V> = fnv::FnvHashMap<K, V>;

/// Items bucketed by group, in one flat array: the items of group `g` are
/// `items[starts[g]..starts[g + 1]]`, in their original order (a counting sort: linear, and no
/// allocation per group).
struct Buckets {
    starts: Vec<usize>,
    items: Vec<usize>,
}

impl Buckets {
    fn new(groups: usize, group_of: impl Iterator<Item = Option<usize>> + Clone) -> Buckets {
        let mut starts = vec![0usize; groups + 1];
        for g in group_of.clone().flatten() {
            starts[g + 1] += 1;
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut items = vec![0usize; starts[groups]];
        for (i, g) in group_of.enumerate() {
            if let Some(g) = g {
                items[next[g]] = i;
                next[g] += 1;
            }
        }
        Buckets { starts, items }
    }

    fn group(&mut self, g: usize) -> &mut [usize] {
        &mut self.items[self.starts[g]..self.starts[g + 1]]
    }
}

/// Judge every position against the book, each at its own mark price. A stop is counted once: its
/// quantity goes to the positions it can protect in id order (several records on one instrument,
/// hedge legs), stops in client id order. Stops protect only positions of their own instrument, so
/// positions and orders are bucketed by instrument (one hash lookup each, then a counting sort) and
/// ordered within their instrument only: the cost is linear in positions plus orders. Verdicts come
/// back in the order of `positions`.
pub fn judge_book(
    positions: &[Position],
    orders: &[Order],
    rules: &CoverageRules,
) -> Vec<Coverage> {
    let mut instruments: FastMap<&str, usize> = FastMap::default();
    instruments.reserve(positions.len());
    let position_group: Vec<usize> = (positions.iter())
        .map(|p| {
            let next = instruments.len();
            *instruments.entry(p.instrument.as_str()).or_insert(next)
        })
        .collect();
    // An order on an instrument without a position protects nothing here.
    let order_group: Vec<Option<usize>> = (orders.iter())
        .map(|o| instruments.get(o.instrument.as_str()).copied())
        .collect();
    let groups = instruments.len();
    drop(instruments);
    let mut by_position = Buckets::new(groups, position_group.iter().map(|g| Some(*g)));
    let mut by_order = Buckets::new(groups, order_group.iter().copied());
    let mut verdicts: Vec<Option<Coverage>> = vec![None; positions.len()];
    let (mut book, mut slots): (Vec<&Order>, Vec<Slot>) = (Vec::new(), Vec::new());
    for g in 0..groups {
        let in_group = by_order.group(g);
        in_group.sort_by(|a, b| orders[*a].client_id.cmp(&orders[*b].client_id));
        book.clear();
        book.extend(in_group.iter().map(|i| &orders[*i]));
        slots.clear();
        slots.resize(book.len(), Slot::default());
        let judged = by_position.group(g);
        judged.sort_by(|a, b| positions[*a].id.cmp(&positions[*b].id));
        for &i in judged.iter() {
            let p = &positions[i];
            verdicts[i] = Some(judge(p, p.mark_price, &book, rules, &mut slots));
        }
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
