//! Scenario files: instruments, prices, orders, positions, connections and venue behaviour, in TOML.

use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;
use shutdown_core::domain::{Account, Order, PositionSide, Side, StrategyState};

use crate::profile::{Profile, Rules, Session};

/// The most working orders a `[generate]` table may add (each costs about 1.7 KiB of memory).
pub const MAX_GENERATED_ORDERS: usize = 200_000;
/// The most positions a `[generate]` table may add.
pub const MAX_GENERATED_POSITIONS: usize = 100_000;
/// The most strategy-state entries a `[generate]` table may add.
pub const MAX_GENERATED_CACHE_ENTRIES: usize = 1_000_000;
/// The longest venue latency a scenario may ask for: a minute.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// The largest scenario file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A scenario: the state of a node and its venue when the shutdown starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice the venue makes; the same seed gives the same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How the venue behaves.
    #[serde(default)]
    pub venue: VenueBehaviour,
    /// Instruments and their mark prices.
    #[serde(default)]
    pub instruments: Vec<InstrumentSpec>,
    /// Open positions.
    #[serde(default)]
    pub positions: Vec<PositionSpec>,
    /// Orders (working or not).
    #[serde(default)]
    pub orders: Vec<Order>,
    /// Venue connections.
    #[serde(default)]
    pub connections: Vec<ConnectionSpec>,
    /// Account balances.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Strategy state.
    #[serde(default)]
    pub strategies: Vec<StrategySpec>,
    /// Generated book, added to the explicit one.
    #[serde(default)]
    pub generate: Option<Generate>,
    /// What happened at the venue while the node was down (for a start gate's dry-run): the book
    /// above is what the node knew when it stopped.
    #[serde(default)]
    pub downtime: Downtime,
}

/// What happened at the venue while the node was down, applied in this order: cancels, the
/// dead-man's switches, fills, price moves (a stop the new mark crosses fires), orders placed by
/// hand. Orders held by the process (`residence = "local"`) are gone in any case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Downtime {
    /// Client ids of orders the venue cancelled (expiry, a cancel-on-disconnect of their session).
    pub cancelled: Vec<String>,
    /// Every armed dead-man's switch fired: every working order at the venue, stops included, is
    /// cancelled.
    pub dead_man_fired: bool,
    /// Client ids of working orders that filled; their positions move by the fill.
    pub filled: Vec<String>,
    /// New mark prices; a stop whose trigger the new mark reaches fires and fills.
    pub marks: Vec<InstrumentSpec>,
    /// Orders placed by hand at the venue; one whose status is `filled` is a trade that moved its
    /// position, the others are working orders the node never knew.
    pub orders: Vec<Order>,
}

fn default_seed() -> u64 {
    1
}

/// A strategy's state, as TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// Strategy id.
    pub strategy_id: String,
    /// The state.
    pub state: toml::Value,
}

/// An instrument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentSpec {
    /// Symbol.
    pub symbol: String,
    /// Mark price (what stops trigger on).
    pub mark_price: Decimal,
}

/// A position; its mark price comes from its instrument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionSpec {
    /// Position id.
    pub id: String,
    /// Instrument symbol.
    pub instrument: String,
    /// `buy` (long) or `sell` (short).
    pub side: Side,
    /// Hedge-mode side.
    #[serde(default)]
    pub position_side: PositionSide,
    /// Quantity.
    pub quantity: Decimal,
    /// Entry price.
    pub entry_price: Decimal,
}

/// A venue connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// Connection id.
    pub id: String,
    /// Venue name.
    pub venue: String,
    /// Whether its dead-man's switch (cancel on disconnect) is armed.
    #[serde(default)]
    pub dead_man_armed: bool,
    /// Calls on this connection never answer (a hung socket).
    #[serde(default)]
    pub hangs: bool,
}

/// How the simulated venue behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueBehaviour {
    /// The venue whose documented rules the paper venue follows (docs/venues.md): where
    /// conditional orders are listed, batch and mass cancels, the rate limit, the dead-man's switch.
    pub profile: Profile,
    /// How the session is carried (`websocket` or `fix`); only `deribit` tells them apart.
    pub session: Session,
    /// Latency of every call, in milliseconds.
    pub latency_ms: u64,
    /// Requests per second before the venue answers "rate limited" (HTTP 429); 0 for the
    /// profile's documented limit (none for `generic`).
    pub rate_limit_per_sec: u32,
    /// Share of calls that fail with a transient error, 0.0 to 1.0.
    pub transient_failure_rate: f64,
    /// Share of cancels that lose the race: the order fills while the cancel is in flight.
    pub fill_race_rate: f64,
    /// The venue offers a mass-cancel that spares protective stops (`generic` only: a named
    /// profile has its venue's).
    pub mass_cancel: bool,
    /// Client ids of orders the venue refuses to cancel (for orphan reports).
    pub uncancellable: Vec<String>,
}

impl Default for VenueBehaviour {
    fn default() -> Self {
        Self {
            profile: Profile::Generic,
            session: Session::Websocket,
            latency_ms: 0,
            rate_limit_per_sec: 0,
            transient_failure_rate: 0.0,
            fill_race_rate: 0.0,
            mass_cancel: false,
            uncancellable: Vec::new(),
        }
    }
}

impl VenueBehaviour {
    /// The rules the venue follows: its profile's, with the scenario's own rate when it gives one.
    pub fn rules(&self) -> Rules {
        let rate = (self.rate_limit_per_sec > 0).then_some(self.rate_limit_per_sec);
        let mut rules = Rules::of(self.profile, self.session, rate, self.mass_cancel);
        if rate.is_some() {
            rules.rate_per_sec = rate;
        }
        rules
    }
}

/// A generated book: many working orders and positions, some of them unprotected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Working limit orders to add, spread over the instruments.
    pub orders: usize,
    /// Positions to add, each with a protective stop unless it is among the unprotected.
    pub positions: usize,
    /// How many of the generated positions have no protective stop.
    #[serde(default)]
    pub unprotected: usize,
    /// Strategy-state entries to add (a node's cache), each a small JSON object.
    #[serde(default)]
    pub cache_entries: usize,
}

/// A scenario could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read scenario: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or does not describe a scenario.
    #[error("{path}: invalid scenario: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (with line and column).
        message: String,
    },
    /// The scenario is inconsistent.
    #[error("{path}: invalid scenario: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The problems of one order, each starting `{what} {client_id}: `: an unknown instrument, a
/// quantity that is not positive, a filled quantity outside 0 to the quantity, a price that is not
/// positive.
fn check_order(o: &Order, what: &str, known: &dyn Fn(&str) -> bool, problems: &mut Vec<String>) {
    let id = &o.client_id;
    if !known(&o.instrument) {
        problems.push(format!(
            "{what} {id}: unknown instrument {:?}",
            o.instrument
        ));
    }
    // A close-position order has no quantity of its own: 0 or absent, never negative.
    if o.close_position && o.quantity < Decimal::ZERO {
        problems.push(format!(
            "{what} {id}: quantity of a close-position order must be 0 (none), absent or positive, found {}",
            o.quantity
        ));
    } else if !o.close_position && o.quantity <= Decimal::ZERO {
        problems.push(format!(
            "{what} {id}: quantity must be positive, found {} (only a close-position order may have none)",
            o.quantity
        ));
    }
    let filled = o.filled_quantity;
    if o.quantity >= Decimal::ZERO && (filled < Decimal::ZERO || filled > o.quantity) {
        problems.push(format!(
            "{what} {id}: filled_quantity must be from 0 to the quantity ({}), found {}",
            o.quantity, o.filled_quantity
        ));
    }
    for (name, price) in [
        ("trigger_price", o.trigger_price),
        ("limit_price", o.limit_price),
    ] {
        if let Some(price) = price.filter(|p| *p <= Decimal::ZERO) {
            problems.push(format!(
                "{what} {id}: {name} must be positive, found {price}"
            ));
        }
    }
}

impl Scenario {
    /// Read a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let refuse = |why: String| ScenarioError::Read {
            path: name.clone(),
            source: std::io::Error::other(why),
        };
        let meta = std::fs::metadata(path).map_err(|source| ScenarioError::Read {
            path: name.clone(),
            source,
        })?;
        if meta.is_dir() {
            return Err(refuse("is a directory, not a scenario file".into()));
        }
        if !meta.is_file() {
            return Err(refuse(
                "is not a regular file (a FIFO, a socket or a device)".into(),
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(refuse(format!(
                "is {} bytes, more than a scenario may be ({MAX_FILE_BYTES})",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_toml(&text, &name)
    }

    /// Parse scenario TOML; `name` names it in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        scenario.check().map_err(|message| ScenarioError::Invalid {
            path: name.to_owned(),
            message,
        })?;
        Ok(scenario)
    }

    /// Every problem of the scenario, each naming the item and the value.
    fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in &self.instruments {
            if !seen.insert(i.symbol.as_str()) {
                problems.push(format!("instrument {:?} is listed twice", i.symbol));
            }
            if i.mark_price <= Decimal::ZERO {
                problems.push(format!(
                    "instrument {}: mark_price must be positive, found {}",
                    i.symbol, i.mark_price
                ));
            }
        }
        let known = |s: &str| self.instruments.iter().any(|i| i.symbol == s);
        let mut seen = std::collections::HashSet::new();
        for p in &self.positions {
            if !seen.insert(p.id.as_str()) {
                problems.push(format!("position id {:?} is used twice", p.id));
            }
            if !known(&p.instrument) {
                problems.push(format!(
                    "position {}: unknown instrument {:?}",
                    p.id, p.instrument
                ));
            }
            if p.quantity <= Decimal::ZERO {
                problems.push(format!(
                    "position {}: quantity must be positive, found {}",
                    p.id, p.quantity
                ));
            }
            if p.entry_price <= Decimal::ZERO {
                problems.push(format!(
                    "position {}: entry_price must be positive, found {}",
                    p.id, p.entry_price
                ));
            }
        }
        // Client ids of every order, the downtime's own included: one id is one order.
        let mut client_ids = std::collections::HashSet::new();
        for o in &self.orders {
            if !client_ids.insert(o.client_id.as_str()) {
                problems.push(format!(
                    "order client_id {:?} is used twice (one would be lost)",
                    o.client_id
                ));
            }
            check_order(o, "order", &known, &mut problems);
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.connections {
            if !seen.insert(c.id.as_str()) {
                problems.push(format!("connection id {:?} is used twice", c.id));
            }
        }
        for (name, rate) in [
            ("transient_failure_rate", self.venue.transient_failure_rate),
            ("fill_race_rate", self.venue.fill_race_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!(
                    "venue.{name} must be between 0.0 and 1.0, found {rate}"
                ));
            }
        }
        let v = &self.venue;
        if v.profile != Profile::Generic && v.mass_cancel {
            problems.push(format!(
                "venue.mass_cancel is for the generic profile: {} has the mass cancel its venue documents (docs/venues.md)",
                v.profile
            ));
        }
        if v.session == Session::Fix && v.profile != Profile::Deribit {
            problems.push(format!(
                "venue.session = \"fix\" is modelled for the deribit profile only, found profile {}",
                v.profile
            ));
        }
        if self.venue.latency_ms > MAX_LATENCY_MS {
            problems.push(format!(
                "venue.latency_ms must be at most {MAX_LATENCY_MS}, found {}",
                self.venue.latency_ms
            ));
        }
        if let Some(g) = &self.generate {
            if self.instruments.is_empty() {
                problems.push("[generate] needs at least one instrument".into());
            }
            if g.unprotected > g.positions {
                problems.push(format!(
                    "generate.unprotected ({}) cannot exceed generate.positions ({})",
                    g.unprotected, g.positions
                ));
            }
            for (name, n, max) in [
                ("orders", g.orders, MAX_GENERATED_ORDERS),
                ("positions", g.positions, MAX_GENERATED_POSITIONS),
                (
                    "cache_entries",
                    g.cache_entries,
                    MAX_GENERATED_CACHE_ENTRIES,
                ),
            ] {
                if n > max {
                    problems.push(format!("generate.{name} must be at most {max}, found {n}"));
                }
            }
        }
        let d = &self.downtime;
        let scenario_ids: std::collections::HashSet<&str> =
            self.orders.iter().map(|o| o.client_id.as_str()).collect();
        for (name, ids) in [("cancelled", &d.cancelled), ("filled", &d.filled)] {
            for id in ids.iter().filter(|id| !scenario_ids.contains(id.as_str())) {
                problems.push(format!("downtime.{name}: no order {id:?} in the scenario"));
            }
        }
        for m in &d.marks {
            if !known(&m.symbol) {
                problems.push(format!("downtime.marks: unknown instrument {:?}", m.symbol));
            }
            if m.mark_price <= Decimal::ZERO {
                problems.push(format!(
                    "downtime.marks: {}: mark_price must be positive, found {}",
                    m.symbol, m.mark_price
                ));
            }
        }
        for o in &d.orders {
            if !client_ids.insert(o.client_id.as_str()) {
                problems.push(format!(
                    "downtime.orders: client_id {:?} is already used by another order",
                    o.client_id
                ));
            }
            check_order(o, "downtime.orders: order", &known, &mut problems);
        }
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            n => Err(format!("{n} problems:\n  - {}", problems.join("\n  - "))),
        }
    }

    /// The explicit strategy state plus the generated cache entries.
    pub(crate) fn expanded_strategies(&self) -> Vec<StrategyState> {
        let mut out: Vec<StrategyState> = self
            .strategies
            .iter()
            .filter_map(|s| StrategyState::new(s.strategy_id.clone(), &s.state).ok())
            .collect();
        if let Some(g) = &self.generate {
            out.extend((0..g.cache_entries).filter_map(|i| {
                let state =
                    serde_json::json!({ "fair": 65000 + (i % 1000), "inventory": i % 7, "seq": i });
                StrategyState::new(format!("cache-{i}"), &state).ok()
            }));
        }
        out
    }

    /// The explicit book plus the generated one: instruments, positions, orders.
    pub(crate) fn expanded(&self) -> (Vec<InstrumentSpec>, Vec<PositionSpec>, Vec<Order>) {
        let mut instruments = self.instruments.clone();
        let mut positions = self.positions.clone();
        let mut orders = self.orders.clone();
        let Some(g) = &self.generate else {
            return (instruments, positions, orders);
        };
        let n = self.instruments.len();
        for i in 0..g.orders {
            let inst = &self.instruments[i % n];
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let offset = Decimal::new(1 + (i % 20) as i64, 2); // 0.01 .. 0.20 of the mark
            let price = match side {
                Side::Buy => inst.mark_price * (Decimal::ONE - offset),
                Side::Sell => inst.mark_price * (Decimal::ONE + offset),
            };
            orders.push(Order {
                venue_id: Some(format!("v-gen-o-{i}")),
                ..Order::limit(
                    format!("gen-o-{i}"),
                    inst.symbol.clone(),
                    side,
                    Decimal::ONE,
                    price.round_dp(2),
                )
            });
        }
        for i in 0..g.positions {
            let base = &self.instruments[i % n];
            // One instrument per generated position: a venue nets positions per instrument.
            let inst = InstrumentSpec {
                symbol: format!("{}-G{i}", base.symbol),
                mark_price: base.mark_price,
            };
            instruments.push(inst.clone());
            let side = if i % 3 == 2 { Side::Sell } else { Side::Buy };
            let position_side = PositionSide::Both;
            let quantity = Decimal::new(1 + (i % 5) as i64, 0);
            positions.push(PositionSpec {
                id: format!("gen-p-{i}"),
                instrument: inst.symbol.clone(),
                side,
                position_side,
                quantity,
                entry_price: inst.mark_price,
            });
            if i >= g.positions - g.unprotected {
                continue;
            }
            let trigger = match side {
                Side::Buy => inst.mark_price * Decimal::new(95, 2),
                Side::Sell => inst.mark_price * Decimal::new(105, 2),
            };
            orders.push(Order {
                venue_id: Some(format!("v-gen-stop-{i}")),
                position_side,
                ..Order::protective_stop(
                    format!("gen-stop-{i}"),
                    inst.symbol.clone(),
                    side.opposite(),
                    quantity,
                    trigger.round_dp(2),
                )
            });
        }
        (instruments, positions, orders)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_scenarios_are_named() {
        let err = Scenario::from_toml(
            "[[positions]]\nid = \"p\"\ninstrument = \"X\"\nside = \"buy\"\nquantity = 1\nentry_price = 1\n",
            "s.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.toml: invalid scenario: position p: unknown instrument \"X\""
        );
        let err = Scenario::from_toml("[venue]\nfill_race_rate = 2.0\n", "s.toml").unwrap_err();
        assert!(
            err.to_string()
                .contains("venue.fill_race_rate must be between 0.0 and 1.0")
        );
        let err = Scenario::from_toml("[venue]\nlatency = 5\n", "s.toml").unwrap_err();
        assert!(err.to_string().contains("unknown field `latency`"), "{err}");
    }

    #[test]
    fn every_bad_item_is_refused_at_once_naming_it_and_its_value() {
        let text = r#"
[[instruments]]
symbol = "B"
mark_price = 100
[[instruments]]
symbol = "B"
mark_price = -1
[[orders]]
client_id = "o-1"
instrument = "B"
side = "buy"
order_type = "limit"
quantity = -2
limit_price = 0
status = "new"
[[orders]]
client_id = "o-1"
instrument = "B"
side = "buy"
order_type = "limit"
quantity = 0
limit_price = 90
status = "new"
[generate]
orders = 10000000
positions = 0
"#;
        let err = Scenario::from_toml(text, "s.toml").unwrap_err().to_string();
        for expected in [
            "s.toml: invalid scenario: 7 problems:",
            "instrument \"B\" is listed twice",
            "instrument B: mark_price must be positive, found -1",
            "order o-1: quantity must be positive, found -2",
            "order o-1: limit_price must be positive, found 0",
            "order client_id \"o-1\" is used twice (one would be lost)",
            "order o-1: quantity must be positive, found 0",
            "generate.orders must be at most 200000, found 10000000",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
    }

    #[test]
    fn downtime_orders_are_checked_as_scenario_orders_are() {
        let text = r#"
[[instruments]]
symbol = "B"
mark_price = 100
[[orders]]
client_id = "o-1"
instrument = "B"
side = "buy"
order_type = "limit"
quantity = 1
limit_price = 90
status = "new"
[downtime]
filled = ["o-2"]
[[downtime.orders]]
client_id = "o-1"
instrument = "C"
side = "buy"
order_type = "limit"
quantity = 1
filled_quantity = 2
limit_price = 0
status = "new"
"#;
        let err = Scenario::from_toml(text, "s.toml").unwrap_err().to_string();
        for expected in [
            "5 problems:",
            "downtime.filled: no order \"o-2\" in the scenario",
            "downtime.orders: client_id \"o-1\" is already used by another order",
            "downtime.orders: order o-1: unknown instrument \"C\"",
            "downtime.orders: order o-1: filled_quantity must be from 0 to the quantity (1), found 2",
            "downtime.orders: order o-1: limit_price must be positive, found 0",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
    }

    #[test]
    fn a_profile_is_named_from_the_list_and_its_venue_decides_what_generic_leaves_to_the_scenario()
    {
        let err = Scenario::from_toml("[venue]\nprofile = \"binance\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `binance`, expected one of `generic`, `binance-usdm`"),
            "{err}"
        );
        let err = Scenario::from_toml(
            "[venue]\nprofile = \"bybit\"\nmass_cancel = true\nsession = \"fix\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "venue.mass_cancel is for the generic profile: bybit has the mass cancel its venue documents",
            "venue.session = \"fix\" is modelled for the deribit profile only, found profile bybit",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
        // A rate of the scenario's own replaces the documented one (a higher tier, say).
        let s = Scenario::from_toml(
            "[venue]\nprofile = \"deribit\"\nsession = \"fix\"\nrate_limit_per_sec = 30\n",
            "s.toml",
        )
        .unwrap();
        assert_eq!(s.venue.rules().rate_per_sec, Some(30));
        assert_eq!(s.venue.rules().cancel_rules().requests_per_sec, Some(30.0));
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let err = Scenario::load("/dev/null").unwrap_err().to_string();
        assert!(err.contains("is not a regular file"), "{err}");
    }

    #[test]
    fn generate_adds_the_book_it_says() {
        let s = Scenario::from_toml(
            "[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n[generate]\norders = 30\npositions = 6\nunprotected = 2\n",
            "s.toml",
        )
        .unwrap();
        let (instruments, positions, orders) = s.expanded();
        assert_eq!(instruments.len(), 7);
        assert_eq!(positions.len(), 6);
        let stops = orders.iter().filter(|o| o.is_protective()).count();
        assert_eq!((orders.len(), stops), (34, 4));
    }
}
