"""The ticker's limits (from settings, through the lifespan) and what it needs of the books."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine import OrderBook
from app.services.orders.journal import JournalWriter


class LocalBooks(Protocol):
    """The local books (``OrderService``); a gateway has none."""

    @property
    def books(self) -> dict[int, OrderBook]: ...
    @property
    def journal(self) -> JournalWriter: ...
    @property
    def ready(self) -> bool: ...
    async def wait_ready(self) -> None: ...


class CancelAll(Protocol):
    """``OrderEntry.cancel_all``: the dead man's switch cancels with its own reason."""

    def __call__(
        self, account: str, symbol: str | None = None, *, reason: str | None = None
    ) -> Awaitable[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class TickerLimits:
    max_instruments: int = 1000
    max_connections_per_key: int = 50
    heartbeat_seconds: float = 20.0
    idle_timeout_seconds: float = 120.0
    auth_timeout_seconds: float = 5.0
    send_queue_limit: int = 10_000
    slow_client_seconds: float = 10.0
    registry_ttl_seconds: float = 30.0
    flush_interval_seconds: float = 0.005
