"""The Redis side of the ticker, on a real Redis under the test's own prefix: the replicas'
registry (TTL, totals, interest) and pub/sub fan-out between replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from app.metrics import Metrics
from app.services.ticker.fanout import Fanout
from app.services.ticker.registry import Entry, ReplicaRegistry
from app.services.ticker.ticks import Mode
from app.store.redis import RedisStore
from tests.conftest import REDIS_URL
from tests.support.servers import free_port


@pytest.fixture
async def redis(redis_prefix: str, tmp_path: Path) -> AsyncIterator[RedisStore]:
    store = await RedisStore.connect(
        REDIS_URL, prefix=redis_prefix, socket_timeout=2, data_dir=tmp_path
    )
    yield store
    await store.close()


def registry(redis: RedisStore, replica: str, entry: Entry, ttl: float = 30) -> ReplicaRegistry:
    return ReplicaRegistry(
        redis=redis,
        replica=replica,
        ttl=ttl,
        metrics=Metrics(),
        local=lambda: entry,
        on_remote_change=lambda: None,
        announce=lambda: None,
    )


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class TestRegistry:
    async def test_replicas_see_each_others_totals_and_interest(self, redis: RedisStore) -> None:
        a = registry(redis, "a", Entry(3, 5, {1: Mode.LTP, 2: Mode.FULL}, ["desk"]))
        b = registry(redis, "b", Entry(2, 4, {1: Mode.QUOTE}, ["ops"]))
        c = registry(redis, "c", Entry(0, 0, {1: Mode.LTP}, []))
        for replica in (a, b, c):
            await replica.sync()
        await a.sync()
        assert a.totals(3, 5) == (5, 9, 3)
        assert a.remote_interest == {1: Mode.QUOTE}
        assert a.remote_accounts == frozenset({"ops"})
        assert b.remote_interest == {1: Mode.LTP, 2: Mode.FULL}
        await b.deregister()
        await a.sync()
        assert a.totals(3, 5) == (3, 5, 2)

    async def test_a_silent_replicas_entry_expires(self, redis: RedisStore) -> None:
        a = registry(redis, "a", Entry(1, 1))
        gone = registry(redis, "gone", Entry(7, 7, {9: Mode.FULL}), ttl=0.3)
        await gone.sync()
        await a.sync()
        assert a.totals(1, 1) == (8, 8, 2)
        await asyncio.sleep(0.4)
        await a.sync()
        assert a.totals(1, 1) == (1, 1, 1)
        assert a.remote_interest == {}
        assert await redis.client.smembers(redis.key("ticker", "replicas")) == {b"a"}

    async def test_a_malformed_entry_is_ignored(self, redis: RedisStore) -> None:
        await redis.client.sadd(redis.key("ticker", "replicas"), "odd")
        await redis.client.set(redis.key("ticker", "replica", "odd"), b"{not json")
        a = registry(redis, "a", Entry(1, 1))
        await a.sync()
        assert a.totals(1, 1) == (1, 1, 1)

    async def test_without_redis_the_totals_are_local_and_it_keeps_retrying(
        self, tmp_path: Path
    ) -> None:
        dead = await RedisStore.connect(
            f"redis://127.0.0.1:{free_port()}/0", prefix="x:", socket_timeout=0.2, data_dir=tmp_path
        )
        try:
            metrics = Metrics()
            broken = ReplicaRegistry(
                redis=dead,
                replica="a",
                ttl=3,
                metrics=metrics,
                local=lambda: Entry(2, 3),
                on_remote_change=lambda: None,
                announce=lambda: None,
            )
            broken.local_changed()
            task = asyncio.create_task(broken.run())
            await until(lambda: broken.last_error is not None)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert not broken.ok
            assert broken.totals(2, 3) == (2, 3, 1)
            assert metrics.ticker_fanout_errors.labels(operation="registry")._value.get() >= 1
            await broken.deregister()  # best effort, no error
        finally:
            await dead.close()


class Inbox:
    def __init__(self) -> None:
        self.ticks: list[dict[str, Any]] = []
        self.orders: list[list[Any]] = []
        self.controls: list[tuple[str, str]] = []
        self.connected = 0


def fanout(redis: RedisStore, replica: str, inbox: Inbox) -> Fanout:
    def connected() -> None:
        inbox.connected += 1

    return Fanout(
        redis=redis,
        replica=replica,
        metrics=Metrics(),
        on_ticks=inbox.ticks.extend,
        on_orders=inbox.orders.extend,
        on_control=lambda kind, sender: inbox.controls.append((kind, sender)),
        on_connected=connected,
    )


class TestFanout:
    async def test_messages_reach_the_other_replicas_not_their_sender(
        self, redis: RedisStore
    ) -> None:
        mine, theirs = Inbox(), Inbox()
        a, b = fanout(redis, "a", mine), fanout(redis, "b", theirs)
        tasks = [
            asyncio.create_task(f()) for f in (a.run_listener, b.run_listener, a.run_publisher)
        ]
        try:
            await until(lambda: mine.connected == theirs.connected == 1)
            a.offer_tick(1, {"instrument_token": 1, "seq": 1})
            a.offer_tick(1, {"instrument_token": 1, "seq": 2})  # coalesced before publishing
            a.offer_orders([("desk", b'{"type":"fill"}')])
            a.announce("registry")
            await until(lambda: len(theirs.controls) == 1)
            assert theirs.ticks == [{"instrument_token": 1, "seq": 2}]
            assert theirs.orders == [["desk", {"type": "fill"}]]
            assert theirs.controls == [("registry", "a")]
            assert mine.ticks == mine.orders == mine.controls == []
            assert await b.last_ticks([1, 2], 1.0) == {1: {"instrument_token": 1, "seq": 2}}
            assert await b.last_ticks([], 1.0) == {}
            b.dispatch(b"{broken")  # logged and ignored
            b.dispatch(b'{"r": "a"}')
            assert a.healthy
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def test_failures_are_kept_for_retry_and_reported(self, tmp_path: Path) -> None:
        dead = await RedisStore.connect(
            f"redis://127.0.0.1:{free_port()}/0", prefix="x:", socket_timeout=0.2, data_dir=tmp_path
        )
        inbox = Inbox()
        f = fanout(dead, "a", inbox)
        tasks = [asyncio.create_task(f.run_publisher()), asyncio.create_task(f.run_listener())]
        try:
            f.offer_tick(1, {"instrument_token": 1, "seq": 1})
            f.offer_orders([("desk", b"{}")])
            await until(lambda: not f.publishing and f.listen_failed)
            assert not f.healthy
            assert f.last_error is not None
            assert await f.last_ticks([1], 0.5) == {}
            f.offer_tick(1, {"instrument_token": 1, "seq": 2})
            assert inbox.connected == 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await dead.close()
