"""Kite's order history (``GET /orders/{order_id}``) from the stored ``order_history`` rows.

Each stored row (one per state the order passed through, written in the commit that moved it)
becomes Kite's entries for that step, all at the row's time, with the order as it was then
(quantity, price, trigger price, filled and pending quantities, average price of the fills so
far, reason):

- accepted: ``PUT ORDER REQ RECEIVED``, ``VALIDATION PENDING``, ``OPEN PENDING``, then
  ``OPEN`` (``TRIGGER PENDING`` for a stop);
- rejected (a new order): ``PUT ORDER REQ RECEIVED``, ``VALIDATION PENDING``, ``REJECTED``;
- amended: ``MODIFY VALIDATION PENDING``, ``MODIFY PENDING``, ``MODIFIED``, then ``OPEN`` (or
  ``TRIGGER PENDING``);
- triggered: ``OPEN``; traded: ``OPEN`` (partly filled) or ``COMPLETE``;
- cancelled by the user (or its stream's dead man's switch): ``CANCEL PENDING``, ``CANCELLED``;
- cancelled by the book (IOC rest, no liquidity, self-trade, post-only), expired: ``CANCELLED``.

The ``*PENDING`` and ``MODIFIED`` entries are the steps Kite's OMS shows between a request and
the exchange's answer; ours has none, so they carry the same time, and the pre-exchange ones
no ``exchange_timestamp``. The last entry is the order's state now: its status is the one
``GET /orders`` shows. An order journaled before the history was stored (migration 0009) has
no rows: ``rebuilt_history`` makes its entries from the order and its trades instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.services.instruments.model import Instrument
from app.services.kite.shapes import STATUSES, number, status_message
from app.services.kite.zones import kite_time
from app.services.orders.records import Fill
from app.services.render import average_price

_PRE_EXCHANGE = ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING")
_MODIFYING = ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED")
_DONE = ("COMPLETE", "CANCELLED", "REJECTED")
_ASKED_TO_CANCEL = frozenset({"USER_CANCELLED", "CANCEL_ON_DISCONNECT"})


def stored_history(
    instrument: Instrument, current: dict[str, Any], rows: Sequence[Any], trades: Sequence[Any]
) -> list[dict[str, Any]]:
    """Kite's entries for the order whose Kite shape is ``current``, from its ``order_history``
    rows and its trades (rows with ``trade_id``, ``price``, ``quantity``), both oldest first."""
    exchange = instrument.exchange
    lots, ticks = instrument.lots_to_quantity, instrument.ticks_to_price
    fills: list[Fill] = []
    next_trade = 0
    modified = False
    out: list[dict[str, Any]] = []
    for row in rows:
        while next_trade < len(trades) and trades[next_trade].trade_id <= row.seq:
            trade = trades[next_trade]  # a traded row's seq is its trade's id
            fills.append(Fill(trade.trade_id, trade.price, trade.quantity, ""))
            next_trade += 1
        when = kite_time(row.ts_ns, exchange)
        modified = modified or row.event == "amended"
        state = {
            **current,
            "status_message": status_message({"reason": row.reason}),
            "status_message_raw": row.reason,
            "order_timestamp": when,
            "exchange_update_timestamp": when,
            "modified": modified,
            "quantity": number(lots(row.quantity)),
            "price": number(None if row.price is None else ticks(row.price)),
            "trigger_price": number(
                None if row.trigger_price is None else ticks(row.trigger_price)
            ),
            "filled_quantity": number(lots(row.filled)),
            "average_price": number(average_price(instrument, fills, row.filled)),
        }
        if row.event == "accepted":
            out += [_entry(state, s, before_exchange=True) for s in _PRE_EXCHANGE]
        elif row.event == "rejected":
            out += [_entry(state, s, before_exchange=True) for s in _PRE_EXCHANGE[:2]]
        elif row.event == "amended":
            out += [_entry(state, s) for s in _MODIFYING]
        elif row.event == "cancelled" and row.reason in _ASKED_TO_CANCEL:
            out.append(_entry(state, "CANCEL PENDING"))
        out.append(_entry(state, STATUSES.get(row.status, row.status.upper()), final=True))
    return out


def _entry(
    state: dict[str, Any], status: str, *, before_exchange: bool = False, final: bool = False
) -> dict[str, Any]:
    """One entry: ``state`` (the order at a stored step) with ``status``; only the step's
    ``final`` entry gives its reason, and only after the exchange is there an exchange time."""
    quantity, filled = state["quantity"], state["filled_quantity"]
    return {
        **state,
        "status": status,
        "status_message": state["status_message"] if final else None,
        "status_message_raw": state["status_message_raw"] if final else None,
        "exchange_timestamp": None if before_exchange else state["order_timestamp"],
        "pending_quantity": 0 if status in _DONE else quantity - filled,
        "cancelled_quantity": quantity - filled if status == "CANCELLED" else 0,
    }


def rebuilt_history(
    current: dict[str, Any], fills: Sequence[tuple[int, int | float]]
) -> list[dict[str, Any]]:
    """For an order with no stored history (journaled before migration 0009): one entry per
    state it must have passed through, from its current Kite shape and its fills
    (``(ts_ns, quantity)``, oldest first); modifications are not known."""
    exchange = current["exchange"]
    placed = current["order_timestamp"]
    total = current["quantity"]

    def entry(status: str, timestamp: str | None, filled: int | float, **extra: Any) -> Any:
        done = status in _DONE
        return {
            **current,
            "status": status,
            "status_message": None,
            "order_timestamp": timestamp,
            "exchange_timestamp": timestamp if status not in _PRE_EXCHANGE else None,
            "exchange_update_timestamp": timestamp,
            "filled_quantity": filled,
            "pending_quantity": 0 if done else total - filled,
            "cancelled_quantity": 0,
            "average_price": current["average_price"] if filled else 0,
            **extra,
        }

    steps = [entry(status, placed, 0) for status in _PRE_EXCHANGE]
    if current["status"] == "REJECTED" and not fills:
        return [*steps[:2], {**current}]
    first = "TRIGGER PENDING" if current["order_type"] in ("SL", "SL-M") else "OPEN"
    steps.append(entry(first, placed, 0))
    filled: int | float = 0
    for ts_ns, quantity in fills:
        filled += quantity
        when = kite_time(ts_ns, exchange)
        if filled >= total:
            break
        steps.append(entry("OPEN", when, filled))
    if current["status"] != steps[-1]["status"] or current["filled_quantity"] != filled:
        steps.append({**current})
    elif current["status"] in _DONE:
        steps[-1] = {**current}
    return steps
