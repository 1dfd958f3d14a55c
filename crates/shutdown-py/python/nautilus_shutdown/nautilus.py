"""The node roles over a NautilusTrader node: a live ``TradingNode`` or a ``BacktestEngine``.

Every method is a coroutine the Rust runner schedules on the node's event loop: no other thread
touches a Nautilus object. Answers are JSON text in the shapes of the pipeline's domain (orders,
positions, accounts, connections), so the steps that judge them are the Rust ones.

The calls, per role (see docs/nautilus.md):

- trading gate: ``risk_engine.set_trading_state(TradingState.HALTED)``, read back from
  ``trading_state``;
- orders: ``cache.orders_open()``, ``orders_inflight()`` and ``orders_emulated()`` (emulated
  orders are held by this process: ``residence = "local"``); a ``CancelOrder`` command per order
  to the execution engine, done only when the cache shows the order closed; remedies (a stop, a
  reduce-only market exit) submitted to the risk engine as the strategy that holds the position
  (Nautilus keeps a position per strategy), with the trading state switched to ``REDUCING`` for
  the order and back to ``HALTED`` after, and a note in the report saying so;
- positions: ``cache.positions_open()``, marks from ``cache.price`` (mid, else last);
- state: every order and position of the cache, the accounts' balances, the strategies' states;
- connections: the execution and data clients, disconnected through the kernel.

In a backtest, a command reaches the simulated exchange only when the engine processes data or
time: the adapter drives the exchange itself (``SimulatedExchange.process``, its latency model
honoured), so nobody has to feed data to have a cancel confirmed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from decimal import Decimal
from typing import Any

from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import CancelOrder
from nautilus_trader.execution.messages import SubmitOrder
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.enums import PositionSide
from nautilus_trader.model.enums import PriceType
from nautilus_trader.model.enums import TradingState
from nautilus_trader.model.enums import order_status_to_str
from nautilus_trader.model.enums import order_type_to_str
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import PositionId

from nautilus_shutdown.errors import RoleRejected
from nautilus_shutdown.errors import RoleTransient
from nautilus_shutdown.errors import RoleUnsupported

#: How long a live node is given to show a cancel or a remedy in its cache before the answer is
#: "pending" (the step then lists and asks again within its own budget).
CONFIRM_SECS = 2.0

_ORDER_TYPES = {
    "MARKET": "market",
    "MARKET_TO_LIMIT": "market",
    "LIMIT": "limit",
    "STOP_MARKET": "stop_market",
    "STOP_LIMIT": "stop_limit",
    "TRAILING_STOP_MARKET": "trailing_stop",
    "TRAILING_STOP_LIMIT": "trailing_stop",
    "MARKET_IF_TOUCHED": "take_profit",
    "LIMIT_IF_TOUCHED": "take_profit_limit",
}

_STATUSES = {
    "INITIALIZED": "pending_new",
    "SUBMITTED": "pending_new",
    "RELEASED": "pending_new",
    "EMULATED": "new",
    "ACCEPTED": "new",
    "PENDING_UPDATE": "new",
    "TRIGGERED": "triggered",
    "PENDING_CANCEL": "pending_cancel",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
    "DENIED": "rejected",
}


def _is_backtest(node: Any) -> bool:
    from nautilus_trader.backtest.engine import BacktestEngine

    return isinstance(node, BacktestEngine)


class NautilusNode:
    """The adapter the Rust runner calls, one per handler."""

    roles = ("trading_gate", "order_gateway", "position_book", "state_source", "connections")

    def __init__(self, node: Any) -> None:
        self._node = node
        self._backtest = _is_backtest(node)
        kernel = getattr(node, "kernel", None)
        if kernel is None or not hasattr(kernel, "risk_engine"):
            raise TypeError(
                f"nautilus_shutdown takes a TradingNode or a BacktestEngine of nautilus_trader 1.x, "
                f"found {type(node).__name__}: a node without a kernel's risk engine cannot be "
                "halted (nautilus_trader 2.x's LiveNode has no trading-state setter in Python)"
            )
        self._kernel = kernel
        self._cache = kernel.cache
        self._clock = kernel.clock
        self._risk = kernel.risk_engine
        self._exec = kernel.exec_engine
        self.trader_id = kernel.trader_id.value

    # -- the node -------------------------------------------------------------------------------

    def _exec_clients(self) -> list[Any]:
        clients = self._exec.get_clients_for_orders(self._cache.orders())
        return sorted(clients, key=lambda c: c.id.value)

    def _exchanges(self) -> list[Any]:
        """The simulated exchanges behind the execution clients: a backtest's, read from the
        objects that hold its clients (the engine keeps them private); a sandbox's, its own."""
        from nautilus_trader.backtest.engine import SimulatedExchange

        found: dict[int, Any] = {}
        for client in self._exec_clients():
            exchange = getattr(client, "exchange", None)
            if isinstance(exchange, SimulatedExchange):
                found[id(exchange)] = exchange
                continue
            for holder in gc.get_referrers(client):
                if isinstance(holder, SimulatedExchange) and holder.exec_client is client:
                    found[id(holder)] = holder
        return list(found.values())

    def _drive(self) -> None:
        """Let the simulated exchanges process the commands sent to them, as far ahead as their
        latency models delay a command."""
        now = self._clock.timestamp_ns()
        for exchange in self._exchanges():
            ahead = 0
            model = exchange.latency_model
            if model is not None:
                ahead = max(
                    model.insert_latency_nanos,
                    model.update_latency_nanos,
                    model.cancel_latency_nanos,
                )
            exchange.process(max(now + ahead, self._clock.timestamp_ns()))

    async def _until(self, done: Any) -> bool:
        """Drive the exchanges (a backtest) or wait (a live node) until ``done()`` holds; False
        when it does not within ``CONFIRM_SECS``."""
        deadline = time.monotonic() + CONFIRM_SECS
        while True:
            self._drive()
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)

    async def prepare(self) -> None:
        """Before the pipeline: a backtest that ended (``engine.run()`` finished, or a signal
        stopped it) has disconnected its execution clients; they are connected again for the
        shutdown, and disconnected by the ``close`` step."""
        if not self._backtest:
            return
        for client in self._exec_clients():
            if not client.is_connected:
                client.reset()
                client.start()

    # -- trading gate ---------------------------------------------------------------------------

    async def halt(self) -> None:
        self._risk.set_trading_state(TradingState.HALTED)

    async def resume(self) -> None:
        self._risk.set_trading_state(TradingState.ACTIVE)

    async def is_halted(self) -> str:
        return json.dumps(self._risk.trading_state == TradingState.HALTED)

    # -- orders ---------------------------------------------------------------------------------

    def _working(self) -> list[Any]:
        seen: dict[str, Any] = {}
        for order in (
            *self._cache.orders_open(),
            *self._cache.orders_inflight(),
            *self._cache.orders_emulated(),
        ):
            seen[order.client_order_id.value] = order
        return list(seen.values())

    async def open_orders(self) -> str:
        return json.dumps([_order(o) for o in self._working()])

    async def order(self, client_id: str) -> str:
        order = self._cache.order(ClientOrderId(client_id))
        return json.dumps(None if order is None else _order(order))

    async def cancel(self, client_id: str) -> str:
        order = self._cache.order(ClientOrderId(client_id))
        if order is None:
            return json.dumps("unknown_order")
        if order.is_closed:
            return json.dumps("already_filled" if order.status == OrderStatus.FILLED else "unknown_order")
        command = CancelOrder(
            trader_id=self._kernel.trader_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            command_id=UUID4(),
            ts_init=self._clock.timestamp_ns(),
        )
        self._exec.execute(command)
        # Done only when the cache shows it closed, never at PENDING_CANCEL.
        await self._until(lambda: self._cache.order(order.client_order_id).is_closed)
        status = self._cache.order(order.client_order_id).status
        if status == OrderStatus.FILLED:
            return json.dumps("already_filled")
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
            return json.dumps("cancelled")
        return json.dumps("pending")

    async def place_stop(self, request: str) -> str:
        r = json.loads(request)
        instrument = self._instrument(r["instrument"])
        position = self._position(r.get("position_id"))
        order = self._factory(position).stop_market(
            instrument_id=instrument.id,
            order_side=_side(r["side"]),
            quantity=instrument.make_qty(Decimal(r["quantity"])),
            trigger_price=instrument.make_price(Decimal(r["trigger_price"])),
            reduce_only=True,
            client_order_id=ClientOrderId(r["client_id"]),
        )
        return await self._submit(order, position, resting=True)

    async def place_exit(self, request: str) -> str:
        r = json.loads(request)
        instrument = self._instrument(r["instrument"])
        position = self._position(r.get("position_id"))
        order = self._factory(position).market(
            instrument_id=instrument.id,
            order_side=_side(r["side"]),
            quantity=instrument.make_qty(Decimal(r["quantity"])),
            reduce_only=True,
            client_order_id=ClientOrderId(r["client_id"]),
        )
        return await self._submit(order, position, resting=False)

    def _position(self, position_id: str | None) -> Any:
        position = self._cache.position(PositionId(position_id)) if position_id else None
        if position is None or position.is_closed:
            raise RoleRejected(f"the cache holds no open position {position_id}")
        return position

    def _factory(self, position: Any) -> Any:
        """Orders of the strategy that holds ``position``: Nautilus keeps a position per strategy
        (in NETTING, its id is the instrument's and the strategy's), and a reduce-only order of
        another strategy would have nothing to reduce."""
        return OrderFactory(
            trader_id=self._kernel.trader_id,
            strategy_id=position.strategy_id,
            clock=self._clock,
        )

    def _instrument(self, instrument_id: str) -> Any:
        instrument = self._cache.instrument(InstrumentId.from_str(instrument_id))
        if instrument is None:
            raise RoleRejected(f"the cache holds no instrument {instrument_id}")
        return instrument

    async def _submit(self, order: Any, position: Any, resting: bool) -> str:
        """Submit a remedy for ``position`` through the risk engine, as its strategy. HALTED
        denies every order, this one too: the trading state goes to REDUCING (which still denies
        an order that would grow a position) for it, and back."""
        before = self._risk.trading_state
        switched = before == TradingState.HALTED
        if switched:
            self._risk.set_trading_state(TradingState.REDUCING)
        try:
            command = SubmitOrder(
                trader_id=self._kernel.trader_id,
                strategy_id=position.strategy_id,
                order=order,
                command_id=UUID4(),
                ts_init=self._clock.timestamp_ns(),
                position_id=position.id,
            )
            self._kernel.msgbus.send(endpoint="RiskEngine.execute", msg=command)
            def settled() -> bool:
                # A live node's engines take commands from a queue: the order may not be in the
                # cache yet.
                placed = self._cache.order(order.client_order_id)
                if placed is None:
                    return False
                if resting:
                    return placed.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)
                return placed.is_closed

            await self._until(settled)
        finally:
            if switched:
                self._risk.set_trading_state(before)
        placed = self._cache.order(order.client_order_id)
        if placed is None:
            raise RoleTransient(f"{order.client_order_id.value} did not reach the cache within {CONFIRM_SECS}s")
        status = placed.status
        if status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            events = [e for e in placed.events if hasattr(e, "reason")]
            why = events[-1].reason if events else order_status_to_str(status)
            raise RoleRejected(f"{order_status_to_str(status)}: {why}")
        out = _order(placed)
        owner = f"placed by the shutdown for {position.strategy_id.value}, whose position it reduces"
        if switched:
            out["note"] = (
                f"{owner}, with the risk engine's trading state switched from HALTED to REDUCING "
                "for it and back to HALTED (Nautilus denies every order while HALTED)"
            )
        else:
            out["note"] = owner
        return json.dumps(out)

    # -- positions ------------------------------------------------------------------------------

    def _mark(self, instrument_id: Any) -> Any:
        for price_type in (PriceType.MID, PriceType.LAST):
            price = self._cache.price(instrument_id, price_type)
            if price is not None:
                return price
        return None

    async def positions(self) -> str:
        out = []
        for p in self._cache.positions_open():
            instrument = self._cache.instrument(p.instrument_id)
            entry = instrument.make_price(p.avg_px_open) if instrument else p.avg_px_open
            mark = self._mark(p.instrument_id) or entry
            out.append(
                {
                    "id": p.id.value,
                    "instrument": p.instrument_id.value,
                    "side": "buy" if p.side == PositionSide.LONG else "sell",
                    "quantity": str(p.quantity),
                    "entry_price": str(entry),
                    "mark_price": str(mark),
                }
            )
        return json.dumps(out)

    async def mark_price(self, instrument_id: str) -> str:
        mark = self._mark(InstrumentId.from_str(instrument_id))
        if mark is None:
            raise RoleTransient(f"the cache holds no price of {instrument_id} (mid or last)")
        return json.dumps(str(mark))

    # -- state ----------------------------------------------------------------------------------

    async def state_orders(self) -> str:
        return json.dumps([_order(o) for o in self._cache.orders()])

    async def accounts(self) -> str:
        out = []
        for account in self._cache.accounts():
            for balance in account.balances().values():
                currency = balance.currency.code
                out.append(
                    {
                        "id": f"{account.id.value}:{currency}",
                        "currency": currency,
                        "balance": str(balance.total.as_decimal()),
                        "available": str(balance.free.as_decimal()),
                    }
                )
        return json.dumps(out)

    async def strategies(self) -> str:
        out = []
        for strategy in self._kernel.trader.strategies():
            state: dict[str, Any] = {"state": str(strategy.state)}
            try:
                saved = strategy.on_save() or {}
                state["saved"] = {k: bytes(v).hex() for k, v in saved.items()}
            except Exception as e:  # a strategy's own code: named, not fatal
                state["save_error"] = f"{type(e).__name__}: {e}"
            out.append({"strategy_id": strategy.id.value, "state": state})
        return json.dumps(out)

    # -- connections ----------------------------------------------------------------------------

    def _clients(self) -> dict[str, Any]:
        clients = {c.id.value: c for c in self._exec_clients()}
        if not self._backtest:
            data = self._kernel.data_engine
            for client_id in data.registered_clients:
                client = data._clients.get(client_id) if hasattr(data, "_clients") else None
                if client is not None:
                    clients[client.id.value] = client
        return clients

    async def connections(self) -> str:
        out = []
        for client_id, client in sorted(self._clients().items()):
            venue = getattr(client, "venue", None)
            connected = bool(client.is_connected)
            out.append(
                {
                    "id": client_id,
                    "venue": venue.value if venue is not None else client_id,
                    "connected": connected,
                    "dead_man_armed": False,
                    "logged_in": connected,
                }
            )
        return json.dumps(out)

    async def disarm_dead_man(self, client_id: str) -> None:
        raise RoleUnsupported(f"{client_id}: no dead-man's switch is armed by this adapter")

    async def logout(self, client_id: str) -> None:
        # Nautilus's clients have no session logout apart from their disconnect.
        return None

    async def disconnect(self, client_id: str) -> None:
        client = self._clients().get(client_id)
        if client is None:
            raise RoleRejected(f"no client {client_id}")
        if self._backtest:
            client.stop()
            return None
        # A live client disconnects asynchronously: wait for it within the step's budget.
        client.disconnect()
        while client.is_connected:
            await asyncio.sleep(0.01)
        return None


def _side(side: str) -> Any:
    if side == "buy":
        return OrderSide.BUY
    if side == "sell":
        return OrderSide.SELL
    raise RoleRejected(f"unknown side {side!r}")


def _order(o: Any) -> dict[str, Any]:
    """A Nautilus order in the pipeline's shape."""
    kind = order_type_to_str(o.order_type)
    status = order_status_to_str(o.status)
    trigger = getattr(o, "trigger_price", None)
    out: dict[str, Any] = {
        "client_id": o.client_order_id.value,
        "venue_id": o.venue_order_id.value if o.venue_order_id is not None else None,
        "instrument": o.instrument_id.value,
        "side": "buy" if o.side == OrderSide.BUY else "sell",
        "order_type": _ORDER_TYPES.get(kind, "limit" if o.has_price else "market"),
        "quantity": str(o.quantity),
        "filled_quantity": str(o.filled_qty),
        "trigger_price": str(trigger) if trigger is not None else None,
        "limit_price": str(o.price) if o.has_price and o.price is not None else None,
        "reduce_only": bool(o.is_reduce_only),
        "status": _STATUSES.get(status, "new"),
        "residence": "local" if o.is_emulated else "venue",
    }
    return out
