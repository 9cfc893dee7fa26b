"""What the routes call to trade: one interface, two transports.

``OrderService`` (in-process, ``ROLE=all``) and ``app.services.cluster.gateway.StreamOrderEntry``
(a gateway forwarding to sharded matchers over Redis Streams) both implement ``OrderEntry``;
``MarketDataService`` and ``RemoteMarketData`` both implement ``MarketData``. The routes do
not know which one runs.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.instruments.snapshot import SnapshotSource
from app.services.orders.records import OrderTerms


class InstrumentControl(SnapshotSource, Protocol):
    """What the order path needs of the instrument registry: the snapshot, and halting or
    resuming an instrument."""

    async def set_status(self, instrument_token: int, status: InstrumentStatus) -> Instrument: ...


class OrderEntry(Protocol):
    async def place_batch(
        self, account: str, body: bytes, *, idempotency_key: str | None = None
    ) -> dict[str, Any]: ...

    async def place_order(
        self, account: str, body: bytes, *, terms: OrderTerms | None = None
    ) -> dict[str, Any]:
        """One order; ``terms`` (Kite's product, validity, TTL, tag) are kept on it."""
        ...

    async def cancel_order(self, account: str, order_id: int) -> dict[str, Any]: ...

    async def amend_order(
        self, account: str, order_id: int, *, quantity: str | None, price: str | None
    ) -> dict[str, Any]: ...

    async def cancel_all(
        self, account: str, symbol: str | None = None, *, reason: str | None = None
    ) -> dict[str, Any]: ...

    async def set_halted(self, instrument_token: int, halted: bool) -> Instrument: ...


class MarketData(Protocol):
    async def order_book(self, symbol: str, depth: int) -> dict[str, Any]: ...

    async def stats(self, symbol: str) -> dict[str, Any]: ...

    async def trades(
        self, symbol: str, limit: int, cursor: str | None = None
    ) -> dict[str, Any]: ...
