"""Kite's order history from the stored ``order_history`` rows, and Kite's terms (product,
validity, TTL, tag) in the order's own columns: through the official client, on both storage
backends, across a restart."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from app.settings import Settings
from app.store.journal import order_history
from tests.kite.support import DESK_B, call, client, kite_server
from tests.kite.test_connect import place
from tests.support.cluster import two_gateways_and_a_matcher
from tests.support.trading import ADMIN, DESK_B_KEY, add_accounts

# What the client's history entries are compared on.
FIELDS = ("status", "quantity", "price", "filled_quantity", "pending_quantity")


def steps(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(entry[name] for name in FIELDS) for entry in history]


PLACED = [
    ("PUT ORDER REQ RECEIVED", 6, 1875.5, 0, 6),
    ("VALIDATION PENDING", 6, 1875.5, 0, 6),
    ("OPEN PENDING", 6, 1875.5, 0, 6),
    ("OPEN", 6, 1875.5, 0, 6),
]
MODIFIED = [
    ("MODIFY VALIDATION PENDING", 8, 1875.0, 0, 8),
    ("MODIFY PENDING", 8, 1875.0, 0, 8),
    ("MODIFIED", 8, 1875.0, 0, 8),
    ("OPEN", 8, 1875.0, 0, 8),
]


class TestHistory:
    async def test_place_modify_partial_fill_cancel(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        async with kite_server(backend_settings, tokens_dir) as live:
            a, b = client(live), client(live, DESK_B, DESK_B_KEY)
            order_id = await place(a, "SELL", 6, 1875.5, product="MIS", tag="h-1")
            await call(a.modify_order, "regular", order_id, quantity=8, price=1875.0)
            await place(b, "BUY", 3, None)
            await call(a.cancel_order, "regular", order_id)

            history = await call(a.order_history, order_id)
            assert steps(history) == [
                *PLACED,
                *MODIFIED,
                ("OPEN", 8, 1875.0, 3, 5),
                ("CANCEL PENDING", 8, 1875.0, 3, 5),
                ("CANCELLED", 8, 1875.0, 3, 0),
            ]
            assert [h["average_price"] for h in history[-3:]] == [1875.0] * 3
            assert [h["modified"] for h in history] == [False] * 4 + [True] * 7
            assert all(h["exchange_timestamp"] is None for h in history[:3])
            times = [h["order_timestamp"] for h in history]
            assert all(isinstance(t, datetime.datetime) for t in times)
            assert times == sorted(times)
            assert {(h["order_id"], h["product"], h["tag"]) for h in history} == {
                (order_id, "MIS", "h-1")
            }
            # The last entry is the order as the order book shows it now.
            [now] = await call(a.orders)
            last = history[-1]
            for name in ("status", "filled_quantity", "pending_quantity", "average_price"):
                assert last[name] == now[name], name
            assert (last["cancelled_quantity"], now["cancelled_quantity"]) == (5, 5)
            assert now["modified"] is True

    async def test_book_side_endings_have_no_pending_step(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        async with kite_server(backend_settings, tokens_dir) as live:
            a, b = client(live), client(live, DESK_B, DESK_B_KEY)
            await place(a, "SELL", 2, 1875.5)
            ioc = await place(b, "BUY", 5, 1875.5, validity="IOC")
            stop = await place(b, "BUY", 1, 1890.0, order_type="SL", trigger_price=1885.0)
            ioc_steps = [h["status"] for h in await call(b.order_history, ioc)]
            assert ioc_steps[3:] == ["OPEN", "OPEN", "CANCELLED"]  # 2 filled, the rest dropped
            stop_steps = [h["status"] for h in await call(b.order_history, stop)]
            assert stop_steps[3:] == ["TRIGGER PENDING"]
            cancelled = (await call(b.order_history, ioc))[-1]
            assert cancelled["status_message_raw"] == "IOC_UNFILLED"

    async def test_an_order_journaled_before_the_history_gets_a_rebuilt_one(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        async with kite_server(backend_settings, tokens_dir) as live:
            a, b = client(live), client(live, DESK_B, DESK_B_KEY)
            order_id = await place(a, "SELL", 6, 1875.5)
            await place(b, "BUY", 2, None)
            async with live.state["database"].engine.begin() as conn:  # as before 0009
                await conn.execute(delete(order_history))
            history = await call(a.order_history, order_id)
        assert steps(history) == [*PLACED, ("OPEN", 6, 1875.5, 2, 4)]

    async def test_survives_a_restart_and_ttl_is_armed_again_from_the_column(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        async with kite_server(backend_settings, tokens_dir) as live:
            a = client(live)
            order_id = await place(a, "BUY", 6, 1875.5, validity="TTL", validity_ttl=3, tag="r")
            await call(a.modify_order, "regular", order_id, quantity=8, price=1875.0)
            before = await call(a.order_history, order_id)
        async with kite_server(backend_settings, tokens_dir) as live:
            a = client(live)
            after = await call(a.order_history, order_id)
            assert after == before
            assert [s[0] for s in steps(after)] == [s[0] for s in PLACED + MODIFIED]
            [order] = await call(a.orders)
            assert (order["validity"], order["validity_ttl"], order["tag"]) == ("TTL", 3, "r")
            # The TTL read back from the order's columns: armed at start, and again here with
            # "minutes" of 0.1 s, so that it runs out now.
            orders = live.state["kite"].orders
            orders.stop()
            orders.ttl_unit_seconds = 0.1
            assert await orders.rearm_ttl(time.time_ns()) == 1
            for _ in range(50):
                [order] = await call(a.orders)
                if order["status"] != "OPEN":
                    break
                await asyncio.sleep(0.1)
            assert order["status"] == "CANCELLED"
            assert (await call(a.order_history, order_id))[-1]["status"] == "CANCELLED"


class TestTerms:
    async def test_round_trip_and_our_api_neither_takes_nor_needs_them(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        async with kite_server(backend_settings, tokens_dir) as live:
            a, b = client(live), client(live, DESK_B, DESK_B_KEY)
            sell = await place(a, "SELL", 2, 1875.5, product="NRML", tag="t.9_x-")
            buy = await place(b, "BUY", 2, None, product="MIS", validity="IOC")
            [sold] = await call(a.orders)
            assert (sold["product"], sold["validity"], sold["tag"], sold["tags"]) == (
                "NRML",
                "DAY",
                "t.9_x-",
                ["t.9_x-"],
            )
            [trade] = await call(b.trades)
            assert (trade["order_id"], trade["product"]) == (buy, "MIS")
            ours = (await live.http.get(f"/orders/{sell}", headers=ADMIN)).json()
            assert ours["client_order_id"] is None
            assert ours["kite"] == {
                "product": "NRML",
                "validity": "DAY",
                "validity_ttl": None,
                "tag": "t.9_x-",
            }
            # Our own API: its orders have none, and it takes none.
            body = {"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1870"}
            placed = await live.http.post("/orders", json=body, headers=ADMIN)
            assert placed.status_code == 201
            mine = await live.http.get(f"/orders/{placed.json()['order_id']}", headers=ADMIN)
            assert mine.json()["kite"] is None
            refused = await live.http.post(
                "/orders", json={**body, "kite": {"product": "MIS"}}, headers=ADMIN
            )
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "VALIDATION_ERROR"
            # Kite shows an order of our own API with Kite's default product.
            kite_view = {o["order_id"]: o for o in await call(a.orders)}
            assert kite_view[placed.json()["order_id"]]["product"] == "CNC"


class TestThroughAGateway:
    async def test_terms_and_history_cross_the_stream_to_the_matcher(
        self, make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        async with two_gateways_and_a_matcher(make_settings, pg_url) as (gateway, other, _m):
            kite = client(gateway)
            order_id = await place(
                kite, "BUY", 6, 1875.5, product="NRML", validity="TTL", validity_ttl=9, tag="g-1"
            )
            await call(kite.modify_order, "regular", order_id, quantity=8, price=1875.0)
            [order] = await call(client(other).orders)  # the other gateway reads it back
            assert (order["product"], order["validity"], order["validity_ttl"], order["tag"]) == (
                "NRML",
                "TTL",
                9,
                "g-1",
            )
            history = await call(client(other).order_history, order_id)
            assert [s[0] for s in steps(history)] == [s[0] for s in PLACED + MODIFIED]
