"""The gateway's reply listener over real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from app.services.cluster import protocol
from app.services.cluster.hop import ReplyListener
from app.store.redis import RedisStore
from tests.conftest import REDIS_URL


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(aioredis.from_url(REDIS_URL), prefix=redis_prefix)
    yield store
    await store.close()


async def reply(redis: RedisStore, listener: ReplyListener, command_id: str) -> None:
    await redis.client.xadd(listener.key, protocol.encode({"id": command_id, "result": 1}))


async def stopped(task: asyncio.Task[None]) -> None:
    # redis-py may turn the first cancel of a blocking XREAD into a connection error, which
    # the listener retries: cancel until the task has ended.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TestReplyListener:
    async def test_a_reply_that_came_before_the_first_read_is_delivered(
        self, redis: RedisStore
    ) -> None:
        listener = ReplyListener(redis, "gw-early")
        waiting = listener.expect("c1")
        await reply(redis, listener, "c1")  # the matcher answered before the listener read
        task = asyncio.get_running_loop().create_task(listener.run())
        try:
            assert (await asyncio.wait_for(waiting, 3))["result"] == 1
        finally:
            await stopped(task)

    async def test_replies_between_reads_are_not_lost(self, redis: RedisStore) -> None:
        listener = ReplyListener(redis, "gw-gap")
        task = asyncio.get_running_loop().create_task(listener.run())
        try:
            for n in range(3):
                await asyncio.sleep(0.4 * n)  # across the 1 s blocking read's renewals
                waiting = listener.expect(f"c{n}")
                await reply(redis, listener, f"c{n}")
                assert (await asyncio.wait_for(waiting, 3))["result"] == 1
        finally:
            await stopped(task)
