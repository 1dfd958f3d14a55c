//! `close` against the paper venue: dead-man's switches and protective stops.

use shutdown_core::StepOutcome;
use shutdown_core::domain::OrderStatus;
use shutdown_paper::PaperNode;

use crate::support::{order, position, run, scenario};

fn book() -> String {
    let mut s = position("p", "BTC-PERP", "buy", "1");
    s += &order(
        "stop",
        "BTC-PERP",
        "sell",
        "stop_market",
        "1",
        "trigger_price = 60000\nreduce_only = true",
    );
    s
}

#[tokio::test(start_paused = true)]
async fn disarming_first_keeps_the_stops_after_disconnect() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run("[[steps]]\nkind = \"close\"\n", &paper).await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Succeeded, "{step:?}");
    let c = &step.details["connections"][0];
    assert_eq!(
        (
            c["disarmed"].as_bool(),
            c["logged_out"].as_bool(),
            c["disconnected"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(paper.get_order("stop").unwrap().status, OrderStatus::New);
    assert!(paper.events().is_empty());
    assert_eq!(report.exit_code, 0);
}

#[tokio::test(start_paused = true)]
async fn without_disarming_the_venue_wipes_the_stops() {
    let paper = PaperNode::new(&scenario(&book()));
    let report = run(
        "[[steps]]\nkind = \"close\"\ndisarm_dead_man = false\n",
        &paper,
    )
    .await;
    assert_eq!(
        paper.get_order("stop").unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        paper.events(),
        ["dead-man's switch of ws-1 fired: 1 orders cancelled"]
    );
    assert!(report.steps[0].problems[0].contains("left armed"));
    assert_eq!(report.exit_code, 10);
}

#[tokio::test(start_paused = true)]
async fn a_hung_connection_times_out_alone() {
    let s = format!(
        "{}\n[[connections]]\nid = \"fix-1\"\nvenue = \"paper\"\nhangs = true\n",
        book()
    );
    let paper = PaperNode::new(&scenario(&s));
    let start = tokio::time::Instant::now();
    let report = run(
        "[[steps]]\nkind = \"close\"\nconnection_timeout_secs = 1.5\n",
        &paper,
    )
    .await;
    assert_eq!(start.elapsed(), std::time::Duration::from_millis(1500));
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Failed);
    let error = step.error.as_deref().unwrap();
    assert_eq!(
        error,
        "fix-1: logout failed: transient failure: no answer before the deadline; \
         disconnect failed: transient failure: no answer before the deadline"
    );
    let states = paper.connection_states();
    assert!(!states.iter().find(|c| c.id == "ws-1").unwrap().connected);
}
