//! What one run of a pipeline needs, as [`crate::Shutdown`]'s builder leaves it: the runner's
//! input. The runner takes it whole and never names the builder.

use std::sync::Arc;

use crate::after_deadline::AfterDeadline;
use crate::exit_hooks::ExitHooks;
use crate::pipeline::Pipeline;
use crate::report::deliver::Sinks;
use crate::step::Extensions;
use crate::systemd::Notifier;
use crate::trading::roles::Node;
use crate::trigger::ShutdownHandle;

/// A pipeline, the node it runs for, and how: where the report goes, what happens on a force.
pub(crate) struct Job {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) node: Node,
    pub(crate) handle: ShutdownHandle,
    pub(crate) sinks: Sinks,
    pub(crate) exit_process: bool,
    /// Exit with 12 on a force, from the force-exit thread (also when `exit_process` is not set).
    pub(crate) exit_on_force: bool,
    pub(crate) dry_run: bool,
    pub(crate) in_place: bool,
    pub(crate) extensions: Extensions,
    pub(crate) notifier: Option<Notifier>,
    pub(crate) exit_hooks: ExitHooks,
    /// What may be spent after the global deadline, on every path.
    pub(crate) after: AfterDeadline,
}
