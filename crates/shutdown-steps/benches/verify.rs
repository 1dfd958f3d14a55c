//! Verify: protective-stop coverage checks per second over a book of N positions with 3 stops each
//! (two that count, one on the wrong side), at three book sizes to show it is linear.
//! Goal: at least 1M checks (positions judged) per second at 100k positions.
//!
//! `cargo bench -p shutdown-steps --bench verify`

use std::hint::black_box;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use shutdown_core::domain::{Order, Position, PositionSide, Side};
use shutdown_steps::{CoverageRules, judge_book};

fn book(n: usize) -> (Vec<Position>, Vec<Order>) {
    let mut positions = Vec::with_capacity(n);
    let mut orders = Vec::with_capacity(3 * n);
    for i in 0..n {
        let instrument = format!("I{i}");
        positions.push(Position {
            id: format!("p{i}"),
            instrument: instrument.clone(),
            side: Side::Buy,
            position_side: PositionSide::Both,
            quantity: Decimal::new(2, 0),
            entry_price: Decimal::new(100, 0),
            mark_price: Decimal::new(100, 0),
        });
        for (j, side) in [Side::Sell, Side::Sell, Side::Buy].into_iter().enumerate() {
            orders.push(Order::protective_stop(
                format!("s{i}-{j}"),
                instrument.clone(),
                side,
                Decimal::ONE,
                Decimal::new(95, 0),
            ));
        }
    }
    (positions, orders)
}

fn main() {
    let rules = CoverageRules::default();
    println!("verify: positions judged per second (3 stops each), best of 5");
    println!(
        "{:>9} {:>12} {:>14} {:>10} {:>8}",
        "positions", "ms", "checks/sec", "ns/check", "ratio"
    );
    for n in [10_000, 50_000, 100_000] {
        let (positions, orders) = book(n);
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let verdicts = black_box(judge_book(&positions, &orders, &rules));
            best = best.min(start.elapsed());
            assert!(verdicts.iter().all(|c| c.protected));
        }
        let rate = n as f64 / best.as_secs_f64();
        println!(
            "{n:>9} {:>12.2} {rate:>14.0} {:>10.1} {:>8.2}",
            best.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e9 / n as f64,
            rate / 1e6
        );
    }
    println!(
        "(ratio = checks per second / the 1M per second goal; ns/check flat across sizes = linear)"
    );
}
