"""`GracefulShutdownHandler`: wraps a Nautilus node so that a stop runs the shutdown pipeline.

The pipeline, its runner, budgets, escalation, report, metrics and exit codes are the Rust ones;
this class hands them the node (through :class:`nautilus_shutdown.nautilus.NautilusNode`) and the
signals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from nautilus_shutdown import _native
from nautilus_shutdown.config import ShutdownConfig
from nautilus_shutdown.nautilus import NautilusNode
from nautilus_shutdown.nautilus import _is_backtest
from nautilus_shutdown.report import ShutdownReport

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class BacktestInterrupted(BaseException):
    """Raised out of ``engine.run()`` by the first signal on a NautilusTrader older than 1.231,
    whose backtest loop does not read its stop flag at each data point; catch it around the run.
    (Newer ones stop the run at the next data point, and nothing is raised.)"""


def _stop_flag_read_per_data_point() -> bool:
    import nautilus_trader

    try:
        major, minor = (int(p) for p in nautilus_trader.__version__.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (1, 231)


class GracefulShutdownHandler:
    """The shutdown of one node: a ``TradingNode`` or a ``BacktestEngine``.

    >>> handler = GracefulShutdownHandler(node, ShutdownConfig(timeout_secs=30.0))
    >>> handler.setup_signal_handlers()          # SIGTERM/SIGINT run the pipeline
    >>> report = await handler.shutdown()        # or run it from code
    """

    def __init__(
        self, node: Any, config: ShutdownConfig | None = None, redis_url: str | None = None
    ) -> None:
        """``redis_url``: where the report is kept and the run marker set (see :meth:`restore`);
        by default the environment variable ``REDIS_URL``, as the ``flush`` step reads it."""
        self.config = config if config is not None else ShutdownConfig()
        self.node = node
        self._adapter = NautilusNode(node)
        text = self.config.to_toml(trader_id=self._adapter.trader_id)
        source = "redis_url" if redis_url is not None else "REDIS_URL"
        if redis_url is None:
            redis_url = os.environ.get("REDIS_URL") or None
        self._native = _native.Handler(
            self._adapter,
            text,
            self.config.source,
            list(NautilusNode.roles),
            redis_url=redis_url,
            redis_source=source,
        )
        self._backtest = _is_backtest(node)
        self._signal: str | None = None
        self._task: asyncio.Task[Any] | None = None

    @property
    def timeout_secs(self) -> float:
        """The global budget of the shutdown, in seconds."""
        return self._native.timeout_secs

    def is_shutdown_requested(self) -> bool:
        """Whether a signal or a call has asked for the shutdown."""
        return self._native.is_shutdown_requested()

    async def restore(self) -> dict[str, Any]:
        """At start, before trading: how the previous shutdown ended (``previous_shutdown``:
        ``clean``, ``unclean``, ``none`` or ``unknown``, with ``why`` and a one-line ``summary``)
        and the last snapshot, from Redis and ``shutdown-fallback/``; then this run's marker is set,
        and cleared only by a final report: a run killed before that is seen as not clean by the
        next start and by ``shutdownctl restore``."""
        return json.loads(await self._native.restore())

    async def start_gate(self, config: ShutdownConfig) -> ShutdownReport:
        """At start, after :meth:`restore` and before trading: the start gate of ``config`` (a
        pipeline of ``reconcile``, ``verify``, ``resume``, ...) compares the venue, as the node sees
        it, with what the last run knew, handles each difference by its policy and opens the
        trading gate only when nothing is left (exit code 0); otherwise the gate stays halted and
        the report says why. Keep the node's trading state HALTED until then."""
        await self._adapter.prepare()
        text = config.to_toml(trader_id=self._adapter.trader_id)
        return ShutdownReport.from_json(await self._native.start_gate(text, config.source))

    async def shutdown(self, reason: str = "signal") -> ShutdownReport:
        """Run the pipeline (once: a second call returns the same report) and return its report.

        ``reason``: ``"signal"`` (the signal received, ``SIGTERM`` when none was), ``"api"``,
        ``"fleet"``, or a signal name such as ``"SIGINT"``.
        """
        if reason == "signal":
            reason = self._signal or "SIGTERM"
        await self._adapter.prepare()
        text = await self._native.run(reason)
        return ShutdownReport.from_json(text)

    # -- signals --------------------------------------------------------------------------------

    def setup_signal_handlers(self) -> None:
        """SIGTERM and SIGINT run the pipeline: the first starts it, the second hurries it
        (non-critical steps skipped), the third forces it (report written, exit code 12).

        A ``TradingNode``: the handlers go on the node's event loop, replacing Nautilus's own; after
        the pipeline the node is stopped and disposed, and the process exits with the report's
        exit code, by the global deadline at the latest. A ``BacktestEngine``: a signal stops
        ``engine.run()`` at the next data point, without a traceback; then ``await
        handler.shutdown()`` runs the pipeline on the engine's book.
        """
        if self._backtest:
            for sig in _SIGNALS:
                signal.signal(sig, self._on_backtest_signal)
            return
        loop = self.node.get_event_loop()
        if loop is None:
            raise RuntimeError("the node has no event loop: build the node first")
        self._native.set_exit_on_force(True)
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _escalate(self, sig: int) -> str:
        name = signal.Signals(sig).name
        if self._signal is None:
            self._signal = name
        return self._native.escalate(name)

    def _on_backtest_signal(self, sig: int, frame: Any) -> None:
        from nautilus_trader.common.component import set_backtest_force_stop

        level = self._escalate(sig)
        print(f"nautilus_shutdown: {signal.Signals(sig).name}: {level}", file=sys.stderr, flush=True)
        if level == "graceful":
            # The engine stops at its next data point; the caller then runs the pipeline.
            set_backtest_force_stop(True)
            if not _stop_flag_read_per_data_point():
                raise BacktestInterrupted(signal.Signals(sig).name)

    def _on_signal(self, sig: int) -> None:
        level = self._escalate(sig)
        print(f"nautilus_shutdown: {signal.Signals(sig).name}: {level}", file=sys.stderr, flush=True)
        if level == "graceful" and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._shutdown_and_exit())

    async def _shutdown_and_exit(self) -> None:
        """The pipeline, then the node stopped and disposed within what is left of the budget,
        then the exit with the report's code."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        report = await self.shutdown()
        left = self.timeout_secs - (loop.time() - started)
        try:
            await asyncio.wait_for(self.node.stop_async(), timeout=max(left, 0.1))
        except Exception as e:  # noqa: BLE001 - the exit must happen whatever the stop does
            print(f"nautilus_shutdown: node stop: {type(e).__name__}: {e}", file=sys.stderr)
        try:
            self.node.dispose()
        except Exception as e:  # noqa: BLE001
            print(f"nautilus_shutdown: node dispose: {type(e).__name__}: {e}", file=sys.stderr)
        _flush_logs()
        # Out of the loop's run with the report's code, as `sys.exit` would: the interpreter exits
        # normally (Nautilus's log writer drains). Should anything hold the exit, the runner's
        # force-exit thread ends the process with the same code at the global deadline.
        loop.call_soon(_exit, report.exit_code)


def _exit(code: int) -> None:
    raise SystemExit(code)


def _flush_logs() -> None:
    """Nautilus logs from a thread of its own: what it holds must be out before the exit."""
    try:
        from nautilus_trader.common.component import flush_logger

        flush_logger()
    except Exception:  # noqa: BLE001 - an older Nautilus without it: nothing to flush
        pass
    try:
        from nautilus_trader.core import nautilus_pyo3

        nautilus_pyo3.logger_flush()
    except Exception:  # noqa: BLE001
        pass
    sys.stdout.flush()
    sys.stderr.flush()
