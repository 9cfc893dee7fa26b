"""``GET /positions``: each account's positions and P&L from its journaled fills."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from app.store.database import Database
from tests.conftest import running_app
from tests.support.clock import FakeClock
from tests.support.positions import recomputed, stored
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, order, write_key
from tests.support.trading import place_batch as place

MONDAY_NOON_UTC = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
async def client(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings, clock=FakeClock(MONDAY_NOON_UTC)) as (_app, client):
        yield client


async def trade(
    client: httpx.AsyncClient, buyer: dict[str, str], seller: dict[str, str], qty: str, price: str
) -> None:
    """``seller`` rests, ``buyer`` takes all of it."""
    [rest] = await place(client, seller, order("sell", qty, price))
    [take] = await place(client, buyer, order("buy", qty, price))
    assert (rest["status"], take["status"]) == ("open", "filled"), (rest, take)


async def position(
    client: httpx.AsyncClient, headers: dict[str, str], symbol: str = "NSE:INFY"
) -> dict[str, Any]:
    response = await client.get(f"/positions/{symbol}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestPositions:
    async def test_a_fill_moves_both_sides(self, client: httpx.AsyncClient) -> None:
        await trade(client, ADMIN, DESK_B, "10", "1875")
        mine = await position(client, ADMIN)
        assert (mine["quantity"], mine["average_price"], mine["last_price"]) == (
            "10", "1875", "1875",
        )  # fmt: skip
        assert (mine["buy_quantity"], mine["buy_value"], mine["sell_quantity"]) == (
            "10", "18750", "0",
        )  # fmt: skip
        assert (mine["realised_pnl"], mine["unrealised_pnl"]) == ("0", "0")
        assert (await position(client, DESK_B))["quantity"] == "-10"
        assert mine["day"]["trading_day"] == "2026-12-07"

    async def test_long_to_short_realised_and_unrealised(self, client: httpx.AsyncClient) -> None:
        await trade(client, ADMIN, DESK_B, "10", "1875")
        await trade(client, ADMIN, DESK_B, "10", "1877")  # long 20 at 1876
        await trade(client, DESK_B, ADMIN, "25", "1880")  # +20 x 4 = 80; short 5 at 1880
        mine = await position(client, ADMIN)
        assert (mine["quantity"], mine["average_price"]) == ("-5", "1880")
        assert mine["realised_pnl"] == "80"
        assert mine["buy_price"] == "1876"
        assert mine["sell_price"] == "1880"
        await trade(client, ADMIN, DESK_B, "1", "1870")  # closes 1: +10; last trade 1870
        mine = await position(client, ADMIN)
        assert (mine["quantity"], mine["realised_pnl"]) == ("-4", "90")
        assert mine["unrealised_pnl"] == "40"  # short 4 from 1880, marked at 1870
        assert mine["pnl"] == "130"
        theirs = await position(client, DESK_B)
        assert (theirs["quantity"], theirs["pnl"]) == ("4", "-130")

    async def test_the_list_and_its_filter(self, client: httpx.AsyncClient) -> None:
        await trade(client, ADMIN, DESK_B, "2", "1875")
        await place(client, DESK_B, order("sell", "3", "1302.5", symbol="NSE:RELIANCE"))
        await place(client, ADMIN, order("buy", "3", "1302.5", symbol="NSE:RELIANCE"))
        listed = (await client.get("/positions", headers=ADMIN)).json()
        assert sorted((p["symbol"], p["quantity"]) for p in listed["items"]) == [
            ("NSE:INFY", "2"),
            ("NSE:RELIANCE", "3"),
        ]
        assert listed["next_cursor"] is None
        first = (await client.get("/positions?limit=1", headers=ADMIN)).json()
        assert len(first["items"]) == 1
        rest = await client.get(f"/positions?limit=1&cursor={first['next_cursor']}", headers=ADMIN)
        second = rest.json()
        assert second["next_cursor"] is None
        pages = {p["symbol"] for p in first["items"] + second["items"]}
        assert pages == {"NSE:INFY", "NSE:RELIANCE"}
        forged = await client.get("/positions?cursor=bm9wZQ", headers=ADMIN)
        assert forged.status_code == 422
        assert forged.json()["error"]["code"] == "INVALID_CURSOR"
        only = (await client.get("/positions?symbol=NSE:RELIANCE", headers=ADMIN)).json()
        assert [(p["symbol"], p["quantity"]) for p in only["items"]] == [("NSE:RELIANCE", "3")]

    async def test_another_accounts_positions_are_never_visible(
        self, client: httpx.AsyncClient
    ) -> None:
        await trade(client, ADMIN, DESK_B, "10", "1875")
        assert (await client.get("/positions", headers=READER)).json()["items"] == []
        flat = await position(client, READER)
        assert (flat["quantity"], flat["pnl"], flat["average_price"]) == ("0", "0", None)
        theirs = (await client.get("/positions", headers=DESK_B)).json()["items"]
        assert [p["quantity"] for p in theirs] == ["-10"]

    async def test_bad_input(self, client: httpx.AsyncClient) -> None:
        missing = await client.get("/positions/NSE:NOPE", headers=ADMIN)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"
        bad = await client.get("/positions", params={"symbol": "x" * 65}, headers=ADMIN)
        assert bad.status_code == 422
        assert "error" in bad.json()
        unknown = await client.get("/positions", params={"symbol": "NSE:NOPE"}, headers=ADMIN)
        assert unknown.status_code in (404, 422)
        assert "error" in unknown.json()


class TestRecomputation:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_stored_positions_equal_a_replay_of_the_fills(
        self, backend_settings: Settings, tokens_dir: Path, seed: int
    ) -> None:
        """Random orders of three accounts on two instruments (flips, partial fills, self
        trades), some days apart: what the journal stored equals a replay of ``trades``."""
        add_accounts(tokens_dir)
        write_key(tokens_dir, "desk-c", "desk-c", ["read", "trade"], "test-desk-c-key-0123456789")
        keys = [ADMIN, DESK_B, {"X-API-Key": "test-desk-c-key-0123456789"}]
        rng = random.Random(seed)
        clock = FakeClock(MONDAY_NOON_UTC)
        async with running_app(backend_settings, clock=clock) as (_app, client):
            for n in range(60):
                if n % 20 == 19:
                    clock.advance(hours=30)  # a later trading day
                symbol, base = rng.choice([("NSE:INFY", 1875), ("NSE:RELIANCE", 1302)])
                body = order(
                    rng.choice(["buy", "sell"]),
                    str(rng.randint(1, 9)),
                    f"{base + rng.randint(-3, 3)}",
                    symbol=symbol,
                    stp="none",
                )
                await place(client, rng.choice(keys), body)
            database = Database.create(
                backend_settings.db.url, data_dir=backend_settings.db.data_dir
            )
            try:
                expected = await recomputed(database)
                assert expected, "the random orders made no trade"
                assert await stored(database) == expected
            finally:
                await database.dispose()


class TestRecovery:
    async def test_positions_survive_a_restart_and_go_on_from_there(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        clock = FakeClock(MONDAY_NOON_UTC)
        async with running_app(backend_settings, clock=clock) as (_app, client):
            await trade(client, ADMIN, DESK_B, "10", "1875")
            before = await position(client, ADMIN)
        clock.advance(days=1)
        async with running_app(backend_settings, clock=clock) as (_app, client):
            after = await position(client, ADMIN)
            assert after["quantity"] == before["quantity"] == "10"
            assert after["overnight_quantity"] == "10"
            assert after["day_quantity"] == "0"
            await trade(client, DESK_B, ADMIN, "4", "1880")
            moved = await position(client, ADMIN)
            assert (moved["quantity"], moved["realised_pnl"]) == ("6", "20")
            assert (moved["overnight_quantity"], moved["day_quantity"]) == ("10", "-4")


class TestPositionLimit:
    async def test_orders_beyond_the_limit_are_rejected(
        self, make_settings: Any, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        path = tokens_dir / "desk-b.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "max_position": 30}))
        settings = make_settings(orders={"max_position": "15"})
        async with running_app(settings, clock=FakeClock(MONDAY_NOON_UTC)) as (_app, client):
            await trade(client, ADMIN, DESK_B, "10", "1875")  # long 10 (limit 15)
            [over] = await place(client, ADMIN, order("buy", "6", "1870"))
            assert over["status"] == "rejected"
            assert over["error"]["code"] == "RISK_MAX_POSITION"
            [flip] = await place(client, ADMIN, order("sell", "20", "1890"))  # 10 -> -10
            assert flip["status"] == "open"
            [beyond] = await place(client, ADMIN, order("sell", "26", "1890"))  # -> -16
            assert beyond["error"]["code"] == "RISK_MAX_POSITION"
            # desk-b's key file allows 30: from short 10, another 15 short passes
            [more] = await place(client, DESK_B, order("sell", "15", "1895"))
            assert more["status"] == "open"
