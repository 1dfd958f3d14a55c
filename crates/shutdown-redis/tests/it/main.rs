//! Tests against a real `redis-server` that each test starts on its own socket and data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

// Link the crates whose steps register themselves.
extern crate shutdown_redis as _;
extern crate shutdown_steps as _;

mod fleet;
mod flush;
mod restore;
mod support;
mod topology;
