//! Built-in trading shutdown steps, each registered by kind through `inventory`:
//!
//! - `halt`: stop new orders at the source and confirm it by reading the gate back;
//! - `cancel`: cancel working orders by id, keeping protective stops, within a rate limit and the budget,
//!   and name every order that could not be cancelled;
//! - `verify`: check that every open position is covered by resting stops, and remedy it if told to;
//! - `close`: disarm dead-man's switches, log out and disconnect every venue connection.
//!
//! And for the start gate (the pipeline a node runs before it trades; `verify` serves there too):
//!
//! - `reconcile`: compare the venue with the last snapshot and handle every difference by its policy;
//! - `resume`: open the trading gate only when every step before it left nothing outstanding.
//!
//! A binary that builds pipelines from TOML must link this crate:
//! `extern crate shutdown_steps as _;`.

pub mod cancel;
pub mod close;
pub mod coverage;
pub mod fit;
mod gate;
pub mod halt;
pub mod reconcile;
pub mod resume;
mod venue;
pub mod verify;
mod words;

pub use crate::cancel::CancelSummary;
pub use crate::coverage::{Coverage, CoverageRules, coverage, judge_book, orphan_stops};
