"""Order and fill updates for ``/ws/orders``, rendered from committed journal units.

Per unit, an account gets its fills first (``{"type": "fill", "fill": {...}}``), then each of
its orders' new state (``{"type": "order", "order": {...}}``), then each position the fills
moved (``{"type": "position", "position": {...}}``, marked at the unit's last trade price),
in journal order. Only the
accounts in ``wanted`` are rendered, so an idle stream costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable

import orjson

from app.services.instruments.model import Instrument
from app.services.orders.journal import JournalUnit
from app.services.render import render_account_fill, render_order_update, render_position

InstrumentOf = Callable[[int], Instrument | None]


def order_events(
    units: Iterable[JournalUnit], wanted: Container[str], instrument_of: InstrumentOf
) -> list[tuple[str, str, bytes]]:
    """(account, "fill"|"order", message) for each update of an account in ``wanted``."""
    out: list[tuple[str, str, bytes]] = []
    for unit in units:
        rows = {row.order_id: row for row in unit.orders}
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
                fill = render_account_fill(
                    instrument,
                    trade_id=trade.seq,
                    order_id=order_id,
                    client_order_id=None if row is None else row.client_order_id,
                    side=side,
                    price=trade.price,
                    quantity=trade.quantity,
                    liquidity=liquidity,
                    ts_ns=trade.timestamp,
                    time_key="timestamp",
                )
                out.append((account, "fill", orjson.dumps({"type": "fill", "fill": fill})))
        for row in unit.orders:
            account = row.account
            if account not in wanted:
                continue
            instrument = instrument_of(row.instrument_token)
            if instrument is None:
                continue
            order = render_order_update(instrument, row, created=row.order_id in unit.created)
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
