"""Tick and order-update fan-out between replicas over Redis pub/sub.

One channel (``{prefix}ticker:events``) carries JSON messages ``{"r": replica, "k": kind,
...}``: ``ticks`` (full-mode ticks, one per instrument, one message per flush), ``orders``
(order-stream messages per account) and control kinds (``registry``, ``durable``: "re-read").
A replica delivers its own ticks locally and ignores its own messages, so nothing arrives
twice. The last published tick per instrument is also kept in a hash (``ticker:last``) so
another replica can send a snapshot on subscribe.

Redis failures never reach the flusher: ticks wait in an outbox coalesced per instrument
(so it stays bounded), order updates in a bounded deque, and the publisher retries; the
listener reconnects and resubscribes. Local clients keep their local ticks throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from app.metrics import Metrics
from app.store.redis import RedisStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
LAST_TICKS_TTL = 86_400
MAX_QUEUED_ORDER_EVENTS = 10_000
FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class Fanout:
    def __init__(
        self,
        *,
        redis: RedisStore,
        replica: str,
        metrics: Metrics,
        on_ticks: Callable[[list[dict[str, Any]]], None],
        on_orders: Callable[[list[list[Any]]], None],
        on_control: Callable[[str, str], None],
        on_connected: Callable[[], None],
    ) -> None:
        self._redis = redis
        self.replica = replica
        self._metrics = metrics
        self._on_ticks = on_ticks
        self._on_orders = on_orders
        self._on_control = on_control
        self._on_connected = on_connected
        self.channel = redis.key("ticker", "events")
        self.last_key = redis.key("ticker", "last")
        self._ticks: dict[int, dict[str, Any]] = {}
        self._orders: deque[tuple[str, bytes]] = deque(maxlen=MAX_QUEUED_ORDER_EVENTS)
        self._controls: set[str] = set()
        self._wake = asyncio.Event()
        self.publishing = True
        self.listening = False
        self.listen_failed = False
        self.last_error: str | None = None

    # -- publishing -------------------------------------------------------------------------

    def offer_tick(self, token: int, full: dict[str, Any]) -> None:
        self._ticks[token] = full
        self._wake.set()

    def offer_orders(self, events: list[tuple[str, bytes]]) -> None:
        self._orders.extend(events)
        self._wake.set()

    def announce(self, kind: str) -> None:
        self._controls.add(kind)
        self._wake.set()

    async def run_publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ticks, self._ticks = self._ticks, {}
            orders = list(self._orders)
            self._orders.clear()
            controls, self._controls = self._controls, set()
            try:
                await self._publish(ticks, orders, controls)
            except FAILURES as exc:
                self._failed("publish", exc)
                self.publishing = False
                for token, tick in ticks.items():  # a newer tick queued meanwhile wins
                    self._ticks.setdefault(token, tick)
                self._orders.extendleft(reversed(orders))
                self._controls |= controls
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
            else:
                self.publishing = True

    async def _publish(
        self, ticks: dict[int, dict[str, Any]], orders: list[tuple[str, bytes]], controls: set[str]
    ) -> None:
        if not (ticks or orders or controls):
            return
        pipe = self._redis.client.pipeline(transaction=False)
        if ticks:
            encoded = {str(token): orjson.dumps(tick) for token, tick in ticks.items()}
            pipe.hset(self.last_key, mapping=encoded)  # type: ignore[arg-type]
            pipe.expire(self.last_key, LAST_TICKS_TTL)
            body = [orjson.Fragment(data) for data in encoded.values()]
            pipe.publish(
                self.channel, orjson.dumps({"r": self.replica, "k": "ticks", "ticks": body})
            )
        if orders:
            events = [[account, orjson.Fragment(message)] for account, message in orders]
            pipe.publish(
                self.channel, orjson.dumps({"r": self.replica, "k": "orders", "events": events})
            )
        for kind in sorted(controls):
            pipe.publish(self.channel, orjson.dumps({"r": self.replica, "k": kind}))
        await pipe.execute()

    async def last_ticks(self, tokens: list[int], timeout: float) -> dict[int, dict[str, Any]]:
        """The last published tick of each instrument (for snapshots); {} when Redis fails."""
        if not tokens:
            return {}
        try:
            async with asyncio.timeout(timeout):
                values = await self._redis.client.hmget(self.last_key, [str(t) for t in tokens])
        except FAILURES as exc:
            self._failed("snapshot", exc)
            return {}
        found: dict[int, dict[str, Any]] = {}
        for token, value in zip(tokens, values, strict=True):
            if value is not None:
                with contextlib.suppress(orjson.JSONDecodeError):
                    found[token] = orjson.loads(value)
        return found

    # -- listening --------------------------------------------------------------------------

    async def run_listener(self) -> None:
        while True:
            pubsub = self._redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening, self.listen_failed = True, False
                if self.last_error is not None:
                    log.info("ticker fan-out via Redis is back")
                    self.last_error = None
                self._on_connected()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.dispatch(message["data"])
            except FAILURES as exc:
                self.listen_failed = True
                self._failed("listen", exc)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(RETRY_SECONDS)

    def dispatch(self, data: bytes | str) -> None:
        try:
            message = orjson.loads(data)
            sender, kind = message["r"], message["k"]
            if sender == self.replica:
                return
            if kind == "ticks":
                self._on_ticks(message["ticks"])
            elif kind == "orders":
                self._on_orders(message["events"])
            else:
                self._on_control(kind, sender)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed ticker message: %s", type(exc).__name__)

    @property
    def healthy(self) -> bool:
        return self.publishing and not self.listen_failed

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.ticker_fanout_errors.labels(operation=operation).inc()
        text = f"{type(exc).__name__}: {str(exc)[:200]}"
        if text != self.last_error:  # once per distinct failure, not once per retry
            log.warning("ticker %s via Redis failed: %s", operation, text)
        self.last_error = text
