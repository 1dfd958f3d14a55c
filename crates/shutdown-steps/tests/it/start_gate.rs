//! The start gate (`reconcile`, `verify` as protect, `resume`) on the paper venue after a downtime:
//! it finds every change, handles each by its policy, and opens the trading gate only when nothing
//! is left outstanding.

use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use shutdown_core::EnvOverrides;
use shutdown_core::domain::{LastKnown, Order};
use shutdown_core::errors::RoleError;
use shutdown_core::node::{CancelAck, ExitRequest, OrderGateway, RoleResult, StopRequest};
use shutdown_core::{Node, PipelineConfig, Report, Shutdown};
use shutdown_paper::{Audit, Change, PaperNode, Scenario};

use crate::audit::{MARKS, order, position};

/// The shipped start gate, with `extra` appended to the `reconcile` step's options.
fn gate_config(reconcile: &str) -> String {
    format!(
        "timeout_secs = 20.0\n\
         [[steps]]\nkind = \"reconcile\"\n{reconcile}\n\
         [[steps]]\nkind = \"verify\"\nname = \"protect\"\non_unprotected = \"place_stop\"\n\
         [[steps]]\nkind = \"resume\"\n"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Run the start gate of `config` on `node`, handing over `last`.
fn run_gate(config: &str, node: Node, last: Option<LastKnown>) -> Report {
    let config = PipelineConfig::from_toml(config, "start.toml", EnvOverrides::None).unwrap();
    let mut gate = Shutdown::new(config.build(&node).unwrap(), node).poll_in_place(true);
    if let Some(last) = last {
        gate = gate.with_extension(last);
    }
    runtime().block_on(gate.run_start_gate())
}

/// A restart after the scenario's downtime: the report, the venue, the changes and the audit.
fn restart(scenario: &str, config: &str) -> (Report, PaperNode, Vec<Change>, Audit) {
    let scenario = Scenario::from_toml(scenario, "downtime.toml").unwrap();
    let (paper, last, changes) = PaperNode::restarted(&scenario, scenario.seed);
    let report = run_gate(config, paper.node(), Some(last));
    let audit = paper.audit_start(&report, &changes);
    (report, paper, changes, audit)
}

fn shipped_downtime() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join("examples/scenarios/downtime.toml")).unwrap()
}

fn differences(report: &Report) -> Vec<serde_json::Value> {
    report.step("reconcile").unwrap().details["differences"]
        .as_array()
        .unwrap()
        .clone()
}

fn difference<'a>(diffs: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    diffs
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no difference {id} in {diffs:#?}"))
}

#[test]
fn an_order_placed_by_hand_keeps_the_gate_halted_and_every_wiped_stop_is_placed_again() {
    let (report, paper, changes, audit) = restart(&shipped_downtime(), &gate_config(""));
    assert!(audit.ok, "{audit}");
    assert_eq!(changes.len(), 4, "{changes:?}");
    let diffs = differences(&report);
    assert_eq!(diffs.len(), 4, "{diffs:#?}");
    let manual = difference(&diffs, "manual-1");
    assert_eq!(
        (manual["kind"].as_str(), manual["handled"].as_bool()),
        (Some("unknown_order"), Some(false))
    );
    // The dead-man's switch took both stops; each is placed again, BTC's away from the mark it
    // crossed, ETH's at its old trigger, still on the loss side.
    let btc = difference(&diffs, "btc-stop");
    assert_eq!(btc["kind"], "stop_gone");
    assert!(
        btc["action"]
            .as_str()
            .unwrap()
            .starts_with("placed stop start-stop-btc-long"),
        "{btc}"
    );
    let eth = paper.get_order("start-stop-eth-short").unwrap();
    assert_eq!(eth.trigger_price, Some(3150.into()));
    assert_eq!(report.exit_code, 10);
    assert!(paper.halted(), "the gate must stay halted");
    let resume = report.step("resume").unwrap();
    assert_eq!(resume.details["resumed"], false);
    assert!(
        resume.error.as_deref().unwrap().contains("manual-1"),
        "{:?}",
        resume.error
    );
    assert!(audit.truth.unprotected.is_empty(), "{audit:?}");
}

#[test]
fn with_unknown_orders_reported_the_gate_opens_clean_with_every_position_protected() {
    let (report, paper, _, audit) = restart(
        &shipped_downtime(),
        &gate_config("on_unknown_order = \"report\""),
    );
    assert!(audit.ok, "{audit}");
    assert_eq!(report.exit_code, 0, "{report}");
    assert!(!paper.halted());
    assert_eq!(report.step("resume").unwrap().details["confirmed"], true);
}

#[test]
fn a_gone_stop_can_flatten_its_position_or_hold_the_gate() {
    let (report, paper, _, audit) = restart(
        &shipped_downtime(),
        &gate_config("on_stop_gone = \"flatten\"\non_unknown_order = \"report\""),
    );
    assert!(audit.ok, "{audit}");
    assert!(
        paper.open_positions().is_empty(),
        "{:?}",
        paper.open_positions()
    );
    let diffs = differences(&report);
    assert!(
        difference(&diffs, "btc-stop")["action"]
            .as_str()
            .unwrap()
            .contains("start-exit-btc-long")
    );
    // `halt`: reconcile sends nothing; protect still covers the position, and the gate stays shut.
    let (report, paper, _, audit) = restart(
        &shipped_downtime(),
        &gate_config("on_stop_gone = \"halt\"\non_unknown_order = \"report\""),
    );
    assert!(audit.ok, "{audit}");
    let diffs = differences(&report);
    assert!(difference(&diffs, "btc-stop")["action"].is_null());
    assert!(paper.get_order("shutdown-stop-btc-long").is_none());
    assert!(paper.halted());
    assert_eq!(report.exit_code, 10);
}

#[test]
fn fills_while_away_and_a_stop_that_fired_are_found_with_the_positions_they_moved() {
    let scenario = format!(
        "{}\n{}{}{}[downtime]\nfilled = [\"bid\"]\nmarks = [{{ symbol = \"B0\", mark_price = 80 }}]\n",
        "[[instruments]]\nsymbol = \"B0\"\nmark_price = 100\n[[instruments]]\nsymbol = \"B1\"\nmark_price = 1000\n",
        "[[positions]]\nid = \"p0\"\ninstrument = \"B0\"\nside = \"buy\"\nquantity = 2\nentry_price = 100\n",
        "[[orders]]\nclient_id = \"stop\"\ninstrument = \"B0\"\nside = \"sell\"\norder_type = \"stop_market\"\nquantity = 2\ntrigger_price = 90\nreduce_only = true\nstatus = \"new\"\n",
        "[[orders]]\nclient_id = \"bid\"\ninstrument = \"B1\"\nside = \"buy\"\norder_type = \"limit\"\nquantity = 1\nlimit_price = 990\nstatus = \"new\"\n",
    );
    let (report, paper, changes, audit) = restart(&scenario, &gate_config(""));
    assert!(audit.ok, "{audit}");
    let kinds: Vec<(&str, &str)> = changes.iter().map(|c| (c.kind, c.id.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("order_filled", "bid"),
            ("order_filled", "stop"),
            ("position_changed", "B0"),
            ("position_changed", "B1")
        ]
    );
    let diffs = differences(&report);
    assert_eq!(difference(&diffs, "p0")["now"], "flat");
    // The new B1 long, bought while away, is protected before the gate opens.
    let b1 = &paper.open_positions()[0];
    assert_eq!(b1.instrument, "B1");
    assert!(audit.truth.unprotected.is_empty());
    assert_eq!(report.exit_code, 0, "{report}");
    assert!(!paper.halted());
}

/// An order gateway that cannot say what became of an order: every lookup fails.
struct Forgetful(PaperNode);

#[async_trait]
impl OrderGateway for Forgetful {
    async fn open_orders(&self) -> RoleResult<Vec<Order>> {
        self.0.open_orders().await
    }
    async fn order(&self, _client_id: &str) -> RoleResult<Option<Order>> {
        Err(RoleError::Transient("order lookup is down".into()))
    }
    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.0.cancel(client_id).await
    }
    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.0.place_stop(request).await
    }
    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.0.place_exit(request).await
    }
}

#[test]
fn an_order_the_venue_will_not_account_for_is_unknown_and_holds_the_gate() {
    let scenario = Scenario::from_toml(&shipped_downtime(), "downtime.toml").unwrap();
    let (paper, last, changes) = PaperNode::restarted(&scenario, 1);
    let node = paper.node().with_orders(Arc::new(Forgetful(paper.clone())));
    let report = run_gate(
        &gate_config("on_unknown_order = \"report\""),
        node,
        Some(last),
    );
    let audit = paper.audit_start(&report, &changes);
    assert!(audit.ok, "{audit}");
    let diffs = differences(&report);
    let eth = difference(&diffs, "eth-ask-1");
    assert_eq!(eth["kind"], "state_unknown");
    assert!(
        eth["now"]
            .as_str()
            .unwrap()
            .contains("order lookup is down")
    );
    assert!(paper.halted());
    assert_eq!(report.exit_code, 10);
}

#[test]
fn without_a_last_snapshot_nothing_is_compared_and_the_gate_stays_halted() {
    let scenario = Scenario::from_toml(&shipped_downtime(), "downtime.toml").unwrap();
    let (paper, _, _) = PaperNode::restarted(&scenario, 1);
    let report = run_gate(&gate_config(""), paper.node(), None);
    let reconcile = report.step("reconcile").unwrap();
    assert!(reconcile.error.as_deref().unwrap().contains("LastKnown"));
    // The steps after it still run (protect covers the positions), but the gate stays halted.
    assert_eq!(report.exit_code, 10);
    let resume = report.step("resume").unwrap();
    assert!(
        resume
            .error
            .as_deref()
            .unwrap()
            .contains("reconcile failed"),
        "{:?}",
        resume.error
    );
    assert!(paper.halted());
}

#[test]
fn a_step_disabled_before_resume_holds_the_gate_too() {
    let scenario = Scenario::from_toml(&shipped_downtime(), "downtime.toml").unwrap();
    let (paper, last, _) = PaperNode::restarted(&scenario, 1);
    let config = gate_config("on_unknown_order = \"report\"")
        .replace("name = \"protect\"", "name = \"protect\"\nenabled = false");
    let report = run_gate(&config, paper.node(), Some(last));
    let resume = report.step("resume").unwrap();
    assert!(
        resume.error.as_deref().unwrap().contains("protect skipped"),
        "{:?}",
        resume.error
    );
    assert!(paper.halted());
}

#[test]
fn a_policy_that_does_not_fit_its_difference_is_refused_naming_the_key() {
    let err = PipelineConfig::from_toml(
        &gate_config("on_order_filled = \"flatten\""),
        "start.toml",
        EnvOverrides::None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("on_order_filled") && err.contains("flatten") && err.contains("halt"),
        "{err}"
    );
}

/// Cancelled and filled order indices, the dead-man's switch, mark moves (instrument, percent), and
/// orders by hand (trade or not).
type Downtime = (
    Vec<usize>,
    Vec<usize>,
    bool,
    Vec<(usize, i32)>,
    Vec<(String, bool)>,
);

/// A downtime over a book of `orders` orders: cancels, fills, a dead-man's switch, price moves and
/// orders by hand (some of them trades).
fn downtime() -> impl Strategy<Value = Downtime> {
    (
        prop::collection::vec(0..10usize, 0..4),
        prop::collection::vec(0..10usize, 0..4),
        prop::bool::weighted(0.2),
        prop::collection::vec((0..3usize, -30..30i32), 0..3),
        prop::collection::vec((order(), any::<bool>()), 0..3),
    )
}

/// A scenario string: the book (positions one per instrument and position side, as venues keep
/// them) and the downtime.
fn downtime_scenario(
    positions: &[String],
    orders: &[String],
    faults: bool,
    (cancelled, filled, dead_man, marks, by_hand): &Downtime,
) -> String {
    let mut s = String::from("[venue]\nlatency_ms = 2\n");
    if faults {
        s += "transient_failure_rate = 0.3\nrate_limit_per_sec = 20\n";
    }
    for (symbol, mark) in MARKS {
        s += &format!("[[instruments]]\nsymbol = \"{symbol}\"\nmark_price = {mark}\n");
    }
    let mut keys = std::collections::HashSet::new();
    for (i, p) in positions.iter().enumerate() {
        let field = |k: &str| p.lines().find(|l| l.starts_with(k)).unwrap_or_default();
        if keys.insert((field("instrument"), field("position_side"))) {
            s += &format!("[[positions]]\nid = \"p-{i}\"\n{p}");
        }
    }
    for (i, o) in orders.iter().enumerate() {
        s += &format!("[[orders]]\nclient_id = \"o-{i}\"\n{o}");
    }
    let ids = |list: &[usize]| -> Vec<String> {
        (list.iter())
            .filter(|i| **i < orders.len())
            .map(|i| format!("\"o-{i}\""))
            .collect()
    };
    s += &format!(
        "[downtime]\ncancelled = [{}]\nfilled = [{}]\ndead_man_fired = {dead_man}\n",
        ids(cancelled).join(", "),
        ids(filled).join(", ")
    );
    let marks: Vec<String> = (marks.iter())
        .map(|(i, pct)| {
            let (symbol, mark) = MARKS[*i];
            format!(
                "{{ symbol = \"{symbol}\", mark_price = {} }}",
                (i64::from(mark) * i64::from(100 + pct) / 100).max(1)
            )
        })
        .collect();
    s += &format!("marks = [{}]\n", marks.join(", "));
    for (i, (o, trade)) in by_hand.iter().enumerate() {
        let o = match trade {
            true => o.replace(
                &o.lines()
                    .find(|l| l.starts_with("status"))
                    .unwrap_or_default()
                    .to_owned(),
                "status = \"filled\"",
            ),
            false => o.clone(),
        };
        s += &format!("[[downtime.orders]]\nclient_id = \"hand-{i}\"\n{o}");
    }
    s
}

fn one_mode_per_instrument(paper: &PaperNode) -> bool {
    let positions = paper.open_positions();
    positions.iter().all(|p| {
        (positions.iter())
            .filter(|q| q.instrument == p.instrument && q.id != p.id)
            .all(|q| {
                q.position_side != shutdown_core::domain::PositionSide::Both
                    && p.position_side != shutdown_core::domain::PositionSide::Both
            })
    })
}

const GATE_REPLACING: &str = "on_position_changed = \"replace_stop\"";

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// On a venue that answers, the gate names every change the downtime made and no other, and
    /// leaves no position unprotected, whether or not it opens.
    #[test]
    fn the_start_gate_finds_every_downtime_change_and_leaves_nothing_unprotected(
        positions in prop::collection::vec(position(), 0..5),
        orders in prop::collection::vec(order(), 0..10),
        d in downtime(),
    ) {
        let s = downtime_scenario(&positions, &orders, false, &d);
        let (report, paper, _, audit) = restart(&s, &gate_config(GATE_REPLACING));
        prop_assert!(audit.ok, "{audit}\n{}\nscenario:\n{s}", report.to_json_line());
        // A trade by hand in hedge mode on a one-way instrument (or the reverse) makes a book no
        // venue holds: both modes on one instrument.
        prop_assume!(one_mode_per_instrument(&paper));
        prop_assert!(
            audit.truth.unprotected.is_empty(),
            "unprotected {:?}\n{}\nscenario:\n{s}",
            audit.truth.unprotected,
            report.to_json_line()
        );
    }

    /// On a venue that fails calls, the gate may know less, and says so; it never opens on a
    /// claim the venue contradicts.
    #[test]
    fn under_venue_faults_the_start_gate_claims_nothing_the_venue_contradicts(
        positions in prop::collection::vec(position(), 0..5),
        orders in prop::collection::vec(order(), 0..10),
        d in downtime(),
    ) {
        let s = downtime_scenario(&positions, &orders, true, &d);
        let (report, _, _, audit) = restart(&s, &gate_config(GATE_REPLACING));
        prop_assert!(audit.ok, "{audit}\n{}\nscenario:\n{s}", report.to_json_line());
    }
}

#[test]
fn an_order_being_cancelled_when_the_node_stopped_and_working_still_is_unknown() {
    let scenario = format!(
        "[[instruments]]\nsymbol = \"B0\"\nmark_price = 100\n{}",
        "[[orders]]\nclient_id = \"ask\"\ninstrument = \"B0\"\nside = \"sell\"\norder_type = \"limit\"\nquantity = 1\nlimit_price = 110\nstatus = \"pending_cancel\"\n",
    );
    let (report, paper, changes, audit) = restart(&scenario, &gate_config(""));
    assert!(audit.ok, "{audit}");
    assert_eq!(changes.len(), 1, "{changes:?}");
    let diffs = differences(&report);
    let ask = difference(&diffs, "ask");
    assert_eq!(ask["kind"], "unknown_order");
    assert!(
        ask["was"].as_str().unwrap().contains("pending_cancel"),
        "{ask}"
    );
    assert!(paper.halted());
}

#[test]
fn a_difference_under_halt_stays_unhandled_when_another_policy_protects_its_position() {
    let scenario = format!(
        "[[instruments]]\nsymbol = \"B0\"\nmark_price = 100\n{}{}{}",
        "[[positions]]\nid = \"p0\"\ninstrument = \"B0\"\nside = \"buy\"\nquantity = 2\nentry_price = 100\n",
        "[[orders]]\nclient_id = \"stop\"\ninstrument = \"B0\"\nside = \"sell\"\norder_type = \"stop_market\"\nquantity = 2\ntrigger_price = 90\nreduce_only = true\nstatus = \"new\"\n",
        "[downtime]\ncancelled = [\"stop\"]\n[[downtime.orders]]\nclient_id = \"hand\"\ninstrument = \"B0\"\nside = \"buy\"\norder_type = \"market\"\nquantity = 1\nstatus = \"filled\"\n",
    );
    let config = gate_config("on_stop_gone = \"halt\"\non_position_changed = \"replace_stop\"");
    let (report, paper, _, audit) = restart(&scenario, &config);
    assert!(audit.ok, "{audit}");
    let diffs = differences(&report);
    let stop = difference(&diffs, "stop");
    assert_eq!(
        (stop["kind"].as_str(), stop["handled"].as_bool()),
        (Some("stop_gone"), Some(false))
    );
    let p0 = difference(&diffs, "p0");
    assert_eq!(p0["handled"], true, "{p0}");
    assert!(
        p0["action"]
            .as_str()
            .unwrap()
            .contains("placed stop start-stop-p0 for 3"),
        "{p0}"
    );
    assert!(audit.truth.unprotected.is_empty());
    assert!(
        paper.halted(),
        "the stop gone under `halt` keeps the gate halted"
    );
}
