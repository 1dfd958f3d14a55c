"""A long backtest that a signal stops cleanly: ``python examples/nautilus/backtest.py``.

The strategy opens a long of 1 BTC and rests an entry limit, a reduce-only take-profit and a
reduce-only stop (``book.py``), then the engine works through the quotes. SIGINT (Ctrl+C) or SIGTERM
stops ``engine.run()`` at its next data point, without a traceback; the shutdown pipeline then runs
on the engine's book (halt, cancel keeping the stop, verify, flush to ``shutdown-fallback/``, close),
the book is printed as Nautilus's cache holds it, and the process exits with the report's code. A
second signal hurries the pipeline, a third forces it. Without a signal, the run ends and the same
pipeline runs.

Options: ``--quotes N`` (default 2,000,000), ``--report PATH`` (default ``shutdown-report.json``),
``--config PATH`` (a pipeline in TOML instead of the default switches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from book import BookStrategy
from book import engine
from book import quotes
from nautilus_trader.model.enums import order_status_to_str

from nautilus_shutdown import BacktestInterrupted
from nautilus_shutdown import GracefulShutdownHandler
from nautilus_shutdown import ShutdownConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=2_000_000)
    parser.add_argument("--report", default="shutdown-report.json")
    parser.add_argument("--config")
    args = parser.parse_args()

    e = engine()
    strategy = BookStrategy(ready_after=100)
    e.add_strategy(strategy)
    if args.config:
        config = ShutdownConfig.from_toml(args.config)
    else:
        config = ShutdownConfig(timeout_secs=10.0, report_path=args.report)
    handler = GracefulShutdownHandler(e, config)
    handler.setup_signal_handlers()
    e.add_data(quotes(args.quotes))
    try:
        e.run()
    except BacktestInterrupted:
        pass  # a signal on NautilusTrader < 1.231 (newer ones just stop the run)

    asked = handler.is_shutdown_requested()
    report = asyncio.run(handler.shutdown(reason="signal" if asked else "api"))
    book = {name: order_status_to_str(e.cache.order(cid).status) for name, cid in strategy.ids.items()}
    positions = [(p.id.value, str(p.quantity)) for p in e.cache.positions_open()]
    print(f"run {e.iteration} of {args.quotes} quotes", flush=True)
    print("book " + json.dumps(book), flush=True)
    print("positions " + json.dumps(positions), flush=True)
    print(f"shutdown {report.outcome} (exit {report.exit_code}), reason {report.reason}", flush=True)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
