"""Kite orders: a form in, our order placed through the same ``OrderEntry``; our orders out
in Kite's shapes (``shapes``). Kite's product, validity, TTL minutes and tag are the order's
``OrderTerms``, journaled in the order's own columns in the commit that places it; the
order's ``client_order_id`` stays null (Kite has no client order id; its ``guid`` is null). The
history is the stored one (``history``).

``TTL`` orders rest as ``DAY`` orders and are cancelled when their minutes are up, by a timer
of this process; at start the timers are armed again from the journal (``rearm_ttl``), so a
restart does not forget them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson

from app.errors import AppError, ValidationFailed
from app.services.kite.history import rebuilt_history, stored_history
from app.services.kite.shapes import OUR_ORDER_TYPES, kite_order, kite_trade, number
from app.services.orders.entry import InstrumentControl, OrderEntry
from app.services.orders.reads import OrderReads
from app.services.orders.records import OrderTerms
from app.store.database import Database
from app.store.kite import account_trades, amended_orders, history_rows, working_ttl_orders

log = logging.getLogger(__name__)

VARIETIES = frozenset({"regular"})
PRODUCTS = frozenset({"CNC", "MIS", "NRML"})
_VALIDITIES = {"DAY": "DAY", "IOC": "IOC", "TTL": "DAY"}
_SIDES = {"BUY": "buy", "SELL": "sell"}
_TAG_MAX = 20
_TAG = re.compile(r"[A-Za-z0-9._\-]{1,20}")
_MAX_TTL_MINUTES = 24 * 60
_PAGE = 1000
_MAX_ORDERS = 10_000


class UnsupportedVariety(ValidationFailed):
    code = "UNSUPPORTED_VARIETY"
    message = "only the regular variety is supported"


def _field(form: Mapping[str, str], name: str, required: bool = True) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise ValidationFailed(f"`{name}` is required")
        return None
    return value


def _choice(form: Mapping[str, str], name: str, allowed: Any, default: str | None = None) -> str:
    value = _field(form, name, default is None) or default
    assert value is not None
    if value not in allowed:
        raise ValidationFailed(f"invalid `{name}` {value[:20]!r}; one of {', '.join(allowed)}")
    return value


def _positive(text: str | None) -> bool:
    try:
        return text is not None and float(text) > 0
    except ValueError:
        return False


class KiteOrders:
    def __init__(
        self,
        *,
        orders: OrderEntry,
        reads: OrderReads,
        database: Database,
        registry: InstrumentControl,
        ttl_unit_seconds: float = 60.0,  # Kite's validity_ttl is in minutes
    ) -> None:
        self.ttl_unit_seconds = ttl_unit_seconds
        self._orders = orders
        self._reads = reads
        self._database = database
        self._registry = registry
        self._timers: set[asyncio.TimerHandle] = set()

    @staticmethod
    def check_variety(variety: str) -> None:
        if variety not in VARIETIES:
            raise UnsupportedVariety(f"variety {variety[:20]!r} is not supported; use regular")

    # -- placing ----------------------------------------------------------------------------

    async def place(self, account: str, variety: str, form: Mapping[str, str]) -> dict[str, Any]:
        self.check_variety(variety)
        if form.get("autoslice") not in (None, "", "false"):
            raise ValidationFailed("autoslice orders are not supported")
        order_type = _choice(form, "order_type", OUR_ORDER_TYPES)
        validity = _choice(form, "validity", _VALIDITIES, "DAY")
        ttl = None
        if validity == "TTL":
            text = _field(form, "validity_ttl")
            assert text is not None
            if not text.isdigit() or not 0 < int(text) <= _MAX_TTL_MINUTES:
                raise ValidationFailed(f"`validity_ttl` must be 1-{_MAX_TTL_MINUTES} minutes")
            ttl = int(text)
        tag = form.get("tag") or None
        if tag is not None and not _TAG.fullmatch(tag):
            raise ValidationFailed(f"`tag` must be 1-{_TAG_MAX} characters of A-Za-z0-9._-")
        terms = OrderTerms(_choice(form, "product", PRODUCTS), validity, ttl, tag)
        ours = OUR_ORDER_TYPES[order_type]
        item: dict[str, Any] = {
            "symbol": f"{_field(form, 'exchange')}:{_field(form, 'tradingsymbol')}",
            "side": _SIDES[_choice(form, "transaction_type", _SIDES)],
            "type": ours,
            "quantity": _field(form, "quantity"),
            "time_in_force": _VALIDITIES[validity],
        }
        # Kite clients often send price=0 on MARKET and SL-M orders: it means "none".
        price, trigger = form.get("price"), form.get("trigger_price")
        if ours in ("limit", "stop_limit"):
            item["price"] = _field(form, "price")
        elif _positive(price):
            raise ValidationFailed(f"`price` is not allowed on {order_type} orders")
        if ours in ("stop", "stop_limit"):
            item["trigger_price"] = _field(form, "trigger_price")
        elif _positive(trigger):
            raise ValidationFailed(f"`trigger_price` is not allowed on {order_type} orders")
        result = await self._orders.place_order(account, orjson.dumps(item), terms=terms)
        order_id = int(result["order_id"])
        if ttl is not None and result["status"] in ("open", "partially_filled", "pending_trigger"):
            self._expire_later(account, order_id, ttl * self.ttl_unit_seconds)
        return {"order_id": result["order_id"]}

    def _expire_later(self, account: str, order_id: int, seconds: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            task = loop.create_task(self._expire(account, order_id))
            task.add_done_callback(lambda _t: None)

        handle = loop.call_later(seconds, fire)
        self._timers.add(handle)

    async def _expire(self, account: str, order_id: int) -> None:
        with contextlib.suppress(AppError):
            await self._orders.cancel_order(account, order_id)

    async def rearm_ttl(self, now_ns: int) -> int:
        """At start: the TTL timers of the working Kite orders the journal holds (a restart
        forgets the process's timers). Each gets what is left of its minutes, counted from
        its placing; one whose time is up is cancelled now. Returns how many were armed."""
        armed = 0
        for row in await working_ttl_orders(self._database):
            left_ns = row.created_ns + row.validity_ttl * self.ttl_unit_seconds * 1e9 - now_ns
            self._expire_later(row.account, row.order_id, max(0.0, left_ns / 1e9))
            armed += 1
        return armed

    def stop(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    async def modify(
        self, account: str, variety: str, order_id: int, form: Mapping[str, str]
    ) -> dict[str, Any]:
        self.check_variety(variety)
        current = await self._reads.get_order(account, order_id)
        instrument = self._registry.snapshot.instrument(current["instrument_token"])
        order_type = form.get("order_type")
        if order_type and OUR_ORDER_TYPES.get(order_type) != current["type"]:
            raise ValidationFailed("the order type of an order cannot be changed here")
        trigger = form.get("trigger_price")
        if _positive(trigger) and number(trigger) != number(current["trigger_price"]):
            raise ValidationFailed("the trigger price of an order cannot be changed here")
        validity = form.get("validity")
        if validity and _VALIDITIES.get(validity) != current["time_in_force"]:
            raise ValidationFailed("the validity of an order cannot be changed here")
        quantity = form.get("quantity") or None
        price = form.get("price") or None
        if price is not None and not _positive(price):
            price = None
        remaining = None
        if quantity is not None:
            # Kite's quantity is the order's total; our amendment takes the new remainder.
            lots = instrument.quantity_to_lots(quantity)
            done = current["filled_quantity"]
            filled = instrument.quantity_to_lots(done) if number(done) else 0
            if lots <= filled:
                raise ValidationFailed("the new quantity must exceed the filled quantity")
            remaining = instrument.lots_to_quantity(lots - filled)
        if remaining is None and price is None:
            return {"order_id": str(order_id)}
        await self._orders.amend_order(account, order_id, quantity=remaining, price=price)
        return {"order_id": str(order_id)}

    async def cancel(self, account: str, variety: str, order_id: int) -> dict[str, Any]:
        self.check_variety(variety)
        await self._orders.cancel_order(account, order_id)
        return {"order_id": str(order_id)}

    # -- reading ----------------------------------------------------------------------------

    def _shape(self, account: str, order: Mapping[str, Any]) -> Any:
        instrument = self._registry.snapshot.instrument(order["instrument_token"])
        return kite_order(instrument, order, account)

    async def orders(self, account: str) -> list[dict[str, Any]]:
        """The account's orders, oldest first (Kite's order book)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < _MAX_ORDERS:
            page = await self._reads.list_orders(
                account, status=None, symbol=None, limit=_PAGE, cursor=cursor
            )
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        items.reverse()
        amended = await amended_orders(self._database, [int(o["order_id"]) for o in items])
        return [
            self._shape(account, {**o, "modified": int(o["order_id"]) in amended}) for o in items
        ]

    async def order_history(self, account: str, order_id: int) -> list[dict[str, Any]]:
        order = await self._reads.get_order(account, order_id)  # ORDER_NOT_FOUND if not ours
        instrument = self._registry.snapshot.instrument(order["instrument_token"])
        trades = await account_trades(self._database, account, order_id=order_id)
        rows = await history_rows(self._database, order_id)
        modified = any(row.event == "amended" for row in rows)
        current = self._shape(account, {**order, "modified": modified})
        if rows:
            return stored_history(instrument, current, rows, trades)
        fills = [(r.ts_ns, number(instrument.lots_to_quantity(r.quantity))) for r in trades]
        return rebuilt_history(current, fills)

    async def trades(self, account: str, order_id: int | None = None) -> list[dict[str, Any]]:
        if order_id is not None:
            await self._reads.get_order(account, order_id)  # ORDER_NOT_FOUND if not ours
        rows = await account_trades(self._database, account, order_id=order_id)
        snapshot = self._registry.snapshot
        out = []
        for row in rows:
            instrument = snapshot.get(row.instrument_token)
            if instrument is None:
                continue
            out.append(kite_trade(instrument, row))
        return out

    def order_update(self, account: str, order: Mapping[str, Any]) -> dict[str, Any] | None:
        """An order update of ``/ws/orders`` as KiteTicker's ``{"type": "order", "data"}``."""
        instrument = self._registry.snapshot.get(order["instrument_token"])
        if instrument is None:
            return None
        data = kite_order(instrument, {"average_price": None, **order}, account)
        data["unfilled_quantity"] = data["pending_quantity"]
        data["user_id"] = account
        return {"type": "order", "data": data}
