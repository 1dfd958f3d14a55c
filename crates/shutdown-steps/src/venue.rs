//! What `verify` and `reconcile` share at the venue: reading positions and open orders, and the
//! remedy for a position that lacks protection (a reduce-only stop for the missing quantity, or a
//! reduce-only market exit).

use std::time::Duration;

use rust_decimal::Decimal;
use serde::Serialize;
use shutdown_core::domain::{Order, Position, Side};
use std::collections::HashSet;

use shutdown_core::node::{ExitRequest, OrderGateway, PositionBook, RoleResult, StopRequest};
use shutdown_core::retry::{Backoff, retry};
use shutdown_core::{Reason, StepContext, StepError};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Retries of one remedy call.
pub(crate) const BACKOFF: Backoff = Backoff {
    retries: 3,
    initial: Duration::from_millis(50),
    max: Duration::from_secs(1),
};

/// Every live order: the venue's order listing, and its conditional-order listing where it keeps
/// those apart (read alone, the first makes every such stop look missing). An order in both is
/// counted once.
pub(crate) async fn open_orders(orders: &dyn OrderGateway) -> RoleResult<Vec<Order>> {
    let mut listed = orders.open_orders().await?;
    let apart = orders.conditional_orders().await?;
    if !apart.is_empty() {
        let seen: HashSet<String> = listed.iter().map(|o| o.client_id.clone()).collect();
        listed.extend(apart.into_iter().filter(|o| !seen.contains(&o.client_id)));
    }
    Ok(listed)
}

/// Positions and open orders (conditional ones included), freshly read, each retried.
pub(crate) async fn read_book(
    positions: &dyn PositionBook,
    orders: &dyn OrderGateway,
    deadline: Instant,
) -> Result<(Vec<Position>, Vec<Order>), StepError> {
    let (read, _) = retry("positions", BACKOFF, deadline, || positions.positions()).await;
    let positions = read.map_err(|e| StepError::new(format!("cannot read positions: {e}")))?;
    let (read, _) = retry("open-orders", BACKOFF, deadline, || open_orders(orders)).await;
    let orders = read.map_err(|e| StepError::new(format!("cannot list open orders: {e}")))?;
    Ok((positions, orders))
}

/// Spaces requests `1 / rate` apart.
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pacer {
    /// Requests at most `rate` a second; no pacing for `None`.
    pub(crate) fn new(rate: Option<f64>) -> Self {
        Self {
            interval: rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Wait for the next slot; `false` when it would come after `deadline`.
    pub(crate) async fn wait(&self, deadline: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            if slot >= deadline {
                return false;
            }
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }
}

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    /// A reduce-only stop at `trigger` when it is given and still on the loss side of the mark,
    /// else `distance_pct` percent from the mark.
    PlaceStop {
        distance_pct: f64,
        trigger: Option<Decimal>,
    },
    /// A reduce-only market exit of the whole position.
    Flatten,
}

/// What a remedy did: in words, the order it sent if one went out, and whether the position is
/// settled (the order went out, or none was needed).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Remedy {
    pub text: String,
    pub order: Option<String>,
    #[serde(skip)]
    settled: bool,
}

impl Remedy {
    pub fn failed(text: String) -> Self {
        Self {
            text,
            order: None,
            settled: false,
        }
    }

    /// No order was needed.
    pub fn nothing(text: String) -> Self {
        Self {
            text,
            order: None,
            settled: true,
        }
    }

    fn sent(text: String, order: String) -> Self {
        Self {
            text,
            order: Some(order),
            settled: true,
        }
    }

    /// The order went out, or none was needed.
    pub fn settled(&self) -> bool {
        self.settled
    }
}

/// The prefix of the client ids of the orders a step sends: `start` in a start gate, `shutdown`
/// otherwise, so a start never reuses the id of an order the last shutdown sent.
pub(crate) fn id_prefix(ctx: &StepContext) -> &'static str {
    match ctx.reason {
        Reason::Start => "start",
        _ => "shutdown",
    }
}

/// Whether a stop of a position of this side, triggering at `trigger`, would fire at once.
fn crossed(side: Side, trigger: Decimal, mark: Decimal) -> bool {
    match side {
        Side::Buy => trigger >= mark,
        Side::Sell => trigger <= mark,
    }
}

/// What the node said of how it placed `order`, in parentheses, if it said anything.
fn noted(order: &Order) -> String {
    order
        .note
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default()
}

/// An order request paced by `pacer` (the venue's documented rate), with retries until
/// `deadline`.
async fn paced<T, F, Fut>(
    key: &str,
    pacer: &Pacer,
    deadline: Instant,
    call: F,
) -> Result<T, shutdown_core::errors::RoleError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, shutdown_core::errors::RoleError>>,
{
    retry(key, BACKOFF, deadline, || async {
        if !pacer.wait(deadline).await {
            return Err(shutdown_core::errors::RoleError::Transient(
                "no rate budget left before the deadline".into(),
            ));
        }
        call().await
    })
    .await
    .0
}

/// Send the remedy for `missing` of position `p`, paced by `pacer`.
pub(crate) async fn send(
    orders: &dyn OrderGateway,
    pacer: &Pacer,
    action: Action,
    p: &Position,
    missing: Decimal,
    prefix: &str,
    deadline: Instant,
) -> Remedy {
    let side = p.side.opposite();
    match action {
        Action::PlaceStop {
            distance_pct,
            trigger,
        } => {
            let trigger = match trigger
                .filter(|t| *t > Decimal::ZERO && !crossed(p.side, *t, p.mark_price))
            {
                Some(t) => t,
                None => {
                    let d = Decimal::try_from(distance_pct / 100.0).unwrap_or(Decimal::new(1, 2));
                    match p.side {
                        Side::Buy => p.mark_price * (Decimal::ONE - d),
                        Side::Sell => p.mark_price * (Decimal::ONE + d),
                    }
                    .round_dp(8)
                }
            };
            // Never a stop that cannot fire: at or below zero, or already crossed.
            if trigger <= Decimal::ZERO || crossed(p.side, trigger, p.mark_price) {
                return Remedy::failed(format!(
                    "no stop placed: a trigger {distance_pct}% from the mark {} would be {trigger}, which cannot protect",
                    p.mark_price
                ));
            }
            let request = StopRequest {
                client_id: format!("{prefix}-stop-{}", p.id),
                position_id: Some(p.id.clone()),
                instrument: p.instrument.clone(),
                side,
                position_side: p.position_side,
                quantity: missing,
                trigger_price: trigger,
            };
            match paced(&request.client_id, pacer, deadline, || {
                orders.place_stop(&request)
            })
            .await
            {
                Ok(o) => Remedy::sent(
                    format!(
                        "placed stop {} for {missing} at {trigger}{}",
                        o.client_id,
                        noted(&o)
                    ),
                    o.client_id,
                ),
                Err(e) => Remedy::failed(format!("placing a stop failed: {e}")),
            }
        }
        Action::Flatten => {
            let request = ExitRequest {
                client_id: format!("{prefix}-exit-{}", p.id),
                position_id: Some(p.id.clone()),
                instrument: p.instrument.clone(),
                side,
                position_side: p.position_side,
                quantity: p.quantity,
            };
            match paced(&request.client_id, pacer, deadline, || {
                orders.place_exit(&request)
            })
            .await
            {
                Ok(o) => Remedy::sent(
                    format!(
                        "sent reduce-only market exit {} for {}{}",
                        o.client_id,
                        o.filled_quantity,
                        noted(&o)
                    ),
                    o.client_id,
                ),
                Err(e) => Remedy::failed(format!("exit failed: {e}")),
            }
        }
    }
}
