"""The one renderer: instants, and an order shown alike on every channel."""

from __future__ import annotations

from app.services.orders.records import Fill, OrderRecord
from app.services.render import (
    iso_time,
    iso_time_or_none,
    order_fields,
    render_account_fill,
    render_event_fill,
    render_order,
    render_order_event,
    render_order_update,
)
from tests.support.instruments import future

INSTRUMENT = future(tick="0.05", lot="25")
CREATED_NS = 1_795_000_000_123_456_789


def record() -> OrderRecord:
    return OrderRecord(
        order_id=7,
        account="desk-a",
        client_order_id="c-7",
        batch_id="b1",
        instrument_token=INSTRUMENT.instrument_token,
        side="buy",
        order_type="limit",
        time_in_force="GTC",
        post_only=False,
        stp="cancel_newest",
        price=2001,  # ticks: 100.05
        trigger_price=None,
        quantity=4,  # lots: 100 units
        filled=1,
        remaining=3,
        status="partially_filled",
        created_ns=CREATED_NS,
        updated_ns=CREATED_NS + 1_000,
        fills=[Fill(trade_id=3, price=2001, quantity=1, liquidity="maker")],
    )


class TestInstants:
    def test_microseconds_and_z(self) -> None:
        assert iso_time(CREATED_NS) == "2026-11-18T11:06:40.123456Z"
        assert iso_time(0) == "1970-01-01T00:00:00Z"

    def test_exact_where_a_float_would_round(self) -> None:
        # 999_999 µs and 999 ns: a float of the seconds rounds this up to the next second.
        assert iso_time(1_795_000_000_999_999_999) == "2026-11-18T11:06:40.999999Z"

    def test_unknown_instant_is_none(self) -> None:
        assert iso_time_or_none(0) is None
        assert iso_time_or_none(None) is None
        assert iso_time_or_none(CREATED_NS) == iso_time(CREATED_NS)


class TestOneOrderEverywhere:
    def test_every_channel_shows_the_same_common_fields(self) -> None:
        order = record()
        common = order_fields(INSTRUMENT, order.to_row())
        assert common["price"] == "100.05"
        assert common["quantity"] == "100"
        assert common["filled_quantity"] == "25"
        assert common["remaining_quantity"] == "75"
        api = render_order(INSTRUMENT, order)
        update = render_order_update(INSTRUMENT, order.to_row(), created=True)
        event = render_order_event(INSTRUMENT, order.to_row())
        for shown in (api, update, event):
            assert {k: shown[k] for k in common} == common

    def test_each_channel_adds_its_own_fields(self) -> None:
        order = record()
        api = render_order(INSTRUMENT, order)
        assert api["average_price"] == "100.05"
        assert api["fills"] == [
            {"trade_id": "3", "price": "100.05", "quantity": "25", "liquidity": "maker"}
        ]
        assert (api["created_ns"], api["created_at"]) == (CREATED_NS, iso_time(CREATED_NS))
        update = render_order_update(INSTRUMENT, order.to_row(), created=False)
        assert update["created"] is False
        assert "created_at" not in update
        event = render_order_event(INSTRUMENT, order.to_row())
        assert event["updated_at"] == iso_time(CREATED_NS + 1_000)
        assert "created_ns" not in event

    def test_a_rejected_order_carries_its_error(self) -> None:
        order = record()
        order.status, order.reason = "rejected", "POST_ONLY_WOULD_TAKE"
        error = render_order(INSTRUMENT, order)["error"]
        assert error["code"] == "POST_ONLY_WOULD_TAKE"
        assert error["message"]


class TestFills:
    def test_account_fill_names_its_instant_per_channel(self) -> None:
        fields = {
            "trade_id": 3,
            "order_id": 7,
            "client_order_id": None,
            "side": "sell",
            "price": 2001,
            "quantity": 2,
            "liquidity": "taker",
            "ts_ns": CREATED_NS,
        }
        rest = render_account_fill(INSTRUMENT, **fields)
        socket = render_account_fill(INSTRUMENT, **fields, time_key="timestamp")
        assert rest["time"] == socket["timestamp"] == iso_time(CREATED_NS)
        assert "timestamp" not in rest
        assert rest["quantity"] == "50"
        assert rest["instrument_token"] == INSTRUMENT.instrument_token

    def test_webhook_fill(self) -> None:
        assert render_event_fill(INSTRUMENT, 3, CREATED_NS, 2001, 1, "maker") == {
            "trade_id": "3",
            "price": "100.05",
            "quantity": "25",
            "liquidity": "maker",
            "executed_at": iso_time(CREATED_NS),
        }
