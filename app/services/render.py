"""How the service shows an instant, an order, a fill and a position: the one renderer of
every channel.

Inside, prices are ticks, quantities lots and instants nanoseconds (integers); outside they are
decimal strings on the instrument's grid and RFC 3339 UTC. An order looks the same on every
channel (``order_fields``), each adding a few fields of its own:

- the REST API (``GET /orders/{id}``, amend and cancel answers): ``render_order``, from the live
  record, with its fills, average price, ``*_ns`` and ``*_at`` times and ``kite``;
- a batch's order result (the outcome, not the order): ``render_result``, ``render_reject``;
- ``/ws/orders``: ``render_order_update``, from a committed journal row, with ``created``,
  ``*_ns`` times and ``kite``;
- webhooks: ``render_order_event``, from the outbox's snapshot row, with ``*_at`` times.

A fill: inside an order (``render_fill``), one of the account's fills (``render_account_fill``:
``GET /fills`` names its instant ``time``, ``/ws/orders`` ``timestamp``) and a webhook's
(``render_event_fill``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from app.services.instruments.model import Instrument, decimal_text
from app.services.orders.records import REJECTED, Fill, OrderRecord
from app.services.positions.ledger import Position
from app.store.journal import OrderRow
from app.store.webhooks import OrderSnapshot

_AVERAGE_DIGITS = 8


# --- instants ---------------------------------------------------------------------------------


def iso_time(ns: int) -> str:
    """RFC 3339 UTC with microseconds (none when they are 0), e.g.
    ``2026-11-22T09:15:00.123456Z``; exact (integer arithmetic, no float)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def iso_time_or_none(ns: int | None) -> str | None:
    """``iso_time``, or None for an instant that is not known (0 or None)."""
    return iso_time(ns) if ns else None


# --- orders -----------------------------------------------------------------------------------


class OrderState(Protocol):
    """An order's state as every channel reads it: ``OrderRecord`` (live), ``OrderRow``
    (committed) and ``OrderSnapshot`` (a webhook's) all have these fields."""

    @property
    def order_id(self) -> int: ...
    @property
    def client_order_id(self) -> str | None: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def instrument_token(self) -> int: ...
    @property
    def side(self) -> str: ...
    @property
    def order_type(self) -> str: ...
    @property
    def time_in_force(self) -> str: ...
    @property
    def post_only(self) -> bool: ...
    @property
    def price(self) -> int | None: ...
    @property
    def trigger_price(self) -> int | None: ...
    @property
    def quantity(self) -> int: ...
    @property
    def filled(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


def order_fields(instrument: Instrument, row: OrderState) -> dict[str, Any]:
    """The fields every channel shows of an order, from its state (the live record, a
    committed journal row or a webhook's snapshot: the same field names)."""
    ticks_to_price, lots = instrument.ticks_to_price, instrument.lots_to_quantity
    price, trigger = row.price, row.trigger_price
    return {
        "order_id": str(row.order_id),
        "client_order_id": row.client_order_id,
        "batch_id": row.batch_id,
        "symbol": instrument.symbol,
        "instrument_token": row.instrument_token,
        "side": row.side,
        "type": row.order_type,
        "time_in_force": row.time_in_force,
        "post_only": row.post_only,
        "price": None if price is None else ticks_to_price(price),
        "trigger_price": None if trigger is None else ticks_to_price(trigger),
        "quantity": lots(row.quantity),
        "status": row.status,
        "filled_quantity": lots(row.filled),
        "remaining_quantity": lots(row.remaining),
        "reason": row.reason,
    }


def render_order(instrument: Instrument, record: OrderRecord) -> dict[str, Any]:
    """The REST API's order: the common fields, its fills and average price, both times."""
    body = order_fields(instrument, record)
    body["average_price"] = average_price(instrument, record.fills, record.filled)
    body["fills"] = [render_fill(instrument, fill) for fill in record.fills]
    body["created_ns"] = record.created_ns
    body["updated_ns"] = record.updated_ns
    # The same instants as the webhooks show them, for clients that read dates.
    body["created_at"] = iso_time(record.created_ns)
    body["updated_at"] = iso_time(record.updated_ns)
    terms = record.terms
    body["kite"] = (
        None
        if terms is None
        else kite_terms(terms.product, terms.validity, terms.validity_ttl, terms.tag)
    )
    if record.status == REJECTED:
        body["error"] = {"code": record.reason, "message": _REASONS.get(record.reason or "", "")}
    return body


def render_order_update(instrument: Instrument, row: OrderRow, *, created: bool) -> dict[str, Any]:
    """``/ws/orders``: the order's state after a commit; ``created``: placed by that commit."""
    body = order_fields(instrument, row)
    body["created"] = created
    body["created_ns"] = row.created_ns
    body["updated_ns"] = row.updated_ns
    product, validity = row.product, row.validity
    body["kite"] = (
        None
        if product is None and validity is None
        else kite_terms(product, validity, row.validity_ttl, row.tag)
    )
    return body


def kite_terms(
    product: str | None, validity: str | None, validity_ttl: int | None, tag: str | None
) -> dict[str, Any]:
    """``kite``: the Kite Connect terms of an order placed through the Kite API (null for
    our own API's orders), which Kite's shapes of the order show."""
    return {"product": product, "validity": validity, "validity_ttl": validity_ttl, "tag": tag}


def render_order_event(instrument: Instrument, row: OrderSnapshot) -> dict[str, Any]:
    """A webhook's ``data.order``: the order's state after the request that fired it."""
    body = order_fields(instrument, row)
    body["created_at"] = iso_time(row.created_ns)
    body["updated_at"] = iso_time(row.updated_ns)
    return body


def average_price(instrument: Instrument, fills: list[Fill], filled: int) -> str | None:
    if not fills or filled <= 0:
        return None
    return _average(instrument, sum(fill.price * fill.quantity for fill in fills), filled)


def _average(instrument: Instrument, value: int, quantity: int) -> str | None:
    """``value`` (ticks times lots) over ``quantity`` lots as a price: exact on the tick grid
    when it divides, else to 8 more digits than the tick."""
    if quantity == 0:
        return None
    if value % quantity == 0:
        return instrument.ticks_to_price(value // quantity)
    exact = Decimal(value) * instrument.tick_size / Decimal(quantity)
    return decimal_text(round(exact, instrument.tick_digits + _AVERAGE_DIGITS))


# --- a batch's order results (the order path: built straight from the record) ---------------


def render_result(
    instrument: Instrument, record: OrderRecord, index: int, *, created: bool = True
) -> dict[str, Any]:
    """The order result of a batch (README, "Orders": an order result): the outcome, not
    the order. ``created`` is false when a repeated ``client_order_id`` returned an earlier
    order."""
    lots = instrument.lots_to_quantity
    fills = record.fills
    result: dict[str, Any] = {
        "index": index,
        "client_order_id": record.client_order_id,
        "order_id": str(record.order_id),
        "created": created,
        "status": record.status,
        "filled_quantity": lots(record.filled),
        "remaining_quantity": lots(record.remaining),
        "average_price": average_price(instrument, fills, record.filled) if fills else None,
        "fills": [render_fill(instrument, fill) for fill in fills] if fills else [],
    }
    if record.reason is not None:
        result["reason"] = record.reason
        if record.status == REJECTED:
            result["error"] = {"code": record.reason, "message": _REASONS.get(record.reason, "")}
    return result


def render_reject(
    index: int | None, client_order_id: str | None, code: str, message: str
) -> dict[str, Any]:
    """A result for an order refused before it reached a book (it has no order id)."""
    return {
        "index": index,
        "client_order_id": client_order_id,
        "order_id": None,
        "created": False,
        "status": REJECTED,
        "filled_quantity": "0",
        "remaining_quantity": "0",
        "average_price": None,
        "fills": [],
        "error": {"code": code, "message": message},
    }


# --- fills ------------------------------------------------------------------------------------


def render_fill(instrument: Instrument, fill: Fill) -> dict[str, Any]:
    """A fill inside an order or an order result."""
    return {
        "trade_id": str(fill.trade_id),
        "price": instrument.ticks_to_price(fill.price),
        "quantity": instrument.lots_to_quantity(fill.quantity),
        "liquidity": fill.liquidity,
    }


def render_account_fill(
    instrument: Instrument,
    *,
    trade_id: int,
    order_id: int,
    client_order_id: str | None,
    side: str,
    price: int,
    quantity: int,
    liquidity: str,
    ts_ns: int,
    time_key: str = "time",
) -> dict[str, Any]:
    """One of the account's fills: ``GET /fills`` (its instant under ``time``) and
    ``/ws/orders`` (``time_key="timestamp"``)."""
    return {
        "trade_id": str(trade_id),
        "order_id": str(order_id),
        "client_order_id": client_order_id,
        "symbol": instrument.symbol,
        "instrument_token": instrument.instrument_token,
        "side": side,
        "price": instrument.ticks_to_price(price),
        "quantity": instrument.lots_to_quantity(quantity),
        "liquidity": liquidity,
        time_key: iso_time(ts_ns),
        "ts_ns": ts_ns,
    }


def render_event_fill(
    instrument: Instrument, trade_id: int, ts_ns: int, price: int, quantity: int, liquidity: str
) -> dict[str, Any]:
    """A fill in a webhook's ``data.fills``."""
    return {
        "trade_id": str(trade_id),
        "price": instrument.ticks_to_price(price),
        "quantity": instrument.lots_to_quantity(quantity),
        "liquidity": liquidity,
        "executed_at": iso_time(ts_ns),
    }


# --- positions --------------------------------------------------------------------------------


def render_position(instrument: Instrument, p: Position, last_price: int | None) -> dict[str, Any]:
    """A position (``GET /positions``, ``/ws/orders``): quantities, prices and money as
    decimal strings; unrealised P&L marked at ``last_price`` (ticks)."""
    lots, ticks = instrument.lots_to_quantity, instrument.ticks_to_price
    money = instrument.tick_size * instrument.lot_size
    unrealised = p.unrealised(last_price)

    def value(v: int) -> str:
        return decimal_text(Decimal(v) * money)

    return {
        "symbol": instrument.symbol,
        "instrument_token": instrument.instrument_token,
        "quantity": lots(p.net),
        "overnight_quantity": lots(p.overnight),
        "day_quantity": lots(p.day_buy_quantity - p.day_sell_quantity),
        "average_price": _average(instrument, p.open_value, abs(p.net)),
        "last_price": None if last_price is None else ticks(last_price),
        "buy_quantity": lots(p.buy_quantity),
        "buy_value": value(p.buy_value),
        "buy_price": _average(instrument, p.buy_value, p.buy_quantity),
        "sell_quantity": lots(p.sell_quantity),
        "sell_value": value(p.sell_value),
        "sell_price": _average(instrument, p.sell_value, p.sell_quantity),
        "realised_pnl": value(p.realised),
        "unrealised_pnl": value(unrealised),
        "pnl": value(p.realised + unrealised),
        "day": {
            "trading_day": date.fromordinal(p.day).isoformat() if p.day else None,
            "buy_quantity": lots(p.day_buy_quantity),
            "buy_value": value(p.day_buy_value),
            "sell_quantity": lots(p.day_sell_quantity),
            "sell_value": value(p.day_sell_value),
        },
    }


_REASONS = {
    "POST_ONLY_WOULD_TAKE": "a post-only order would have taken liquidity",
    "FOK_NOT_FILLABLE": "a fill-or-kill order could not be filled completely",
    "NO_LIQUIDITY": "no liquidity to match a market order",
    "INVALID_POST_ONLY": "post_only is allowed on GTC/DAY limit orders only",
    "INVALID_PRICE": "invalid price",
    "INVALID_TRIGGER_PRICE": "invalid trigger price",
    "INVALID_QUANTITY": "invalid quantity",
    "DUPLICATE_ORDER_ID": "duplicate order id",
}
