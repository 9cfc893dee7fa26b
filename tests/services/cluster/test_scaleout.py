"""Scale-out on one machine: two gateways and two matchers as subprocesses over one
PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.cluster.lease import ShardLease
from app.services.orders.shard import Shard
from app.store.database import Database
from app.store.fences import StaleFence, check_fence, install_fence, stored_fence
from app.store.migrate import migrate
from app.store.redis import RedisStore
from tests.conftest import REDIS_URL
from tests.support.drills import account_orders, journal_hashes
from tests.support.live import ws_client
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, add_accounts

pytestmark = pytest.mark.slow

# INFY is on shard 0 and HDFCBANK on shard 1 of 2 (crc32 of the token).
MIDS = {"NSE:INFY": 37508, "NSE:HDFCBANK": 34978}  # in ticks of 0.05
TOKENS = {"NSE:INFY": 408065, "NSE:HDFCBANK": 341249}


def price(ticks: int) -> str:
    cents = ticks * 5
    return f"{cents // 100}.{cents % 100:02d}"


def spanning_batch(rng: random.Random, tag: str, size: int = 20) -> list[dict[str, Any]]:
    orders = []
    for i in range(size):
        symbol = list(MIDS)[i % 2]
        orders.append(
            {
                "symbol": symbol,
                "side": rng.choice(["buy", "sell"]),
                "quantity": str(rng.randint(1, 9)),
                "price": price(MIDS[symbol] + rng.randint(-5, 5)),
                "client_order_id": f"{tag}-{i}",
            }
        )
    return orders


class Cluster:
    def __init__(self, workdir: Path, database_url: str, prefix: str) -> None:
        tokens = workdir / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        add_accounts(tokens)
        self.workdir = workdir
        self.base = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": prefix,
            "API_KEY": ADMIN_KEY,
            "TOKENS_DIR": str(tokens),
            "MATCHER_SHARDS": "2",
            "SHARD_TIMEOUT_SECONDS": "3",
            "MATCHER_LEASE_SECONDS": "3",
            "RATE_LIMIT_PER_SECOND": "100000",
            "CIRCUIT_BREAKER_PERCENT": "0",
        }
        self.processes: list[ServiceProcess] = []

    def matcher(self, shard: int, name: str) -> ServiceProcess:
        env = self.base | {"ROLE": "matcher", "SHARD_ID": str(shard), "INSTANCE_ID": name}
        process = ServiceProcess(env, self.workdir / name)
        self.processes.append(process)
        return process

    def gateway(self, name: str) -> ServiceProcess:
        env = self.base | {"ROLE": "gateway", "INSTANCE_ID": name}
        process = ServiceProcess(env, self.workdir / name)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.process is not None:
                process.kill()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_prefix: str) -> Iterator[Cluster]:
    running = Cluster(tmp_path, pg_url, redis_prefix)
    try:
        yield running
    finally:
        running.stop()


async def all_orders(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    accounts = (ADMIN, DESK_B)
    return {o["order_id"]: o for h in accounts for o in await account_orders(client, h)}


class TestGatewaysAndMatchers:
    async def test_batches_spanning_shards_from_both_gateways(self, cluster: Cluster) -> None:
        for shard in (0, 1):
            cluster.matcher(shard, f"matcher-{shard}").start()
        gateways = [cluster.gateway("gw-a"), cluster.gateway("gw-b")]
        for gateway in gateways:
            gateway.start()
        rng = random.Random(3)
        async with (
            httpx.AsyncClient(base_url=gateways[0].url, timeout=30) as a,
            httpx.AsyncClient(base_url=gateways[1].url, timeout=30) as b,
        ):
            responses = await asyncio.gather(
                *[
                    client.post(
                        "/advanced/batch-orders",
                        json={"orders": spanning_batch(rng, f"t{n}")},
                        headers=headers,
                    )
                    for n, (client, headers) in enumerate([(a, ADMIN), (b, DESK_B)] * 4)
                ]
            )
            for response in responses:
                assert response.status_code == 200, response.text
                body = response.json()
                assert [r["index"] for r in body["results"]] == list(range(20))
                assert body["accepted"] == 20
                assert body["unknown"] == 0
            # Either gateway reads what either matcher journaled.
            mine = (await b.get("/orders?limit=1000", headers=ADMIN)).json()["items"]
            assert len(mine) == 80
            trades = (await a.get("/trades/NSE:HDFCBANK", headers=ADMIN)).json()["items"]
            books = {}
            for symbol in MIDS:
                books[symbol] = (await b.get(f"/stats/{symbol}", headers=ADMIN)).json()
            listed = (await a.get("/advanced/batch-orders", headers=ADMIN)).json()["items"]
            assert len(listed) == 4
            # Fills and lookups by client_order_id read the journal: a gateway serves them.
            fills = (await b.get("/fills?limit=1000", headers=ADMIN)).json()["items"]
            assert fills
            assert {f["order_id"] for f in fills} <= {o["order_id"] for o in mine}
            again = await a.post("/orders", json=spanning_batch(rng, "t0")[1], headers=ADMIN)
            assert (again.status_code, again.json()["index"]) == (200, 0)
            assert again.json()["created"] is False
            found = (await b.get("/orders/by-client-id/t0-1", headers=ADMIN)).json()
            assert found["order_id"] == again.json()["order_id"]
        assert trades, "orders of two accounts around one price must have traded"
        for symbol, stats in books.items():
            shard = 0 if symbol == "NSE:INFY" else 1
            expected = await journal_hashes(cluster.base["DATABASE_URL"], shard=Shard(shard, 2))
            assert stats["book_hash"] == expected[TOKENS[symbol]]

    async def test_cancel_on_disconnect_through_a_gateway_keeps_its_reason(
        self, cluster: Cluster
    ) -> None:
        for shard in (0, 1):
            cluster.matcher(shard, f"matcher-{shard}").start()
        gateway = cluster.gateway("gw")
        gateway.start()
        stream = gateway.url.replace("http://", "ws://") + "/ws/orders"
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            offers = [{**o, "side": "sell"} for o in spanning_batch(random.Random(4), "dms", 2)]
            placed = await client.post(
                "/advanced/batch-orders", json={"orders": offers}, headers=ADMIN
            )
            assert placed.json()["accepted"] == 2
            async with ws_client(stream) as ws:
                await ws.send(
                    {"action": "auth", "api_key": ADMIN_KEY, "cancel_on_disconnect": True}
                )
                assert (await ws.recv())["type"] == "authenticated"
            for cid in ("dms-0", "dms-1"):  # one on each shard
                for _ in range(100):
                    found = (await client.get(f"/orders/by-client-id/{cid}", headers=ADMIN)).json()
                    if found["status"] == "cancelled":
                        break
                    await asyncio.sleep(0.05)
                assert (found["status"], found["reason"]) == ("cancelled", "CANCEL_ON_DISCONNECT")

    async def test_a_second_matcher_waits_while_the_first_holds_the_lease(
        self, cluster: Cluster
    ) -> None:
        first = cluster.matcher(0, "matcher-0a")
        first.start()
        cluster.matcher(1, "matcher-1").start()
        second = cluster.matcher(0, "matcher-0b")
        second.start(ready_path="/health/live")
        gateway = cluster.gateway("gw")
        gateway.start()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            await asyncio.sleep(1.0)
            standby = await client.get(second.url + "/health/ready")
            assert standby.status_code == 503
            response = await client.post(
                "/advanced/batch-orders",
                json={"orders": spanning_batch(random.Random(1), "lease", 4)},
                headers=ADMIN,
            )
            assert response.json()["accepted"] == 4
            # The first dies: the standby takes the lease once it expires, and serves.
            first.kill()
            for _ in range(100):
                if (await client.get(second.url + "/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert (await client.get(second.url + "/health/ready")).status_code == 200
            again = await client.post(
                "/advanced/batch-orders",
                json={"orders": spanning_batch(random.Random(2), "after", 4)},
                headers=ADMIN,
            )
            assert again.json()["accepted"] == 4

    async def test_kill_9_of_a_matcher_under_load(self, cluster: Cluster) -> None:
        matchers = [cluster.matcher(shard, f"matcher-{shard}") for shard in (0, 1)]
        for matcher in matchers:
            matcher.start()
        gateways = [cluster.gateway("gw-a"), cluster.gateway("gw-b")]
        for gateway in gateways:
            gateway.start()
        acked: list[dict[str, Any]] = []
        sent: list[tuple[str, dict[str, str], list[dict[str, Any]]]] = []
        stop = asyncio.Event()

        async def load(url: str, headers: dict[str, str]) -> None:
            rng = random.Random()
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    orders = spanning_batch(rng, uuid.uuid4().hex[:10])
                    sent.append((url, headers, orders))
                    response = await client.post(
                        "/advanced/batch-orders", json={"orders": orders}, headers=headers
                    )
                    if response.status_code == 200:
                        acked.extend(
                            r | {"headers": headers}
                            for r in response.json()["results"]
                            if r["status"] != "unknown"
                        )

        workers = [
            asyncio.create_task(load(gateway.url, headers))
            for gateway in gateways
            for headers in (ADMIN, DESK_B)
        ]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(matchers[0].kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(matchers[0].start)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*workers)

        async with httpx.AsyncClient(base_url=gateways[0].url, timeout=30) as client:
            stored = await all_orders(client)
            for result in acked:
                if result["order_id"] is None:
                    continue
                order = stored[result["order_id"]]
                told = {(f["trade_id"], f["quantity"]) for f in result["fills"]}
                assert told <= {(f["trade_id"], f["quantity"]) for f in order["fills"]}
            client_ids = [o["client_order_id"] for o in stored.values()]
            assert len(client_ids) == len(set(client_ids))
            # Resubmitting everything places nothing twice.
            for _url, headers, orders in sent:
                await client.post(
                    "/advanced/batch-orders", json={"orders": orders}, headers=headers
                )
            assert len(await all_orders(client)) == sum(len(orders) for _, _, orders in sent)


class TestFencing:
    async def test_a_stale_token_cannot_write(self, pg_url: str) -> None:
        database = Database.create(pg_url)
        try:
            await migrate(database)
            await install_fence(database, 0, 5, "new")
            with pytest.raises(StaleFence):
                await install_fence(database, 0, 4, "old")
            async with database.engine.begin() as conn:
                await check_fence(conn, 0, 5)
            with pytest.raises(StaleFence):
                async with database.engine.begin() as conn:
                    await check_fence(conn, 0, 4)
        finally:
            await database.dispose()

    async def test_a_lease_taken_after_redis_lost_its_counter_advances_the_fence(
        self, pg_url: str, redis_prefix: str
    ) -> None:
        database = Database.create(pg_url)
        redis = await RedisStore.connect(
            REDIS_URL, prefix=redis_prefix, socket_timeout=2, data_dir=Path("data")
        )
        try:
            await migrate(database)
            await install_fence(database, 3, 100, "before-the-reset")
            lease = ShardLease(redis=redis, shard=3, holder="me", ttl=5)
            token = await lease.acquire()
            assert token < 100  # the Redis counter restarted
            with pytest.raises(StaleFence):
                await install_fence(database, 3, token, "me")
            token = await lease.advance_fence(await stored_fence(database, 3))
            assert token > 100
            await install_fence(database, 3, token, "me")
            assert await lease.renew()
            await lease.release()
            assert await redis.client.get(redis.key("lease", 3)) is None
        finally:
            await redis.close()
            await database.dispose()
