//! The trading vocabulary the steps speak: the venue's orders and positions ([`domain`]), the roles a
//! node plays for the steps (`roles`), what steps count and what holds trading from outside. The
//! runner does not read any of it: it hands the [`Node`] to each step in its context and carries the
//! counts into the report.

mod counter;
pub mod domain;
mod hold;
pub(crate) mod roles;

pub use counter::Counter;
pub use hold::TradingHold;
pub use roles::Node;
