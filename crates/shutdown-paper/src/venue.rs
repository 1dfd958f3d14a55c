//! The simulated venue and in-memory node: one `PaperNode` that implements every node role.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use shutdown_core::Node;
use shutdown_core::domain::{
    Account, ConnectionInfo, Order, OrderStatus, OrderType, Position, Residence, Side,
    StrategyState,
};
use shutdown_core::errors::RoleError;
use shutdown_core::node::{
    CancelAck, Connections, ExitRequest, MassCancelAck, MassCancelScope, OrderGateway,
    PositionBook, RoleResult, StateSource, StopRequest, TradingGate,
};
use tokio::time::Instant;

use crate::scenario::{Scenario, VenueBehaviour};

/// The venue's random decisions, each keyed to what it decides (the call and the order it is
/// about, and how many times that was decided before), never to the order in which requests
/// arrive: the same seed gives the same decisions however the requests interleave.
#[derive(Debug, Clone)]
struct Draws {
    seed: u64,
    /// How many times each decision was drawn.
    counts: HashMap<String, u64>,
}

impl Draws {
    /// Whether the event of probability `p` happens, for the decision `what` about `key`.
    fn chance(&mut self, p: f64, what: &str, key: &str) -> bool {
        if p <= 0.0 {
            return false;
        }
        let decision = format!("{what}:{key}");
        let n = self.counts.entry(decision.clone()).or_default();
        *n += 1;
        // FNV-1a of the decision and its count, mixed with the seed by SplitMix64's finaliser: a
        // keyed hash, not a stream, so the draw does not depend on the order of the requests.
        let mut h = fnv::FnvHasher::default();
        h.write(decision.as_bytes());
        h.write(&n.to_le_bytes());
        let mut z = (h.finish() ^ self.seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Debug)]
struct Conn {
    info: ConnectionInfo,
    hangs: bool,
}

/// Counters of what the venue saw, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VenueStats {
    /// Requests answered (any call).
    pub requests: u64,
    /// Cancel requests received.
    pub cancel_requests: u64,
    /// Requests refused for the rate limit.
    pub rate_limited: u64,
    /// Requests failed with a transient error.
    pub transient_failures: u64,
    /// Cancels that lost the race to a fill.
    pub fills_racing_cancels: u64,
}

pub(crate) mod downtime;

#[derive(Debug)]
struct State {
    behaviour: VenueBehaviour,
    draws: Draws,
    halted: bool,
    marks: HashMap<String, Decimal>,
    orders: BTreeMap<String, Order>,
    positions: BTreeMap<String, Position>,
    connections: BTreeMap<String, Conn>,
    accounts: Vec<Account>,
    strategies: Arc<Vec<StrategyState>>,
    tokens: f64,
    refilled: Option<Instant>,
    stats: VenueStats,
    events: Vec<String>,
    next_id: u64,
    /// The orders working at the venue when the node was built (a dry-run's shutdown begins then):
    /// the audit checks that the report accounts for each.
    working_at_start: Vec<String>,
}

/// A deterministic simulated venue and in-memory node; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct PaperNode {
    state: Arc<Mutex<State>>,
}

impl PaperNode {
    /// A node holding the scenario's book, behaving as its `[venue]` says.
    pub fn new(scenario: &Scenario) -> Self {
        Self::with_seed(scenario, scenario.seed)
    }

    /// As [`PaperNode::new`], with another seed.
    pub fn with_seed(scenario: &Scenario, seed: u64) -> Self {
        let (instruments, positions, orders) = scenario.expanded();
        let marks: HashMap<String, Decimal> = instruments
            .iter()
            .map(|i| (i.symbol.clone(), i.mark_price))
            .collect();
        let positions = positions
            .into_iter()
            .map(|p| {
                let mark = marks.get(&p.instrument).copied().unwrap_or(p.entry_price);
                (
                    p.id.clone(),
                    Position {
                        id: p.id,
                        instrument: p.instrument,
                        side: p.side,
                        position_side: p.position_side,
                        quantity: p.quantity,
                        entry_price: p.entry_price,
                        mark_price: mark,
                    },
                )
            })
            .collect();
        let working_at_start = (orders.iter())
            .filter(|o| o.status.is_live() && o.residence == Residence::Venue)
            .map(|o| o.client_id.clone())
            .collect();
        let orders = orders
            .into_iter()
            .map(|o| (o.client_id.clone(), o))
            .collect();
        let connections = scenario
            .connections
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    Conn {
                        info: ConnectionInfo {
                            id: c.id.clone(),
                            venue: c.venue.clone(),
                            connected: true,
                            dead_man_armed: c.dead_man_armed,
                            logged_in: true,
                        },
                        hangs: c.hangs,
                    },
                )
            })
            .collect();
        Self {
            state: Arc::new(Mutex::new(State {
                tokens: f64::from(scenario.venue.rate_limit_per_sec),
                behaviour: scenario.venue.clone(),
                draws: Draws {
                    seed,
                    counts: HashMap::new(),
                },
                halted: false,
                marks,
                orders,
                positions,
                connections,
                accounts: scenario.accounts.clone(),
                strategies: Arc::new(scenario.expanded_strategies()),
                refilled: None,
                stats: VenueStats::default(),
                events: Vec::new(),
                next_id: 1,
                working_at_start,
            })),
        }
    }

    /// The node handle with every role of this paper node.
    pub fn node(&self) -> Node {
        let me = Arc::new(self.clone());
        Node::new()
            .with_gate(me.clone())
            .with_orders(me.clone())
            .with_positions(me.clone())
            .with_state(me.clone())
            .with_connections(me)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client ids of the orders working at the venue when this node was built.
    pub fn working_at_start(&self) -> Vec<String> {
        self.lock().working_at_start.clone()
    }

    /// Every order the venue knows, in any status.
    pub fn all_orders(&self) -> Vec<Order> {
        self.lock().orders.values().cloned().collect()
    }

    /// One order by client id.
    pub fn get_order(&self, client_id: &str) -> Option<Order> {
        self.lock().orders.get(client_id).cloned()
    }

    /// Open positions.
    pub fn open_positions(&self) -> Vec<Position> {
        self.lock().positions.values().cloned().collect()
    }

    /// Connections as they are now.
    pub fn connection_states(&self) -> Vec<ConnectionInfo> {
        self.lock()
            .connections
            .values()
            .map(|c| c.info.clone())
            .collect()
    }

    /// What the venue counted.
    pub fn stats(&self) -> VenueStats {
        self.lock().stats.clone()
    }

    /// Notable venue events (dead-man's switch fired, ...), in order.
    pub fn events(&self) -> Vec<String> {
        self.lock().events.clone()
    }

    /// Whether new orders are refused.
    pub fn halted(&self) -> bool {
        self.lock().halted
    }

    /// Submit a new order, as a strategy would; refused while halted.
    pub async fn submit(&self, mut order: Order) -> RoleResult<Order> {
        self.call(&format!("submit:{}", order.client_id)).await?;
        let mut s = self.lock();
        if s.halted {
            return Err(RoleError::Rejected("trading is halted".into()));
        }
        if !s.marks.contains_key(&order.instrument) {
            return Err(RoleError::Rejected(format!(
                "unknown instrument {}",
                order.instrument
            )));
        }
        order.status = OrderStatus::New;
        order.venue_id = Some(format!("v-{}", s.next_id));
        s.next_id += 1;
        s.orders.insert(order.client_id.clone(), order.clone());
        Ok(order)
    }

    /// Fill a working order now (a market move), updating the position.
    pub fn fill(&self, client_id: &str) -> bool {
        let mut s = self.lock();
        fill_order(&mut s, client_id)
    }

    /// Move an instrument's mark price.
    pub fn set_mark(&self, instrument: &str, price: Decimal) {
        let mut s = self.lock();
        s.marks.insert(instrument.to_owned(), price);
        for p in s.positions.values_mut() {
            if p.instrument == instrument {
                p.mark_price = price;
            }
        }
    }

    /// Latency, then the rate limit and transient failures, as a venue's HTTP front would; `key`
    /// names the call (and the order it is about) for the venue's random decisions.
    async fn call(&self, key: &str) -> RoleResult<()> {
        let latency = self.lock().behaviour.latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut s = self.lock();
        s.stats.requests += 1;
        let limit = f64::from(s.behaviour.rate_limit_per_sec);
        if limit > 0.0 {
            let now = Instant::now();
            let last = s.refilled.unwrap_or(now);
            s.tokens = (s.tokens + now.duration_since(last).as_secs_f64() * limit).min(limit);
            s.refilled = Some(now);
            if s.tokens < 1.0 {
                s.stats.rate_limited += 1;
                let wait = (1.0 - s.tokens) / limit;
                return Err(RoleError::RateLimited {
                    retry_after: Some(Duration::from_secs_f64(wait)),
                });
            }
            s.tokens -= 1.0;
        }
        let p = s.behaviour.transient_failure_rate;
        if s.draws.chance(p, "transient", key) {
            s.stats.transient_failures += 1;
            return Err(RoleError::Transient("venue answered 503".into()));
        }
        Ok(())
    }
}

fn fill_order(s: &mut State, client_id: &str) -> bool {
    let Some(order) = s.orders.get_mut(client_id) else {
        return false;
    };
    if !order.status.is_live() {
        return false;
    }
    let qty = order.remaining();
    order.filled_quantity = order.quantity;
    order.status = OrderStatus::Filled;
    let order = order.clone();
    apply_fill(s, &order, qty);
    true
}

/// Move the position of the order's instrument and position side by a fill.
fn apply_fill(s: &mut State, order: &Order, qty: Decimal) {
    let mark = s.marks.get(&order.instrument).copied();
    let key = s
        .positions
        .values()
        .find(|p| p.instrument == order.instrument && p.position_side == order.position_side)
        .map(|p| p.id.clone());
    match key {
        Some(id) => {
            let Some(p) = s.positions.get_mut(&id) else {
                return;
            };
            let reduces = order.reduce_only || order.close_position;
            if p.side == order.side {
                if !reduces {
                    p.quantity += qty;
                }
            } else if qty < p.quantity && !order.close_position {
                p.quantity -= qty;
            } else if qty == p.quantity || reduces {
                s.positions.remove(&id);
            } else {
                p.quantity = qty - p.quantity;
                p.side = order.side;
            }
        }
        None if order.reduce_only || order.close_position => {}
        None => {
            let price = order.limit_price.or(mark).unwrap_or(Decimal::ZERO);
            let id = format!("pos-{}", order.instrument);
            s.positions.insert(
                id.clone(),
                Position {
                    id,
                    instrument: order.instrument.clone(),
                    side: order.side,
                    position_side: order.position_side,
                    quantity: qty,
                    entry_price: price,
                    mark_price: mark.unwrap_or(price),
                },
            );
        }
    }
}

#[async_trait]
impl TradingGate for PaperNode {
    async fn halt(&self) -> RoleResult<()> {
        self.call("halt").await?;
        self.lock().halted = true;
        Ok(())
    }

    async fn resume(&self) -> RoleResult<()> {
        self.call("resume").await?;
        self.lock().halted = false;
        Ok(())
    }

    async fn is_halted(&self) -> RoleResult<bool> {
        Ok(self.lock().halted)
    }
}

#[async_trait]
impl OrderGateway for PaperNode {
    async fn open_orders(&self) -> RoleResult<Vec<Order>> {
        self.call("open-orders").await?;
        Ok(self
            .lock()
            .orders
            .values()
            .filter(|o| o.status.is_live())
            .cloned()
            .collect())
    }

    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>> {
        self.call(&format!("order:{client_id}")).await?;
        Ok(self.lock().orders.get(client_id).cloned())
    }

    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.call(&format!("cancel:{client_id}")).await?;
        let mut s = self.lock();
        s.stats.cancel_requests += 1;
        let Some(order) = s.orders.get(client_id) else {
            return Ok(CancelAck::UnknownOrder);
        };
        match order.status {
            OrderStatus::Filled => return Ok(CancelAck::AlreadyFilled),
            OrderStatus::Cancelled | OrderStatus::Rejected | OrderStatus::Expired => {
                return Ok(CancelAck::UnknownOrder);
            }
            _ => {}
        }
        if s.behaviour.uncancellable.iter().any(|c| c == client_id) {
            return Err(RoleError::Rejected(format!(
                "order {client_id} cannot be cancelled now"
            )));
        }
        let race = s.behaviour.fill_race_rate;
        if s.draws.chance(race, "fill-race", client_id) {
            s.stats.fills_racing_cancels += 1;
            fill_order(&mut s, client_id);
            // Venues answer a lost race either way: "too late" or "unknown order".
            return Ok(if s.draws.chance(0.5, "too-late", client_id) {
                CancelAck::AlreadyFilled
            } else {
                CancelAck::UnknownOrder
            });
        }
        if let Some(o) = s.orders.get_mut(client_id) {
            o.status = OrderStatus::Cancelled;
        }
        Ok(CancelAck::Cancelled)
    }

    fn supports_mass_cancel(&self) -> bool {
        self.lock().behaviour.mass_cancel
    }

    async fn mass_cancel(&self, scope: &MassCancelScope) -> RoleResult<MassCancelAck> {
        if !self.supports_mass_cancel() {
            return Err(RoleError::Unsupported("mass cancel".into()));
        }
        self.call("mass-cancel").await?;
        let mut s = self.lock();
        let targets: Vec<String> = s
            .orders
            .values()
            .filter(|o| o.status.is_live() && o.residence == Residence::Venue)
            .filter(|o| !(scope.keep_protective_stops && o.is_protective()))
            .filter(|o| scope.instrument.as_ref().is_none_or(|i| *i == o.instrument))
            .map(|o| o.client_id.clone())
            .collect();
        let mut count = 0;
        for id in targets {
            if s.behaviour.uncancellable.contains(&id) {
                continue;
            }
            let race = s.behaviour.fill_race_rate;
            if s.draws.chance(race, "fill-race", &id) {
                s.stats.fills_racing_cancels += 1;
                fill_order(&mut s, &id);
            } else if let Some(o) = s.orders.get_mut(&id) {
                o.status = OrderStatus::Cancelled;
            }
            count += 1;
        }
        Ok(MassCancelAck { count })
    }

    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.call(&format!("place-stop:{}", request.client_id))
            .await?;
        let mut s = self.lock();
        let mark = s.marks.get(&request.instrument).copied().ok_or_else(|| {
            RoleError::Rejected(format!("unknown instrument {}", request.instrument))
        })?;
        let crossed = match request.side {
            Side::Sell => request.trigger_price >= mark,
            Side::Buy => request.trigger_price <= mark,
        };
        if crossed {
            return Err(RoleError::Rejected(format!(
                "stop trigger {} would trigger immediately (mark {mark})",
                request.trigger_price
            )));
        }
        let order = Order {
            venue_id: Some(format!("v-{}", s.next_id)),
            position_side: request.position_side,
            ..Order::protective_stop(
                request.client_id.clone(),
                request.instrument.clone(),
                request.side,
                request.quantity,
                request.trigger_price,
            )
        };
        s.next_id += 1;
        s.orders.insert(order.client_id.clone(), order.clone());
        Ok(order)
    }

    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.call(&format!("place-exit:{}", request.client_id))
            .await?;
        let mut s = self.lock();
        let mark = s.marks.get(&request.instrument).copied().ok_or_else(|| {
            RoleError::Rejected(format!("unknown instrument {}", request.instrument))
        })?;
        let open = s
            .positions
            .values()
            .find(|p| {
                p.instrument == request.instrument
                    && p.position_side == request.position_side
                    && p.side == request.side.opposite()
            })
            .map(|p| p.quantity)
            .ok_or_else(|| {
                RoleError::Rejected("reduce-only order would not reduce any position".into())
            })?;
        let qty = request.quantity.min(open);
        let order = Order {
            client_id: request.client_id.clone(),
            venue_id: Some(format!("v-{}", s.next_id)),
            instrument: request.instrument.clone(),
            side: request.side,
            position_side: request.position_side,
            order_type: OrderType::Market,
            quantity: qty,
            filled_quantity: qty,
            trigger_price: None,
            limit_price: Some(mark),
            reduce_only: true,
            close_position: false,
            status: OrderStatus::Filled,
            residence: Residence::Venue,
            conditional: false,
            note: None,
        };
        s.next_id += 1;
        apply_fill(&mut s, &order, qty);
        s.orders.insert(order.client_id.clone(), order.clone());
        Ok(order)
    }
}

#[async_trait]
impl PositionBook for PaperNode {
    async fn positions(&self) -> RoleResult<Vec<Position>> {
        self.call("positions").await?;
        Ok(self.open_positions())
    }

    async fn mark_price(&self, instrument: &str) -> RoleResult<Decimal> {
        self.lock()
            .marks
            .get(instrument)
            .copied()
            .ok_or_else(|| RoleError::Rejected(format!("unknown instrument {instrument}")))
    }
}

#[async_trait]
impl StateSource for PaperNode {
    async fn orders(&self) -> RoleResult<Vec<Order>> {
        Ok(self.all_orders())
    }

    async fn positions(&self) -> RoleResult<Vec<Position>> {
        Ok(self.open_positions())
    }

    async fn accounts(&self) -> RoleResult<Vec<Account>> {
        Ok(self.lock().accounts.clone())
    }

    async fn strategies(&self) -> RoleResult<Arc<Vec<StrategyState>>> {
        Ok(self.lock().strategies.clone())
    }
}

impl PaperNode {
    /// A call on one connection: unknown ids are rejected, a hung connection never answers.
    async fn on_connection(&self, id: &str) -> RoleResult<()> {
        let hangs = self
            .lock()
            .connections
            .get(id)
            .map(|c| c.hangs)
            .ok_or_else(|| RoleError::Rejected(format!("unknown connection {id}")))?;
        if hangs {
            return std::future::pending().await;
        }
        self.call(&format!("connection:{id}")).await
    }

    fn update_connection(&self, id: &str, f: impl FnOnce(&mut ConnectionInfo)) {
        if let Some(c) = self.lock().connections.get_mut(id) {
            f(&mut c.info);
        }
    }
}

#[async_trait]
impl Connections for PaperNode {
    async fn connections(&self) -> RoleResult<Vec<ConnectionInfo>> {
        Ok(self.connection_states())
    }

    async fn disarm_dead_man(&self, id: &str) -> RoleResult<()> {
        self.on_connection(id).await?;
        self.update_connection(id, |c| c.dead_man_armed = false);
        Ok(())
    }

    async fn logout(&self, id: &str) -> RoleResult<()> {
        self.on_connection(id).await?;
        self.update_connection(id, |c| c.logged_in = false);
        Ok(())
    }

    async fn disconnect(&self, id: &str) -> RoleResult<()> {
        self.on_connection(id).await?;
        let mut s = self.lock();
        let armed = match s.connections.get_mut(id) {
            Some(c) => {
                c.info.connected = false;
                c.info.logged_in = false;
                c.info.dead_man_armed
            }
            None => false,
        };
        if armed {
            // The venue's dead-man's switch fires: every resting order goes, stops included.
            let mut wiped = 0;
            for o in s.orders.values_mut() {
                if o.status.is_live() && o.residence == Residence::Venue {
                    o.status = OrderStatus::Cancelled;
                    wiped += 1;
                }
            }
            s.events.push(format!(
                "dead-man's switch of {id} fired: {wiped} orders cancelled"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::from_toml(
            "[venue]\nfill_race_rate = 0.3\ntransient_failure_rate = 0.2\n[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n[generate]\norders = 50\npositions = 0\n",
            "s.toml",
        )
        .unwrap()
    }

    async fn cancel_all(node: &PaperNode) -> Vec<Result<CancelAck, RoleError>> {
        let mut out = Vec::new();
        for o in node.all_orders() {
            out.push(node.cancel(&o.client_id).await);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
        let a = cancel_all(&PaperNode::with_seed(&scenario(), 5)).await;
        let b = cancel_all(&PaperNode::with_seed(&scenario(), 5)).await;
        let c = cancel_all(&PaperNode::with_seed(&scenario(), 6)).await;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_answers_429_then_refills() {
        let s = Scenario::from_toml(
            "[venue]\nrate_limit_per_sec = 2\n[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n",
            "s.toml",
        )
        .unwrap();
        let node = PaperNode::new(&s);
        assert!(node.open_orders().await.is_ok());
        assert!(node.open_orders().await.is_ok());
        assert!(matches!(
            node.open_orders().await,
            Err(RoleError::RateLimited {
                retry_after: Some(_)
            })
        ));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(node.open_orders().await.is_ok());
        assert_eq!(node.stats().rate_limited, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_halted_gate_reads_back_halted_and_crossed_stops_are_rejected() {
        let s = Scenario::from_toml(
            "[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n",
            "s.toml",
        )
        .unwrap();
        let node = PaperNode::new(&s);
        node.halt().await.unwrap();
        assert!(node.is_halted().await.unwrap());
        let stop = StopRequest {
            client_id: "s".into(),
            position_id: None,
            instrument: "B".into(),
            side: Side::Sell,
            position_side: shutdown_core::domain::PositionSide::Both,
            quantity: Decimal::ONE,
            trigger_price: Decimal::new(101, 0),
        };
        let err = node.place_stop(&stop).await.unwrap_err();
        assert!(
            err.to_string().contains("would trigger immediately"),
            "{err}"
        );
    }
}
