"""What the ticker reports (``/health``'s ``ticker`` section, the connection and subscription
gauges, this replica's entry in the Redis registry) and its once-a-second housekeeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.metrics import Metrics
from app.services.render import iso_time_or_none
from app.services.ticker.fanout import Fanout
from app.services.ticker.hub import Hub
from app.services.ticker.protocol import heartbeat
from app.services.ticker.registry import Entry, ReplicaRegistry
from app.services.ticker.subscriptions import SubscriptionService


class TickerStatus:
    def __init__(
        self,
        *,
        hub: Hub,
        fanout: Fanout,
        replicas: ReplicaRegistry,
        subscriptions: SubscriptionService,
        metrics: Metrics,
    ) -> None:
        self._hub = hub
        self._fanout = fanout
        self._replicas = replicas
        self._subscriptions = subscriptions
        self._metrics = metrics
        self.running = False
        self.last_tick_ns = 0

    def entry(self) -> Entry:
        hub = self._hub
        return Entry(
            len(hub.connections), hub.subscriptions, hub.interest(), sorted(hub.by_account)
        )

    def totals(self) -> tuple[int, int, int]:
        """(connections, subscriptions, replicas) across the cluster."""
        return self._replicas.totals(len(self._hub.connections), self._hub.subscriptions)

    def install_gauges(self) -> None:
        m, hub = self._metrics, self._hub
        m.ws_connections.labels(scope="replica").set_function(lambda: len(hub.connections))
        m.ws_connections.labels(scope="cluster").set_function(lambda: self.totals()[0])
        m.ticker_subscriptions.labels(scope="replica").set_function(lambda: hub.subscriptions)
        m.ticker_subscriptions.labels(scope="cluster").set_function(lambda: self.totals()[1])

    def health(self) -> dict[str, Any]:
        connections, subscriptions, replicas = self.totals()
        hub = self._hub
        return {
            "running": self.running,
            "replica": self._replicas.replica,
            "replicas": replicas,
            "connections": connections,
            "subscriptions": subscriptions,
            "last_tick_at": iso_time_or_none(self.last_tick_ns),
            "local": {
                "connections": len(hub.connections),
                "subscriptions": hub.subscriptions,
                "instruments": len(hub.by_token),
            },
            "durable_subscriptions": len(self._subscriptions.active),
            "fanout": self.fanout_health(),
        }

    def fanout_health(self) -> dict[str, Any]:
        """Redis pub/sub and registry. Informational: a Redis outage already degrades
        ``/health`` through its own check, and local clients are served regardless."""
        fanout, replicas = self._fanout, self._replicas
        ok = fanout.healthy and replicas.last_error is None
        return {
            "status": "ok" if ok else "degraded",
            "listening": fanout.listening,
            "publishing": fanout.publishing,
            "registry": "ok" if replicas.ok else "unavailable",
            "last_error": fanout.last_error or replicas.last_error,
        }


async def housekeeping(
    hub: Hub,
    *,
    heartbeat_seconds: float,
    reload_seconds: float,
    reload: Callable[[], Awaitable[None]],
) -> None:
    """Once a second: counters, slow and idle clients; heartbeats; re-read durable
    subscriptions now and then (in case a change announcement was missed)."""
    next_beat = time.monotonic() + heartbeat_seconds
    next_reload = time.monotonic() + reload_seconds
    while True:
        await asyncio.sleep(min(1.0, heartbeat_seconds))
        now = time.monotonic()
        hub.sync_counters()
        hub.sweep(now)
        if now >= next_beat:
            hub.broadcast(heartbeat(), "heartbeat")
            next_beat = now + heartbeat_seconds
        if now >= next_reload:
            next_reload = now + reload_seconds
            await reload()
