"""Graceful, bounded, observable shutdown of NautilusTrader nodes.

When a node is told to stop, it halts new orders, cancels working orders while keeping protective
stops, verifies every open position is still protected, snapshots its state, closes its clients
and ends within a bounded time with a report, metrics and an exit code that say what happened::

    from nautilus_shutdown import GracefulShutdownHandler, ShutdownConfig

    handler = GracefulShutdownHandler(node, ShutdownConfig(timeout_secs=30.0))
    handler.setup_signal_handlers()
    report = await handler.shutdown(reason="signal")

The pipeline runs in Rust (the same runner, steps, report and exit codes as every node of the
project); only the node roles speak Python.
"""

from nautilus_shutdown._native import __version__
from nautilus_shutdown.config import ShutdownConfig
from nautilus_shutdown.config import ShutdownConfigError
from nautilus_shutdown.errors import RoleRateLimited
from nautilus_shutdown.errors import RoleRejected
from nautilus_shutdown.errors import RoleTransient
from nautilus_shutdown.errors import RoleUnsupported
from nautilus_shutdown.handler import BacktestInterrupted
from nautilus_shutdown.handler import GracefulShutdownHandler
from nautilus_shutdown.report import ShutdownReport
from nautilus_shutdown.report import StepResult

__all__ = [
    "BacktestInterrupted",
    "GracefulShutdownHandler",
    "RoleRateLimited",
    "RoleRejected",
    "RoleTransient",
    "RoleUnsupported",
    "ShutdownConfig",
    "ShutdownConfigError",
    "ShutdownReport",
    "StepResult",
    "__version__",
]
