//! Each venue profile's shipped scenario, shut down by the built-in steps and audited against the
//! venue's rules: the stops survive only where the steps use what the venue offers, its way.

use std::sync::Arc;

use async_trait::async_trait;
use shutdown_core::domain::{Order, OrderStatus};
use shutdown_core::node::{
    CancelAck, CancelRules, ExitRequest, MassCancelAck, MassCancelScope, OrderGateway, RoleResult,
    StopRequest,
};
use shutdown_core::{Node, Report, StepOutcome};
use shutdown_paper::{PaperNode, Profile, Scenario};

use crate::support::{ids, run};

/// A shipped venue scenario, by file name.
fn shipped(name: &str) -> Scenario {
    let path = format!(
        "{}/../../examples/scenarios/venues/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    Scenario::load(&path).expect("shipped scenario")
}

/// halt, cancel (with `cancel` options), verify placing stops, close (with `close` options).
fn pipeline(cancel: &str, close: &str) -> String {
    format!(
        "timeout_secs = 600\n[[steps]]\nkind = \"halt\"\n\
         [[steps]]\nkind = \"cancel\"\ntimeout_secs = 300\n{cancel}\n\
         [[steps]]\nkind = \"verify\"\non_unprotected = \"place_stop\"\n\
         [[steps]]\nkind = \"close\"\n{close}\n"
    )
}

fn step<'a>(report: &'a Report, kind: &str) -> &'a shutdown_core::StepReport {
    let found = report.steps.iter().find(|s| s.kind == kind);
    found.unwrap_or_else(|| panic!("no {kind} step in {report:?}"))
}

/// Run and audit: the report holds nothing the venue contradicts.
async fn audited(paper: &PaperNode, pipeline: &str) -> Report {
    let report = run(pipeline, paper).await;
    let audit = paper.audit(&report);
    assert!(audit.ok, "{audit}\n{}", report.to_json_line());
    report
}

#[test]
fn every_profile_has_a_shipped_scenario_that_names_it() {
    for profile in Profile::ALL.into_iter().skip(1) {
        let scenario = shipped(profile.name());
        assert_eq!(scenario.venue.profile, profile);
    }
}

#[tokio::test(start_paused = true)]
async fn every_shipped_venue_scenario_ends_safe_with_the_default_steps() {
    for profile in Profile::ALL.into_iter().skip(1) {
        let paper = PaperNode::new(&shipped(profile.name()));
        let report = audited(&paper, &pipeline("", "")).await;
        assert_eq!(report.exit_code, 0, "{profile}: {}", report.to_json_line());
        let truth = paper.truth_after_exit();
        assert!(!truth.at_risk(), "{profile}: {truth:?}");
        assert!(paper.safe_after().is_some(), "{profile}");
        assert!(paper.duplicate_stops().is_empty(), "{profile}");
    }
}

/// The order gateway of a node that knows less of its venue than the venue's rules say: one
/// written for a venue that lists everything together reads the order listing only; one that
/// does not say the venue's rate leaves the steps unpaced.
struct Unaware {
    paper: PaperNode,
    reads_conditional: bool,
    rules: CancelRules,
}

impl Unaware {
    fn node(self) -> Node {
        let paper = self.paper.clone();
        Node::new()
            .with_gate(Arc::new(paper.clone()))
            .with_orders(Arc::new(self))
            .with_positions(Arc::new(paper.clone()))
            .with_connections(Arc::new(paper))
    }
}

#[async_trait]
impl OrderGateway for Unaware {
    async fn open_orders(&self) -> RoleResult<Vec<Order>> {
        self.paper.open_orders().await
    }
    async fn conditional_orders(&self) -> RoleResult<Vec<Order>> {
        match self.reads_conditional {
            true => self.paper.conditional_orders().await,
            false => Ok(Vec::new()),
        }
    }
    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>> {
        self.paper.order(client_id).await
    }
    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.paper.cancel(client_id).await
    }
    fn cancel_rules(&self) -> CancelRules {
        self.rules.clone()
    }
    async fn cancel_batch(&self, ids: &[String]) -> RoleResult<Vec<RoleResult<CancelAck>>> {
        self.paper.cancel_batch(ids).await
    }
    async fn mass_cancel(&self, scope: &MassCancelScope) -> RoleResult<MassCancelAck> {
        self.paper.mass_cancel(scope).await
    }
    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.paper.place_stop(request).await
    }
    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.paper.place_exit(request).await
    }
}

#[tokio::test(start_paused = true)]
async fn binance_stops_are_read_from_the_algo_listing_and_one_listing_alone_places_duplicates() {
    let paper = PaperNode::new(&shipped("binance-usdm"));
    let report = audited(&paper, &pipeline("", "")).await;
    // The take-profit rests in the algo service: it was found there and cancelled.
    assert!(ids(&step(&report, "cancel").details["cancelled"]).contains(&"btc-tp".to_owned()));
    assert_eq!(step(&report, "verify").outcome, StepOutcome::Succeeded);

    // The same book, read through the order listing alone.
    let paper = PaperNode::new(&shipped("binance-usdm"));
    let node = Unaware {
        rules: paper.cancel_rules(),
        paper: paper.clone(),
        reads_conditional: false,
    }
    .node();
    let report = run_on(node, &pipeline("", "")).await;
    let audit = paper.audit(&report);
    assert!(!audit.ok);
    let said = audit.discrepancies.join("\n");
    assert!(said.contains("stop shutdown-stop-btc-long was placed for position btc-long, which btc-stop at the venue already protected: a duplicate"), "{said}");
    assert!(said.contains("order btc-tp is still working"), "{said}");
}

#[tokio::test(start_paused = true)]
async fn bybit_mass_cancels_are_repeated_until_the_book_is_gone_and_each_is_confirmed() {
    let paper = PaperNode::new(&shipped("bybit"));
    let report = audited(&paper, &pipeline("use_mass_cancel = true", "")).await;
    let cancel = step(&report, "cancel");
    assert_eq!(cancel.outcome, StepOutcome::Succeeded, "{cancel:?}");
    // 1,200 orders, at most 500 a call: three calls at least, each answered before it is done.
    let calls = cancel.details["mass_cancel"]["calls"].as_u64().unwrap_or(0);
    assert!(calls >= 3, "{}", cancel.details["mass_cancel"]);
    assert_eq!(paper.stats().mass_cancels, calls);
    // Fills raced the cancels: each is named filled, none called cancelled (the audit checks).
    let filled = ids(&cancel.details["already_filled"]).len();
    let cancelled = ids(&cancel.details["cancelled"]).len();
    assert!(filled > 0);
    assert_eq!(filled + cancelled, 1200);
    assert_eq!(ids(&cancel.details["kept_stops"]), ["btc-stop"]);

    // Without listing again after the first call, 700 orders are left working: named, and the
    // step fails.
    let paper = PaperNode::new(&shipped("bybit"));
    let report = audited(
        &paper,
        &pipeline("use_mass_cancel = true\nmax_rounds = 1", ""),
    )
    .await;
    let cancel = step(&report, "cancel");
    assert_eq!(cancel.outcome, StepOutcome::Failed);
    assert_eq!(
        cancel.details["orphaned"].as_array().map(Vec::len),
        Some(700)
    );
    assert_eq!(paper.truth_after_exit().orphaned.len(), 700);
}

#[tokio::test(start_paused = true)]
async fn deribit_a_clean_logout_spares_the_stops_where_a_disconnect_fires_the_switch() {
    let no_disarm = "disarm_dead_man = false";
    // Logged out first: the session ends without firing cancel-on-disconnect.
    let paper = PaperNode::new(&shipped("deribit"));
    let report = audited(&paper, &pipeline("", no_disarm)).await;
    let close = step(&report, "close");
    assert_eq!(close.details["connections"][0]["disarmed_by"], "logout");
    assert_eq!(report.exit_code, 0);
    assert!(paper.truth_after_exit().unprotected.is_empty());
    // The take-profit is not a limit order: the mass cancel spared it, and it went by id.
    let paper = PaperNode::new(&shipped("deribit"));
    let report = audited(&paper, &pipeline("use_mass_cancel = true", no_disarm)).await;
    let cancel = step(&report, "cancel");
    assert!(ids(&cancel.details["cancelled"]).contains(&"btc-tp".to_owned()));
    // One per instrument, and none again where the first left only what it spares.
    assert_eq!(paper.stats().mass_cancels, 2);

    // Disconnected without a logout: the switch fires and takes the stop.
    let paper = PaperNode::new(&shipped("deribit"));
    let report = audited(
        &paper,
        &pipeline("", "disarm_dead_man = false\nlogout = false"),
    )
    .await;
    assert_eq!(
        paper
            .truth_after_exit()
            .unprotected
            .into_iter()
            .collect::<Vec<_>>(),
        ["btc-long"]
    );
    assert_ne!(report.exit_code, 0);
}

/// Run `pipeline` on `node`.
async fn run_on(node: Node, pipeline: &str) -> Report {
    let config = shutdown_core::PipelineConfig::from_toml(
        pipeline,
        "test.toml",
        shutdown_core::EnvOverrides::None,
    )
    .expect("valid config");
    shutdown_core::Shutdown::new(config.build(&node).expect("builds"), node)
        .run()
        .await
}

#[tokio::test(start_paused = true)]
async fn deribit_ends_the_session_of_a_node_that_goes_over_its_rate_and_the_report_says_so() {
    // The steps keep to the documented 5 orders and cancels a second: nothing ends.
    let paper = PaperNode::new(&shipped("deribit"));
    audited(&paper, &pipeline("rate_per_sec = 100", "")).await;
    assert!(paper.events().is_empty(), "{:?}", paper.events());
    assert_eq!(paper.stats().rate_limited, 0);

    // A node that does not say the venue's rate: the cancels go unpaced, the venue ends the
    // session at the first one over, and cancel-on-disconnect takes the stop with it.
    let paper = PaperNode::new(&shipped("deribit"));
    let node = Unaware {
        rules: CancelRules {
            requests_per_sec: None,
            ..paper.cancel_rules()
        },
        paper: paper.clone(),
        reads_conditional: true,
    }
    .node();
    let report = run_on(node, &pipeline("", "")).await;
    let audit = paper.audit(&report);
    assert!(audit.ok, "{audit}");
    let events = paper.events().join("\n");
    assert!(
        events.contains("ended the session of deribit-ws"),
        "{events}"
    );
    assert!(
        events.contains("dead-man's switch of deribit-ws fired"),
        "{events}"
    );
    let close = step(&report, "close");
    assert_eq!(close.details["connections"][0]["down_before_close"], true);
    // What survived is not known from the close: no count, and not a clean exit.
    assert!(
        report
            .count(shutdown_core::Counter::PositionsUnprotected)
            .unknown
    );
    assert_ne!(report.exit_code, 0);
}

#[tokio::test(start_paused = true)]
async fn deribit_over_fix_cannot_keep_the_stops_and_the_report_says_so() {
    let paper = PaperNode::new(&shipped("deribit-fix"));
    let report = audited(&paper, &pipeline("", "")).await;
    let close = step(&report, "close");
    let said = close.details["connections"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains("cannot be switched off"), "{said}");
    assert_eq!(close.details["unprotected_at_exit"][0], "btc-long");
    assert_ne!(report.exit_code, 0);
    // Not even asked to disarm, it logs out: the logout fires the switch, and says so.
    let paper = PaperNode::new(&shipped("deribit-fix"));
    let report = audited(&paper, &pipeline("", "disarm_dead_man = false")).await;
    let close = step(&report, "close");
    let said = close.details["connections"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains("the logout fired"), "{said}");
    assert_eq!(
        paper.get_order("btc-stop").map(|o| o.status),
        Some(OrderStatus::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn kraken_cancel_all_takes_stops_so_it_is_not_used_while_stops_are_kept() {
    let paper = PaperNode::new(&shipped("kraken"));
    let report = audited(&paper, &pipeline("use_mass_cancel = true", "")).await;
    let cancel = step(&report, "cancel");
    let why = cancel.details["mass_cancel"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("takes protective stops too"), "{why}");
    assert_eq!(paper.stats().mass_cancels, 0);
    // 120 orders of one pair in batches of at most 50.
    assert_eq!(paper.stats().batch_cancels, 3);
    assert_eq!(ids(&cancel.details["kept_stops"]), ["xbt-stop"]);
    // Told that stops may go, it is used, and the position is left bare: the report says so.
    let paper = PaperNode::new(&shipped("kraken"));
    let report = audited(
        &paper,
        &pipeline("use_mass_cancel = true\nkeep_protective_stops = false", "")
            .replace("\"place_stop\"", "\"report\""),
    )
    .await;
    assert_eq!(paper.stats().mass_cancels, 1);
    assert_eq!(step(&report, "verify").counts.len(), 1);
    assert_ne!(report.exit_code, 0);
}

#[tokio::test(start_paused = true)]
async fn bitmex_one_filtered_cancel_all_takes_the_book_that_ids_would_take_a_minute_for() {
    let paper = PaperNode::new(&shipped("bitmex"));
    audited(&paper, &pipeline("use_mass_cancel = true", "")).await;
    let mass = paper.safe_after().expect("safe");
    assert_eq!(paper.stats().mass_cancels, 1);
    let paper = PaperNode::new(&shipped("bitmex"));
    audited(&paper, &pipeline("", "")).await;
    // By id: batches of up to 100 orders, two requests a second.
    assert_eq!(paper.stats().batch_cancels, 2);
    let by_id = paper.safe_after().expect("safe");
    assert!(mass <= by_id, "{mass} > {by_id}");
}

#[tokio::test(start_paused = true)]
async fn okx_batches_count_each_order_and_algo_orders_are_cancelled_from_their_listing() {
    let paper = PaperNode::new(&shipped("okx"));
    let report = audited(&paper, &pipeline("", "")).await;
    let cancel = step(&report, "cancel");
    // The trigger order that would open a position is an algo order: listed apart, cancelled.
    assert!(ids(&cancel.details["cancelled"]).contains(&"btc-trigger-buy".to_owned()));
    assert_eq!(ids(&cancel.details["kept_stops"]), ["btc-sl"]);
    // 301 orders of one instrument in batches of 20: 15 batches and the last order alone, never
    // refused for the rate the step paced itself to.
    assert_eq!(paper.stats().batch_cancels, 15);
    assert_eq!(paper.stats().cancel_requests, 301);
    assert_eq!(paper.stats().rate_limited, 0);
}
