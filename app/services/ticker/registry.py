"""The replicas' registry in Redis: who is connected, to what, across every replica.

Each replica writes one entry, ``{prefix}ticker:replica:{id}`` (JSON: connection and
subscription counts, the instruments its clients want with their richest mode, the accounts
with an order stream), with a TTL of ``TICKER_REGISTRY_TTL_SECONDS``, and lists its id in the
set ``{prefix}ticker:replicas``. It rewrites the entry every third of the TTL, at once when
its instruments or accounts change (then announces "registry" on the fan-out channel so the
others re-read now), and whenever Redis comes back. A crashed replica's entry expires; readers
drop expired ids from the set. Totals (health, metrics) are the sum of the live entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from app.metrics import Metrics
from app.services.ticker.fanout import FAILURES
from app.services.ticker.ticks import MODE_RANK, Mode
from app.store.redis import RedisStore

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.01


@dataclass(slots=True)
class Entry:
    connections: int = 0
    subscriptions: int = 0
    instruments: dict[int, Mode] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "connections": self.connections,
                "subscriptions": self.subscriptions,
                "instruments": {str(t): m.value for t, m in self.instruments.items()},
                "accounts": self.accounts,
                "updated_at": time.time(),
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Entry:
        body = orjson.loads(data)
        return cls(
            int(body.get("connections", 0)),
            int(body.get("subscriptions", 0)),
            {int(t): Mode(m) for t, m in body.get("instruments", {}).items()},
            [str(a) for a in body.get("accounts", [])],
        )


class ReplicaRegistry:
    def __init__(
        self,
        *,
        redis: RedisStore,
        replica: str,
        ttl: float,
        metrics: Metrics,
        local: Callable[[], Entry],
        on_remote_change: Callable[[], None],
        announce: Callable[[], None],
    ) -> None:
        self._redis = redis
        self.replica = replica
        self._ttl = ttl
        self._metrics = metrics
        self._local = local
        self._on_remote_change = on_remote_change
        self._announce = announce
        self._set_key = redis.key("ticker", "replicas")
        self._changed = False
        self._wake = asyncio.Event()
        self.remote: dict[str, Entry] = {}
        self.remote_interest: dict[int, Mode] = {}
        self.remote_accounts: frozenset[str] = frozenset()
        self.ok = False
        self.last_error: str | None = None

    def _entry_key(self, replica: str) -> str:
        return self._redis.key("ticker", "replica", replica)

    def local_changed(self) -> None:
        """Our instruments or accounts changed: rewrite now and tell the others."""
        self._changed = True
        self._wake.set()

    def refresh(self) -> None:
        """Another replica changed: re-read now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            announce, self._changed = self._changed, False
            try:
                await self.sync()
                if announce:
                    self._announce()
            except FAILURES as exc:
                self._changed = self._changed or announce
                self._failed(exc)
            interval = self._ttl / 3 if self.ok else min(1.0, self._ttl / 3)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
                await asyncio.sleep(DEBOUNCE_SECONDS)  # a burst of (un)subscribes: one write
            self._wake.clear()

    async def sync(self) -> None:
        """Write our entry, then read everyone's."""
        client = self._redis.client
        pipe = client.pipeline(transaction=False)
        pipe.set(self._entry_key(self.replica), self._local().to_json(), px=int(self._ttl * 1000))
        pipe.sadd(self._set_key, self.replica)
        pipe.smembers(self._set_key)
        replies = await pipe.execute()
        ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in replies[2] if i)
        others = [i for i in ids if i != self.replica]
        values = await client.mget([self._entry_key(i) for i in others]) if others else []
        remote: dict[str, Entry] = {}
        expired: list[str] = []
        for replica, value in zip(others, values, strict=True):
            if value is None:
                expired.append(replica)
                continue
            try:
                remote[replica] = Entry.from_json(value)
            except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
                log.warning("ignoring a malformed registry entry of replica %s", replica)
        if expired:
            await client.srem(self._set_key, *expired)
        if not self.ok:
            log.info("ticker registry in Redis: registered as replica %s", self.replica)
        self.ok, self.last_error = True, None
        self._install(remote)

    def _install(self, remote: dict[str, Entry]) -> None:
        interest: dict[int, Mode] = {}
        accounts: set[str] = set()
        for entry in remote.values():
            accounts.update(entry.accounts)
            for token, mode in entry.instruments.items():
                known = interest.get(token)
                if known is None or MODE_RANK[mode] > MODE_RANK[known]:
                    interest[token] = mode
        changed = interest != self.remote_interest or accounts != self.remote_accounts
        self.remote = remote
        self.remote_interest = interest
        self.remote_accounts = frozenset(accounts)
        if changed:
            self._on_remote_change()

    async def deregister(self) -> None:
        with contextlib.suppress(*FAILURES):
            pipe = self._redis.client.pipeline(transaction=False)
            pipe.delete(self._entry_key(self.replica))
            pipe.srem(self._set_key, self.replica)
            async with asyncio.timeout(2.0):
                await pipe.execute()

    def _failed(self, exc: BaseException) -> None:
        self._metrics.ticker_fanout_errors.labels(operation="registry").inc()
        text = f"{type(exc).__name__}: {str(exc)[:200]}"
        if self.ok or text != self.last_error:
            log.warning("ticker registry in Redis unavailable: %s", text)
        self.ok, self.last_error = False, text

    def totals(self, connections: int, subscriptions: int) -> tuple[int, int, int]:
        """(connections, subscriptions, replicas) across the cluster as last read, given this
        replica's own live counts; this replica alone while Redis is unavailable."""
        if not self.ok:
            return connections, subscriptions, 1
        remote = self.remote.values()
        return (
            connections + sum(e.connections for e in remote),
            subscriptions + sum(e.subscriptions for e in remote),
            1 + len(self.remote),
        )
