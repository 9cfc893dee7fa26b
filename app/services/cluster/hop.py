"""The gateway's hop to the matchers: a command goes onto its shard's stream (``XADD
orders:{shard}``) and its reply comes back on this gateway's own reply stream, where
``ReplyListener`` hands it to the request waiting on it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from app.errors import ServiceUnavailable
from app.services.cluster import protocol
from app.services.cluster.protocol import RemoteError
from app.store.redis import RedisStore

log = logging.getLogger(__name__)


class ShardUnavailable(ServiceUnavailable):
    code = "SHARD_UNAVAILABLE"
    message = "the matchers cannot be reached; nothing was placed"


class ShardTimeout(ServiceUnavailable):
    code = "SHARD_TIMEOUT"
    message = "the matcher did not answer in time; the outcome is unknown"


class ReplyListener:
    """Reads this gateway's reply stream and hands each reply to the request waiting on it."""

    def __init__(self, redis: RedisStore, gateway_id: str) -> None:
        self._redis = redis
        self.key = redis.key("replies", gateway_id)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def expect(self, command_id: str) -> asyncio.Future[dict[str, Any]]:
        future = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    async def run(self) -> None:
        # From the stream's start, not "$": "$" means "after whatever is newest when this read
        # is issued", so a reply that arrived before the first read, or between a read that
        # timed out and the next one, would be lost and its request would end SHARD_TIMEOUT.
        # What is already there (at most REPLY_MAXLEN, left by a process with the same
        # instance id) is read once and ignored: nobody waits for it.
        last = "0-0"
        while True:
            try:
                response: Any = await self._redis.client.xread(
                    {self.key: last}, count=1000, block=1000
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reply stream read failed: %s; retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in response or ():
                for entry_id, fields in entries:
                    last = entry_id
                    reply = protocol.decode(fields)
                    future = self._waiting.pop(reply["id"], None)
                    if future is not None and not future.done():
                        future.set_result(reply)

    async def close(self) -> None:
        try:
            await self._redis.client.delete(self.key)
        except Exception:
            log.warning("could not delete the reply stream %s", self.key)


class StreamHop:
    """Sends commands to shards and waits for their replies (at most ``timeout`` seconds)."""

    def __init__(self, *, redis: RedisStore, replies: ReplyListener, timeout: float) -> None:
        self._redis = redis
        self._replies = replies
        self._timeout = timeout

    async def send(self, shard: int, command: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Append ``command`` to the shard's stream; the future resolves with its reply."""
        command["id"] = command.get("id") or uuid.uuid4().hex
        command["reply_to"] = self._replies.key
        future = self._replies.expect(command["id"])
        try:
            await self._redis.client.xadd(
                self._redis.key("orders", shard), protocol.encode(command)
            )
        except Exception as exc:
            self._replies.forget(command["id"])
            raise ShardUnavailable() from exc
        return future

    async def wait(
        self, command_id: str, future: asyncio.Future[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The reply, or None once the timeout has passed."""
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            self._replies.forget(command_id)
            return None

    async def call(self, shard: int, command: dict[str, Any]) -> Any:
        """Send and wait: the command's result, or its error raised."""
        future = await self.send(shard, command)
        reply = await self.wait(command["id"], future)
        if reply is None:
            raise ShardTimeout()
        if "error" in reply:
            raise RemoteError(reply["error"])
        return reply["result"]
