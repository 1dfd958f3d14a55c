//! Integration tests of the built-in steps against the paper venue, in paused tokio time.

// Link the crate whose steps register themselves.
extern crate shutdown_steps as _;

mod cancel;
mod close;
mod coverage;
mod registry;
mod support;
mod verify;
