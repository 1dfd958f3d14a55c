//! A toy market maker on the paper venue: it places and cancels orders until the shutdown is requested.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use shutdown_core::ShutdownHandle;
use shutdown_core::domain::{Order, Side};
use shutdown_paper::PaperNode;
use tokio::sync::Notify;

/// Quote `instrument` around `mid` every `every` until a shutdown is requested; returns orders placed.
/// `first` is notified once the first order rests at the venue.
pub async fn make_markets(
    paper: PaperNode,
    handle: ShutdownHandle,
    instrument: String,
    mid: Decimal,
    every: Duration,
    first: Arc<Notify>,
) -> u64 {
    let mut placed = 0u64;
    let mut n = 0u64;
    while !handle.is_shutdown_requested() {
        n += 1;
        let side = if n.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let offset = Decimal::new(i64::try_from(n % 10).unwrap_or(0) + 1, 3);
        let price = match side {
            Side::Buy => mid * (Decimal::ONE - offset),
            Side::Sell => mid * (Decimal::ONE + offset),
        };
        let order = Order::limit(
            format!("mm-{n}"),
            instrument.clone(),
            side,
            Decimal::ONE,
            price.round_dp(2),
        );
        // Refusals (halted gate, rate limit) are the venue's answer, not a reason to stop quoting.
        if paper.submit(order).await.is_ok() {
            placed += 1;
            if placed == 1 {
                first.notify_one();
            }
        }
        if n.is_multiple_of(3) && n > 6 {
            let _ =
                shutdown_core::node::OrderGateway::cancel(&paper, &format!("mm-{}", n - 6)).await;
        }
        tokio::time::sleep(every).await;
    }
    placed
}
