"""Crash drill: the service under concurrent batch load, SIGKILLed, restarted.

Every order the client saw acknowledged must be there with the fills it was told about;
nothing is duplicated (a resubmission of every batch, acknowledged or not, creates nothing
twice); and the rebuilt books equal what the journal implies.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store.database import Database
from tests.conftest import REDIS_URL
from tests.support.drills import account_orders, journal_hashes
from tests.support.positions import recomputed
from tests.support.positions import stored as stored_positions
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, DESK_B, service_env

pytestmark = pytest.mark.slow

SYMBOLS = ["NSE:INFY", "NSE:TCS"]
MID = {"NSE:INFY": 187540, "NSE:TCS": 410230}  # in 0.01 units: tick 0.05 -> multiples of 5


def random_batch(rng: random.Random, tag: str, size: int) -> list[dict[str, Any]]:
    orders = []
    for i in range(size):
        symbol = rng.choice(SYMBOLS)
        cents = MID[symbol] + rng.randint(-20, 20) * 5
        orders.append(
            {
                "symbol": symbol,
                "side": rng.choice(["buy", "sell"]),
                "type": "limit",
                "quantity": str(rng.randint(1, 20)),
                "price": f"{cents // 100}.{cents % 100:02d}",
                "client_order_id": f"{tag}-{i}",
            }
        )
    return orders


async def load(url: str, stop: asyncio.Event, acked: list[dict], sent: list[tuple]) -> None:
    rng = random.Random()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            headers = rng.choice([ADMIN, DESK_B])
            orders = random_batch(rng, uuid.uuid4().hex[:12], 20)
            sent.append((headers, orders))
            try:
                response = await client.post(
                    "/advanced/batch-orders", json={"orders": orders}, headers=headers
                )
            except httpx.HTTPError:
                return  # the server died under us: this batch is unacknowledged
            if response.status_code == 200:
                acked.extend(r | {"account_headers": headers} for r in response.json()["results"])


async def run_drill(database_url: str, tmp_path: Path, redis_prefix: str) -> None:
    env = service_env(tmp_path, database_url, REDIS_URL, redis_prefix)
    service = ServiceProcess(env, tmp_path / "run")
    acked: list[dict] = []
    sent: list[tuple] = []
    service.start()
    try:
        stop = asyncio.Event()
        workers = [asyncio.create_task(load(service.url, stop, acked, sent)) for _ in range(8)]
        await asyncio.sleep(2.0)
        await asyncio.to_thread(service.kill)
        stop.set()
        await asyncio.gather(*workers)
        assert acked, "the load generator got no acknowledgement before the kill"

        service.start()
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            stored = {o["order_id"]: o for o in await all_orders(client)}
            for result in acked:
                if result["order_id"] is None:
                    continue
                body = stored[result["order_id"]]
                assert body["client_order_id"] == result["client_order_id"]
                told = {(f["trade_id"], f["price"], f["quantity"]) for f in result["fills"]}
                kept = {(f["trade_id"], f["price"], f["quantity"]) for f in body["fills"]}
                assert told <= kept, (result, body)

            # Replaying every batch sent creates nothing twice.
            before = await count_orders(client)
            for headers, orders in sent:
                response = await client.post(
                    "/advanced/batch-orders", json={"orders": orders}, headers=headers
                )
                assert response.status_code == 200, service.explain(response)
            after = await count_orders(client)
            unacked = sum(len(o) for _, o in sent) - sum(1 for r in acked if r["order_id"])
            assert before <= after <= before + unacked
            for headers, orders in sent[:20]:
                await client.post(
                    "/advanced/batch-orders", json={"orders": orders}, headers=headers
                )
            assert await count_orders(client) == after

            hashes = {}
            for symbol in SYMBOLS:
                stats = (await client.get(f"/stats/{symbol}", headers=ADMIN)).json()
                hashes[stats["instrument_token"]] = stats["book_hash"]
        expected = await journal_hashes(database_url)
        for token, book_hash in hashes.items():
            assert book_hash == expected[token]
        # Positions moved in the fills' transactions: what survived equals the trades' replay.
        database = Database.create(database_url)
        try:
            replayed = await recomputed(database)
            assert replayed
            assert await stored_positions(database) == replayed
        finally:
            await database.dispose()
    finally:
        if service.process is not None:
            service.kill()


async def count_orders(client: httpx.AsyncClient) -> int:
    return len(await all_orders(client))


async def all_orders(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [o for headers in (ADMIN, DESK_B) for o in await account_orders(client, headers)]


class TestCrash:
    async def test_kill_9_under_load_on_postgres(
        self, pg_url: str, tmp_path: Path, redis_prefix: str
    ) -> None:
        await run_drill(pg_url, tmp_path, redis_prefix)

    async def test_kill_9_under_load_on_sqlite(self, tmp_path: Path, redis_prefix: str) -> None:
        await run_drill(f"sqlite:///{tmp_path / 'ticker.db'}", tmp_path, redis_prefix)
