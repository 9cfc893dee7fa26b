"""Several replicas over one Redis and one database, in the supported topology (README,
"Scaling out"): gateways serve the WebSockets, one matcher owns the books. Ticks matched for
orders sent through gateway A reach clients of gateway B, health and metrics show cluster
totals, a killed replica's registry entry expires, and a Redis outage leaves local ticks
flowing and heals when Redis returns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from app.services.cluster.gateway import StreamOrderEntry
from app.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.cluster import two_gateways_and_a_matcher
from tests.support.live import LiveApp, live_app, place, ws_client
from tests.support.servers import RedisServer, ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, READER_KEY, add_accounts, order

INFY = 408065


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def ticker_health(live: LiveApp) -> dict[str, Any]:
    body: dict[str, Any] = (await live.http.get("/health")).json()
    return body


class TestTwoGateways:
    async def test_a_client_on_b_sees_trades_sent_through_a(
        self, make_settings: Callable[..., Settings], tokens_dir: Path, pg_url: str
    ) -> None:
        add_accounts(tokens_dir)
        async with two_gateways_and_a_matcher(make_settings, pg_url) as (a, b, matcher):
            async with ws_client(b.ws_url + "/ws/ticker", key=READER_KEY) as ws:
                await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "full"})
                await ws.expect("subscribed")
                snapshot = await ws.tick()
                assert snapshot["volume"] == "0"

                async def matcher_knows() -> bool:
                    return INFY in matcher.state["ticker"].replicas.remote_interest

                await until(matcher_knows)
                health = await ticker_health(a)
                assert (health["ticker"]["replicas"], health["ticker"]["connections"]) == (3, 1)
                assert health["ticker"]["subscriptions"] == 1
                assert health["ticker"]["local"]["connections"] == 0
                metrics = (await a.http.get("/metrics")).text
                assert 'ticker_ws_connections{scope="cluster"} 1.0' in metrics
                assert 'ticker_ws_connections{scope="replica"} 0.0' in metrics

                await place(a.http, ADMIN, order("sell", "5", "1875.4"))
                await place(a.http, DESK_B, order("buy", "2", "1875.4"))
                tick = await ws.tick(volume="2")
                assert tick["ltp"] == "1875.4"
                assert tick["depth"]["asks"] == [{"price": "1875.4", "quantity": "3", "orders": 1}]
                # Only the matcher holds a book; the gateways route to it.
                assert len(matcher.state["orders"].books[INFY]) == 1
                assert isinstance(a.state["orders"], StreamOrderEntry)
                assert isinstance(b.state["orders"], StreamOrderEntry)
                # Each tick arrived once (no replica relays a tick twice).
                await ws.send({"action": "ping"})
                while (message := await ws.recv())["type"] != "pong":
                    assert message["seq"] > tick["seq"]

            # A new subscriber on B gets the latest state as its snapshot (from Redis).
            async with ws_client(b.ws_url + "/ws/ticker", key=READER_KEY) as late:
                await late.send({"action": "subscribe", "tokens": [INFY], "mode": "quote"})
                await late.expect("subscribed")
                assert (await late.tick())["volume"] == "2"

    async def test_a_killed_gateways_entry_expires(
        self,
        make_settings: Callable[..., Settings],
        tokens_dir: Path,
        pg_url: str,
        redis_prefix: str,
        tmp_path: Path,
    ) -> None:
        add_accounts(tokens_dir)
        settings = make_settings(
            db={"url": pg_url},
            cluster={"role": "gateway", "instance_id": "gw-a"},
            ticker={"registry_ttl_seconds": 2},
        )
        other = ServiceProcess(
            {
                "ROLE": "gateway",
                "INSTANCE_ID": "gw-b",
                "DATABASE_URL": pg_url,
                "REDIS_URL": REDIS_URL,
                "REDIS_PREFIX": redis_prefix,
                "API_KEY": ADMIN_KEY,
                "TOKENS_DIR": str(tokens_dir),
                "DATA_DIR": str(tmp_path / "other"),
                "TICKER_REGISTRY_TTL_SECONDS": "2",
            },
            tmp_path / "run",
        )
        async with live_app(settings) as a:
            await asyncio.to_thread(other.start)
            try:
                async with ws_client(f"ws://127.0.0.1:{other.port}/ws/ticker", key=ADMIN_KEY) as ws:
                    await ws.send({"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"]})
                    await ws.expect("subscribed")

                    async def counted() -> bool:
                        return (await ticker_health(a))["ticker"]["subscriptions"] == 2

                    await until(counted)
                    await asyncio.to_thread(other.kill)  # SIGKILL: no deregistration

                async def expired() -> bool:
                    ticker = (await ticker_health(a))["ticker"]
                    return (ticker["replicas"], ticker["subscriptions"]) == (1, 0)

                await until(expired, timeout=15)
            finally:
                if other.process is not None:
                    other.kill()


class TestRedisOutage:
    async def test_local_ticks_flow_while_redis_is_down_and_it_heals(
        self, make_settings: Callable[..., Settings], tokens_dir: Path, tmp_path: Path
    ) -> None:
        add_accounts(tokens_dir)
        with RedisServer(tmp_path / "redis") as server:
            settings = make_settings(
                redis={"url": server.url},
                health_check_timeout=0.5,
                ticker={"registry_ttl_seconds": 3},
            )
            async with (
                live_app(settings) as live,
                ws_client(live.ws_url + "/ws/ticker", key=READER_KEY) as ws,
            ):
                await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"]})
                await ws.expect("subscribed")
                await ws.tick()
                replica = live.state["ticker"].replica
                prefix = settings.redis.prefix
                entry = f"{prefix}ticker:replica:{replica}"

                server.stop()
                health = await ticker_health(live)
                assert health["status"] == "degraded"
                await place(live.http, ADMIN, order("sell", "5", "1875.4"))
                await place(live.http, DESK_B, order("buy", "1", "1875.4"))
                assert (await ws.tick(volume="1"))["ltp"] == "1875.4"

                async def fanout_degraded() -> bool:
                    fanout = (await ticker_health(live))["ticker"]["fanout"]
                    return fanout["status"] == "degraded" and fanout["last_error"] is not None

                await until(fanout_degraded)
                ticker = (await ticker_health(live))["ticker"]
                assert (ticker["connections"], ticker["subscriptions"]) == (1, 1)  # local view

                server.start()  # empty: nothing persisted

                async def registered() -> bool:
                    client = aioredis.from_url(server.url)
                    try:
                        return bool(await client.exists(entry))
                    finally:
                        await client.aclose()

                await until(registered, timeout=15)

                async def healthy() -> bool:
                    body = await ticker_health(live)
                    return body["status"] == "ok" and body["ticker"]["fanout"]["status"] == "ok"

                await until(healthy, timeout=15)
                await place(live.http, DESK_B, order("buy", "1", "1875.4"))
                assert (await ws.tick(volume="2"))["ltp"] == "1875.4"
