"""An order service without HTTP: built as ``app.roots`` builds it (real database, the
seeded instrument registry, a running journal writer), for tests of the order pipeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from app.metrics import Metrics
from app.services.instruments.registry import InstrumentRegistry
from app.services.orders.service import OrderService
from app.services.orders.shard import Shard
from app.settings import Settings
from app.store.database import Database
from app.wiring import build_order_service, load_registry, open_database


@asynccontextmanager
async def opened_registry(
    settings: Settings,
) -> AsyncIterator[tuple[Database, InstrumentRegistry, Metrics]]:
    """The migrated database and the registry seeded from the bundled instruments."""
    database = await open_database(settings)
    try:
        metrics = Metrics()
        registry = await load_registry(settings, database, metrics)
        yield database, registry, metrics
    finally:
        await database.dispose()


@asynccontextmanager
async def serving_orders(
    settings: Settings, shard: Shard | None = None
) -> AsyncIterator[OrderService]:
    """An ``OrderService`` with its books rebuilt from the journal and its writer running."""
    async with (
        opened_registry(settings) as (database, registry, metrics),
        serving_on(database, registry, metrics, settings, shard or Shard()) as orders,
    ):
        yield orders


@asynccontextmanager
async def serving_on(
    database: Database,
    registry: InstrumentRegistry,
    metrics: Metrics,
    settings: Settings,
    shard: Shard,
) -> AsyncIterator[OrderService]:
    """The order service on an opened registry (for tests that also use the registry)."""
    orders = build_order_service(
        settings, database=database, registry=registry, metrics=metrics, shard=shard
    )
    await orders.start()
    orders.journal.resume()
    writer = asyncio.get_running_loop().create_task(orders.journal.run())
    try:
        yield orders
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


def batch_body(*orders: Any, atomic: bool | None = None) -> bytes:
    """A ``POST /advanced/batch-orders`` body as the service receives it."""
    body: dict[str, Any] = {"orders": list(orders)}
    if atomic is not None:
        body["atomic"] = atomic
    return orjson.dumps(body)


def codes(response: dict[str, Any]) -> list[str | None]:
    """Each result's error code (None where the order was accepted), in result order."""
    return [(r.get("error") or {}).get("code") for r in response["results"]]
