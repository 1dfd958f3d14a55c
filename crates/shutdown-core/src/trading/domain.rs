//! Trading domain types the node roles speak in: orders, positions, accounts, strategy state.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Side of an order or of a position (`buy` is long, `sell` is short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buy order, or a long position.
    Buy,
    /// Sell order, or a short position.
    Sell,
}

impl Side {
    /// The other side: the side a protective stop of a position of this side must have.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Position side in hedge mode; `both` for one-way (net) accounts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PositionSide {
    /// One-way (net) mode: a single position per instrument.
    #[default]
    Both,
    /// Hedge mode, long leg.
    Long,
    /// Hedge mode, short leg.
    Short,
}

/// Order type. Only stop types can protect a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Market order.
    Market,
    /// Limit order.
    Limit,
    /// Stop that sends a market order when triggered.
    StopMarket,
    /// Stop that sends a limit order when triggered.
    StopLimit,
    /// Trailing stop.
    TrailingStop,
    /// Take-profit (market) order: triggers on the profit side, never protects.
    TakeProfit,
    /// Take-profit limit order.
    TakeProfitLimit,
}

impl OrderType {
    /// Whether this is a stop type (stop-market, stop-limit, trailing stop).
    pub fn is_stop(self) -> bool {
        matches!(
            self,
            OrderType::StopMarket | OrderType::StopLimit | OrderType::TrailingStop
        )
    }
}

/// Life-cycle status of an order as the venue reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Sent, not yet acknowledged.
    PendingNew,
    /// Accepted and working.
    New,
    /// Working, partly filled.
    PartiallyFilled,
    /// A conditional order whose trigger fired and whose child is still working.
    Triggered,
    /// A cancel was sent and is not yet confirmed.
    PendingCancel,
    /// Completely filled.
    Filled,
    /// Cancelled.
    Cancelled,
    /// Rejected by the venue.
    Rejected,
    /// Expired.
    Expired,
}

impl OrderStatus {
    /// Whether the order is still working (can fill, can be cancelled).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingNew
                | OrderStatus::New
                | OrderStatus::PartiallyFilled
                | OrderStatus::Triggered
                | OrderStatus::PendingCancel
        )
    }
}

impl OrderStatus {
    /// Whether the order rests at the venue now and would fire: accepted (new, partly filled) or
    /// triggered and working. An order whose status is in transition (pending new, pending
    /// cancel) or done protects nothing.
    pub fn is_resting(self) -> bool {
        matches!(
            self,
            OrderStatus::New | OrderStatus::PartiallyFilled | OrderStatus::Triggered
        )
    }
}

/// Where an order rests: at the venue, or only inside this process (emulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residence {
    /// Resting at the venue; survives this process.
    #[default]
    Venue,
    /// Held by this process only; vanishes when it exits.
    Local,
}

/// An order as the node knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Client order id (ours).
    pub client_id: String,
    /// Venue order id, once acknowledged.
    #[serde(default)]
    pub venue_id: Option<String>,
    /// Instrument symbol.
    pub instrument: String,
    /// Order side.
    pub side: Side,
    /// Hedge-mode position side this order belongs to.
    #[serde(default)]
    pub position_side: PositionSide,
    /// Order type.
    pub order_type: OrderType,
    /// Original quantity; 0 (or absent) for a close-position order, which has none (Binance's
    /// `closePosition=true` stop closes the whole position whatever its size).
    #[serde(default)]
    pub quantity: Decimal,
    /// Quantity filled so far.
    #[serde(default)]
    pub filled_quantity: Decimal,
    /// Trigger price of a conditional order.
    #[serde(default)]
    pub trigger_price: Option<Decimal>,
    /// Limit price.
    #[serde(default)]
    pub limit_price: Option<Decimal>,
    /// Reduce-only: can only shrink a position.
    #[serde(default)]
    pub reduce_only: bool,
    /// Close-position: closes the whole position whatever its size.
    #[serde(default)]
    pub close_position: bool,
    /// Status.
    pub status: OrderStatus,
    /// Where the order rests.
    #[serde(default)]
    pub residence: Residence,
    /// Kept in the venue's separate conditional ("algo") order service.
    #[serde(default)]
    pub conditional: bool,
    /// What the node says of how it placed the order, when there is something to say (an order a
    /// step placed while the node's trading state had to be switched to let it through, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Order {
    /// A new limit order resting at the venue (one-way mode, nothing filled yet).
    pub fn limit(
        client_id: impl Into<String>,
        instrument: impl Into<String>,
        side: Side,
        quantity: Decimal,
        price: Decimal,
    ) -> Order {
        Order {
            client_id: client_id.into(),
            venue_id: None,
            instrument: instrument.into(),
            side,
            position_side: PositionSide::Both,
            order_type: OrderType::Limit,
            quantity,
            filled_quantity: Decimal::ZERO,
            trigger_price: None,
            limit_price: Some(price),
            reduce_only: false,
            close_position: false,
            status: OrderStatus::New,
            residence: Residence::Venue,
            conditional: false,
            note: None,
        }
    }

    /// A new reduce-only stop-market order resting in the venue's conditional-order service: the
    /// shape of a protective stop.
    pub fn protective_stop(
        client_id: impl Into<String>,
        instrument: impl Into<String>,
        side: Side,
        quantity: Decimal,
        trigger: Decimal,
    ) -> Order {
        Order {
            order_type: OrderType::StopMarket,
            trigger_price: Some(trigger),
            limit_price: None,
            reduce_only: true,
            conditional: true,
            ..Order::limit(client_id, instrument, side, quantity, Decimal::ZERO)
        }
    }

    /// Quantity still working: original minus filled, never negative.
    pub fn remaining(&self) -> Decimal {
        (self.quantity - self.filled_quantity).max(Decimal::ZERO)
    }

    /// Whether this order is a protective stop candidate: a reduce-only or close-position stop.
    ///
    /// Whether it actually protects a given position is for the `verify` step to decide.
    pub fn is_protective(&self) -> bool {
        self.order_type.is_stop() && (self.reduce_only || self.close_position)
    }
}

/// An open position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Position id.
    pub id: String,
    /// Instrument symbol.
    pub instrument: String,
    /// `buy` for long, `sell` for short.
    pub side: Side,
    /// Hedge-mode position side.
    #[serde(default)]
    pub position_side: PositionSide,
    /// Absolute quantity.
    pub quantity: Decimal,
    /// Average entry price.
    pub entry_price: Decimal,
    /// Current mark price (the price stops trigger on).
    pub mark_price: Decimal,
}

/// What the node last knew of its book: the snapshot its previous shutdown left (or an empty book on
/// a first start). The start gate's `reconcile` step compares the venue against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastKnown {
    /// When it was taken (RFC 3339), if known.
    #[serde(default)]
    pub taken_at: Option<String>,
    /// Every order the node knew, in any status.
    pub orders: Vec<Order>,
    /// Open positions.
    pub positions: Vec<Position>,
}

/// An account balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Account id.
    pub id: String,
    /// Currency of the balance.
    pub currency: String,
    /// Total balance.
    pub balance: Decimal,
    /// Balance free for new orders.
    pub available: Decimal,
}

/// Opaque state of one strategy, as the strategy serialises it: JSON text, shared, so that handing it
/// to a snapshot costs a reference count, not a copy of the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyState {
    /// Strategy id.
    pub strategy_id: String,
    /// The strategy's own state, as JSON.
    pub state: Arc<serde_json::value::RawValue>,
}

impl StrategyState {
    /// State from any serialisable value.
    pub fn new(
        strategy_id: impl Into<String>,
        state: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(state)?;
        Ok(Self {
            strategy_id: strategy_id.into(),
            state: Arc::from(raw),
        })
    }

    /// The state parsed into a JSON value.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.state.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for StrategyState {
    fn eq(&self, other: &Self) -> bool {
        self.strategy_id == other.strategy_id && self.state.get() == other.state.get()
    }
}

/// A venue connection as the node reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Connection id.
    pub id: String,
    /// Venue name.
    pub venue: String,
    /// Whether the connection is up.
    pub connected: bool,
    /// Whether a dead-man's switch (cancel-on-disconnect, countdown cancel-all) is armed.
    pub dead_man_armed: bool,
    /// Whether the session is logged in.
    pub logged_in: bool,
    /// What a clean logout does to an armed switch on this connection.
    #[serde(default)]
    pub logout: LogoutEffect,
}

/// What a clean logout does to a connection's armed dead-man's switch, as the venue documents it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutEffect {
    /// Nothing: the switch stays armed (a countdown keeps running; a cancel-on-disconnect fires
    /// when the connection closes).
    #[default]
    Nothing,
    /// The session ends without firing it (Deribit's WebSocket `logout`).
    Disarms,
    /// The logout fires it: every order goes (FIX Logout with cancel-on-disconnect set).
    Fires,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_read_without_a_quantity_has_none_as_a_close_position_order_has() {
        let o: Order = serde_json::from_value(serde_json::json!({
            "client_id": "s", "instrument": "BTC-PERP", "side": "sell",
            "order_type": "stop_market", "status": "new", "trigger_price": "58000",
            "close_position": true
        }))
        .unwrap();
        assert_eq!(o.quantity, Decimal::ZERO);
        assert!(o.is_protective());
    }
}
