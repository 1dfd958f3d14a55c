//! Node roles: the small traits through which steps talk to a trading node, and the [`Node`] handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::retry::Retryable;
use crate::trading::domain::{
    Account, ConnectionInfo, Order, Position, PositionSide, Side, StrategyState,
};

/// Why a call to a node role failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoleError {
    /// The venue refused for rate limiting (HTTP 429 or equivalent).
    #[error("rate limited by the venue{}", retry_after.map(|d| format!(" (retry after {})", crate::secs::secs(d))).unwrap_or_default())]
    RateLimited {
        /// When the venue says to come back, if it says.
        retry_after: Option<Duration>,
    },
    /// A failure that may pass on retry (timeout, 5xx, connection reset).
    #[error("transient failure: {0}")]
    Transient(String),
    /// The venue rejected the request; retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The node does not support this call.
    #[error("not supported by this node: {0}")]
    Unsupported(String),
}

impl RoleError {
    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RoleError::RateLimited { .. } | RoleError::Transient(_)
        )
    }
}

/// Result of a node role call.
pub type RoleResult<T> = Result<T, RoleError>;

/// The venue's answer to a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelAck {
    /// The order is cancelled.
    Cancelled,
    /// The cancel is accepted but not yet confirmed; read the order's state to confirm.
    Pending,
    /// Too late: the order filled first.
    AlreadyFilled,
    /// The venue does not know the order (filled, expired, or never reached it).
    UnknownOrder,
}

/// Which orders a mass-cancel covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassCancelScope {
    /// Leave protective (reduce-only or close-position) stops resting.
    pub keep_protective_stops: bool,
    /// Restrict to one instrument; all instruments when `None`.
    pub instrument: Option<String>,
}

/// How a venue cancels, as its documentation states it: what the `cancel` step may use, and at
/// what pace. A node that says nothing gets the defaults: one order a request, no mass cancel, no
/// known rate limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelRules {
    /// The most orders one [`OrderGateway::cancel_batch`] request takes (all of one instrument);
    /// 1 when the venue has no batch cancel.
    pub batch_size: usize,
    /// The venue's mass cancel, if it has one.
    pub mass_cancel: Option<MassCancelRules>,
    /// The order and cancel requests a second the venue's documented limit allows, if known: the
    /// steps pace themselves to it (never above it).
    pub requests_per_sec: Option<f64>,
    /// A request over that limit ends the session, and fires an armed cancel-on-disconnect with
    /// it (Deribit): no request may be risked over it.
    pub limit_ends_session: bool,
}

impl Default for CancelRules {
    fn default() -> Self {
        Self {
            batch_size: 1,
            mass_cancel: None,
            requests_per_sec: None,
            limit_ends_session: false,
        }
    }
}

/// What a venue's mass cancel does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MassCancelRules {
    /// Asked with `keep_protective_stops`, it leaves protective stops resting (it can be limited by
    /// order type or tag, or the stops live in a service it does not touch). Without this, it takes
    /// the stops too and is used only when stops may go.
    pub spares_stops: bool,
    /// It must name one instrument.
    pub per_instrument: bool,
    /// The most orders one call cancels, if limited: the rest stay working.
    pub max_orders: Option<usize>,
}

/// What the venue acknowledged for a mass-cancel (each cancel is still confirmed from order state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassCancelAck {
    /// How many orders the venue says it will cancel.
    pub count: usize,
}

/// A request to place a protective stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRequest {
    /// Client id to use for the new order.
    pub client_id: String,
    /// The position it is for (a venue that keeps several positions on one instrument, or
    /// one per strategy, as Nautilus does, needs it to reduce the right one).
    #[serde(default)]
    pub position_id: Option<String>,
    /// Instrument symbol.
    pub instrument: String,
    /// Order side (opposite to the position).
    pub side: Side,
    /// Hedge-mode position side.
    pub position_side: PositionSide,
    /// Quantity to cover.
    pub quantity: Decimal,
    /// Trigger price.
    pub trigger_price: Decimal,
}

/// A request to exit a position with a reduce-only market order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRequest {
    /// Client id to use for the new order.
    pub client_id: String,
    /// The position it is for (a venue that keeps several positions on one instrument, or
    /// one per strategy, as Nautilus does, needs it to reduce the right one).
    #[serde(default)]
    pub position_id: Option<String>,
    /// Instrument symbol.
    pub instrument: String,
    /// Order side (opposite to the position).
    pub side: Side,
    /// Hedge-mode position side.
    pub position_side: PositionSide,
    /// Quantity to close.
    pub quantity: Decimal,
}

/// Trading gate: halts and resumes new orders at the source.
#[async_trait]
pub trait TradingGate: Send + Sync {
    /// Stop accepting new orders.
    async fn halt(&self) -> RoleResult<()>;
    /// Accept new orders again.
    async fn resume(&self) -> RoleResult<()>;
    /// Whether new orders are refused right now.
    async fn is_halted(&self) -> RoleResult<bool>;
}

/// Order gateway: lists, cancels and places orders.
#[async_trait]
pub trait OrderGateway: Send + Sync {
    /// Every live order of the venue's order listing. A venue that keeps conditional ("algo")
    /// orders in a separate service lists those from [`OrderGateway::conditional_orders`] instead.
    async fn open_orders(&self) -> RoleResult<Vec<Order>>;
    /// Live conditional orders that [`OrderGateway::open_orders`] does not list, for a venue that
    /// keeps them in a separate service (Binance USD-M's algo orders, OKX's algo orders); empty by
    /// default. Steps read both listings: the orders listing alone would make every such stop look
    /// missing.
    async fn conditional_orders(&self) -> RoleResult<Vec<Order>> {
        Ok(Vec::new())
    }
    /// The venue's current view of one order; `None` when the venue does not know it.
    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>>;
    /// The venue's recent orders of one instrument, closed ones included (Binance's all-orders,
    /// Bybit's order history): one request says how many orders ended, where
    /// [`OrderGateway::order`] takes one each. Unsupported by default.
    async fn order_history(&self, instrument: &str) -> RoleResult<Vec<Order>> {
        let _ = instrument;
        Err(RoleError::Unsupported("order history".into()))
    }
    /// Cancel one order by client id.
    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck>;
    /// How this venue cancels: batch size, mass cancel, documented rate limit.
    fn cancel_rules(&self) -> CancelRules {
        CancelRules::default()
    }
    /// Cancel up to [`CancelRules::batch_size`] orders of one instrument in one request: one
    /// answer per client id, in order. The request as a whole may fail (rate limited, transient).
    async fn cancel_batch(&self, client_ids: &[String]) -> RoleResult<Vec<RoleResult<CancelAck>>> {
        let _ = client_ids;
        Err(RoleError::Unsupported("batch cancel".into()))
    }
    /// Cancel many orders in one request, as [`CancelRules::mass_cancel`] describes.
    async fn mass_cancel(&self, scope: &MassCancelScope) -> RoleResult<MassCancelAck> {
        let _ = scope;
        Err(RoleError::Unsupported("mass cancel".into()))
    }
    /// Place a reduce-only stop-market order.
    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order>;
    /// Exit a position with a reduce-only market order.
    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order>;
}

/// Position book: open positions and prices.
#[async_trait]
pub trait PositionBook: Send + Sync {
    /// Every open position, freshly read.
    async fn positions(&self) -> RoleResult<Vec<Position>>;
    /// Mark price of an instrument.
    async fn mark_price(&self, instrument: &str) -> RoleResult<Decimal>;
}

/// State source: what goes into the state snapshot.
#[async_trait]
pub trait StateSource: Send + Sync {
    /// The orders the node tracks.
    async fn orders(&self) -> RoleResult<Vec<Order>>;
    /// The positions the node tracks.
    async fn positions(&self) -> RoleResult<Vec<Position>>;
    /// Account balances.
    async fn accounts(&self) -> RoleResult<Vec<Account>>;
    /// Strategy state: often the largest collection (caches of many thousands of entries), so it is
    /// shared: a node that keeps it in an `Arc` (replacing it, or `Arc::make_mut`, on change) hands it
    /// to the snapshot without copying it.
    async fn strategies(&self) -> RoleResult<Arc<Vec<StrategyState>>>;
}

/// Connections to venues.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Every venue connection.
    async fn connections(&self) -> RoleResult<Vec<ConnectionInfo>>;
    /// Disarm the dead-man's switch (cancel-on-disconnect, countdown cancel-all) of one connection.
    async fn disarm_dead_man(&self, id: &str) -> RoleResult<()>;
    /// Log the session out cleanly.
    async fn logout(&self, id: &str) -> RoleResult<()>;
    /// Close the connection.
    async fn disconnect(&self, id: &str) -> RoleResult<()>;
}

/// One of the node roles, for error messages and plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// [`TradingGate`].
    TradingGate,
    /// [`OrderGateway`].
    OrderGateway,
    /// [`PositionBook`].
    PositionBook,
    /// [`StateSource`].
    StateSource,
    /// [`Connections`].
    Connections,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::TradingGate => "trading gate",
            Role::OrderGateway => "order gateway",
            Role::PositionBook => "position book",
            Role::StateSource => "state source",
            Role::Connections => "connections",
        })
    }
}

/// A role a step needs and the node does not provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("needs the {0} role, which this node does not provide")]
pub struct MissingRole(pub Role);

/// The typed handle on a trading node: the roles it implements.
///
/// ```
/// use shutdown_core::Node;
/// let node = Node::new();
/// assert!(node.gate().is_err());
/// ```
#[derive(Clone, Default)]
pub struct Node {
    gate: Option<Arc<dyn TradingGate>>,
    orders: Option<Arc<dyn OrderGateway>>,
    positions: Option<Arc<dyn PositionBook>>,
    state: Option<Arc<dyn StateSource>>,
    connections: Option<Arc<dyn Connections>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("roles", &self.roles())
            .finish()
    }
}

macro_rules! role_accessors {
    ($($field:ident, $with:ident, $trait:ident, $role:ident;)*) => {
        impl Node {
            $(
                #[doc = concat!("Provide the [`", stringify!($trait), "`] role.")]
                pub fn $with(mut self, role: Arc<dyn $trait>) -> Self {
                    self.$field = Some(role);
                    self
                }

                #[doc = concat!("The [`", stringify!($trait), "`] role, or which role is missing.")]
                pub fn $field(&self) -> Result<Arc<dyn $trait>, MissingRole> {
                    self.$field.clone().ok_or(MissingRole(Role::$role))
                }
            )*

            /// The roles this node provides.
            pub fn roles(&self) -> Vec<Role> {
                let mut roles = Vec::new();
                $( if self.$field.is_some() { roles.push(Role::$role); } )*
                roles
            }
        }
    };
}

role_accessors! {
    gate, with_gate, TradingGate, TradingGate;
    orders, with_orders, OrderGateway, OrderGateway;
    positions, with_positions, PositionBook, PositionBook;
    state, with_state, StateSource, StateSource;
    connections, with_connections, Connections, Connections;
}

impl Node {
    /// A node with no roles; add them with the `with_*` methods.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Retryable for RoleError {
    fn is_retryable(&self) -> bool {
        RoleError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RoleError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    fn timed_out() -> Self {
        RoleError::Transient("no answer before the deadline".into())
    }
}
