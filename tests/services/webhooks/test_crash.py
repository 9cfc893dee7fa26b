"""Crash drill: ``kill -9`` under load with webhooks flowing, then a restart.

Every fill a client was told about reaches its account's receiver (signed), and every fill a
receiver hears about was committed: the outbox commits with the fills, whatever dies when.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.services.webhooks.receiver import Receiver, eventually
from tests.support.drills import account_orders
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, DESK_B, service_env

pytestmark = pytest.mark.slow

ACCOUNTS = {"default": ADMIN, "desk-b": DESK_B}


async def load(url: str, stop: asyncio.Event, acked: dict[str, list[dict[str, Any]]]) -> None:
    rng = random.Random()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            account = rng.choice(list(ACCOUNTS))
            side = "sell" if account == "default" else "buy"
            orders = [
                {
                    "symbol": "NSE:INFY",
                    "side": side,
                    "type": "limit",
                    "quantity": str(rng.randint(1, 5)),
                    "price": f"1875.{rng.choice(['3', '35', '4', '45', '5'])}",
                }
                for _ in range(5)
            ]
            try:
                response = await client.post(
                    "/advanced/batch-orders", json={"orders": orders}, headers=ACCOUNTS[account]
                )
            except httpx.HTTPError:
                return  # the server died under us: unacknowledged
            if response.status_code == 200:
                acked[account].extend(response.json()["results"])


async def run_drill(database_url: str, tmp_path: Path, redis_prefix: str) -> None:
    env = service_env(
        tmp_path,
        database_url,
        REDIS_URL,
        redis_prefix,
        WEBHOOK_ALLOW_LOOPBACK="true",
        WEBHOOK_RETRY_INITIAL_SECONDS="0.05",
        WEBHOOK_RETRY_MAX_SECONDS="0.2",
        WEBHOOK_POLL_SECONDS="0.05",
        WEBHOOK_CONNECT_TIMEOUT="1",
        WEBHOOK_READ_TIMEOUT="1",
    )
    service = ServiceProcess(env, tmp_path / "run")
    acked: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with Receiver() as receiver:
        receiver.statuses = [500, 200] * 50  # some retries in flight when it dies
        service.start()
        try:
            secrets = {}
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                for account, headers in ACCOUNTS.items():
                    response = await client.post(
                        "/advanced/webhooks",
                        json={"url": receiver.url(f"/{account}")},
                        headers=headers,
                    )
                    secrets[account] = response.json()["secret"]
            stop = asyncio.Event()
            workers = [asyncio.create_task(load(service.url, stop, acked)) for _ in range(4)]
            await asyncio.sleep(1.5)
            await asyncio.to_thread(service.kill)
            stop.set()
            await asyncio.gather(*workers)
            assert acked["default"]
            assert acked["desk-b"]
            told = sum(1 for results in acked.values() for r in results if r["order_id"])

            service.start()
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                try:  # generous: on a loaded machine (a full suite beside) delivery is slow
                    await eventually(lambda: _settled(client), timeout=180)
                except AssertionError as exc:
                    report = (await client.get("/health")).json()["dependencies"]["webhooks"]
                    raise AssertionError(f"{exc}: {report}\n{service.explain(None)}") from exc
                committed = {
                    account: await _committed_fills(client, headers)
                    for account, headers in ACCOUNTS.items()
                }
        finally:
            if service.process is not None:
                service.kill()

    for account, results in acked.items():
        path = f"/{account}"
        bodies = receiver.verified(secrets[account], path)
        heard: dict[str, set[str]] = defaultdict(set)
        events: dict[str, set[str]] = defaultdict(set)
        for body in bodies:
            order_id = body["data"]["order"]["order_id"]
            events[order_id].add(body["type"])
            heard[order_id].update(f["trade_id"] for f in body["data"]["fills"])
        for result in results:
            if result["order_id"] is None:
                continue
            assert events[result["order_id"]] & {"order.accepted", "order.rejected"}, result
            assert {f["trade_id"] for f in result["fills"]} <= heard[result["order_id"]]
        for order_id, trade_ids in heard.items():  # nothing that was not committed
            assert trade_ids <= committed[account].get(order_id, set())
        repeated: dict[str, set[bytes]] = defaultdict(set)
        for message in receiver.delivered(path):
            repeated[message.message_id].add(message.body)
        assert all(len(bodies) == 1 for bodies in repeated.values())
    assert told > 0


async def _settled(client: httpx.AsyncClient) -> bool:
    report = (await client.get("/health")).json()["dependencies"]["webhooks"]
    return report["backlog"] == 0 and report["in_flight"] == 0


async def _committed_fills(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, set]:
    return {
        o["order_id"]: {f["trade_id"] for f in o["fills"]}
        for o in await account_orders(client, headers)
    }


class TestCrash:
    async def test_kill_9_loses_no_webhook_on_postgres(
        self, pg_url: str, tmp_path: Path, redis_prefix: str
    ) -> None:
        await run_drill(pg_url, tmp_path, redis_prefix)

    async def test_kill_9_loses_no_webhook_on_sqlite(
        self, tmp_path: Path, redis_prefix: str
    ) -> None:
        await run_drill(f"sqlite:///{tmp_path / 'ticker.db'}", tmp_path, redis_prefix)
