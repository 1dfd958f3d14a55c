//! A deterministic simulated venue and in-memory trading node for tests, dry-runs, examples and
//! benchmarks.
//!
//! A [`Scenario`] (TOML) describes instruments, positions, orders, connections and how the venue
//! behaves: latency per call, a rate limit answered like HTTP 429, transient failures, fills that race
//! cancels, unknown-order replies, conditional ("algo") orders, and a dead-man's switch that cancels
//! every resting order, stops included, when an armed connection drops. Every random choice comes from
//! the scenario's seed, so the same seed gives the same run.
//!
//! ```
//! use shutdown_paper::{PaperNode, Scenario};
//!
//! let scenario = Scenario::from_toml(r#"
//! [[instruments]]
//! symbol = "BTC-PERP"
//! mark_price = 65000
//!
//! [[positions]]
//! id = "p1"
//! instrument = "BTC-PERP"
//! side = "buy"
//! quantity = 0.5
//! entry_price = 64000
//! "#, "example").unwrap();
//! let paper = PaperNode::new(&scenario);
//! assert_eq!(paper.open_positions().len(), 1);
//! let node = paper.node(); // every role
//! assert_eq!(node.roles().len(), 5);
//! ```

pub mod audit;
pub mod profile;
pub mod scenario;
pub mod venue;

#[cfg(test)]
mod fuzz;

pub use crate::audit::{Audit, Truth};
pub use crate::profile::{Profile, Rules, Session};
pub use crate::scenario::{Downtime, Scenario, ScenarioError, VenueBehaviour};
pub use crate::venue::downtime::Change;
pub use crate::venue::{PaperNode, VenueStats};
