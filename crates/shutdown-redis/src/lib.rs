//! Redis support for shutdown pipelines.
//!
//! - the `flush` step: orders, positions, accounts, strategy state and the shutdown receipt, staged in
//!   short commands and switched in one MULTI/EXEC under one hash tag (`{trader-001}:...`), read back,
//!   retried, and written to a local fallback file when Redis cannot take it;
//! - [`restore()`]: the last snapshot at the next start, and whether the previous shutdown was clean;
//! - [`RedisReportSink`]: the final report in `{prefix}:shutdown:last` and a capped history;
//! - [`fleet`]: the fleet kill switch: a persisted halt per scope and a command stream that every
//!   node reads after any absence, acknowledged per node.
//!
//! A binary that builds pipelines from TOML must link this crate: `extern crate shutdown_redis as _;`.

pub mod fallback;
pub mod fleet;
pub mod flush;
pub mod keys;
pub mod lease;
pub mod marker;
pub mod restore;
pub mod sink;
pub mod snapshot;
pub mod store;
pub mod target;

pub use crate::fleet::{FleetOptions, FleetState, FleetSwitch};
pub use crate::keys::Keys;
pub use crate::lease::{Lease, LeaseError, LeaseOptions};
pub use crate::marker::RunMarker;
pub use crate::restore::{
    PreviousShutdown, RestoreOptions, Restored, restore, restore_and_mark_running,
};
pub use crate::sink::RedisReportSink;
pub use crate::snapshot::Snapshot;
pub use crate::target::{BlockingConnection, Connection, RedisError, RedisMode, RedisTarget};
