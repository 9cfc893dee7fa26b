"""Order and fill updates for ``/ws/orders``, rendered from committed journal units.

Per unit, an account gets its fills first (``{"type": "fill", "fill": {...}}``), then each of
its orders' new state (``{"type": "order", "order": {...}}``), then each position the fills
moved (``{"type": "position", "position": {...}}``, marked at the unit's last trade price),
in journal order. Only the
accounts in ``wanted`` are rendered, so an idle stream costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Any

import orjson

from app.services.instrument import Instrument
from app.services.orders.journal import JournalUnit
from app.services.positions.reads import render_position
from app.services.ticker.ticks import iso

InstrumentOf = Callable[[int], Instrument | None]


def render_order(instrument: Instrument, row: dict[str, Any], created: bool) -> dict[str, Any]:
    price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
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
        "price": None if row["price"] is None else price(row["price"]),
        "trigger_price": None if row["trigger_price"] is None else price(row["trigger_price"]),
        "quantity": qty(row["quantity"]),
        "status": row["status"],
        "filled_quantity": qty(row["filled"]),
        "remaining_quantity": qty(row["remaining"]),
        "reason": row["reason"],
        "created": created,
        "created_ns": row["created_ns"],
        "updated_ns": row["updated_ns"],
    }


def order_events(
    units: Iterable[JournalUnit], wanted: Container[str], instrument_of: InstrumentOf
) -> list[tuple[str, str, bytes]]:
    """(account, "fill"|"order", message) for each update of an account in ``wanted``."""
    out: list[tuple[str, str, bytes]] = []
    for unit in units:
        rows = {row["order_id"]: row for row in unit.orders}
        for token, trade in unit.trades:
            instrument = instrument_of(token)
            if instrument is None:
                continue
            maker_side = "sell" if trade.taker_side.value == "buy" else "buy"
            for account, order_id, side, liquidity in (
                (trade.maker_account, trade.maker_order_id, maker_side, "maker"),
                (trade.taker_account, trade.taker_order_id, trade.taker_side.value, "taker"),
            ):
                if account not in wanted:
                    continue
                row = rows.get(order_id)
                fill = {
                    "trade_id": str(trade.seq),
                    "order_id": str(order_id),
                    "client_order_id": None if row is None else row["client_order_id"],
                    "symbol": instrument.symbol,
                    "instrument_token": token,
                    "side": side,
                    "price": instrument.ticks_to_price(trade.price),
                    "quantity": instrument.lots_to_quantity(trade.quantity),
                    "liquidity": liquidity,
                    "timestamp": iso(trade.timestamp),
                    "ts_ns": trade.timestamp,
                }
                out.append((account, "fill", orjson.dumps({"type": "fill", "fill": fill})))
        for row in unit.orders:
            account = row["account"]
            if account not in wanted:
                continue
            instrument = instrument_of(row["instrument_token"])
            if instrument is None:
                continue
            order = render_order(instrument, row, row["order_id"] in unit.created)
            out.append((account, "order", orjson.dumps({"type": "order", "order": order})))
        for p in unit.positions or ():
            if p.account not in wanted:
                continue
            instrument = instrument_of(p.instrument_token)
            if instrument is None:
                continue
            last = next(t.price for k, t in reversed(unit.trades) if k == p.instrument_token)
            position = render_position(instrument, p, last)
            message = orjson.dumps({"type": "position", "position": position})
            out.append((p.account, "position", message))
    return out
