"""A live NautilusTrader node that shuts down through the pipeline: ``python examples/nautilus/live_node.py``.

A ``TradingNode`` with the Sandbox execution client (a simulated exchange inside the process, no
network) and a small quote client of this file's own (synthetic quotes, no network). Each of
``--books`` strategies opens a long of 1 BTC and rests ``--orders`` entry limits, a reduce-only
take-profit and a reduce-only stop. The node prints ``ready`` once every book rests. SIGTERM or
SIGINT runs the shutdown pipeline (a second hurries it, a third forces it); the node is then
stopped and disposed and the process exits with the report's code. As the strategies stop (after
the pipeline) the node prints what its cache holds, since the Sandbox venue dies with the process:
``book {...}`` (each order's status), ``positions [...]``, ``trading_state ...``; and once the last
strategy stopped, ``venue {...}``: what the venue's matching engines hold (``venue_state``).

Options: ``--config PATH`` (the pipeline, TOML; default: the handler's defaults with ``--report``),
``--redis HOST:PORT`` (Nautilus's own cache database in Redis: ``CacheConfig(database=...)``; the
pipeline's snapshot, report and run marker go to the Redis that ``REDIS_URL`` names),
``--books N``, ``--orders N``, ``--hang-disconnect`` (the quote client's disconnect never
returns), ``--start-gate PATH`` (a restart: trading halted, the Sandbox venue given back the cache's
working orders, then the start gate of PATH; ``gate: open`` or ``gate: halted: ...``), ``--stop nautilus|manage_stop|pipeline`` (who handles the stop: Nautilus's own handler,
Nautilus with ``manage_stop=True`` strategies, or the pipeline; default ``pipeline``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from decimal import Decimal

from book import INSTRUMENT
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import CacheConfig
from nautilus_trader.config import DatabaseConfig
from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LiveRiskEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.live.factories import LiveDataClientFactory
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.enums import order_status_to_str
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.enums import trading_state_to_str
from nautilus_trader.model.identifiers import ClientId
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy

from nautilus_shutdown import GracefulShutdownHandler
from nautilus_shutdown import ShutdownConfig

BID = Price.from_str("100000.0")
ASK = Price.from_str("100000.1")


class QuoteClientConfig(LiveDataClientConfig, frozen=True):
    """Synthetic quotes: every ``interval_ms``, the same bid and ask."""

    interval_ms: int = 20
    hang_on_disconnect: bool = False


class QuoteClient(LiveMarketDataClient):
    """Quotes of ``INSTRUMENT`` made up in the process: a venue's data feed without a network."""

    def __init__(self, loop, msgbus, cache, clock, config: QuoteClientConfig) -> None:
        super().__init__(
            loop=loop,
            client_id=ClientId("QUOTES"),
            venue=INSTRUMENT.id.venue,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=InstrumentProvider(),
            config=config,
        )
        self._interval = config.interval_ms / 1000
        self._hang = config.hang_on_disconnect
        self._stream: asyncio.Task | None = None

    async def _connect(self) -> None:
        self._handle_data(INSTRUMENT)

    async def _disconnect(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
        if self._hang:
            # A feed whose disconnect never returns: the pipeline's close step must not wait forever.
            await asyncio.Event().wait()

    async def _subscribe_quote_ticks(self, command) -> None:
        if self._stream is None:
            self._stream = self._loop.create_task(self._quotes())

    async def _unsubscribe_quote_ticks(self, command) -> None:
        return None

    async def _quotes(self) -> None:
        size = Quantity.from_str("100.000")
        while True:
            now = self._clock.timestamp_ns()
            self._handle_data(QuoteTick(INSTRUMENT.id, BID, ASK, size, size, now, now))
            await asyncio.sleep(self._interval)


class QuoteClientFactory(LiveDataClientFactory):
    @staticmethod
    def create(loop, name, config, msgbus, cache, clock):  # type: ignore[override]
        return QuoteClient(loop, msgbus, cache, clock, config)


class LiveBookConfig(StrategyConfig, frozen=True):
    orders: int = 1


class LiveBook(Strategy):
    """Opens a long of 1 BTC, then rests ``orders`` entry limits, a take-profit and a stop."""

    def __init__(self, config: LiveBookConfig) -> None:
        super().__init__(config)
        self.placed = False
        self.resumed = False
        self.ids: dict[str, object] = {}
        self.risk = None  # the node's risk engine, to say its trading state at the stop
        self.on_last_stop = None  # said by the last strategy to stop: what the venue holds

    def on_start(self) -> None:
        # A restart finds its position in the cache (Nautilus's database): it places nothing.
        self.resumed = bool(self.cache.positions_open(strategy_id=self.id))
        self.subscribe_quote_ticks(INSTRUMENT.id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        if self.resumed:
            return
        f = self.order_factory
        if "open" not in self.ids:
            self._send("open", f.market(INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("1.000")))
            return
        # The reduce-only orders go once the position is there (the venue refuses them before).
        if not self.placed and self.cache.positions_open(strategy_id=self.id):
            self.placed = True
            for i in range(self.config.orders):
                price = Price(Decimal("90000.0") - i, 1)
                self._send(f"entry-{i}", f.limit(INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("0.010"), price))
            self._send(
                "take_profit",
                f.limit(INSTRUMENT.id, OrderSide.SELL, Quantity.from_str("1.000"), Price.from_str("110000.0"), reduce_only=True),
            )
            self._send(
                "stop",
                f.stop_market(INSTRUMENT.id, OrderSide.SELL, Quantity.from_str("1.000"), Price.from_str("95000.0"), reduce_only=True),
            )

    def _send(self, name: str, order) -> None:
        self.ids[name] = order.client_order_id
        self.submit_order(order)

    def rests(self) -> bool:
        if self.resumed:
            return True
        statuses = {n: self.cache.order(i).status for n, i in self.ids.items() if self.cache.order(i)}
        return (
            self.placed
            and len(statuses) == len(self.ids)
            and statuses.pop("open") == OrderStatus.FILLED
            and all(s == OrderStatus.ACCEPTED for s in statuses.values())
        )

    def on_stop(self) -> None:
        book = {n: order_status_to_str(self.cache.order(i).status) for n, i in self.ids.items()}
        positions = [
            (p.id.value, str(p.quantity)) for p in self.cache.positions_open(strategy_id=self.id)
        ]
        print(f"book {self.id.value} " + json.dumps(book), flush=True)
        print(f"positions {self.id.value} " + json.dumps(positions), flush=True)
        if self.risk is not None:
            print(f"trading_state {trading_state_to_str(self.risk.trading_state)}", flush=True)
        if self.on_last_stop is not None:
            self.on_last_stop()


def venue_state(node: TradingNode) -> dict:
    """What the Sandbox venue holds, read before it dies with the process: orders resting in its
    matching engines (protective stops apart), and the open positions with and without a
    reduce-only stop of their strategy resting there."""
    clients = node.kernel.exec_engine.get_clients_for_orders(node.kernel.cache.orders())
    resting = [o for c in clients if hasattr(c, "exchange") for o in c.exchange.get_open_orders()]
    stops = [o for o in resting if o.order_type == OrderType.STOP_MARKET and o.is_reduce_only]
    covered = {o.strategy_id for o in stops}
    positions = node.kernel.cache.positions_open()
    return {
        "working": len(resting) - len(stops),
        "stops": len(stops),
        "positions": len(positions),
        "unprotected": sum(1 for p in positions if p.strategy_id not in covered),
    }


def reseed_venue(node: TradingNode) -> int:
    """A real venue keeps its orders while the node is down; the Sandbox venue is born empty with
    each process. Give it back the working orders of the cache (Nautilus's database), as a backtest
    engine does at its start. Returns how many."""
    cache = node.kernel.cache
    clients = node.kernel.exec_engine.get_clients_for_orders(cache.orders())
    exchanges = [c.exchange for c in clients if hasattr(c, "exchange")]
    count = 0
    for order in cache.orders_open():
        if order.is_emulated:
            continue
        for exchange in exchanges:
            engine = exchange.get_matching_engine(order.instrument_id)
            if engine is not None:
                engine.process_order(order, order.account_id)
                count += 1
    return count


def build(args) -> tuple[TradingNode, list[LiveBook]]:
    cache = None
    if args.redis:
        host, port = args.redis.rsplit(":", 1)
        cache = CacheConfig(
            database=DatabaseConfig(type="redis", host=host, port=int(port)),
            encoding="json",
            flush_on_start=False,
        )
    config = TradingNodeConfig(
        trader_id="LIVE-001",
        logging=LoggingConfig(log_level=args.log_level, log_colors=False),
        cache=cache,
        data_clients={"QUOTES": QuoteClientConfig(hang_on_disconnect=args.hang_disconnect)},
        exec_clients={
            "BINANCE": SandboxExecutionClientConfig(venue="BINANCE", starting_balances=["10000000 USDT"])
        },
        # 20 books place their orders in the same second: above Nautilus's default 100/s.
        risk_engine=LiveRiskEngineConfig(max_order_submit_rate="10000/00:00:01"),
        # The Sandbox reports nothing at reconciliation: its venue is re-seeded from the cache.
        exec_engine=LiveExecEngineConfig(reconciliation=False),
        timeout_connection=5.0,
        timeout_reconciliation=1.0,
        timeout_portfolio=1.0,
        timeout_disconnection=2.0,
        timeout_post_stop=args.post_stop,
    )
    node = TradingNode(config=config)
    node.add_data_client_factory("QUOTES", QuoteClientFactory)
    node.add_exec_client_factory("BINANCE", SandboxLiveExecClientFactory)
    books = []
    for n in range(args.books):
        # `manage_stop` is Nautilus 1.222 and later: named only when asked for.
        manage = {"manage_stop": True} if args.stop == "manage_stop" else {}
        book = LiveBook(
            LiveBookConfig(
                strategy_id=f"Book-{n + 1:03d}",
                order_id_tag=f"{n + 1:03d}",
                orders=args.orders,
                **manage,
            )
        )
        node.trader.add_strategy(book)
        books.append(book)
    node.kernel.cache.add_instrument(INSTRUMENT)
    node.build()
    for book in books:
        book.risk = node.kernel.risk_engine
    stopped = []

    def one_stopped() -> None:
        # The strategies stop before the clients disconnect: the venue still holds its orders.
        stopped.append(1)
        if len(stopped) == len(books):
            print("venue " + json.dumps(venue_state(node)), flush=True)

    for book in books:
        book.on_last_stop = one_stopped
    return node, books


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--report", default="shutdown-report.json")
    parser.add_argument("--redis")
    parser.add_argument("--books", type=int, default=1)
    parser.add_argument("--orders", type=int, default=1)
    parser.add_argument("--hang-disconnect", action="store_true")
    parser.add_argument("--stop", choices=["nautilus", "manage_stop", "pipeline"], default="pipeline")
    parser.add_argument("--post-stop", type=float, default=0.5)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--start-gate")
    args = parser.parse_args()

    node, books = build(args)
    loop = node.get_event_loop()
    handler = None
    if args.start_gate:
        # Nothing trades before the start gate opens the trading gate.
        node.kernel.risk_engine.set_trading_state(TradingState.HALTED)
    if args.stop == "pipeline":
        if args.config:
            config = ShutdownConfig.from_toml(args.config)
        else:
            config = ShutdownConfig(timeout_secs=10.0, report_path=args.report)
        handler = GracefulShutdownHandler(node, config)
        handler.setup_signal_handlers()
        # How the last run ended, and this run's marker (cleared by its final report).
        restored = loop.run_until_complete(handler.restore())
        print(f"restore: {restored['previous_shutdown']}: {restored['summary']}", flush=True)

    async def announce() -> None:
        while not (node.kernel.trader.is_running and all(b.rests() for b in books)):
            await asyncio.sleep(0.02)
        if args.start_gate and handler is not None:
            print(f"venue: {reseed_venue(node)} working orders back from the cache", flush=True)
            gate = await handler.start_gate(ShutdownConfig.from_toml(args.start_gate))
            if gate.exit_code != 0:
                why = [p for s in gate.steps for p in ([s.error] if s.error else []) + s.problems]
                print("gate: halted: " + "; ".join(why), flush=True)
                return
            print("gate: open", flush=True)
        print("ready", flush=True)

    loop.create_task(announce())
    # With the pipeline, the handler stops and disposes the node and ends the run with the report's
    # exit code (SystemExit). Without it, Nautilus's own handler stops the node and the run returns.
    node.run()
    node.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
