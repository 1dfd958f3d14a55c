"""The pipeline on a BacktestEngine: each role against Nautilus's own simulated exchange, and every
count the report gives checked against what Nautilus's cache says."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest
from book import INSTRUMENT
from book import BookStrategy
from book import engine
from book import quotes
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from nautilus_shutdown import GracefulShutdownHandler
from nautilus_shutdown import ShutdownConfig
from nautilus_shutdown import ShutdownConfigError


def book(pipeline: str | None = None, latency_ns: int = 0, **strategy):
    """A backtest whose strategy holds its book after one streaming batch, with a handler."""
    e = engine(latency_ns=latency_ns)
    s = BookStrategy(**strategy)
    e.add_strategy(s)
    if pipeline is None:
        config = ShutdownConfig(timeout_secs=10.0, report_path="report.json")
    else:
        path = pathlib.Path("shutdown.toml")
        path.write_text(pipeline)
        config = ShutdownConfig.from_toml(path)
    handler = GracefulShutdownHandler(e, config)
    # Long enough for every latency to pass: the book is in place.
    e.add_data(quotes(3000))
    e.run(streaming=True)
    return e, s, handler


def status(e, s, name: str) -> OrderStatus:
    return e.cache.order(s.ids[name]).status


def test_the_book_is_cancelled_but_the_stop_and_the_report_counts_are_nautiluss_truth():
    e, s, handler = book()
    assert status(e, s, "entry") == OrderStatus.ACCEPTED
    report = asyncio.run(handler.shutdown(reason="api"))
    assert status(e, s, "entry") == OrderStatus.CANCELED
    assert status(e, s, "take_profit") == OrderStatus.CANCELED
    assert status(e, s, "stop") == OrderStatus.ACCEPTED
    assert (report.outcome, report.exit_code) == ("clean", 0), report.to_json()
    cancel = report.step("cancel")
    # The report's lists and counts, against the cache: every cancelled one is CANCELED there,
    # the one kept is working there, and nothing else is left working.
    cancelled = set(cancel.details["cancelled"])
    assert cancelled == {s.ids["entry"].value, s.ids["take_profit"].value}
    for client_id in cancelled:
        assert e.cache.order(type(s.ids["entry"])(client_id)).status == OrderStatus.CANCELED
    assert cancel.details["kept_stops"] == [s.ids["stop"].value]
    still_working = [o.client_order_id.value for o in e.cache.orders_open()]
    assert still_working == [s.ids["stop"].value]
    left = [i for i in still_working if i not in cancel.details["kept_stops"]]
    assert cancel.counts == {"orders_cancelled": len(cancelled), "orders_orphaned": len(left)}
    verify = report.step("verify")
    position = e.cache.positions_open()[0]
    assert verify.details["positions"][0]["id"] == position.id.value
    assert verify.details["positions"][0]["protected"] is True
    assert verify.counts == {"positions_unprotected": 0}
    assert e.kernel.risk_engine.trading_state == TradingState.HALTED
    # The same report in the file, and the snapshot in the fallback file (no Redis here).
    on_disk = json.loads(pathlib.Path("report.json").read_text())
    assert on_disk["steps"] == report.to_dict()["steps"]
    assert report.step("flush").details["written_to"].startswith("file ")


def test_a_position_without_a_stop_gets_one_the_simulated_exchange_accepts():
    pipeline = (
        "timeout_secs = 10\n[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\n"
        "[[steps]]\nkind = \"verify\"\non_unprotected = \"place_stop\"\nstop_distance_pct = 2.0\n"
    )
    e, s, handler = book(pipeline, with_stop=False)
    report = asyncio.run(handler.shutdown(reason="api"))
    verify = report.step("verify")
    position = verify.details["positions"][0]
    assert position["remedy_order"] is not None, verify
    placed = e.cache.order(type(s.ids["entry"])(position["remedy_order"]))
    assert placed.status == OrderStatus.ACCEPTED
    assert placed.is_reduce_only and placed.side == OrderSide.SELL
    # Nautilus keeps a position per strategy: the stop is the position's strategy's, and says so.
    assert placed.strategy_id == s.id
    assert s.id.value in position["action"]
    assert placed.quantity == Quantity.from_str("1.000")
    # 2 % under the mark (100,000.05), on the loss side of a long.
    assert placed.trigger_price == Price.from_str("98000.0")
    assert "switched from HALTED to REDUCING" in position["action"], position
    # Back to HALTED once it was placed.
    assert e.kernel.risk_engine.trading_state == TradingState.HALTED
    assert position["protected"] is True
    assert report.exit_code == 0, report.to_json()


def test_flatten_closes_the_position_with_a_reduce_only_market_order():
    pipeline = (
        "timeout_secs = 10\n[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\n"
        "[[steps]]\nkind = \"verify\"\non_unprotected = \"flatten\"\n"
    )
    e, s, handler = book(pipeline, with_stop=False)
    assert len(e.cache.positions_open()) == 1
    report = asyncio.run(handler.shutdown(reason="api"))
    verify = report.step("verify")
    assert e.cache.positions_open() == []
    [(position_id, remedy)] = verify.details["closed_by_remedy"]
    assert position_id == e.cache.positions_closed()[0].id.value
    exit_order = e.cache.order(type(s.ids["entry"])(remedy["order"]))
    assert exit_order.status == OrderStatus.FILLED
    assert exit_order.is_reduce_only and exit_order.side == OrderSide.SELL
    assert "position closed" in remedy["text"] and "REDUCING" in remedy["text"], remedy
    assert report.exit_code == 0, report.to_json()
    assert e.kernel.risk_engine.trading_state == TradingState.HALTED


def test_an_order_that_fills_while_its_cancel_is_in_flight_is_counted_filled():
    # One second from a command to the exchange. The strategy sends a buy limit above the ask
    # just before the stop: the cancel goes out while the order is still in flight, and the
    # exchange fills it first.
    e, s, handler = book(latency_ns=1_000_000_000)
    racing = s.order_factory.limit(
        INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("0.200"), Price.from_str("100010.0")
    )
    s.submit_order(racing)
    assert e.cache.order(racing.client_order_id).status == OrderStatus.SUBMITTED
    report = asyncio.run(handler.shutdown(reason="api"))
    assert e.cache.order(racing.client_order_id).status == OrderStatus.FILLED
    cancel = report.step("cancel")
    assert racing.client_order_id.value in cancel.details["already_filled"], cancel
    assert racing.client_order_id.value not in cancel.details["cancelled"]
    fill = next(f for f in cancel.details["fills"] if f["client_id"] == racing.client_order_id.value)
    assert (fill["side"], fill["quantity"]) == ("buy", "0.200")
    # The position grew past its stop: the report says so, and the run is degraded.
    assert report.step("verify").counts == {"positions_unprotected": 1}
    assert report.exit_code == 10


def test_an_order_the_strategy_submits_after_the_halt_is_denied():
    e, s, handler = book()
    asyncio.run(handler.shutdown(reason="api"))
    late = s.order_factory.limit(
        INSTRUMENT.id, OrderSide.BUY, Quantity.from_str("0.100"), Price.from_str("90000.0")
    )
    s.submit_order(late)
    assert e.cache.order(late.client_order_id).status == OrderStatus.DENIED


def test_a_second_call_returns_the_same_report_and_runs_nothing_twice():
    e, s, handler = book()

    async def twice():
        return await asyncio.gather(handler.shutdown(reason="api"), handler.shutdown(reason="api"))

    first, second = asyncio.run(twice())
    assert first.to_json() == second.to_json()
    assert first.step("cancel").counts["orders_cancelled"] == 2


def test_a_bad_config_is_refused_with_the_field_and_the_value_named(tmp_path):
    with pytest.raises(ShutdownConfigError) as negative:
        ShutdownConfig(timeout_secs=-5.0)
    assert "ShutdownConfig: `timeout_secs`" in str(negative.value)
    assert "found -5" in str(negative.value)
    with pytest.raises(ValueError) as typed:
        ShutdownConfig(cancel_orders="yes")
    assert '`cancel_orders`: expected true or false, found string "yes"' in str(typed.value)
    path = tmp_path / "bad.toml"
    path.write_text("[[steps]]\nkind = \"cancle\"\n[[steps]]\nkind = \"verify\"\non_unprotected = \"hope\"\n")
    with pytest.raises(ShutdownConfigError) as unknown:
        ShutdownConfig.from_toml(path)
    text = str(unknown.value)
    assert str(path) in text
    assert "unknown step kind `cancle`" in text and "did you mean `cancel`" in text
    assert "step 2 (verify)" in text and "on_unprotected" in text and "hope" in text
    assert ShutdownConfig(log_level="WARNING").to_toml().endswith('log_level = "warn"\n')


def test_the_reason_a_report_gives_is_the_one_asked_for():
    e, s, handler = book()
    with pytest.raises(ValueError, match="reason"):
        asyncio.run(handler.shutdown(reason="lunch"))
    report = asyncio.run(handler.shutdown(reason="SIGINT"))
    assert report.reason == "SIGINT"


def test_a_node_that_cannot_be_halted_is_refused_when_the_handler_is_built():
    class LiveNodeV2:  # nautilus_trader 2.x's LiveNode: no kernel, no trading-state setter
        cache = None

    with pytest.raises(TypeError, match="TradingNode or a BacktestEngine") as refused:
        GracefulShutdownHandler(LiveNodeV2())
    assert "LiveNodeV2" in str(refused.value)


def test_the_metrics_every_node_pushes_reach_a_real_pushgateway(tmp_path):
    from servers import pushed
    from servers import pushgateway

    with pushgateway(tmp_path) as url:
        pipeline = f"timeout_secs = 10\n[metrics]\npushgateway_url = \"{url}\"\n[[steps]]\nkind = \"halt\"\n[[steps]]\nkind = \"cancel\"\n"
        e, s, handler = book(pipeline)
        report = asyncio.run(handler.shutdown(reason="api"))
        assert report.sink_errors == []
        [group] = [g for g in pushed(url) if g["labels"].get("trader_id") == "BACKTESTER-001"]
    total = group["shutdown_total"]["metrics"][0]
    assert total["labels"]["outcome"] == "clean" and total["labels"]["reason"] == "api"
    assert group["shutdown_orders_cancelled_total"]["metrics"][0]["value"] == "2"
    assert group["shutdown_exit_code"]["metrics"][0]["value"] == "0"


def test_every_role_call_runs_on_the_event_loops_thread(monkeypatch):
    import threading

    import nautilus_shutdown.handler as handler_module
    from nautilus_shutdown.nautilus import NautilusNode

    threads: dict[str, set[int]] = {}

    class Recording(NautilusNode):
        def __getattribute__(self, name):
            attr = object.__getattribute__(self, name)
            if callable(attr) and not name.startswith("_") and asyncio.iscoroutinefunction(attr):

                async def recorded(*args):
                    threads.setdefault(name, set()).add(threading.get_ident())
                    return await attr(*args)

                return recorded
            return attr

    monkeypatch.setattr(handler_module, "NautilusNode", Recording)
    e, s, handler = book(with_stop=False)

    async def run():
        loop_thread = threading.get_ident()
        return loop_thread, await handler.shutdown(reason="api")

    loop_thread, report = asyncio.run(run())
    assert {"halt", "is_halted", "open_orders", "cancel", "positions", "connections"} <= set(threads)
    assert all(t == {loop_thread} for t in threads.values()), threads
    assert threading.get_ident() == loop_thread
