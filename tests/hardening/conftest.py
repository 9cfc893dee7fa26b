"""The app the request-limit tests attack: PostgreSQL, ``MAX_BODY_BYTES`` of 64 KiB, one
resting order; after each test, the account's live orders and the book must be unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.hardening.support import BATCHES, LIMIT, state
from tests.support.trading import ADMIN, add_accounts, batch, order


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    settings = make_settings(db={"url": pg_url}, max_body_bytes=LIMIT)
    async with running_app(settings) as (_app, client):
        resting = await client.post(BATCHES, json=batch(order("sell", "5", "1880")), headers=ADMIN)
        assert resting.status_code == 200
        before = await state(client)
        yield client
        assert await state(client) == before, "bad input changed something"
