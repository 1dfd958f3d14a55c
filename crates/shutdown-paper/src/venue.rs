//! The simulated venue and in-memory node: one `PaperNode` that implements every node role.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use shutdown_core::Node;
use shutdown_core::domain::{
    Account, ConnectionInfo, LogoutEffect, Order, OrderStatus, OrderType, Position, Residence,
    Side, StrategyState,
};
use shutdown_core::errors::RoleError;
use shutdown_core::node::{
    CancelAck, CancelRules, Connections, ExitRequest, MassCancelAck, MassCancelScope, OrderGateway,
    PositionBook, RoleResult, StateSource, StopRequest, TradingGate,
};
use tokio::time::Instant;

use crate::profile::{Fires, Rules};
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
        let n = *n;
        let z = self.keyed(decision.as_bytes(), &n.to_le_bytes());
        ((z >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A keyed rank of `key` for the decision `what`: the venue's choice among many orders.
    fn rank(&self, what: &str, key: &str) -> u64 {
        self.keyed(what.as_bytes(), key.as_bytes())
    }

    /// FNV-1a of `a` then `b`, mixed with the seed by SplitMix64's finaliser: a keyed hash, not a
    /// stream, so a draw does not depend on the order of the requests.
    fn keyed(&self, a: &[u8], b: &[u8]) -> u64 {
        let mut h = fnv::FnvHasher::default();
        h.write(a);
        h.write(b);
        let mut z = (h.finish() ^ self.seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug)]
struct Conn {
    info: ConnectionInfo,
    hangs: bool,
    /// Its switch fired (the orders it takes are gone; it takes no more).
    fired: bool,
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
    /// Batch-cancel requests received.
    pub batch_cancels: u64,
    /// Mass-cancel requests received.
    pub mass_cancels: u64,
}

pub(crate) mod downtime;
#[cfg(test)]
mod profile_tests;

#[derive(Debug)]
struct State {
    behaviour: VenueBehaviour,
    rules: Rules,
    draws: Draws,
    halted: bool,
    marks: HashMap<String, Decimal>,
    orders: BTreeMap<String, Order>,
    positions: BTreeMap<String, Position>,
    connections: BTreeMap<String, Conn>,
    accounts: Vec<Account>,
    strategies: Arc<Vec<StrategyState>>,
    /// The rate limit of orders and cancels (and of reads, when `reads` is `None`).
    trades: Bucket,
    /// The rate limit of reads, where the venue counts them apart.
    reads: Option<Bucket>,
    stats: VenueStats,
    events: Vec<String>,
    next_id: u64,
    /// The orders working at the venue when the node was built (a dry-run's shutdown begins then):
    /// the audit checks that the report accounts for each.
    working_at_start: Vec<String>,
    /// Cancels acknowledged and not yet done, each with when the venue applies it.
    deferred: VecDeque<(Instant, String)>,
    /// Mass cancels answered, for the venue's choice of which orders each takes.
    mass_calls: u64,
    /// When the venue answered its first call (the shutdown's start), for the time to safe.
    started: Option<Instant>,
    /// The book was safe before any call.
    safe_from_start: bool,
    /// When every working order that is not a protective stop was first gone.
    cleared_at: Option<Instant>,
    /// When every order that is not a protective stop was first gone with every position
    /// protected.
    safe_at: Option<Instant>,
    /// Working orders that are not protective stops, not yet seen gone (front first).
    risky: VecDeque<String>,
    /// Stops placed for a position that stops at the venue already protected, in words.
    duplicates: Vec<String>,
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
        let (instruments, positions, mut orders) = scenario.expanded();
        let rules = scenario.venue.rules();
        if rules.conditional_apart {
            // Every conditional order rests in the venue's separate service.
            for o in orders.iter_mut() {
                o.conditional |= !matches!(o.order_type, OrderType::Market | OrderType::Limit);
            }
        }
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
        let mut risky: Vec<String> = (orders.iter())
            .filter(|o| is_risky(o))
            .map(|o| o.client_id.clone())
            .collect();
        risky.sort();
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
                            logout: rules.switch.logout,
                        },
                        hangs: c.hangs,
                        fired: false,
                    },
                )
            })
            .collect();
        let node = Self {
            state: Arc::new(Mutex::new(State {
                trades: Bucket::new(rules.rate_per_sec),
                reads: rules.read_rate_per_sec.map(|r| Bucket::new(Some(r))),
                rules,
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
                stats: VenueStats::default(),
                events: Vec::new(),
                next_id: 1,
                working_at_start,
                deferred: VecDeque::new(),
                mass_calls: 0,
                started: None,
                safe_from_start: false,
                cleared_at: None,
                safe_at: None,
                risky: risky.into(),
                duplicates: Vec::new(),
            })),
        };
        {
            let mut s = node.lock();
            check_safe(&mut s, Instant::now());
            s.safe_from_start = s.safe_at.is_some();
        }
        node
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

    /// The venue's rules (its profile's).
    pub fn rules(&self) -> Rules {
        self.lock().rules.clone()
    }

    /// Seconds from the venue's first call (the shutdown's start) until every working order that
    /// is not a protective stop was gone with every position protected; `None` while that has not
    /// happened. Whether it still holds once the process exits is the audit's question.
    pub fn safe_after(&self) -> Option<f64> {
        let s = self.lock();
        if s.safe_from_start {
            return Some(0.0);
        }
        let (at, started) = (s.safe_at?, s.started?);
        Some(at.saturating_duration_since(started).as_secs_f64())
    }

    /// Seconds from the venue's first call until every working order that is not a protective
    /// stop was gone, protected or not; `None` while one is working.
    pub fn cleared_after(&self) -> Option<f64> {
        let s = self.lock();
        let (at, started) = (s.cleared_at?, s.started.unwrap_or(s.cleared_at?));
        Some(at.saturating_duration_since(started).as_secs_f64())
    }

    /// Stops placed for a position that stops at the venue already protected, in words.
    pub fn duplicate_stops(&self) -> Vec<String> {
        self.lock().duplicates.clone()
    }

    /// Apply every cancel the venue acknowledged and has not yet done: it does them after the
    /// process exits in any case.
    pub(crate) fn settle_all(&self) {
        let mut s = self.lock();
        let last = s.deferred.back().map(|(at, _)| *at);
        if let Some(at) = last {
            settle(&mut s, at);
        }
    }

    /// Submit a new order, as a strategy would; refused while halted.
    pub async fn submit(&self, mut order: Order) -> RoleResult<Order> {
        self.trade(&format!("submit:{}", order.client_id)).await?;
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
        if is_risky(&order) {
            s.risky.push_back(order.client_id.clone());
            s.safe_at = None;
            s.cleared_at = None;
            s.safe_from_start = false;
        }
        s.orders.insert(order.client_id.clone(), order.clone());
        Ok(order)
    }

    /// Fill a working order now (a market move), updating the position.
    pub fn fill(&self, client_id: &str) -> bool {
        let mut s = self.lock();
        let filled = fill_order(&mut s, client_id);
        check_safe(&mut s, Instant::now());
        filled
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

    /// A read (a listing, an order's state, the positions, the session): latency, then the rate
    /// limit and transient failures, as a venue's HTTP front would; `key` names the call (and the
    /// order it is about) for the venue's random decisions.
    async fn call(&self, key: &str) -> RoleResult<()> {
        self.request(key, Request::Read).await
    }

    /// An order or a cancel, costing one unit of the rate limit.
    async fn trade(&self, key: &str) -> RoleResult<()> {
        self.request(key, Request::Trade(1.0)).await
    }

    async fn request(&self, key: &str, request: Request) -> RoleResult<()> {
        let latency = {
            let mut s = self.lock();
            s.started.get_or_insert_with(Instant::now);
            s.behaviour.latency_ms
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut s = self.lock();
        let now = Instant::now();
        settle(&mut s, now);
        s.stats.requests += 1;
        let taken = match (request, s.reads.as_mut()) {
            (Request::Read, Some(reads)) => reads.take(1.0, now),
            (Request::Read, None) => s.trades.take(1.0, now),
            (Request::Trade(cost), _) => s.trades.take(cost, now),
        };
        if let Err(wait) = taken {
            s.stats.rate_limited += 1;
            if matches!(request, Request::Trade(_)) && s.rules.limit_ends_session {
                end_session(&mut s);
            }
            return Err(RoleError::RateLimited {
                retry_after: Some(wait),
            });
        }
        let p = s.behaviour.transient_failure_rate;
        if s.draws.chance(p, "transient", key) {
            s.stats.transient_failures += 1;
            return Err(RoleError::Transient("venue answered 503".into()));
        }
        Ok(())
    }
}

/// What a request counts against.
#[derive(Debug, Clone, Copy)]
enum Request {
    /// A listing, an order's state, the positions, the session.
    Read,
    /// An order or a cancel, costing so many units.
    Trade(f64),
}

/// A rate limit: a bucket of one second's worth of requests (or of one request, when it costs
/// more), full at the start, refilled continuously.
#[derive(Debug)]
struct Bucket {
    /// Units a second; 0 for no limit.
    limit: f64,
    tokens: f64,
    refilled: Option<Instant>,
}

impl Bucket {
    fn new(limit: Option<u32>) -> Self {
        let limit = f64::from(limit.unwrap_or(0));
        Self {
            limit,
            tokens: limit,
            refilled: None,
        }
    }

    /// Take `cost` units at `now`, or say how long until they are there.
    fn take(&mut self, cost: f64, now: Instant) -> Result<(), Duration> {
        if self.limit <= 0.0 {
            return Ok(());
        }
        let last = self.refilled.unwrap_or(now);
        let size = self.limit.max(cost);
        self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * self.limit).min(size);
        self.refilled = Some(now);
        if self.tokens < cost {
            return Err(Duration::from_secs_f64((cost - self.tokens) / self.limit));
        }
        self.tokens -= cost;
        Ok(())
    }
}

/// The venue ends every session of the account (an order request over its limit): each
/// connection drops, and a cancel-on-disconnect switch armed on it fires.
fn end_session(s: &mut State) {
    let fires = s.rules.switch.fires == Fires::OnDisconnect;
    let mut fired = Vec::new();
    let mut ended = Vec::new();
    for c in s.connections.values_mut().filter(|c| c.info.connected) {
        c.info.connected = false;
        c.info.logged_in = false;
        ended.push(c.info.id.clone());
        if fires && c.info.dead_man_armed && !c.fired {
            c.fired = true;
            fired.push(c.info.id.clone());
        }
    }
    if ended.is_empty() {
        return;
    }
    s.events.push(format!(
        "an order request over the rate limit: the venue ended the session of {}",
        ended.join(", ")
    ));
    if !fired.is_empty() {
        wipe(
            s,
            format!("dead-man's switch of {} fired", fired.join(", ")),
        );
    }
}

/// A working order at the venue that is not a protective stop: the book is not safe while one is.
fn is_risky(o: &Order) -> bool {
    o.status.is_live() && o.residence == Residence::Venue && !o.is_protective()
}

/// Note the first moment the book is safe: every risky order gone, every position protected.
fn check_safe(s: &mut State, at: Instant) {
    if s.safe_at.is_some() {
        return;
    }
    while let Some(front) = s.risky.front() {
        match s.orders.get(front) {
            Some(o) if is_risky(o) => return,
            _ => {
                s.risky.pop_front();
            }
        }
    }
    s.cleared_at.get_or_insert(at);
    // Only working protective stops can protect: the book's other orders are not copied.
    let positions: Vec<Position> = s.positions.values().cloned().collect();
    let stops: Vec<Order> = (s.orders.values())
        .filter(|o| o.status.is_live() && o.is_protective())
        .cloned()
        .collect();
    if crate::audit::unprotected(&positions, &stops).is_empty() {
        s.safe_at = Some(at);
    }
}

/// Apply the acknowledged cancels due by `now`. The race with a fill was drawn when the cancel
/// arrived (an order that lost it filled then): what the venue accepted, it cancels.
fn settle(s: &mut State, now: Instant) {
    let mut last = None;
    while s.deferred.front().is_some_and(|(at, _)| *at <= now) {
        let Some((at, id)) = s.deferred.pop_front() else {
            break;
        };
        last = Some(at);
        let pending = s
            .orders
            .get(&id)
            .is_some_and(|o| o.status == OrderStatus::PendingCancel);
        if !pending {
            continue;
        }
        if let Some(o) = s.orders.get_mut(&id) {
            o.status = OrderStatus::Cancelled;
        }
    }
    if let Some(at) = last {
        check_safe(s, at);
    }
}

/// Cancel one order, as a cancel request does: the venue's answer.
fn cancel_in(s: &mut State, client_id: &str) -> RoleResult<CancelAck> {
    let Some(order) = s.orders.get(client_id) else {
        return Ok(CancelAck::UnknownOrder);
    };
    match order.status {
        OrderStatus::Filled => return Ok(CancelAck::AlreadyFilled),
        OrderStatus::Cancelled | OrderStatus::Rejected | OrderStatus::Expired => {
            return Ok(CancelAck::UnknownOrder);
        }
        // Already acknowledged: the venue is on it.
        OrderStatus::PendingCancel if s.deferred.iter().any(|(_, id)| id == client_id) => {
            return Ok(CancelAck::Pending);
        }
        _ => {}
    }
    if s.behaviour.uncancellable.iter().any(|c| c == client_id) {
        return Err(RoleError::Rejected(format!(
            "order {client_id} cannot be cancelled now"
        )));
    }
    Ok(match apply_cancel(s, client_id) {
        // Venues answer a lost race either way: "too late" or "unknown order".
        Applied::Filled if s.draws.chance(0.5, "too-late", client_id) => CancelAck::AlreadyFilled,
        Applied::Filled => CancelAck::UnknownOrder,
        Applied::Pending => CancelAck::Pending,
        Applied::Cancelled => CancelAck::Cancelled,
    })
}

/// What a cancel the venue takes does to a working order.
enum Applied {
    /// A fill beat it.
    Filled,
    /// Accepted, not done: the venue applies it a moment after it answers.
    Pending,
    Cancelled,
}

/// A cancel (single, in a batch, or one order of a mass cancel) reaching a working order: it
/// loses the race to a fill, or is accepted and done later, or is done.
fn apply_cancel(s: &mut State, client_id: &str) -> Applied {
    let race = s.behaviour.fill_race_rate;
    if s.draws.chance(race, "fill-race", client_id) {
        s.stats.fills_racing_cancels += 1;
        fill_order(s, client_id);
        return Applied::Filled;
    }
    let delay = s.rules.ack_delay_ms;
    let Some(o) = s.orders.get_mut(client_id) else {
        return Applied::Cancelled;
    };
    if delay == 0 {
        o.status = OrderStatus::Cancelled;
        return Applied::Cancelled;
    }
    o.status = OrderStatus::PendingCancel;
    let due = Instant::now() + Duration::from_millis(delay);
    s.deferred.push_back((due, client_id.to_owned()));
    Applied::Pending
}

/// Every working order at the venue is cancelled, stops included: a dead-man's switch fired.
fn wipe(s: &mut State, why: String) {
    let mut wiped = 0;
    for o in s.orders.values_mut() {
        if o.status.is_live() && o.residence == Residence::Venue {
            o.status = OrderStatus::Cancelled;
            wiped += 1;
        }
    }
    s.events.push(format!("{why}: {wiped} orders cancelled"));
}

/// When stops already resting at the venue protect the position a stop request is for, in words:
/// the new stop is a duplicate (a listing that missed them made the position look bare).
fn already_protected(s: &State, request: &StopRequest, new: &Order) -> Option<String> {
    let on_instrument: Vec<Position> = (s.positions.values())
        .filter(|p| p.instrument == request.instrument)
        .cloned()
        .collect();
    let position = on_instrument.iter().find(|p| match &request.position_id {
        Some(id) => p.id == *id,
        None => p.position_side == request.position_side && p.side == request.side.opposite(),
    })?;
    let mut stops: Vec<Order> = (s.orders.values())
        .filter(|o| o.instrument == request.instrument && o.side == request.side)
        .filter(|o| o.status.is_live() && o.is_protective())
        .cloned()
        .collect();
    // The stops are allocated over every position of the instrument, as the audit does: the new
    // stop is a duplicate when its position was protected already and it protects nothing more.
    let before = crate::audit::unprotected(&on_instrument, &stops);
    let ids: Vec<String> = stops.iter().map(|o| o.client_id.clone()).collect();
    stops.push(new.clone());
    let after = crate::audit::unprotected(&on_instrument, &stops);
    (!ids.is_empty() && !before.contains(&position.id) && before == after).then(|| {
        format!(
            "stop {} was placed for position {}, which {} at the venue already protected: a duplicate",
            request.client_id,
            position.id,
            ids.join(", ")
        )
    })
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
        let s = self.lock();
        let apart = s.rules.conditional_apart;
        Ok((s.orders.values())
            .filter(|o| o.status.is_live() && !(apart && o.conditional))
            .cloned()
            .collect())
    }

    async fn conditional_orders(&self) -> RoleResult<Vec<Order>> {
        if !self.lock().rules.conditional_apart {
            return Ok(Vec::new());
        }
        self.call("conditional-orders").await?;
        Ok((self.lock().orders.values())
            .filter(|o| o.status.is_live() && o.conditional)
            .cloned()
            .collect())
    }

    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>> {
        self.call(&format!("order:{client_id}")).await?;
        Ok(self.lock().orders.get(client_id).cloned())
    }

    async fn order_history(&self, instrument: &str) -> RoleResult<Vec<Order>> {
        self.call(&format!("order-history:{instrument}")).await?;
        Ok((self.lock().orders.values())
            .filter(|o| o.instrument == instrument)
            .cloned()
            .collect())
    }

    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.trade(&format!("cancel:{client_id}")).await?;
        let mut s = self.lock();
        s.stats.cancel_requests += 1;
        let ack = cancel_in(&mut s, client_id);
        check_safe(&mut s, Instant::now());
        ack
    }

    fn cancel_rules(&self) -> CancelRules {
        self.lock().rules.cancel_rules()
    }

    async fn cancel_batch(&self, client_ids: &[String]) -> RoleResult<Vec<RoleResult<CancelAck>>> {
        let (size, cost) = {
            let s = self.lock();
            (s.rules.batch_size, s.rules.batch_cost(client_ids.len()))
        };
        if size <= 1 {
            return Err(RoleError::Unsupported("batch cancel".into()));
        }
        if client_ids.len() > size {
            return Err(RoleError::Rejected(format!(
                "a batch cancel takes at most {size} orders, {} sent",
                client_ids.len()
            )));
        }
        let first = client_ids.first().map(String::as_str).unwrap_or_default();
        self.request(&format!("cancel-batch:{first}"), Request::Trade(cost))
            .await?;
        let mut s = self.lock();
        let instruments: std::collections::BTreeSet<&str> = (client_ids.iter())
            .filter_map(|id| s.orders.get(id).map(|o| o.instrument.as_str()))
            .collect();
        if instruments.len() > 1 {
            return Err(RoleError::Rejected(
                "a batch cancel takes the orders of one instrument".into(),
            ));
        }
        s.stats.batch_cancels += 1;
        s.stats.cancel_requests += client_ids.len() as u64;
        let answers = (client_ids.iter())
            .map(|id| cancel_in(&mut s, id))
            .collect();
        check_safe(&mut s, Instant::now());
        Ok(answers)
    }

    async fn mass_cancel(&self, scope: &MassCancelScope) -> RoleResult<MassCancelAck> {
        let Some(rule) = self.lock().rules.mass_cancel else {
            return Err(RoleError::Unsupported("mass cancel".into()));
        };
        if rule.per_instrument && scope.instrument.is_none() {
            return Err(RoleError::Rejected(
                "a mass cancel on this venue names one instrument".into(),
            ));
        }
        self.trade("mass-cancel").await?;
        let mut s = self.lock();
        s.stats.mass_cancels += 1;
        s.mass_calls += 1;
        // Asked to keep stops, the venue's filtered variant; otherwise every order goes.
        let spared = |o: &Order| scope.keep_protective_stops && rule.spares.spares(o);
        let mut targets: Vec<String> = (s.orders.values())
            .filter(|o| o.status.is_live() && o.status != OrderStatus::PendingCancel)
            .filter(|o| o.residence == Residence::Venue && !spared(o))
            .filter(|o| scope.instrument.as_ref().is_none_or(|i| *i == o.instrument))
            .map(|o| o.client_id.clone())
            .collect();
        if let Some(max) = rule.max_orders.filter(|m| targets.len() > *m) {
            // The venue chooses which: a keyed rank per call, the same for the same seed.
            let call = format!("mass-cancel:{}", s.mass_calls);
            targets.sort_by_cached_key(|id| s.draws.rank(&call, id));
            targets.truncate(max);
        }
        let mut count = 0;
        for id in targets {
            if s.behaviour.uncancellable.contains(&id) {
                continue;
            }
            apply_cancel(&mut s, &id);
            count += 1;
        }
        check_safe(&mut s, Instant::now());
        Ok(MassCancelAck { count })
    }

    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.trade(&format!("place-stop:{}", request.client_id))
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
            // Where the venue keeps conditional orders apart, a stop rests there.
            conditional: s.rules.conditional_apart,
            ..Order::protective_stop(
                request.client_id.clone(),
                request.instrument.clone(),
                request.side,
                request.quantity,
                request.trigger_price,
            )
        };
        s.next_id += 1;
        if let Some(why) = already_protected(&s, request, &order) {
            s.duplicates.push(why);
        }
        s.orders.insert(order.client_id.clone(), order.clone());
        check_safe(&mut s, Instant::now());
        Ok(order)
    }

    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.trade(&format!("place-exit:{}", request.client_id))
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
        check_safe(&mut s, Instant::now());
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
        let switch = self.lock().rules.switch;
        if !switch.disarmable {
            return Err(RoleError::Unsupported(format!(
                "{} is set for the whole session: it cannot be switched off from it",
                switch.name
            )));
        }
        self.on_connection(id).await?;
        self.update_connection(id, |c| c.dead_man_armed = false);
        Ok(())
    }

    async fn logout(&self, id: &str) -> RoleResult<()> {
        self.on_connection(id).await?;
        let mut s = self.lock();
        let Some(c) = s.connections.get_mut(id) else {
            return Ok(());
        };
        c.info.logged_in = false;
        let armed = c.info.dead_man_armed && !c.fired;
        match c.info.logout {
            LogoutEffect::Nothing => {}
            LogoutEffect::Disarms => c.info.dead_man_armed = false,
            LogoutEffect::Fires if armed => {
                c.fired = true;
                let name = s.rules.switch.name;
                wipe(&mut s, format!("logout of {id} fired {name}"));
            }
            LogoutEffect::Fires => {}
        }
        Ok(())
    }

    async fn disconnect(&self, id: &str) -> RoleResult<()> {
        self.on_connection(id).await?;
        let mut s = self.lock();
        let fires_now = s.rules.switch.fires == Fires::OnDisconnect;
        let Some(c) = s.connections.get_mut(id) else {
            return Ok(());
        };
        c.info.connected = false;
        c.info.logged_in = false;
        // A countdown keeps running after the connection closes: it fires after exit.
        if c.info.dead_man_armed && !c.fired && fires_now {
            c.fired = true;
            wipe(&mut s, format!("dead-man's switch of {id} fired"));
        }
        Ok(())
    }
}

impl PaperNode {
    /// The connections whose switch is armed and has not fired: each fires once the process has
    /// exited (its connection drops, or its countdown lapses), taking every resting order.
    pub(crate) fn switches_left_armed(&self) -> Vec<String> {
        (self.lock().connections.values())
            .filter(|c| c.info.dead_man_armed && !c.fired)
            .map(|c| c.info.id.clone())
            .collect()
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
