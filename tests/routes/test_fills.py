"""``GET /fills``: the account's own fills, newest first, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, order
from tests.support.trading import place_batch as place

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings) as (_app, client):
        yield client


async def fills(
    client: httpx.AsyncClient, headers: dict[str, str] = ADMIN, **params: Any
) -> dict[str, Any]:
    response = await client.get("/fills", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def every_page(client: httpx.AsyncClient, limit: int, **params: Any) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        page = await fills(client, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def cursor_of(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


class TestFills:
    async def test_each_account_sees_its_own_fills_newest_first(
        self, client: httpx.AsyncClient
    ) -> None:
        (maker,) = await place(client, ADMIN, order("sell", "10", "1875.4", client_order_id="m1"))
        (first,) = await place(client, DESK_B, order("buy", "4", "1875.5", client_order_id="t1"))
        (second,) = await place(client, DESK_B, order("buy", "3", "1875.4"))

        mine = (await fills(client))["items"]
        assert [f["trade_id"] for f in mine] == [
            second["fills"][0]["trade_id"],
            first["fills"][0]["trade_id"],
        ]
        newest = mine[0]
        assert {k: v for k, v in newest.items() if k not in ("trade_id", "time", "ts_ns")} == {
            "order_id": maker["order_id"],
            "client_order_id": "m1",
            "symbol": "NSE:INFY",
            "instrument_token": 408065,
            "side": "sell",
            "price": "1875.4",
            "quantity": "3",
            "liquidity": "maker",
        }
        assert newest["time"].endswith("Z")
        at = datetime.fromisoformat(newest["time"])
        assert at == EPOCH + timedelta(microseconds=newest["ts_ns"] // 1000)
        assert mine[0]["ts_ns"] >= mine[1]["ts_ns"]

        theirs = (await fills(client, DESK_B))["items"]
        assert [(f["side"], f["liquidity"], f["client_order_id"]) for f in theirs] == [
            ("buy", "taker", None),
            ("buy", "taker", "t1"),
        ]
        assert [f["order_id"] for f in theirs] == [second["order_id"], first["order_id"]]
        assert await fills(client, READER) == {"items": [], "next_cursor": None}
        assert (await client.get("/fills")).status_code == 401

    async def test_a_self_trade_is_two_fills_of_one_trade(self, client: httpx.AsyncClient) -> None:
        await place(client, ADMIN, order("sell", "2", "1875", stp="none"))
        await place(client, ADMIN, order("buy", "2", "1875", stp="none"))
        both = (await fills(client))["items"]
        assert [(f["liquidity"], f["side"]) for f in both] == [("taker", "buy"), ("maker", "sell")]
        assert both[0]["trade_id"] == both[1]["trade_id"]
        # A page boundary between the two halves of one trade loses neither.
        assert await every_page(client, 1) == both

    async def test_pages_follow_the_cursor(self, client: httpx.AsyncClient) -> None:
        await place(client, ADMIN, order("sell", "5", "1875"))
        for _ in range(5):
            await place(client, DESK_B, order("buy", "1", "1875"))
        everything = (await fills(client))["items"]
        assert len(everything) == 5
        assert await every_page(client, 2) == everything
        page = await fills(client, limit=5)
        assert page["next_cursor"] is None

        forged = [
            "zzz",
            cursor_of(1, 2),
            cursor_of(1, 2, "neither"),
            cursor_of("1", 2, "maker"),
            cursor_of(1, 2**63, "maker"),
        ]
        for cursor in forged:
            response = await client.get("/fills", params={"cursor": cursor}, headers=ADMIN)
            assert response.status_code == 422, cursor
            assert response.json()["error"]["code"] == "INVALID_CURSOR"

    async def test_filters_by_symbol_and_time(self, client: httpx.AsyncClient) -> None:
        reliance_offer = order("sell", "5", "1300", symbol="NSE:RELIANCE")
        await place(client, ADMIN, order("sell", "5", "1875"), reliance_offer)
        await place(client, DESK_B, order("buy", "1", "1875"))
        await place(client, DESK_B, order("buy", "1", "1300", symbol="NSE:RELIANCE"))
        await place(client, DESK_B, order("buy", "1", "1875"))
        everything = (await fills(client))["items"]
        reliance = (await fills(client, symbol="NSE:RELIANCE"))["items"]
        assert [f["symbol"] for f in reliance] == ["NSE:RELIANCE"]
        assert reliance == [f for f in everything if f["symbol"] == "NSE:RELIANCE"]

        newest, middle, oldest = everything
        since = (await fills(client, start=middle["time"]))["items"]
        assert since == [newest, middle]
        before = (await fills(client, end=middle["time"]))["items"]
        assert before == [oldest]
        window = (await fills(client, start=oldest["time"], end=newest["time"]))["items"]
        assert window == [middle, oldest]
        assert (await fills(client, start="2262-04-01"))["items"] == []

        refused = {
            "start=yesterday": "INVALID_TIME",
            f"start={newest['time']}&end={oldest['time']}": "INVALID_TIME_RANGE",
            "end=1900-01-01": "INVALID_TIME_RANGE",
            "start=9999-01-01": "INVALID_TIME_RANGE",
        }
        for query, code in refused.items():
            response = await client.get(f"/fills?{query}", headers=ADMIN)
            assert response.status_code == 422, query
            assert response.json()["error"]["code"] == code, query
        unknown = await client.get("/fills?symbol=NSE:NOPE", headers=ADMIN)
        assert unknown.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"
