"""Ticks of instruments owned by other replicas: the latest one received of each, and the
last published one fetched from Redis when a client subscribes to an instrument this
replica has heard nothing of yet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container
from typing import Any

from app.services.ticker.fanout import Fanout
from app.services.ticker.ticks import InstrumentTicks

FETCH_TIMEOUT = 0.5
RETRY_AFTER = 1.0  # seconds before asking Redis again for an instrument nobody published
MAX_CONCURRENT_FETCHES = 4  # a reconnect storm must not drain the Redis connection pool


class RemoteTicks:
    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self.latest: dict[int, dict[str, Any]] = {}
        self._absent: dict[int, float] = {}
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    @staticmethod
    def newer(tick: dict[str, Any], state: InstrumentTicks | None, owned: Container[int]) -> bool:
        """Whether ``tick`` from another replica should stand for its instrument here: always
        unless this replica trades the instrument itself and its own state is as fresh."""
        if state is None or state.token not in owned:
            return True
        stamp = tick.get("ts_ns")
        return isinstance(stamp, int) and stamp > state.changed_ns

    async def fetch(self, tokens: list[int], owned: Container[int]) -> None:
        """Fill ``latest`` from Redis for the instruments neither traded here nor heard of."""

        def unknown() -> list[int]:
            now = time.monotonic()
            return [
                t
                for t in tokens
                if t not in owned
                and t not in self.latest
                and now - self._absent.get(t, -RETRY_AFTER) >= RETRY_AFTER
            ]

        if not unknown():
            return
        async with self._gate:
            missing = unknown()
            found = await self._fanout.last_ticks(missing, FETCH_TIMEOUT)
        now = time.monotonic()
        for token in missing:
            tick = found.get(token)
            if tick is None:
                self._absent[token] = now
            else:
                self.latest.setdefault(token, tick)
