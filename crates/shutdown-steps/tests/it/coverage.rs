//! The protection rule, with property tests.

use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use shutdown_core::domain::{
    Order, OrderStatus, OrderType, Position, PositionSide, Residence, Side,
};
use shutdown_steps::{CoverageRules, coverage};

fn long(qty: Decimal) -> Position {
    Position {
        id: "p".into(),
        instrument: "X".into(),
        side: Side::Buy,
        position_side: PositionSide::Both,
        quantity: qty,
        entry_price: dec!(100),
        mark_price: dec!(100),
    }
}

fn stop(id: &str, qty: Decimal, trigger: Decimal) -> Order {
    Order::protective_stop(id, "X", Side::Sell, qty, trigger)
}

fn why(p: &Position, o: Order) -> &'static str {
    let c = coverage(p, p.mark_price, &[o], &CoverageRules::default());
    assert!(!c.protected);
    c.rejected.first().map(|r| r.why).unwrap_or("not rejected")
}

#[test]
fn a_good_stop_protects() {
    let c = coverage(
        &long(dec!(2)),
        dec!(100),
        &[stop("s", dec!(2), dec!(95))],
        &CoverageRules::default(),
    );
    assert!(c.protected);
    assert_eq!(c.stops, ["s"]);
}

#[test]
fn each_way_a_stop_fails_to_protect_is_caught_and_named() {
    let p = long(dec!(2));
    let mut o = stop("s", dec!(2), dec!(95));
    o.side = Side::Buy;
    assert!(why(&p, o).contains("same side"));
    let mut o = stop("s", dec!(2), dec!(95));
    o.reduce_only = false;
    assert!(why(&p, o).contains("not reduce-only"));
    let o = stop("s", dec!(1), dec!(95));
    assert_eq!(
        why(&p, o),
        "not rejected",
        "short quantity is not a rejection, only short cover"
    );
    let o = stop("s", dec!(2), dec!(101));
    assert!(why(&p, o).contains("already crossed"));
    let mut o = stop("s", dec!(2), dec!(95));
    o.residence = Residence::Local;
    assert!(why(&p, o).contains("only by this process"));
    let mut o = stop("s", dec!(2), dec!(95));
    o.filled_quantity = dec!(1.5);
    let c = coverage(&p, p.mark_price, &[o], &CoverageRules::default());
    assert!(!c.protected);
    assert_eq!(c.covered, dec!(0.5));
    let mut o = stop("s", dec!(2), dec!(95));
    o.order_type = OrderType::TakeProfit;
    assert!(why(&p, o).contains("take-profit"));
    let mut o = stop("s", dec!(2), dec!(95));
    o.status = OrderStatus::Cancelled;
    assert!(why(&p, o).contains("not resting"));
    for status in [
        OrderStatus::PendingNew,
        OrderStatus::PendingCancel,
        OrderStatus::Rejected,
    ] {
        let mut o = stop("s", dec!(2), dec!(95));
        o.status = status;
        assert!(why(&p, o).contains("not resting"), "{status:?}");
    }
    let o = stop("s", dec!(2), dec!(0));
    assert!(why(&p, o).contains("at or below zero"));
    let mut o = stop("s", dec!(2), dec!(95));
    o.order_type = OrderType::StopLimit;
    o.limit_price = Some(dec!(96));
    assert!(why(&p, o).contains("would not let it fill"));
}

#[test]
fn the_tolerance_forgives_a_shortfall_never_the_absence_of_a_stop() {
    let rules = CoverageRules {
        quantity_tolerance: dec!(1),
    };
    let p = long(dec!(1));
    assert!(!coverage(&p, p.mark_price, &[], &rules).protected);
    let short = stop("s", dec!(0.5), dec!(95));
    assert!(coverage(&p, p.mark_price, &[short], &rules).protected);
}

#[test]
fn one_stop_is_counted_once_across_the_positions_it_could_cover() {
    let mut a = long(dec!(1));
    a.id = "a".into();
    let mut b = long(dec!(1));
    b.id = "b".into();
    let orders = [stop("s1", dec!(1.5), dec!(95))];
    let verdicts =
        shutdown_steps::judge_book(&[b.clone(), a.clone()], &orders, &CoverageRules::default());
    // Positions take from the stop in id order: a gets 1, b what is left.
    assert!(verdicts[1].protected, "{verdicts:?}");
    assert!(!verdicts[0].protected, "{verdicts:?}");
    assert_eq!(verdicts[0].covered, dec!(0.5));
}

#[test]
fn a_close_position_stop_covers_the_whole_position() {
    let mut o = stop("s", Decimal::ZERO, dec!(95));
    o.reduce_only = false;
    o.close_position = true;
    assert!(coverage(&long(dec!(7)), dec!(100), &[o], &CoverageRules::default()).protected);
}

fn arb_stop() -> impl Strategy<Value = Order> {
    (
        0u32..400,
        0u32..400,
        80u32..120,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(q, f, t, sell, ro, local)| {
            let q = Decimal::new(i64::from(q), 2);
            let mut o = stop("s", q, Decimal::from(t));
            o.filled_quantity = Decimal::new(i64::from(f), 2).min(q);
            o.side = if sell { Side::Sell } else { Side::Buy };
            o.reduce_only = ro;
            o.residence = if local {
                Residence::Local
            } else {
                Residence::Venue
            };
            o
        })
}

proptest! {
    #[test]
    fn protected_exactly_when_counted_stops_cover_the_position(
        qty in 1u32..500,
        stops in proptest::collection::vec(arb_stop(), 0..6),
    ) {
        let p = long(Decimal::new(i64::from(qty), 2));
        let stops: Vec<Order> = stops.into_iter().enumerate()
            .map(|(i, o)| Order { client_id: format!("s{i}"), ..o })
            .collect();
        let c = coverage(&p, p.mark_price, &stops, &CoverageRules::default());
        // The rule, restated: sell side, reduce-only, at the venue, trigger below the mark.
        let expected: Decimal = stops.iter()
            .filter(|o| o.side == Side::Sell && o.reduce_only && o.residence == Residence::Venue && o.trigger_price.unwrap() < p.mark_price && o.remaining() > Decimal::ZERO)
            .map(Order::remaining)
            .sum();
        // Cover is taken as needed: never more than the position.
        prop_assert_eq!(c.covered, expected.min(p.quantity));
        prop_assert_eq!(c.protected, expected >= p.quantity);
        prop_assert!(c.stops.len() + c.rejected.len() <= stops.len());
    }

    #[test]
    fn adding_a_stop_never_removes_protection(qty in 1u32..500, stops in proptest::collection::vec(arb_stop(), 0..5), extra in arb_stop()) {
        let p = long(Decimal::new(i64::from(qty), 2));
        let before = coverage(&p, p.mark_price, &stops, &CoverageRules::default());
        let mut more = stops.clone();
        more.push(extra);
        let after = coverage(&p, p.mark_price, &more, &CoverageRules::default());
        prop_assert!(after.covered >= before.covered);
        prop_assert!(!before.protected || after.protected);
    }

    #[test]
    fn growing_the_position_past_its_cover_unprotects_it(cover in 1u32..500, growth in 1u32..100) {
        let s = stop("s", Decimal::new(i64::from(cover), 2), dec!(90));
        let p = long(Decimal::new(i64::from(cover), 2));
        prop_assert!(coverage(&p, p.mark_price, std::slice::from_ref(&s), &CoverageRules::default()).protected);
        let grown = long(Decimal::new(i64::from(cover + growth), 2));
        prop_assert!(!coverage(&grown, grown.mark_price, &[s], &CoverageRules::default()).protected);
    }
}

proptest! {
    #[test]
    fn the_indexed_book_agrees_with_checking_every_order(
        stops in proptest::collection::vec((arb_stop(), 0usize..3), 0..12),
        sizes in proptest::collection::vec(1u32..400, 1..4),
    ) {
        let instruments = ["X", "Y", "Z"];
        let positions: Vec<Position> = sizes.iter().enumerate().map(|(i, q)| {
            let mut p = long(Decimal::new(i64::from(*q), 2));
            p.id = format!("p{i}");
            p.instrument = instruments[i].into();
            p
        }).collect();
        let orders: Vec<Order> = stops.into_iter().enumerate()
            .map(|(n, (mut o, i))| { o.instrument = instruments[i].into(); o.client_id = format!("s{n}"); o })
            .collect();
        let rules = CoverageRules::default();
        let fast = shutdown_steps::judge_book(&positions, &orders, &rules);
        for (p, c) in positions.iter().zip(&fast) {
            // One position per instrument: no stop is shared, so the verdict is the position's own.
            let alone = coverage(p, p.mark_price, &orders, &rules);
            prop_assert_eq!((c.protected, c.covered), (alone.protected, alone.covered));
        }
        let orphans: Vec<&str> = shutdown_steps::orphan_stops(&positions, &orders).iter().map(|o| o.instrument.as_str()).collect();
        for inst in orphans {
            prop_assert!(!positions.iter().any(|p| p.instrument == inst));
        }
    }
}
