//! The fleet kill switch over a real Redis: persisted halts, the command stream, acknowledgements.

use std::sync::Arc;
use std::time::Duration;

use shutdown_core::node::TradingGate;
use shutdown_core::{Reason, ShutdownHandle};
use shutdown_paper::PaperNode;
use shutdown_redis::RedisTarget;
use shutdown_redis::fleet::{self, Action, FleetOptions, FleetState, FleetSwitch, Scope};
use shutdown_testkit::redis_topology::Proxy;

use crate::support::{RedisServer, scenario, target};

const T: Duration = Duration::from_secs(2);

/// A node of `trader` with a paper venue's trading gate, open.
pub struct TestNode {
    pub switch: FleetSwitch,
    pub handle: ShutdownHandle,
    pub gate: Arc<dyn TradingGate>,
}

pub async fn node(target: &RedisTarget, trader: &str, id: &str) -> TestNode {
    let paper = PaperNode::new(&scenario(1, 0));
    let gate = paper.node().gate().unwrap();
    let handle = ShutdownHandle::new();
    let switch = FleetSwitch::start(
        target,
        FleetOptions::new(trader)
            .node_id(id)
            .heartbeat(Duration::from_millis(300)),
        handle.clone(),
        Some(gate.clone()),
    )
    .await
    .unwrap();
    TestNode {
        switch,
        handle,
        gate,
    }
}

/// `action` for `scope`, issued by `ops@desk` with `note`.
pub async fn issue(t: &RedisTarget, action: Action, scope: Scope, note: &str) -> fleet::Issued {
    fleet::issue(t, action, scope, "ops@desk", note, T)
        .await
        .unwrap()
}

/// The acknowledgements of `issued`, once every live node it covers gave one (10 s at most).
pub async fn acked(t: &RedisTarget, issued: &fleet::Issued) -> fleet::Acks {
    fleet::wait_for_acks(t, &issued.command, Duration::from_secs(10), T)
        .await
        .unwrap()
}

/// Wait (at most 10 s) until the node's view of the fleet satisfies `check`.
pub async fn until(node: &TestNode, check: impl Fn(&FleetState) -> bool) -> FleetState {
    let mut watch = node.switch.watch();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let state = watch.borrow_and_update().clone();
            if check(&state) {
                return state;
            }
            watch.changed().await.unwrap();
        }
    })
    .await
    .expect("the node's fleet state changes in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_reaches_the_covered_nodes_which_acknowledge_it() {
    let server = RedisServer::start();
    let t = target(&server.url);
    let a = node(&t, "trader-001", "a").await;
    let b = node(&t, "trader-002", "b").await;
    assert!(!a.gate.is_halted().await.unwrap());

    let issued = issue(
        &t,
        Action::Halt,
        Scope::Trader("trader-001".into()),
        "venue incident",
    )
    .await;
    let acks = acked(&t, &issued).await;
    assert!(acks.missing.is_empty(), "{acks:?}");
    assert_eq!(acks.acked["a"].outcome, "halted");
    assert!(!acks.acked.contains_key("b"), "b is not covered: {acks:?}");
    let state = until(&a, |s| !s.halts.is_empty()).await;
    assert!(state.why().unwrap().contains("venue incident"), "{state:?}");
    assert!(
        a.gate.is_halted().await.unwrap(),
        "the trading gate is halted"
    );
    assert!(
        !a.handle.is_shutdown_requested(),
        "a halt is not a shutdown"
    );
    assert!(b.switch.state().halts.is_empty());
    assert!(!b.gate.is_halted().await.unwrap());

    // Status: both nodes live; the halt by whom and why.
    let status = fleet::status(&t, T).await.unwrap();
    assert_eq!(status.halts.len(), 1);
    assert_eq!(status.halts[0].by, "ops@desk");
    assert_eq!(status.nodes.len(), 2);
    assert!(status.nodes.iter().all(|(_, live)| *live), "{status:?}");

    // Shutdown of everyone: both pipelines triggered with reason fleet.
    let issued = issue(&t, Action::Shutdown, Scope::All, "end of day").await;
    for n in [&a, &b] {
        let reason = tokio::time::timeout(Duration::from_secs(10), n.handle.requested())
            .await
            .unwrap();
        assert_eq!(reason, Reason::Fleet);
    }
    let acks = acked(&t, &issued).await;
    assert_eq!(acks.acked.len(), 2, "{acks:?}");
    assert!(
        acks.acked
            .values()
            .all(|a| a.outcome.ends_with("shutting down"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_the_halt_halts_at_once_and_stays_halted_until_every_halt_is_cleared()
{
    let server = RedisServer::start();
    let t = target(&server.url);
    let fleet_wide = issue(&t, Action::Halt, Scope::All, "fleet drill").await;
    issue(&t, Action::Halt, Scope::Trader("trader-001".into()), "risk").await;

    // Away when the halts were issued: halted before `start` returns, and it says so.
    let a = node(&t, "trader-001", "a").await;
    assert_eq!(a.switch.state().halts.len(), 2);
    assert!(a.gate.is_halted().await.unwrap());
    let hold = a.switch.hold();
    assert!(
        hold.why().unwrap().contains("fleet drill"),
        "{:?}",
        hold.why()
    );
    // It acknowledged the newest halt it found.
    let acks = fleet::acks(&t, &fleet::status(&t, T).await.unwrap().halts[1], T)
        .await
        .unwrap();
    assert!(acks.acked.contains_key("a"), "{acks:?}");

    // Resuming the fleet leaves the trader's own halt: still halted, and the ack says so.
    let resume = issue(&t, Action::Resume, Scope::All, "").await;
    let acks = acked(&t, &resume).await;
    assert_eq!(acks.acked["a"].outcome, "still halted: trader trader-001");
    assert!(hold.why().unwrap().contains("risk"), "{:?}", hold.why());
    assert!(fleet_wide.command.version < resume.command.version);

    // Resuming the trader clears it: the hold lets the start gate open; the gate itself stays
    // as it is until the node opens it.
    issue(&t, Action::Resume, Scope::Trader("trader-001".into()), "").await;
    until(&a, |s| s.halts.is_empty()).await;
    assert_eq!(hold.why(), None);
    assert!(
        a.gate.is_halted().await.unwrap(),
        "resume never opens the gate by itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_when_the_halt_is_issued_halts_as_soon_as_it_is_back() {
    let server = RedisServer::start_tcp(&[]);
    let proxy = Proxy::start(server.port.unwrap());
    let direct = target(&server.url);
    let through_proxy = target(&format!("redis://127.0.0.1:{}/", proxy.port));
    let a = node(&through_proxy, "trader-001", "a").await;

    proxy.cut();
    let issued = issue(&direct, Action::Shutdown, Scope::All, "incident").await;
    let acks = fleet::acks(&direct, &issued.command, T).await.unwrap();
    assert!(
        acks.acked.is_empty(),
        "the node cannot have seen it: {acks:?}"
    );
    assert!(!a.handle.is_shutdown_requested());

    proxy.heal();
    let reason = tokio::time::timeout(Duration::from_secs(15), a.handle.requested())
        .await
        .expect("the node halts once it is back");
    assert_eq!(reason, Reason::Fleet);
    assert!(a.gate.is_halted().await.unwrap());
    let acks = acked(&direct, &issued).await;
    assert!(
        acks.missing.is_empty() && acks.acked.contains_key("a"),
        "{acks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_acknowledges_is_named_and_a_dead_redis_is_an_error() {
    let mut server = RedisServer::start();
    let t = target(&server.url);
    let a = node(&t, "trader-001", "a").await;
    // The node is gone without a word (its task stops); its heartbeat is still fresh.
    drop(a);
    let issued = issue(&t, Action::Halt, Scope::All, "").await;
    let acks = fleet::wait_for_acks(&t, &issued.command, Duration::from_millis(200), T)
        .await
        .unwrap();
    assert_eq!(acks.missing, vec!["a".to_owned()]);
    let status = fleet::status(&t, T).await.unwrap();
    assert_eq!(status.nodes[0].0.node, "a");
    assert!(status.nodes[0].1, "live until three heartbeats pass");

    server.kill();
    let err = fleet::issue(&t, Action::Halt, Scope::All, "ops", "", T)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let paper = PaperNode::new(&scenario(1, 0));
    let err = FleetSwitch::start(
        &t,
        FleetOptions::new("trader-001"),
        ShutdownHandle::new(),
        paper.node().gate().ok(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_nodes_each_with_its_own_connection_all_acknowledge_a_halt() {
    let server = RedisServer::start();
    let t = target(&server.url);
    let mut nodes = Vec::new();
    for i in 0..200 {
        let trader = format!("trader-{i:03}");
        nodes.push(node(&t, &trader, &format!("n{i:03}")).await);
    }
    let issued = issue(&t, Action::Halt, Scope::All, "scale").await;
    let acks = fleet::wait_for_acks(&t, &issued.command, Duration::from_secs(20), T)
        .await
        .unwrap();
    assert!(acks.missing.is_empty(), "{:?}", acks.missing);
    assert_eq!(acks.acked.len(), 200);
    assert!(acks.acked.values().all(|a| a.outcome == "halted"));
    for n in &nodes {
        assert!(n.gate.is_halted().await.unwrap());
    }
    let status = fleet::status(&t, T).await.unwrap();
    assert_eq!(
        status
            .nodes
            .iter()
            .filter(|(n, live)| *live && n.halted)
            .count(),
        200
    );
}

/// A trading gate whose venue never answers.
struct Unanswered;

#[async_trait::async_trait]
impl TradingGate for Unanswered {
    async fn halt(&self) -> shutdown_core::node::RoleResult<()> {
        std::future::pending().await
    }
    async fn resume(&self) -> shutdown_core::node::RoleResult<()> {
        std::future::pending().await
    }
    async fn is_halted(&self) -> shutdown_core::node::RoleResult<bool> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_never_answers_is_acknowledged_as_a_failed_halt_and_the_node_keeps_following() {
    let server = RedisServer::start();
    let t = target(&server.url);
    let switch = FleetSwitch::start(
        &t,
        FleetOptions::new("trader-001")
            .node_id("a")
            .heartbeat(Duration::from_millis(200))
            .timeout(Duration::from_millis(300)),
        ShutdownHandle::new(),
        Some(Arc::new(Unanswered)),
    )
    .await
    .unwrap();
    let halt = issue(&t, Action::Halt, Scope::All, "").await;
    let acks = acked(&t, &halt).await;
    assert_eq!(
        acks.acked["a"].outcome,
        "halt failed: the trading gate did not answer within 0.3s"
    );
    // Still following: the next command is acknowledged too.
    let resume = issue(&t, Action::Resume, Scope::All, "").await;
    let acks = acked(&t, &resume).await;
    assert_eq!(acks.acked["a"].outcome, "halt cleared");
    assert!(switch.state().halts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_lost_with_redis_data_stays_until_an_operator_resumes() {
    let mut server = RedisServer::start_tcp(&[]);
    let t = target(&server.url);
    let a = node(&t, "trader-001", "a").await;
    issue(&t, Action::Halt, Scope::All, "incident").await;
    until(&a, |s| !s.halts.is_empty()).await;
    // Redis comes back empty (no persistence): the halt is gone from it, not from the node.
    server.restart();
    let status = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(s) = fleet::status(&t, T).await
                && s.nodes.iter().any(|(n, _)| n.node == "a")
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the node reports itself to the new Redis");
    assert!(status.halts.is_empty(), "Redis lost the halt");
    let record = &status.nodes.iter().find(|(n, _)| n.node == "a").unwrap().0;
    assert!(record.halted, "the node still holds it: {record:?}");
    assert!(a.switch.hold().why().unwrap().contains("incident"));
    // Only a resume clears it.
    let resume = issue(&t, Action::Resume, Scope::All, "").await;
    let acks = acked(&t, &resume).await;
    assert_eq!(acks.acked["a"].outcome, "halt cleared");
    assert_eq!(a.switch.hold().why(), None);
}

/// A trading gate that says it halted, and reads back open.
struct StillOpen;

#[async_trait::async_trait]
impl TradingGate for StillOpen {
    async fn halt(&self) -> shutdown_core::node::RoleResult<()> {
        Ok(())
    }
    async fn resume(&self) -> shutdown_core::node::RoleResult<()> {
        Ok(())
    }
    async fn is_halted(&self) -> shutdown_core::node::RoleResult<bool> {
        Ok(false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_the_gate_does_not_confirm_is_acknowledged_as_failed_not_as_halted() {
    let server = RedisServer::start();
    let t = target(&server.url);
    let _switch = FleetSwitch::start(
        &t,
        FleetOptions::new("trader-001").node_id("a"),
        ShutdownHandle::new(),
        Some(Arc::new(StillOpen)),
    )
    .await
    .unwrap();
    let halt = issue(&t, Action::Halt, Scope::All, "").await;
    assert_eq!(
        acked(&t, &halt).await.acked["a"].outcome,
        "halt failed: the trading gate still reports open"
    );
}
