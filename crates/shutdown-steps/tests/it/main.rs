//! Integration tests of the built-in steps against the paper venue, in paused tokio time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

// Link the crate whose steps register themselves.
extern crate shutdown_steps as _;

mod audit;
mod cancel;
mod close;
mod coverage;
mod in_code;
mod profiles;
mod registry;
mod start_gate;
mod support;
mod verify;
