//! What steps count for the report and the metrics.

use serde::{Deserialize, Serialize};

/// What a step counts for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    /// Orders the shutdown cancelled.
    OrdersCancelled,
    /// Orders left working that the shutdown could not cancel.
    OrdersOrphaned,
    /// Open positions left without protective stop coverage.
    PositionsUnprotected,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 3] = [
        Counter::OrdersCancelled,
        Counter::OrdersOrphaned,
        Counter::PositionsUnprotected,
    ];

    /// Whether it counts a state the shutdown leaves behind (orders left working, positions
    /// unprotected), which a later step may judge again, rather than things done (orders
    /// cancelled), which add up.
    pub fn is_state(self) -> bool {
        !matches!(self, Counter::OrdersCancelled)
    }

    /// The name, as in the report (`orders_orphaned`).
    pub fn name(self) -> &'static str {
        match self {
            Counter::OrdersCancelled => "orders_cancelled",
            Counter::OrdersOrphaned => "orders_orphaned",
            Counter::PositionsUnprotected => "positions_unprotected",
        }
    }
}
