"""Webhook events derived from journal units, their stored snapshot, and their bodies.

For each order row of a unit: created in this unit -> ``order.accepted`` (``order.rejected``
if the book refused it); took part in one of the unit's trades -> ``order.filled`` or
``order.partially_filled`` with this unit's fills; ended cancelled or expired ->
``order.cancelled`` / ``order.expired``. One request can so yield several events for one
order, in that order. ``data.order`` is the order's state after the request (so a
partially filled IOC's ``order.partially_filled`` already shows status ``cancelled``).

The outbox stores a compact snapshot (the journal row and the fills, integers) because it is
written inside the order path's commit; the body with decimal strings and timestamps is
rendered from it when the message is sent, identically on every attempt.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from app.engine import Trade
from app.services.instrument import Instrument

ACCEPTED = "order.accepted"
PARTIALLY_FILLED = "order.partially_filled"
FILLED = "order.filled"
CANCELLED = "order.cancelled"
EXPIRED = "order.expired"
REJECTED = "order.rejected"
ORDER_EVENTS = (ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED)
TEST_EVENT = "webhook.test"

Fills = dict[int, list[tuple[Trade, str]]]


def iso_time(ns: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-22T09:15:00.123456Z``."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def fills_by_order(trades: Iterable[tuple[int, Trade]]) -> Fills:
    found: Fills = defaultdict(list)
    for _token, trade in trades:
        found[trade.maker_order_id].append((trade, "maker"))
        found[trade.taker_order_id].append((trade, "taker"))
    return found


def event_types(status: str, *, created: bool, traded: bool) -> list[str]:
    types = []
    if created:
        types.append(REJECTED if status == "rejected" else ACCEPTED)
    if traded:
        types.append(FILLED if status == "filled" else PARTIALLY_FILLED)
    if status == "cancelled":
        types.append(CANCELLED)
    elif status == "expired":
        types.append(EXPIRED)
    return types


def render_order(instrument: Instrument, row: dict[str, Any]) -> dict[str, Any]:
    price, trigger = row["price"], row["trigger_price"]
    lots = instrument.lots_to_quantity
    return {
        "order_id": str(row["order_id"]),
        "client_order_id": row["client_order_id"],
        "batch_id": row["batch_id"],
        "symbol": instrument.symbol,
        "instrument_token": row["instrument_token"],
        "side": row["side"],
        "type": row["order_type"],
        "time_in_force": row["time_in_force"],
        "post_only": row["post_only"],
        "price": None if price is None else instrument.ticks_to_price(price),
        "trigger_price": None if trigger is None else instrument.ticks_to_price(trigger),
        "quantity": lots(row["quantity"]),
        "status": row["status"],
        "filled_quantity": lots(row["filled"]),
        "remaining_quantity": lots(row["remaining"]),
        "reason": row["reason"],
        "created_at": iso_time(row["created_ns"]),
        "updated_at": iso_time(row["updated_ns"]),
    }


def message_id(endpoint_id: str, outbox_id: int) -> str:
    """The ``webhook-id``: unique per endpoint and row, the same on every retry."""
    return f"msg_{endpoint_id.removeprefix('we_')}_{outbox_id}"


def outbox_id_of(endpoint_id: str, message: str) -> int | None:
    """The outbox row of one of ``endpoint_id``'s message ids (None if it is not one)."""
    prefix = f"msg_{endpoint_id.removeprefix('we_')}_"
    tail = message.removeprefix(prefix)
    if tail == message or not tail.isdigit() or len(tail) > 18:
        return None
    return int(tail)


# The order fields a snapshot keeps, in order (version 1 of the stored format).
SNAPSHOT_FIELDS = (
    "order_id",
    "client_order_id",
    "batch_id",
    "instrument_token",
    "side",
    "order_type",
    "time_in_force",
    "post_only",
    "price",
    "trigger_price",
    "quantity",
    "filled",
    "remaining",
    "status",
    "reason",
    "created_ns",
    "updated_ns",
)


_snapshot_fields = operator.itemgetter(*SNAPSHOT_FIELDS)


def snapshot(row: dict[str, Any], fills: list[tuple[Trade, str]]) -> list[Any]:
    """What the outbox keeps of an order event: ``[1, [order fields], [[fill], ...]]``,
    positional and integer, because it is built and stored inside the journal's commit."""
    compact = [[t.seq, t.timestamp, t.price, t.quantity, liquidity] for t, liquidity in fills]
    return [1, _snapshot_fields(row), compact]


def render_body(
    event_type: str, created_ns: int, payload: str, instrument: Callable[[int], Instrument]
) -> bytes:
    """The JSON body sent for an outbox row."""
    data = orjson.loads(payload)
    if event_type == TEST_EVENT:
        return orjson.dumps({"type": event_type, "timestamp": iso_time(created_ns), "data": data})
    _version, values, stored_fills = data
    row = dict(zip(SNAPSHOT_FIELDS, values, strict=True))
    found = instrument(row["instrument_token"])
    fills = []
    if event_type in (FILLED, PARTIALLY_FILLED):
        fills = [
            {
                "trade_id": str(seq),
                "price": found.ticks_to_price(price),
                "quantity": found.lots_to_quantity(quantity),
                "liquidity": liquidity,
                "executed_at": iso_time(timestamp),
            }
            for seq, timestamp, price, quantity, liquidity in stored_fills
        ]
    return orjson.dumps(
        {
            "type": event_type,
            "timestamp": iso_time(row["updated_ns"]),
            "data": {"order": render_order(found, row), "fills": fills},
        }
    )
