//! Time to safe, per venue profile: how long until every working order that is not a protective
//! stop is gone and every position is protected, for a book of 10,000 working orders on 50
//! instruments and 200 positions with their stops.
//!
//! Beside the pipeline (halt, cancel with `use_mass_cancel = true`, verify, close), on the same
//! book: cancels one by one (what most bots do), and a venue-wide cancel-all (fast, and it takes
//! the stops: the positions it leaves unprotected are counted). The floor is what the venue's
//! documented limits allow: the fewest requests (best batch or a mass cancel that spares stops)
//! at its documented rate, plus two round trips (one listing before the cancels, the last
//! cancel's answer). Goal: the pipeline within 1.2x the floor on every profile. The venue's bucket
//! starts full, so a run can beat the sustained-rate floor by up to one second's burst.
//!
//! The clock is tokio's paused clock: every figure is the venue's pace (its latency, here 20 ms,
//! and its rate limit), not this machine's.
//!
//! `cargo bench -p shutdown-steps --bench time_to_safe`

// Link the built-in steps.
extern crate shutdown_steps as _;

use std::sync::Arc;

use async_trait::async_trait;
use shutdown_core::domain::Order;
use shutdown_core::node::{
    CancelAck, CancelRules, ExitRequest, OrderGateway, RoleResult, StopRequest,
};
use shutdown_core::{EnvOverrides, Node, PipelineConfig, Shutdown};
use shutdown_paper::{PaperNode, Profile, Scenario};
use shutdown_steps::fit::{self, Venue};

const ORDERS: usize = 10_000;
const INSTRUMENTS: usize = 50;
const POSITIONS: usize = 200;
const LATENCY_MS: u64 = 20;
/// The generic venue's rate: it documents none, the operator sets `rate_per_sec` to it.
const GENERIC_RATE: u32 = 50;

fn scenario(profile: Profile) -> Scenario {
    let mut s = format!("[venue]\nprofile = \"{profile}\"\nlatency_ms = {LATENCY_MS}\n");
    if profile == Profile::Generic {
        s += &format!("rate_limit_per_sec = {GENERIC_RATE}\nmass_cancel = true\n");
    }
    for i in 0..INSTRUMENTS {
        s += &format!("[[instruments]]\nsymbol = \"I{i}\"\nmark_price = 1000\n");
    }
    s += &format!("[generate]\norders = {ORDERS}\npositions = {POSITIONS}\n");
    Scenario::from_toml(&s, "bench").expect("scenario")
}

/// The order gateway of a node that cancels one order a request: no batch, no mass cancel.
struct OneByOne(PaperNode);

#[async_trait]
impl OrderGateway for OneByOne {
    async fn open_orders(&self) -> RoleResult<Vec<Order>> {
        self.0.open_orders().await
    }
    async fn conditional_orders(&self) -> RoleResult<Vec<Order>> {
        self.0.conditional_orders().await
    }
    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>> {
        self.0.order(client_id).await
    }
    async fn order_history(&self, instrument: &str) -> RoleResult<Vec<Order>> {
        self.0.order_history(instrument).await
    }
    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.0.cancel(client_id).await
    }
    fn cancel_rules(&self) -> CancelRules {
        CancelRules {
            batch_size: 1,
            mass_cancel: None,
            ..self.0.cancel_rules()
        }
    }
    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.0.place_stop(request).await
    }
    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.0.place_exit(request).await
    }
}

/// What one run left: seconds to safe (or to a cleared book), unprotected positions at exit.
struct Run {
    /// The whole shutdown, confirmations included.
    took: f64,
    /// Orders the report could not say the fate of.
    unknown: usize,
    safe_after: Option<f64>,
    cleared_after: Option<f64>,
    unprotected: usize,
}

fn run(profile: Profile, cancel: &str, one_by_one: bool) -> Run {
    let paper = PaperNode::new(&scenario(profile));
    let node = match one_by_one {
        false => paper.node(),
        true => Node::new()
            .with_gate(Arc::new(paper.clone()))
            .with_orders(Arc::new(OneByOne(paper.clone())))
            .with_positions(Arc::new(paper.clone()))
            .with_connections(Arc::new(paper.clone())),
    };
    let rate = match profile {
        Profile::Generic => format!("rate_per_sec = {GENERIC_RATE}\n"),
        _ => String::new(),
    };
    let config = PipelineConfig::from_toml(
        &format!(
            "timeout_secs = 7200\n[[steps]]\nkind = \"halt\"\n\
             [[steps]]\nkind = \"cancel\"\ntimeout_secs = 7000\nmax_rounds = 20\n{rate}{cancel}\n\
             [[steps]]\nkind = \"verify\"\n[[steps]]\nkind = \"close\"\n"
        ),
        "bench.toml",
        EnvOverrides::None,
    )
    .expect("config");
    let pipeline = config.build(&node).expect("pipeline");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let report = rt.block_on(Shutdown::new(pipeline, node).run());
    let audit = paper.audit(&report);
    assert!(audit.ok, "{profile}: {audit}");
    let cancel = report.steps.iter().find(|s| s.kind == "cancel");
    let unknown = cancel.map_or(0, |s| s.details["unknown"].as_array().map_or(0, Vec::len));
    Run {
        took: report.duration,
        unknown,
        safe_after: paper.safe_after().filter(|_| !audit.truth.at_risk()),
        cleared_after: paper.cleared_after(),
        unprotected: audit.truth.unprotected.len(),
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("never".into(), |s| format!("{s:.2}"))
}

fn main() {
    println!(
        "time to safe: {ORDERS} working orders on {INSTRUMENTS} instruments, {POSITIONS} positions with stops, {LATENCY_MS} ms latency (simulated time)"
    );
    println!(
        "| profile | floor: requests, method | floor s | pipeline: safe after s | x floor | shutdown s | unknown | one by one: safe after s | cancel-all: cleared s | unprotected |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for profile in Profile::ALL {
        let scenario = scenario(profile);
        let paper = PaperNode::new(&scenario);
        // The floor at the venue's rate (the generic venue's: the scenario's).
        let mut rules = paper.cancel_rules();
        rules.requests_per_sec = rules
            .requests_per_sec
            .or(paper.rules().rate_per_sec.map(f64::from));
        let venue = Venue::new(profile.name(), rules, &paper.all_orders(), Vec::new());
        let floor = fit::floor(&venue, false);
        // One listing before the cancels, and the last cancel's answer: two round trips.
        let floor_secs = floor.secs.map(|s| s + 2.0 * LATENCY_MS as f64 / 1000.0);
        let pipeline = run(profile, "use_mass_cancel = true", false);
        let by_one = run(profile, "", true);
        let wipe = run(
            profile,
            "use_mass_cancel = true\nkeep_protective_stops = false",
            false,
        );
        let ratio = match (pipeline.safe_after, floor_secs) {
            (Some(s), Some(f)) if f > 0.0 => format!("{:.2}", s / f),
            _ => "-".into(),
        };
        println!(
            "| {profile} | {}, {} | {} | {} | {ratio} | {:.2} | {} | {} | {} | {} |",
            floor.requests,
            floor.method,
            secs(floor_secs),
            secs(pipeline.safe_after),
            pipeline.took,
            pipeline.unknown,
            secs(by_one.safe_after),
            secs(wipe.cleared_after),
            wipe.unprotected,
        );
    }
}
