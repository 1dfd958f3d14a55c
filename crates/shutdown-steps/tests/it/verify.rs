//! `verify` against the paper venue.

use shutdown_core::StepOutcome;
use shutdown_paper::PaperNode;

use crate::support::{order, position, run, scenario};

fn stop(id: &str, qty: &str, trigger: &str) -> String {
    order(
        id,
        "BTC-PERP",
        "sell",
        "stop_market",
        qty,
        &format!("trigger_price = {trigger}\nreduce_only = true\nconditional = true"),
    )
}

fn book() -> String {
    let mut s = position("covered", "ETH-PERP", "sell", "10");
    s += &order(
        "eth-stop",
        "ETH-PERP",
        "buy",
        "stop_market",
        "10",
        "trigger_price = 3100\nreduce_only = true",
    );
    s += &position("grown", "BTC-PERP", "buy", "2");
    s += &stop("btc-stop", "1", "60000");
    s
}

#[tokio::test(start_paused = true)]
async fn report_mode_names_the_unprotected_position_and_degrades() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run("[[steps]]\nkind = \"verify\"\n", &paper).await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded);
    assert_eq!(step.details["unprotected"], 1);
    assert_eq!(step.problems.len(), 1);
    assert!(
        step.problems[0].contains("grown (BTC-PERP 2, covered 1)"),
        "{:?}",
        step.problems
    );
    let positions = step.details["positions"].as_array().unwrap();
    let covered = positions.iter().find(|p| p["id"] == "covered").unwrap();
    assert_eq!(covered["protected"], true);
    assert_eq!(report.exit_code, 10);
}

#[tokio::test(start_paused = true)]
async fn fail_mode_fails_the_step() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run("[[steps]]\nkind = \"verify\"\non_unprotected = \"fail\"\non_error = \"abort\"\n[[steps]]\nkind = \"halt\"\n", &paper).await;
    assert_eq!(report.steps[0].outcome, StepOutcome::Failed);
    assert_eq!(report.steps[1].outcome, StepOutcome::NotRun);
    assert_eq!(report.exit_code, 11);
}

#[tokio::test(start_paused = true)]
async fn place_stop_remedies_and_the_re_check_passes() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run(
        "[[steps]]\nkind = \"verify\"\non_unprotected = \"place_stop\"\nstop_distance_pct = 2\n",
        &paper,
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    assert_eq!(step.details["unprotected"], 0);
    let placed = paper.get_order("shutdown-stop-grown").expect("stop placed");
    assert_eq!(placed.quantity.to_string(), "1");
    assert_eq!(
        placed.trigger_price.unwrap().normalize().to_string(),
        "63700"
    );
    assert!(placed.reduce_only);
    assert_eq!(report.exit_code, 0);
}

#[tokio::test(start_paused = true)]
async fn flatten_exits_the_position_and_the_re_check_passes() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run(
        "[[steps]]\nkind = \"verify\"\non_unprotected = \"flatten\"\n",
        &paper,
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    assert!(!paper.open_positions().iter().any(|p| p.id == "grown"));
    assert_eq!(step.details["closed_by_remedy"][0][0], "grown");
    // The stop of the closed position is now an orphan, and is reported.
    assert_eq!(step.details["orphan_stops"][0], "btc-stop");
}

#[tokio::test(start_paused = true)]
async fn fills_during_cancel_are_seen_because_verify_re_reads_positions() {
    // A resting buy that fills while being cancelled grows the long past its stop.
    let mut s = position("long", "BTC-PERP", "buy", "1");
    s += &stop("s1", "1", "60000");
    s += &order(
        "buy-more",
        "BTC-PERP",
        "buy",
        "limit",
        "1",
        "limit_price = 64000",
    );
    let paper = PaperNode::new(&scenario(&format!("{s}\n[venue]\nfill_race_rate = 1.0\n")));
    let report = run(
        "[[steps]]\nkind = \"cancel\"\n[[steps]]\nkind = \"verify\"\n",
        &paper,
    )
    .await;
    assert_eq!(report.steps[0].details["already_filled"][0], "buy-more");
    assert_eq!(report.steps[1].details["unprotected"], 1);
    assert!(report.steps[1].problems[0].contains("long (BTC-PERP 2, covered 1)"));
}

#[tokio::test(start_paused = true)]
async fn a_close_position_stop_without_a_quantity_protects_a_position_of_any_size() {
    for (size, quantity) in [("0.001", "quantity = 0\n"), ("250000", ""), ("3", "")] {
        // A Binance `closePosition=true` STOP_MARKET: no quantity of its own, 0 or absent.
        let text = format!(
            "{}[[orders]]\nclient_id = \"close-stop\"\ninstrument = \"BTC-PERP\"\nside = \"sell\"\norder_type = \"stop_market\"\n{quantity}status = \"new\"\ntrigger_price = 60000\nclose_position = true\nconditional = true\n",
            position("long", "BTC-PERP", "buy", size)
        );
        let paper = PaperNode::new(&scenario(&text));
        let report = run("[[steps]]\nkind = \"verify\"\n", &paper).await;
        let step = &report.steps[0];
        assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
        assert_eq!(step.details["unprotected"], 0, "{size}: {:?}", step.details);
        assert_eq!(step.details["positions"][0]["protected"], true);
        assert_eq!(report.exit_code, 0);
    }
}

#[test]
fn only_a_close_position_order_may_have_no_quantity() {
    let order = |extra: &str| {
        format!(
            "[[orders]]\nclient_id = \"s\"\ninstrument = \"BTC-PERP\"\nside = \"sell\"\norder_type = \"stop_market\"\nstatus = \"new\"\ntrigger_price = 60000\n{extra}"
        )
    };
    let refused = |extra: &str| {
        shutdown_paper::Scenario::from_toml(
            &format!("{}\n{}", crate::support::MARKET, order(extra)),
            "s.toml",
        )
        .unwrap_err()
        .to_string()
    };
    let err = refused("reduce_only = true\nquantity = 0\n");
    assert!(err.contains("order s: quantity must be positive, found 0 (only a close-position order may have none)"), "{err}");
    let err = refused("reduce_only = true\n");
    assert!(err.contains("quantity must be positive, found 0"), "{err}");
    let err = refused("close_position = true\nquantity = -1\n");
    assert!(
        err.contains("quantity of a close-position order must be 0"),
        "{err}"
    );
}
