"""One live matcher per shard: a Redis lease, and a fencing token for the journal.

The lease is a key holding the holder's id with an expiry, renewed at a third of its life.
Taking it also takes a fencing token (a Redis counter that only grows) which the matcher
stores in PostgreSQL and checks in every journal transaction (``app.store.fences``): a
matcher paused past its lease cannot commit once a successor has started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from app.store.redis import RedisStore

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class ShardLease:
    def __init__(self, *, redis: RedisStore, shard: int, holder: str, ttl: float) -> None:
        self._redis = redis
        self._key = redis.key("lease", shard)
        self._fence_key = redis.key("fence", shard)
        self.holder = holder
        self._ttl_ms = int(ttl * 1000)
        self._renewed_at = 0.0
        self.token: int | None = None

    async def try_acquire(self) -> bool:
        client = self._redis.client
        taken = await client.set(self._key, self.holder, nx=True, px=self._ttl_ms)
        if not taken:
            return False
        self.token = int(await client.incr(self._fence_key))
        self._renewed_at = time.monotonic()
        return True

    async def acquire(self, poll: float = 0.5) -> int:
        """Wait until this process holds the lease; returns the fencing token."""
        while True:
            try:
                if await self.try_acquire():
                    assert self.token is not None
                    log.info("shard lease taken", extra={"key": self._key, "token": self.token})
                    return self.token
            except Exception as exc:  # Redis unreachable: keep waiting for it
                log.warning("cannot reach Redis for the shard lease: %s", type(exc).__name__)
            await asyncio.sleep(poll)

    async def advance_fence(self, above: int) -> int:
        """Take a new token above ``above``: the Redis counter restarted below a token that
        PostgreSQL holds (Redis lost its data). Only called while holding the lease."""
        client = self._redis.client
        current = int(await client.get(self._fence_key) or 0)
        if current < above:
            await client.incrby(self._fence_key, above - current)
        self.token = int(await client.incr(self._fence_key))
        return self.token

    async def renew(self) -> bool:
        renewed = await self._redis.client.eval(
            _RENEW, 1, self._key, self.holder, str(self._ttl_ms)
        )
        if renewed:
            self._renewed_at = time.monotonic()
        return bool(renewed)

    @property
    def expired(self) -> bool:
        return time.monotonic() - self._renewed_at > self._ttl_ms / 1000

    async def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew until the lease is lost (taken by another, or not renewed in time)."""
        interval = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.renew():
                    continue
                log.error("shard lease lost to another matcher", extra={"key": self._key})
            except Exception as exc:
                if not self.expired:
                    log.warning("lease renewal failed (%s); retrying", type(exc).__name__)
                    continue
                log.error("shard lease expired while Redis was unreachable")
            on_lost()
            return

    async def release(self) -> None:
        try:
            await self._redis.client.eval(_RELEASE, 1, self._key, self.holder)
        except Exception:  # shutting down: the lease expires by itself
            log.warning("could not release the shard lease; it will expire")
