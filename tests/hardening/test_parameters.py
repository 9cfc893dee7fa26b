"""Parameters in the URL: out-of-range numbers, forged cursors, garbage time ranges, and
values that only the database would refuse (NUL characters, integers past BIGINT).

Each must be a 422 with a stable code, never a 5xx, and must change nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.main import create_app
from app.settings import Settings
from tests.conftest import running_app
from tests.hardening.support import HOOKS, error
from tests.support.trading import ADMIN, add_accounts


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


GARBAGE_CURSORS = [
    "!!!", "not-base64", "%00", cursor_of({}), cursor_of([]), cursor_of([1, 2, 3]),
    cursor_of(["x"]), cursor_of([10**19]), cursor_of([-(10**19)]), cursor_of(["x", "y"]),
    cursor_of([1.5, None]), cursor_of([None, None]), cursor_of([10**19, "b"]), cursor_of("x"),
    cursor_of([[1], {"a": 1}]), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
]  # fmt: skip
LISTS = ["/orders", "/advanced/batch-orders", "/instruments", "/advanced/webhooks",
         "/subscriptions", "/trades/NSE:INFY", "/fills"]  # fmt: skip


class TestQueryParameters:
    async def test_depth_and_limit_out_of_range(self, client: httpx.AsyncClient) -> None:
        for value in ("0", "101", "-1", "x", "1e3", str(10**30), "", "1.5", "１"):
            response = await client.get(f"/orderbook/NSE:INFY?depth={value}", headers=ADMIN)
            error(response, 422, "VALIDATION_ERROR")
        for url in LISTS:
            for value in ("0", "1001", "-5", str(10**30), "abc"):
                response = await client.get(url, params={"limit": value}, headers=ADMIN)
                error(response, 422, "VALIDATION_ERROR")

    async def test_candle_ranges(self, client: httpx.AsyncClient) -> None:
        for params in (
            {"interval": "7m"}, {"interval": "\x00"}, {"start": "yesterday"},
            {"start": "99999-01-01"}, {"start": "2026-13-01"}, {"start": "\x00"},
            {"start": "2026-01-01T00:00:00+99:00"}, {"start": "1" * 64}, {"start": "1e308"},
            {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            {"start": "0001-01-01T00:00:00Z"}, {"end": "9999-12-31T23:59:59Z"},
            {"start": "1970-01-02T00:00:00Z", "end": "2262-01-01T00:00:00Z", "interval": "1m"},
        ):  # fmt: skip
            response = await client.get("/candles/NSE:INFY", params=params, headers=ADMIN)
            codes = ("INVALID_INTERVAL", "INVALID_TIME", "INVALID_TIME_RANGE", "TOO_MANY_CANDLES")
            error(response, 422, "VALIDATION_ERROR", *codes)

    @pytest.mark.parametrize("url", LISTS)
    async def test_cursor_garbage(self, client: httpx.AsyncClient, url: str) -> None:
        for cursor in [*GARBAGE_CURSORS, "A" * 201]:
            response = await client.get(url, params={"cursor": cursor}, headers=ADMIN)
            error(response, 422, "INVALID_CURSOR", "VALIDATION_ERROR")

    async def test_path_ids_out_of_range(self, client: httpx.AsyncClient) -> None:
        for value in (str(2**63), str(10**40), "-1", "0", "1e3", "x"):
            for method, url in (("GET", "/orders/{}"), ("DELETE", "/orders/{}"),
                                ("GET", "/instruments/{}"),
                                ("POST", "/admin/instruments/{}/halt")):  # fmt: skip
                response = await client.request(method, url.format(value), headers=ADMIN)
                error(response, 422, "VALIDATION_ERROR")


NOT_FOUND = (
    "BATCH_NOT_FOUND",
    "WEBHOOK_NOT_FOUND",
    "WEBHOOK_DELIVERY_NOT_FOUND",
    "SUBSCRIPTION_NOT_FOUND",
)
INVALID = ("VALIDATION_ERROR", "INVALID_WEBHOOK_URL", "UNKNOWN_INSTRUMENT")


class TestValuesTheDatabaseRefuses:
    """NUL characters and integers past BIGINT reach PostgreSQL only if a route lets them
    through; then the database refuses them, which is still a 422, never a 500."""

    async def test_nul_and_huge_integers(
        self, make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        settings = make_settings(db={"url": pg_url}, webhooks={"allow_loopback": True})
        async with running_app(settings) as (_app, client):
            hook = await client.post(HOOKS, json={"url": "http://127.0.0.1:9/h"}, headers=ADMIN)
            endpoint = hook.json()["id"]
            before = (await client.get(HOOKS, headers=ADMIN)).json()
            json_headers = ADMIN | {"Content-Type": "application/json"}
            for method, url, body in [
                ("GET", "/advanced/batch-orders/%00", None),
                ("GET", f"{HOOKS}/we_%00", None),
                ("GET", f"{HOOKS}/{endpoint}/deliveries/msg_%00", None),
                ("DELETE", f"{HOOKS}/we_%00", None),
                ("POST", HOOKS, b'{"url": "http://127.0.0.1:9/h", "description": "a\\u0000"}'),
                ("POST", HOOKS, b'{"url": "http://127.0.0.1:9/h\\u0000"}'),
                ("PATCH", f"{HOOKS}/{endpoint}", b'{"description": "a\\u0000"}'),
                ("DELETE", f"/subscriptions/{2**63}", None),
                ("POST", "/subscriptions", b'{"symbol": "NSE:INFY\\u0000"}'),
            ]:
                response = await client.request(method, url, content=body, headers=json_headers)
                # refused at the route (no such id: 404) or by the database (422)
                if response.status_code == 404:
                    error(response, 404, *NOT_FOUND)
                else:
                    error(response, 422, *INVALID)
            # A lone surrogate is not text: refused as JSON, as on the order routes.
            body = b'{"description": "\\ud800"}'
            response = await client.patch(f"{HOOKS}/{endpoint}", content=body, headers=ADMIN)
            error(response, 400, "INVALID_JSON")
            assert (await client.get(HOOKS, headers=ADMIN)).json() == before


class TestDatabaseErrorsAtTheEdge:
    """What the error handlers make of the database's refusals, on a route of their own."""

    async def test_refused_value_is_422_and_unreachable_database_is_503(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        app = create_app(make_settings(db={"url": pg_url}))
        router = APIRouter()

        @router.get("/probe/cast/{value}")
        async def cast(value: int, connection: Request) -> dict[str, Any]:
            database = connection.scope["state"]["database"]
            async with database.engine.connect() as conn:
                row = await conn.execute(text("SELECT CAST(:v AS BIGINT)"), {"v": value})
            return {"value": row.scalar()}

        @router.get("/probe/unreachable")
        async def unreachable() -> None:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

        app.include_router(router)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ok = await client.get("/probe/cast/5")
                too_big = await client.get(f"/probe/cast/{2**70}")
                down = await client.get("/probe/unreachable")
        assert ok.json() == {"value": 5}
        assert error(too_big, 422, "VALIDATION_ERROR")["message"].startswith("a value in the")
        assert str(2**70) not in too_big.text
        error(down, 503, "DATABASE_UNAVAILABLE")
        assert down.headers["retry-after"] == "1"
