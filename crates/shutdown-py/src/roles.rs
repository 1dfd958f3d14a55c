//! The node roles of a Python node: each call goes over the [`Bridge`] to the adapter's coroutine
//! of the same name, arguments and answers as JSON.

use std::sync::Arc;

use async_trait::async_trait;
use rust_decimal::Decimal;
use shutdown_core::Node;
use shutdown_core::domain::{Account, ConnectionInfo, Order, Position, StrategyState};
use shutdown_core::errors::RoleError;
use shutdown_core::node::{
    CancelAck, Connections, ExitRequest, OrderGateway, PositionBook, RoleResult, StateSource,
    StopRequest, TradingGate,
};

use crate::bridge::Bridge;

/// The roles the adapter says it has, by name.
pub(crate) const ROLES: [&str; 5] = [
    "trading_gate",
    "order_gateway",
    "position_book",
    "state_source",
    "connections",
];

/// A node whose roles are those of `roles` (names of [`ROLES`]); an unknown name is an error.
pub(crate) fn node(bridge: &Arc<Bridge>, roles: &[String]) -> Result<Node, String> {
    let role = Arc::new(PyRoles(bridge.clone()));
    let mut node = Node::new();
    for name in roles {
        node = match name.as_str() {
            "trading_gate" => node.with_gate(role.clone()),
            "order_gateway" => node.with_orders(role.clone()),
            "position_book" => node.with_positions(role.clone()),
            "state_source" => node.with_state(role.clone()),
            "connections" => node.with_connections(role.clone()),
            other => {
                return Err(format!(
                    "unknown role {other:?} (known: {})",
                    ROLES.join(", ")
                ));
            }
        };
    }
    Ok(node)
}

/// Every role, over one bridge.
struct PyRoles(Arc<Bridge>);

fn json(value: &impl serde::Serialize) -> RoleResult<String> {
    serde_json::to_string(value).map_err(|e| RoleError::Rejected(e.to_string()))
}

#[async_trait]
impl TradingGate for PyRoles {
    async fn halt(&self) -> RoleResult<()> {
        self.0.call("halt", vec![]).await.map(drop)
    }

    async fn resume(&self) -> RoleResult<()> {
        self.0.call("resume", vec![]).await.map(drop)
    }

    async fn is_halted(&self) -> RoleResult<bool> {
        self.0.ask("is_halted", vec![]).await
    }
}

#[async_trait]
impl OrderGateway for PyRoles {
    async fn open_orders(&self) -> RoleResult<Vec<Order>> {
        self.0.ask("open_orders", vec![]).await
    }

    async fn order(&self, client_id: &str) -> RoleResult<Option<Order>> {
        self.0.ask("order", vec![client_id.to_owned()]).await
    }

    async fn cancel(&self, client_id: &str) -> RoleResult<CancelAck> {
        self.0.ask("cancel", vec![client_id.to_owned()]).await
    }

    async fn place_stop(&self, request: &StopRequest) -> RoleResult<Order> {
        self.0.ask("place_stop", vec![json(request)?]).await
    }

    async fn place_exit(&self, request: &ExitRequest) -> RoleResult<Order> {
        self.0.ask("place_exit", vec![json(request)?]).await
    }
}

#[async_trait]
impl PositionBook for PyRoles {
    async fn positions(&self) -> RoleResult<Vec<Position>> {
        self.0.ask("positions", vec![]).await
    }

    async fn mark_price(&self, instrument: &str) -> RoleResult<Decimal> {
        self.0.ask("mark_price", vec![instrument.to_owned()]).await
    }
}

#[async_trait]
impl StateSource for PyRoles {
    async fn orders(&self) -> RoleResult<Vec<Order>> {
        self.0.ask("state_orders", vec![]).await
    }

    async fn positions(&self) -> RoleResult<Vec<Position>> {
        self.0.ask("positions", vec![]).await
    }

    async fn accounts(&self) -> RoleResult<Vec<Account>> {
        self.0.ask("accounts", vec![]).await
    }

    async fn strategies(&self) -> RoleResult<Arc<Vec<StrategyState>>> {
        self.0.ask("strategies", vec![]).await.map(Arc::new)
    }
}

#[async_trait]
impl Connections for PyRoles {
    async fn connections(&self) -> RoleResult<Vec<ConnectionInfo>> {
        self.0.ask("connections", vec![]).await
    }

    async fn disarm_dead_man(&self, id: &str) -> RoleResult<()> {
        self.0
            .call("disarm_dead_man", vec![id.to_owned()])
            .await
            .map(drop)
    }

    async fn logout(&self, id: &str) -> RoleResult<()> {
        self.0.call("logout", vec![id.to_owned()]).await.map(drop)
    }

    async fn disconnect(&self, id: &str) -> RoleResult<()> {
        self.0
            .call("disconnect", vec![id.to_owned()])
            .await
            .map(drop)
    }
}
