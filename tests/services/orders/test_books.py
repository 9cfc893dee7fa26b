"""The live books' memory of finished orders: bounded, the oldest forgotten first."""

from __future__ import annotations

import pytest

from app.services.orders import books
from app.services.orders.books import LiveBooks
from app.services.orders.journal import JournalUnit
from app.services.orders.records import FILLED, OPEN, OrderRecord


def _record(order_id: int, status: str) -> OrderRecord:
    return OrderRecord(
        order_id=order_id,
        account="a",
        client_order_id=None,
        batch_id=None,
        instrument_token=1,
        side="buy",
        order_type="limit",
        time_in_force="gtc",
        post_only=False,
        stp="none",
        price=100,
        trigger_price=None,
        quantity=1,
        status=status,
    )


def test_finished_orders_are_kept_newest_last_and_the_oldest_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(books, "FINISHED_KEPT", 3)
    live = LiveBooks(on_trade=lambda _token, _trade: None)
    unit = JournalUnit()
    for order_id in range(1, 6):
        live.records[order_id] = record = _record(order_id, FILLED)
        live.finish(unit, {order_id: record})
    still = _record(6, OPEN)
    live.records[6] = still
    live.finish(unit, {6: still})

    assert list(live.finished) == [3, 4, 5]
    assert list(live.records) == [6]
    assert [row[0] for row in unit.orders] == [1, 2, 3, 4, 5, 6]
