//! The paper venue under each profile's rules: listings, batch and mass cancels, switches.

use std::time::Duration;

use shutdown_core::domain::OrderStatus;
use shutdown_core::errors::RoleError;
use shutdown_core::node::{CancelAck, Connections, MassCancelScope, OrderGateway};

use crate::{PaperNode, Scenario};

/// Two instruments, a long on A with its stop, a take-profit, and `orders` limits on A.
fn node(venue: &str, orders: usize) -> PaperNode {
    let mut s = format!("[venue]\n{venue}\n");
    s += "[[instruments]]\nsymbol = \"A\"\nmark_price = 100\n[[instruments]]\nsymbol = \"B\"\nmark_price = 100\n";
    s += "[[positions]]\nid = \"p\"\ninstrument = \"A\"\nside = \"buy\"\nquantity = 1\nentry_price = 100\n";
    s += "[[orders]]\nclient_id = \"stop\"\ninstrument = \"A\"\nside = \"sell\"\norder_type = \"stop_market\"\nquantity = 1\ntrigger_price = 90\nreduce_only = true\nstatus = \"new\"\n";
    s += "[[orders]]\nclient_id = \"tp\"\ninstrument = \"A\"\nside = \"sell\"\norder_type = \"take_profit\"\nquantity = 1\ntrigger_price = 110\nreduce_only = true\nstatus = \"new\"\n";
    s += "[[orders]]\nclient_id = \"b-1\"\ninstrument = \"B\"\nside = \"buy\"\norder_type = \"limit\"\nquantity = 1\nlimit_price = 90\nstatus = \"new\"\n";
    s += "[[connections]]\nid = \"c\"\nvenue = \"v\"\ndead_man_armed = true\n";
    s += &format!("[generate]\norders = {orders}\npositions = 0\n");
    PaperNode::new(&Scenario::from_toml(&s, "test").expect("scenario"))
}

fn ids(orders: &[shutdown_core::domain::Order]) -> Vec<&str> {
    orders.iter().map(|o| o.client_id.as_str()).collect()
}

fn scope(instrument: Option<&str>) -> MassCancelScope {
    MassCancelScope {
        keep_protective_stops: true,
        instrument: instrument.map(str::to_owned),
    }
}

#[tokio::test(start_paused = true)]
async fn binance_lists_conditional_orders_apart_and_its_mass_cancel_never_touches_them() {
    let node = node("profile = \"binance-usdm\"", 0);
    let listed = node.open_orders().await.unwrap();
    assert_eq!(ids(&listed), ["b-1"]);
    let apart = node.conditional_orders().await.unwrap();
    assert_eq!(ids(&apart), ["stop", "tp"]);
    let err = node.mass_cancel(&scope(None)).await.unwrap_err();
    assert!(err.to_string().contains("names one instrument"), "{err}");
    // A's ordinary orders: none; the algo take-profit stays.
    assert_eq!(node.mass_cancel(&scope(Some("A"))).await.unwrap().count, 0);
    assert_eq!(node.get_order("tp").unwrap().status, OrderStatus::New);
}

#[tokio::test(start_paused = true)]
async fn a_batch_takes_at_most_its_size_of_one_instrument() {
    // Generated orders alternate between A and B: the even ones are A's.
    let node = node("profile = \"binance-usdm\"", 22);
    let a: Vec<String> = (0..11).map(|i| format!("gen-o-{}", 2 * i)).collect();
    let err = node.cancel_batch(&a).await.unwrap_err();
    assert!(err.to_string().contains("at most 10 orders"), "{err}");
    let mixed = ["gen-o-0".to_owned(), "b-1".to_owned()];
    let err = node.cancel_batch(&mixed).await.unwrap_err();
    assert!(err.to_string().contains("one instrument"), "{err}");
    let answers = node.cancel_batch(&a[..10]).await.unwrap();
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|a| *a == Ok(CancelAck::Cancelled)));
    assert_eq!(node.stats().batch_cancels, 1);
    // Deribit has none.
    let deribit = node_of("deribit");
    assert!(matches!(
        deribit.cancel_batch(&a[..2]).await,
        Err(RoleError::Unsupported(_))
    ));
}

fn node_of(profile: &str) -> PaperNode {
    node(&format!("profile = \"{profile}\""), 0)
}

#[tokio::test(start_paused = true)]
async fn bybit_takes_at_most_500_a_call_and_answers_before_it_is_done() {
    let node = node("profile = \"bybit\"", 1200);
    let ack = node.mass_cancel(&scope(Some("A"))).await.unwrap();
    assert_eq!(ack.count, 500);
    let pending = (node.all_orders().into_iter())
        .filter(|o| o.status == OrderStatus::PendingCancel)
        .count();
    assert_eq!(pending, 500);
    // The stop is spared, and so is the conditional take-profit.
    assert_eq!(node.get_order("stop").unwrap().status, OrderStatus::New);
    tokio::time::advance(Duration::from_millis(60)).await;
    let listed = node.open_orders().await.unwrap();
    assert_eq!(listed.len(), 1200 - 500 + 1 + 2);
    assert_eq!(node.stats().cancel_requests, 0);
    // A single cancel is accepted, not done, too.
    assert_eq!(node.cancel("b-1").await, Ok(CancelAck::Pending));
    assert_eq!(node.cancel("b-1").await, Ok(CancelAck::Pending));
}

#[tokio::test(start_paused = true)]
async fn kraken_cancel_all_takes_the_stops_too() {
    let node = node_of("kraken");
    assert!(
        node.cancel_rules()
            .mass_cancel
            .is_some_and(|m| !m.spares_stops)
    );
    node.mass_cancel(&scope(None)).await.unwrap();
    assert_eq!(
        node.get_order("stop").unwrap().status,
        OrderStatus::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn deribit_logout_ends_the_session_without_firing_and_over_fix_it_fires() {
    let ws = node_of("deribit");
    ws.logout("c").await.unwrap();
    ws.disconnect("c").await.unwrap();
    assert_eq!(ws.get_order("stop").unwrap().status, OrderStatus::New);
    assert!(ws.truth_after_exit().switches_firing.is_empty());

    let fix = node("profile = \"deribit\"\nsession = \"fix\"", 0);
    let err = fix.disarm_dead_man("c").await.unwrap_err();
    assert!(err.to_string().contains("cannot be switched off"), "{err}");
    fix.logout("c").await.unwrap();
    assert_eq!(
        fix.get_order("stop").unwrap().status,
        OrderStatus::Cancelled
    );
    assert!(
        fix.events()[0].contains("logout of c fired"),
        "{:?}",
        fix.events()
    );
}

#[tokio::test(start_paused = true)]
async fn a_countdown_keeps_running_after_the_disconnect_and_fires_after_exit() {
    let node = node_of("bitmex");
    node.disconnect("c").await.unwrap();
    // Nothing fired yet: the countdown lapses after the process stops its heartbeats.
    assert_eq!(node.get_order("stop").unwrap().status, OrderStatus::New);
    let truth = node.truth_after_exit();
    assert_eq!(truth.switches_firing, ["c"]);
    assert!(truth.unprotected.contains("p"));
    // Disarmed first, nothing fires.
    let node = node_of("bitmex");
    node.disarm_dead_man("c").await.unwrap();
    node.disconnect("c").await.unwrap();
    assert!(node.truth_after_exit().switches_firing.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_book_is_safe_once_the_last_risky_order_goes_with_every_position_covered() {
    let node = node_of("generic");
    assert_eq!(node.safe_after(), None);
    tokio::time::advance(Duration::from_millis(10)).await;
    node.cancel("tp").await.unwrap();
    assert_eq!((node.safe_after(), node.cleared_after()), (None, None));
    tokio::time::advance(Duration::from_millis(30)).await;
    node.cancel("b-1").await.unwrap();
    // From the first call (the tp cancel) to the last risky order gone.
    assert_eq!(node.safe_after(), Some(0.03));
    assert_eq!(node.cleared_after(), Some(0.03));
    // A stop cancelled after: cleared, never safe again from that moment on in the truth.
    node.cancel("stop").await.unwrap();
    assert!(node.truth_after_exit().unprotected.contains("p"));
}
