"""Durable instrument subscriptions: CRUD, scopes, validation, and their effect (the owning
replica publishes the instrument's ticks to Redis with no client connected)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from app.services.orders.journal_queries import encode_cursor
from app.settings import Settings
from tests.conftest import REDIS_URL, running_app
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, batch, order

INFY, TCS = 408065, 2953217


@pytest.fixture
async def app_client(
    backend_settings: Settings, tokens_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings) as (_app, client):
        yield client, backend_settings


class TestSubscriptionsCrud:
    async def test_create_list_change_delete(
        self, app_client: tuple[httpx.AsyncClient, Settings]
    ) -> None:
        client, _ = app_client
        created = await client.post(
            "/subscriptions", json={"symbol": "NSE:INFY", "mode": "full"}, headers=ADMIN
        )
        assert created.status_code == 201
        body = created.json()
        assert body["instrument_token"] == INFY
        assert body["symbol"] == "NSE:INFY"
        assert (body["mode"], body["status"], body["updated_by"]) == ("full", "active", "default")
        assert body["created_at"].endswith("Z")
        second = await client.post("/subscriptions", json={"instrument_token": TCS}, headers=ADMIN)
        assert second.json()["mode"] == "quote"

        changed = await client.post(
            "/subscriptions",
            json={"instrument_token": INFY, "mode": "ltp", "status": "paused"},
            headers=ADMIN,
        )
        assert changed.status_code == 200
        assert (changed.json()["mode"], changed.json()["status"]) == ("ltp", "paused")
        assert changed.json()["created_at"] == body["created_at"]

        listed = (await client.get("/subscriptions", headers=READER)).json()
        assert [i["instrument_token"] for i in listed["items"]] == [INFY, TCS]
        assert listed["next_cursor"] is None
        page = (await client.get("/subscriptions?limit=1", headers=READER)).json()
        assert [i["instrument_token"] for i in page["items"]] == [INFY]
        rest = (
            await client.get(f"/subscriptions?limit=1&cursor={page['next_cursor']}", headers=READER)
        ).json()
        assert [i["instrument_token"] for i in rest["items"]] == [TCS]

        deleted = await client.delete(f"/subscriptions/{INFY}", headers=ADMIN)
        assert deleted.status_code == 200
        assert deleted.json()["deleted"] is True
        again = await client.delete(f"/subscriptions/{INFY}", headers=ADMIN)
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"
        health = (await client.get("/health")).json()
        assert health["ticker"]["durable_subscriptions"] == 1

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({}, "VALIDATION_ERROR"),
            ({"symbol": "NSE:INFY", "instrument_token": INFY}, "VALIDATION_ERROR"),
            ({"symbol": "NSE:INFY", "mode": "tick"}, "VALIDATION_ERROR"),
            ({"symbol": "NSE:INFY", "status": "gone"}, "VALIDATION_ERROR"),
            ({"symbol": "NSE:INFY", "extra": 1}, "VALIDATION_ERROR"),
            ({"symbol": "NSE:NOPE"}, "UNKNOWN_INSTRUMENT"),
            ({"instrument_token": 12345}, "UNKNOWN_INSTRUMENT"),
            ({"symbol": "INFY"}, "AMBIGUOUS_SYMBOL"),
        ],
    )
    async def test_bad_bodies_are_422(
        self, app_client: tuple[httpx.AsyncClient, Settings], body: dict, code: str
    ) -> None:
        client, _ = app_client
        response = await client.post("/subscriptions", json=body, headers=ADMIN)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == code
        assert (await client.get("/subscriptions", headers=ADMIN)).json()["items"] == []

    async def test_scopes(self, app_client: tuple[httpx.AsyncClient, Settings]) -> None:
        client, _ = app_client
        assert (await client.get("/subscriptions")).status_code == 401
        assert (await client.get("/subscriptions", headers=READER)).status_code == 200
        refused = await client.post("/subscriptions", json={"symbol": "NSE:INFY"}, headers=DESK_B)
        assert refused.status_code == 403
        assert (await client.delete(f"/subscriptions/{INFY}", headers=READER)).status_code == 403
        assert (await client.get("/subscriptions?cursor=%%%", headers=READER)).status_code == 422
        for cursor in (encode_cursor(2**63), encode_cursor(-1), encode_cursor("x")):
            bad = await client.get(f"/subscriptions?cursor={cursor}", headers=READER)
            assert bad.json()["error"]["code"] == "INVALID_CURSOR"
        huge = await client.delete(f"/subscriptions/{2**70}", headers=ADMIN)
        assert huge.status_code == 404


class TestDurablePublishing:
    async def test_a_subscribed_instrument_is_published_with_no_client(
        self, app_client: tuple[httpx.AsyncClient, Settings]
    ) -> None:
        client, settings = app_client
        await client.post("/subscriptions", json={"symbol": "NSE:INFY"}, headers=ADMIN)
        await client.post(
            "/advanced/batch-orders", json=batch(order("sell", "3", "1875.4")), headers=ADMIN
        )
        await client.post(
            "/advanced/batch-orders",
            json=batch(order("sell", "3", "4102.3", symbol="NSE:TCS")),
            headers=ADMIN,
        )
        redis = aioredis.from_url(REDIS_URL)
        key = f"{settings.redis.prefix}ticker:last"
        try:
            for _ in range(100):
                stored = await redis.hget(key, str(INFY))
                if stored is not None:
                    break
                await asyncio.sleep(0.05)
            assert stored is not None
            tick = orjson.loads(stored)
            assert (tick["symbol"], tick["ask"], tick["ask_quantity"]) == (
                "NSE:INFY",
                "1875.4",
                "3",
            )
            assert await redis.hget(key, str(TCS)) is None  # not subscribed, nobody watching
        finally:
            await redis.aclose()
