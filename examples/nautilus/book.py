"""A backtest book on Nautilus's own simulated exchange, for the tests and the example.

One instrument (BTCUSDT-PERP on a simulated BINANCE), quotes at 100,000.0 / 100,000.1, and a
strategy that, on the first quote, opens a long of 1 BTC and rests three orders: an entry limit
buy at 90,000, a reduce-only take-profit limit sell at 110,000 and a reduce-only stop-market sell
at 95,000.
"""

from __future__ import annotations

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.engine import BacktestEngineConfig
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

INSTRUMENT = TestInstrumentProvider.btcusdt_perp_binance()
START_NS = pd.Timestamp("2024-01-01", tz="UTC").value


class BookStrategy(Strategy):
    """Opens a position and rests an entry, a take-profit and (unless told not to) a stop."""

    def __init__(self, with_stop: bool = True, with_entry: bool = True, ready_after: int = 0):
        super().__init__(StrategyConfig(strategy_id="Book-001", order_id_tag="001"))
        self.with_stop = with_stop
        self.with_entry = with_entry
        # Print `ready` at this quote (0: never), once the book rests: a sign the run is under way.
        self.ready_after = ready_after
        self.ticks = 0
        self.placed = False
        self.ids: dict[str, object] = {}

    def on_start(self) -> None:
        self.subscribe_quote_ticks(INSTRUMENT.id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.ticks += 1
        if self.ticks == self.ready_after:
            print("ready", flush=True)
        if self.placed:
            return
        self.placed = True
        f = self.order_factory
        orders = {"open": f.market(INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("1.000"))}
        if self.with_entry:
            orders["entry"] = f.limit(
                INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("0.500"), Price.from_str("90000.0")
            )
        orders["take_profit"] = f.limit(
            INSTRUMENT.id,
            OrderSide.SELL,
            Quantity.from_str("1.000"),
            Price.from_str("110000.0"),
            reduce_only=True,
        )
        if self.with_stop:
            orders["stop"] = f.stop_market(
                INSTRUMENT.id,
                OrderSide.SELL,
                Quantity.from_str("1.000"),
                Price.from_str("95000.0"),
                reduce_only=True,
            )
        for name, order in orders.items():
            self.ids[name] = order.client_order_id
            self.submit_order(order)


def quotes(n: int, bid: str = "100000.0", ask: str = "100000.1", step_ns: int = 1_000_000) -> list:
    return [
        QuoteTick(
            INSTRUMENT.id,
            Price.from_str(bid),
            Price.from_str(ask),
            Quantity.from_str("10.000"),
            Quantity.from_str("10.000"),
            START_NS + i * step_ns,
            START_NS + i * step_ns,
        )
        for i in range(n)
    ]


def engine(latency_ns: int = 0, log_level: str = "ERROR") -> BacktestEngine:
    e = BacktestEngine(
        BacktestEngineConfig(trader_id=TraderId("BACKTESTER-001"), logging=LoggingConfig(log_level=log_level))
    )
    e.add_venue(
        Venue("BINANCE"),
        OmsType.NETTING,
        AccountType.MARGIN,
        starting_balances=[Money(1_000_000, USDT)],
        base_currency=None,
        latency_model=LatencyModel(
            base_latency_nanos=latency_ns,
            insert_latency_nanos=latency_ns,
            update_latency_nanos=latency_ns,
            cancel_latency_nanos=latency_ns,
        )
        if latency_ns
        else None,
    )
    e.add_instrument(INSTRUMENT)
    return e
