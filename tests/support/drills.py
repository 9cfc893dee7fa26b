"""What the crash and replay drills read back: every order an account can page through, and
the book hashes the journal implies (``OrderBook.state_hash`` of each rebuilt book)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.engine import OrderBook, Sequencer
from app.services.orders.recovery import load_state
from app.services.orders.shard import Shard
from app.store.database import Database


async def journal_hashes(
    database_url: str | None, *, shard: Shard | None = None, data_dir: Path | None = None
) -> dict[int, str]:
    """Each book's hash, rebuilt from the journal (of ``shard``, or every book)."""
    database = Database.create(database_url, data_dir=data_dir or Path("data"))
    try:
        state = await load_state(database, shard)
    finally:
        await database.dispose()
    return {
        token: OrderBook.restore(token, snapshot, Sequencer()).state_hash()
        for token, snapshot in state.snapshots.items()
    }


async def account_orders(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every order of the account, all pages of ``GET /orders``."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/orders", params=params, headers=headers)).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found
