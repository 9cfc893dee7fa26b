"""``/orderbook``, ``/trades``, ``/stats`` (and the other routes naming an instrument in their
path): trade pages, tokens for symbols, 404 for unknown instruments, the empty book's hash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, batch, order

INFY, TCS = 408065, 2953217
PATH_ROUTES = [
    ("GET", "/orderbook/{}"),
    ("GET", "/trades/{}"),
    ("GET", "/stats/{}"),
    ("GET", "/candles/{}"),
]


@pytest.fixture
async def client(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings) as (_app, client):
        yield client


async def trade_five(client: httpx.AsyncClient) -> list[str]:
    """Five INFY trades (desk-b rests, admin crosses); their trade ids, newest first."""
    prices = ["1800", "1800.05", "1800.1", "1800.15", "1800.2"]
    placed = await client.post(
        "/advanced/batch-orders",
        json=batch(*(order("sell", "1", p) for p in prices)),
        headers=DESK_B,
    )
    assert placed.json()["accepted"] == 5
    taken = await client.post(
        "/advanced/batch-orders", json=batch(order("buy", "5", "1800.2")), headers=ADMIN
    )
    fills = taken.json()["results"][0]["fills"]
    assert len(fills) == 5
    return [fill["trade_id"] for fill in reversed(fills)]


class TestTradePages:
    async def test_pages_follow_next_cursor_to_the_end(self, client: httpx.AsyncClient) -> None:
        expected = await trade_five(client)
        seen: list[str] = []
        pages = 0
        params: dict[str, str | int] = {"limit": 2}
        while True:
            page = (await client.get("/trades/NSE:INFY", params=params, headers=READER)).json()
            pages += 1
            seen += [item["trade_id"] for item in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 2, "cursor": page["next_cursor"]}
        assert seen == expected
        assert pages == 3

    async def test_an_exact_last_page_has_no_cursor(self, client: httpx.AsyncClient) -> None:
        await trade_five(client)
        page = (await client.get("/trades/NSE:INFY?limit=5", headers=READER)).json()
        assert len(page["items"]) == 5
        assert page["next_cursor"] is None

    @pytest.mark.parametrize("cursor", ["!!!", "not-base64", "WyJ4Il0", "W1tdXQ", "A" * 200])
    async def test_a_bad_cursor_is_422(self, client: httpx.AsyncClient, cursor: str) -> None:
        response = await client.get("/trades/NSE:INFY", params={"cursor": cursor}, headers=READER)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "INVALID_CURSOR"


class TestTokensForSymbols:
    async def test_every_symbol_path_takes_a_token(self, client: httpx.AsyncClient) -> None:
        await trade_five(client)
        for _method, url in PATH_ROUTES:
            by_symbol = await client.get(url.format("NSE:INFY"), headers=READER)
            by_token = await client.get(url.format(INFY), headers=READER)
            assert by_token.status_code == 200, by_token.text
            assert by_token.json() == by_symbol.json()
        stats = (await client.get(f"/stats/{INFY}", headers=READER)).json()
        assert (stats["symbol"], stats["trade_count"]) == ("NSE:INFY", 5)

    async def test_a_symbol_query_filter_takes_a_token(self, client: httpx.AsyncClient) -> None:
        await trade_five(client)
        by_token = await client.get("/orders", params={"symbol": str(INFY)}, headers=DESK_B)
        assert by_token.status_code == 200
        assert len(by_token.json()["items"]) == 5
        other = await client.get("/orders", params={"symbol": str(TCS)}, headers=DESK_B)
        assert other.json()["items"] == []


class TestUnknownInstrumentInThePath:
    @pytest.mark.parametrize(("method", "url"), PATH_ROUTES)
    async def test_is_404_by_symbol_and_by_token(
        self, client: httpx.AsyncClient, method: str, url: str
    ) -> None:
        for name in ("NSE:NOPE", "999999999"):
            response = await client.request(method, url.format(name), headers=ADMIN)
            assert response.status_code == 404, (url, name)
            assert response.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"

    @pytest.mark.parametrize("action", ["halt", "resume"])
    async def test_halt_and_resume_are_404(self, client: httpx.AsyncClient, action: str) -> None:
        response = await client.post(f"/admin/instruments/999999999/{action}", headers=ADMIN)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"

    async def test_scope_is_checked_before_the_instrument(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/admin/instruments/999999999/halt", headers=READER)
        assert response.status_code == 403
        assert (await client.get("/stats/NSE:NOPE")).status_code == 401

    async def test_in_a_body_or_a_query_it_stays_422(self, client: httpx.AsyncClient) -> None:
        placed = await client.post("/orders", json=order("buy", "1", "1", symbol="NSE:NOPE"),
                                   headers=ADMIN)  # fmt: skip
        listed = await client.get("/orders", params={"symbol": "NSE:NOPE"}, headers=ADMIN)
        for response in (placed, listed):
            assert response.status_code == 422
            assert response.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"


class TestEmptyBookHash:
    async def test_is_the_same_before_and_after_a_restart(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        async with running_app(backend_settings) as (_app, client):
            untouched = (await client.get("/stats/NSE:TCS", headers=ADMIN)).json()["book_hash"]
            placed = await client.post("/orders", json=order("buy", "1", "1800"), headers=ADMIN)
            await client.delete(f"/orders/{placed.json()['order_id']}", headers=ADMIN)
            emptied = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
        async with running_app(backend_settings) as (_app, client):
            rebuilt = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
            tcs = (await client.get("/stats/NSE:TCS", headers=ADMIN)).json()["book_hash"]
        assert emptied["orders"] == rebuilt["orders"] == 0
        assert rebuilt["book_hash"] == emptied["book_hash"]
        assert tcs == untouched is not None
