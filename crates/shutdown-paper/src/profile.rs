//! Venue profiles: the paper venue behaving as a named venue documents it, for the rules that decide
//! whether stops survive a shutdown and how long the book takes to clear.
//!
//! Each rule names the documentation page it comes from ([`Rules::sources`]); `docs/venues.md`
//! lists them. Where a venue documents no figure the profile needs (a processing delay, a request
//! rate for a counter that is not a rate), the figure is a stand-in and the page list says so.

use serde::{Deserialize, Serialize};
use shutdown_core::domain::{LogoutEffect, Order, OrderType};
use shutdown_core::node::{CancelRules, MassCancelRules};

/// A venue whose documented behaviour the paper venue imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// No venue in particular: the scenario's own `[venue]` numbers, a cancel-on-disconnect switch.
    #[default]
    Generic,
    /// Binance USD-M futures.
    BinanceUsdm,
    /// Bybit v5, linear contracts.
    Bybit,
    /// OKX v5, swaps.
    Okx,
    /// Deribit.
    Deribit,
    /// Kraken spot.
    Kraken,
    /// BitMEX.
    Bitmex,
}

impl Profile {
    /// Every profile, generic first.
    pub const ALL: [Profile; 7] = [
        Profile::Generic,
        Profile::BinanceUsdm,
        Profile::Bybit,
        Profile::Okx,
        Profile::Deribit,
        Profile::Kraken,
        Profile::Bitmex,
    ];

    /// The name scenarios use (`profile = "binance-usdm"`).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::BinanceUsdm => "binance-usdm",
            Profile::Bybit => "bybit",
            Profile::Okx => "okx",
            Profile::Deribit => "deribit",
            Profile::Kraken => "kraken",
            Profile::Bitmex => "bitmex",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the trading session is carried; only Deribit's profile tells the two apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Session {
    /// JSON over WebSocket (or REST).
    #[default]
    Websocket,
    /// FIX.
    Fix,
}

/// Which orders a venue's mass cancel leaves resting when asked to keep stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spares {
    /// Orders in the separate conditional-order service (it never touches them).
    Conditional,
    /// Every order that is not a plain limit order (it can be limited to limit orders).
    NonLimit,
    /// Conditional orders and stops (it can be limited to ordinary orders).
    ConditionalAndStops,
    /// Protective stops (the generic venue's `mass_cancel = true`).
    Protective,
    /// Nothing: it takes every order, stops included.
    Nothing,
}

impl Spares {
    /// Whether a mass cancel asked to keep stops leaves `o` resting.
    pub fn spares(self, o: &Order) -> bool {
        match self {
            Spares::Conditional => o.conditional,
            Spares::NonLimit => o.order_type != OrderType::Limit,
            Spares::ConditionalAndStops => o.conditional || o.order_type.is_stop(),
            Spares::Protective => o.is_protective(),
            Spares::Nothing => false,
        }
    }
}

/// A venue's mass cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MassCancel {
    /// What it leaves resting when asked to keep stops.
    pub spares: Spares,
    /// It must name one instrument.
    pub per_instrument: bool,
    /// The most orders one call cancels, chosen by the venue; the rest stay working.
    pub max_orders: Option<usize>,
}

/// When an armed dead-man's switch cancels the orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fires {
    /// When the connection closes (cancel-on-disconnect).
    OnDisconnect,
    /// When its countdown lapses, after the process stops sending heartbeats.
    AfterCountdown,
}

/// A venue's dead-man's switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Switch {
    /// Its name at the venue.
    pub name: &'static str,
    /// When it fires.
    pub fires: Fires,
    /// What a clean logout does to it.
    pub logout: LogoutEffect,
    /// The session itself can switch it off.
    pub disarmable: bool,
}

/// The documented behaviour of one venue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    /// The profile.
    pub profile: Profile,
    /// Conditional (stop, take-profit, trailing) orders live in a separate service, listed apart.
    pub conditional_apart: bool,
    /// Most orders of one instrument a batch cancel takes; 1 for none.
    pub batch_size: usize,
    /// A batch costs one unit of the rate limit per order in it, not one per request.
    pub batch_costs_per_order: bool,
    /// The venue's mass cancel, if any.
    pub mass_cancel: Option<MassCancel>,
    /// Order and cancel requests (or, with `batch_costs_per_order`, orders) a second; `None` for
    /// no limit. Reads count against it too unless `read_rate_per_sec` is set.
    pub rate_per_sec: Option<u32>,
    /// Reads (listings, order states, positions) a second, where the venue counts them apart.
    pub read_rate_per_sec: Option<u32>,
    /// An order or cancel request over the limit is refused and every session of the account is
    /// ended: an armed cancel-on-disconnect fires.
    pub limit_ends_session: bool,
    /// Cancels are acknowledged before they are done: each is applied this long after its answer.
    pub ack_delay_ms: u64,
    /// The dead-man's switch.
    pub switch: Switch,
    /// Each rule and the documentation page it comes from.
    pub sources: &'static [(&'static str, &'static str)],
}

const GENERIC_SWITCH: Switch = Switch {
    name: "cancel-on-disconnect",
    fires: Fires::OnDisconnect,
    logout: LogoutEffect::Nothing,
    disarmable: true,
};

impl Rules {
    /// The rules of `profile` carried over `session`; the generic profile takes its numbers from
    /// the scenario (`rate_limit_per_sec`, `mass_cancel`).
    pub fn of(profile: Profile, session: Session, rate: Option<u32>, mass_cancel: bool) -> Rules {
        let countdown = |name| Switch {
            name,
            fires: Fires::AfterCountdown,
            logout: LogoutEffect::Nothing,
            disarmable: true,
        };
        let base = Rules {
            profile,
            conditional_apart: false,
            batch_size: 1,
            batch_costs_per_order: false,
            mass_cancel: None,
            rate_per_sec: None,
            read_rate_per_sec: None,
            limit_ends_session: false,
            ack_delay_ms: 0,
            switch: GENERIC_SWITCH,
            sources: &[],
        };
        match profile {
            Profile::Generic => Rules {
                mass_cancel: mass_cancel.then_some(MassCancel {
                    spares: Spares::Protective,
                    per_instrument: false,
                    max_orders: None,
                }),
                rate_per_sec: rate.filter(|r| *r > 0),
                ..base
            },
            Profile::BinanceUsdm => Rules {
                conditional_apart: true,
                batch_size: 10,
                mass_cancel: Some(MassCancel {
                    spares: Spares::Conditional,
                    per_instrument: true,
                    max_orders: None,
                }),
                rate_per_sec: Some(40),
                switch: countdown("countdownCancelAll"),
                sources: BINANCE,
                ..base
            },
            Profile::Bybit => Rules {
                batch_size: 20,
                mass_cancel: Some(MassCancel {
                    spares: Spares::ConditionalAndStops,
                    per_instrument: true,
                    max_orders: Some(500),
                }),
                rate_per_sec: Some(10),
                ack_delay_ms: 50,
                switch: Switch {
                    name: "disconnection protection (DCP)",
                    ..GENERIC_SWITCH
                },
                sources: BYBIT,
                ..base
            },
            Profile::Okx => Rules {
                conditional_apart: true,
                batch_size: 20,
                batch_costs_per_order: true,
                rate_per_sec: Some(150),
                switch: countdown("cancel-all-after"),
                sources: OKX,
                ..base
            },
            Profile::Deribit => Rules {
                mass_cancel: Some(MassCancel {
                    spares: Spares::NonLimit,
                    per_instrument: true,
                    max_orders: None,
                }),
                rate_per_sec: Some(5),
                read_rate_per_sec: Some(20),
                limit_ends_session: true,
                switch: match session {
                    Session::Websocket => Switch {
                        name: "cancel_on_disconnect",
                        logout: LogoutEffect::Disarms,
                        ..GENERIC_SWITCH
                    },
                    // Set at logon; a Logout cancels every order, a dropped session too.
                    Session::Fix => Switch {
                        name: "CancelOnDisconnect (FIX logon)",
                        logout: LogoutEffect::Fires,
                        disarmable: false,
                        ..GENERIC_SWITCH
                    },
                },
                sources: DERIBIT,
                ..base
            },
            Profile::Kraken => Rules {
                batch_size: 50,
                mass_cancel: Some(MassCancel {
                    spares: Spares::Nothing,
                    per_instrument: false,
                    max_orders: None,
                }),
                rate_per_sec: Some(20),
                switch: countdown("CancelAllOrdersAfter"),
                sources: KRAKEN,
                ..base
            },
            Profile::Bitmex => Rules {
                batch_size: 100,
                mass_cancel: Some(MassCancel {
                    spares: Spares::NonLimit,
                    per_instrument: true,
                    max_orders: None,
                }),
                rate_per_sec: Some(2),
                switch: countdown("cancelAllAfter"),
                sources: BITMEX,
                ..base
            },
        }
    }

    /// What the `cancel` step is told of these rules. The generic venue documents no rate: the
    /// step learns it from the venue's 429s, as it would from an unknown venue.
    pub fn cancel_rules(&self) -> CancelRules {
        let documented = self
            .rate_per_sec
            .filter(|_| self.profile != Profile::Generic);
        let per_request = match (documented, self.batch_costs_per_order) {
            (None, _) => None,
            (Some(r), false) => Some(f64::from(r)),
            // The step sends full batches: so many requests a second.
            (Some(r), true) => Some(f64::from(r) / self.batch_size.max(1) as f64),
        };
        CancelRules {
            batch_size: self.batch_size,
            mass_cancel: self.mass_cancel.map(|m| MassCancelRules {
                spares_stops: m.spares != Spares::Nothing,
                per_instrument: m.per_instrument,
                max_orders: m.max_orders,
            }),
            requests_per_sec: per_request,
            limit_ends_session: self.limit_ends_session,
        }
    }

    /// The rate-limit units a batch cancel of `n` orders costs.
    pub fn batch_cost(&self, n: usize) -> f64 {
        if self.batch_costs_per_order {
            n.max(1) as f64
        } else {
            1.0
        }
    }
}

const BINANCE: &[(&str, &str)] = &[
    (
        "conditional orders (stop, take-profit, trailing) live in the algo service since 2025-12-09, with their own open-orders listing and cancel",
        "Binance Derivatives, USDⓈ-M Futures: \"New Algo Order (TRADE)\", \"Current All Algo Open Orders (USER_DATA)\", \"Cancel All Algo Open Orders (TRADE)\"",
    ),
    (
        "batch cancel: at most 10 orders of one symbol a request, weight 1",
        "Binance USDⓈ-M Futures: \"Cancel Multiple Orders (TRADE)\" (DELETE /fapi/v1/batchOrders)",
    ),
    (
        "mass cancel: every ordinary open order of one symbol, weight 1; algo orders are not touched",
        "Binance USDⓈ-M Futures: \"Cancel All Open Orders (TRADE)\" (DELETE /fapi/v1/allOpenOrders)",
    ),
    (
        "a mass cancel that may take the stops is the ordinary and the algo cancel-all of the symbol, modelled as one request",
        "Binance USDⓈ-M Futures: \"Cancel All Algo Open Orders (TRADE)\"",
    ),
    (
        "rate: 2,400 request weight a minute per IP, modelled as 40 a second (stricter than a minute's window)",
        "Binance USDⓈ-M Futures: \"General Info\", section Limits",
    ),
    (
        "dead-man's switch: countdownCancelAll per symbol cancels every open order of the symbol when the countdown lapses; countdownTime 0 disarms. Whether it reaches the algo service is not stated: the profile assumes it does",
        "Binance USDⓈ-M Futures: \"Auto-Cancel All Open Orders (TRADE)\" (POST /fapi/v1/countdownCancelAll)",
    ),
];

const BYBIT: &[(&str, &str)] = &[
    (
        "batch cancel: at most 20 linear orders a request; the answer means accepted, not done",
        "Bybit v5: \"Batch Cancel Order\" (POST /v5/order/cancel-batch)",
    ),
    (
        "mass cancel: by symbol (required for linear), orderFilter=Order spares conditional orders; at most 500 futures orders a call, the venue choosing which; the answer means accepted, not done",
        "Bybit v5: \"Cancel All Orders\" (POST /v5/order/cancel-all)",
    ),
    (
        "conditional orders are listed with the others (open orders, all kinds unless filtered)",
        "Bybit v5: \"Get Open & Closed Orders\" (GET /v5/order/realtime)",
    ),
    (
        "rate: cancel endpoints 10 requests a second per UID (default tier)",
        "Bybit v5: \"Rate Limit\", API rate limit table (Trade)",
    ),
    (
        "dead-man's switch: disconnection protection cancels the orders when the private connection stays down past its window; the profile models it as cancel-on-disconnect, disarmable",
        "Bybit v5: \"Set DCP\" (POST /v5/order/disconnected-cancel-all)",
    ),
    (
        "the delay between an accepted cancel and the order's cancelled state is not documented: 50 ms stand-in",
        "(no page: stand-in)",
    ),
];

const OKX: &[(&str, &str)] = &[
    (
        "conditional orders (trigger, stop-loss, trailing) are algo orders: listed and cancelled apart",
        "OKX API v5: \"Get algo order list\" (GET /api/v5/trade/orders-algo-pending), \"Cancel algo order\" (POST /api/v5/trade/cancel-algos)",
    ),
    (
        "batch cancel: at most 20 orders a request; each order counts against the limit",
        "OKX API v5: \"Cancel multiple orders\" (POST /api/v5/trade/cancel-batch-orders)",
    ),
    (
        "no mass cancel for swaps (the mass cancel is for options' market makers)",
        "OKX API v5: \"Mass cancel order\" (POST /api/v5/trade/mass-cancel)",
    ),
    (
        "rate: 300 orders per 2 seconds for batch cancels, modelled as 150 orders a second",
        "OKX API v5: \"Cancel multiple orders\", Rate Limit",
    ),
    (
        "dead-man's switch: cancel-all-after countdown, timeOut 0 disarms; it can be scoped to one tag (the profile does not model tags: every order goes)",
        "OKX API v5: \"Cancel All After\" (POST /api/v5/trade/cancel-all-after)",
    ),
];

const DERIBIT: &[(&str, &str)] = &[
    (
        "no batch cancel by id",
        "Deribit API v2: Trading methods (private/cancel, private/cancel_by_label)",
    ),
    (
        "mass cancel by instrument, limited to limit orders (type=limit): stops and take-profits stay",
        "Deribit API v2: \"private/cancel_all_by_instrument\"",
    ),
    (
        "rate: matching-engine requests (orders, cancels), 5 a second sustained at the lowest tier (credit-based); other requests 20 a second, counted apart",
        "Deribit: \"Rate Limits\" (support article)",
    ),
    (
        "a request beyond the limit is refused and the session terminated: with cancel-on-disconnect armed, every order goes",
        "Deribit: \"Rate Limits\" (support article), Credit-Based System",
    ),
    (
        "cancel-on-disconnect fires when the connection closes or its heartbeat is lost, not on a WebSocket logout; disable_cancel_on_disconnect disarms",
        "Deribit API v2: \"private/enable_cancel_on_disconnect\", \"private/disable_cancel_on_disconnect\", \"private/logout\"",
    ),
    (
        "over FIX with cancel-on-disconnect set at Logon, a Logout cancels every order (session = \"fix\")",
        "Deribit FIX API: Logon (A), CancelOnDisconnect tag 9001; Logout (5)",
    ),
];

const KRAKEN: &[(&str, &str)] = &[
    (
        "batch cancel: 2 to 50 orders a request",
        "Kraken Spot WebSocket v2: \"batch_cancel\"",
    ),
    (
        "mass cancel: cancel_all takes every open order, stops included (no filter)",
        "Kraken Spot REST: \"Cancel All Orders\" (CancelAll); Spot WebSocket v2: \"cancel_all\"",
    ),
    (
        "rate: the trading counter is per pair and depends on each order's age (cancelling an order older than 300 s costs nothing); 20 requests a second stand-in",
        "Kraken: \"Spot Trading Rate Limits\" (support article)",
    ),
    (
        "dead-man's switch: CancelAllOrdersAfter countdown, timeout 0 disarms; once fired it is off until set again",
        "Kraken Spot REST: \"Cancel All Orders After X\" (CancelAllOrdersAfter)",
    ),
];

const BITMEX: &[(&str, &str)] = &[
    (
        "batch cancel: DELETE /order takes a list of clOrdID; no maximum stated, 100 a request modelled",
        "BitMEX API Explorer: Order, DELETE /order",
    ),
    (
        "mass cancel: DELETE /order/all by symbol with a filter on ordType=Limit spares stops",
        "BitMEX API Explorer: Order, DELETE /order/all",
    ),
    (
        "rate: 120 requests a minute, modelled as 2 a second (order routes also allow bursts of 10 a second)",
        "BitMEX: \"Rate Limits\" (API documentation)",
    ),
    (
        "dead-man's switch: cancelAllAfter countdown, timeout 0 disarms",
        "BitMEX API Explorer: Order, POST /order/cancelAllAfter",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_venues_md_lists_every_rule_of_every_profile_with_its_page() {
        let doc = include_str!("../../../docs/venues.md");
        for profile in Profile::ALL {
            let rules = Rules::of(profile, Session::Websocket, None, false);
            assert!(
                doc.contains(&format!("| `{profile}` |")),
                "{profile} not in the table"
            );
            for (rule, page) in rules.sources {
                assert!(
                    doc.contains(&format!("- {rule}. Source: {page}.")),
                    "{profile}: {rule}"
                );
            }
        }
    }

    #[test]
    fn every_named_profile_names_its_sources_and_a_rate() {
        for profile in Profile::ALL.into_iter().skip(1) {
            let rules = Rules::of(profile, Session::Websocket, None, false);
            assert!(!rules.sources.is_empty(), "{profile}");
            assert!(rules.cancel_rules().requests_per_sec.is_some(), "{profile}");
        }
        // The generic venue's rate is the scenario's, and the node does not tell it.
        let generic = Rules::of(Profile::Generic, Session::Websocket, Some(50), true);
        assert_eq!(generic.rate_per_sec, Some(50));
        assert_eq!(generic.cancel_rules().requests_per_sec, None);
        assert!(
            generic
                .cancel_rules()
                .mass_cancel
                .is_some_and(|m| m.spares_stops)
        );
    }

    #[test]
    fn a_batch_that_counts_each_order_is_paced_per_full_batch() {
        let okx = Rules::of(Profile::Okx, Session::Websocket, None, false);
        assert_eq!(okx.cancel_rules().requests_per_sec, Some(7.5));
        assert_eq!((okx.batch_cost(20), okx.batch_cost(0)), (20.0, 1.0));
        let binance = Rules::of(Profile::BinanceUsdm, Session::Websocket, None, false);
        assert_eq!(binance.batch_cost(10), 1.0);
    }
}
