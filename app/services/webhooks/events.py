"""Webhook events derived from journal units, their stored snapshot, and their bodies.

For each order row of a unit: created in this unit -> ``order.accepted`` (``order.rejected``
if the book refused it); took part in one of the unit's trades -> ``order.filled`` or
``order.partially_filled`` with this unit's fills; ended cancelled or expired ->
``order.cancelled`` / ``order.expired``. One request can so yield several events for one
order, in that order. ``data.order`` is the order's state after the request (so a
partially filled IOC's ``order.partially_filled`` already shows status ``cancelled``).

The order path's commit stores only what the events are derived from: each request's changed
order rows (the snapshot fields), the orders it placed and its trades (``changes``). The
dispatcher derives the messages from that later (``app.store.webhooks.expand_changes``, and
in SQL on PostgreSQL, both from one table of rules, ``EVENT_RULES``), each keeping a compact
snapshot (the order row and its fills, integers); the body with decimal strings and
timestamps is rendered from it when the message is sent, identically on every attempt.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import orjson

from app.engine import Trade
from app.services.instruments.model import Instrument
from app.services.render import iso_time, render_event_fill, render_order_event
from app.store.webhooks import CHANGE_FIELDS, FILLED, PARTIALLY_FILLED, OrderSnapshot

TEST_EVENT = "webhook.test"


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


# --- what the journal's commit stores: the changes events are derived from ---------------------
#
# A batch document: ``{"v": 2, "r": routes, "u": [[changes, created, trades], ...]}``, one
# entry of "u" per journal unit (request) in commit order, holding
# - changes: the unit's order rows of accounts with endpoints, each ``[account, *SNAPSHOT_FIELDS]``
#   (``CHANGE_FIELDS``, app.store.webhooks)
# - created: the ids of the orders the unit placed
# - trades: ``[seq, timestamp, price, quantity, maker_order_id, taker_order_id]``
# and routes ``{account: {event_type: [endpoint_id, ...]}}`` as they were at the commit. A
# message keeps the snapshot ``[1, [SNAPSHOT_FIELDS...], [[seq, ts, price, qty, liquidity]]]``.
CHANGES_VERSION = 2
change_fields = operator.attrgetter(*CHANGE_FIELDS)


def trade_fields(trade: Trade) -> tuple[int, int, int, int, int, int]:
    return (
        trade.seq,
        trade.timestamp,
        trade.price,
        trade.quantity,
        trade.maker_order_id,
        trade.taker_order_id,
    )


def render_body(
    event_type: str, created_ns: int, payload: str, instrument: Callable[[int], Instrument]
) -> bytes:
    """The JSON body sent for an outbox row."""
    data = orjson.loads(payload)
    if event_type == TEST_EVENT:
        return orjson.dumps({"type": event_type, "timestamp": iso_time(created_ns), "data": data})
    _version, values, stored_fills = data
    row = OrderSnapshot(*values)
    found = instrument(row.instrument_token)
    fills = []
    if event_type in (FILLED, PARTIALLY_FILLED):
        fills = [render_event_fill(found, *fill) for fill in stored_fills]
    return orjson.dumps(
        {
            "type": event_type,
            "timestamp": iso_time(row.updated_ns),
            "data": {"order": render_order_event(found, row), "fills": fills},
        }
    )
