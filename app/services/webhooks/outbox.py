"""The transactional outbox: the journal's transaction hook writes one row per event per
subscribed endpoint, in the same transaction as the orders and trades it reports.

A crash therefore can neither lose a webhook (the rows commit with the fills) nor send one
for a fill that never committed (the rows roll back with it). The hook runs inside the order
path's commit, so it stays cheap: the enabled endpoints are cached per account in memory
(refreshed on every endpoint change, and every few seconds by the dispatcher for changes made
on other replicas); accounts without endpoints cost one dict lookup per order row; an event
stores a compact snapshot (serialised once per order row, shared by the account's endpoints
and events) that is rendered only when sent; all rows go in one bulk insert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.metrics import Metrics
from app.services.instrument_snapshot import RegistrySnapshot
from app.services.orders.journal import JournalUnit
from app.services.webhooks.events import (
    ORDER_EVENTS,
    event_types,
    fills_by_order,
    render_body,
    snapshot,
)
from app.store.database import Database
from app.store.webhooks import OutboxRow, insert_outbox, webhook_endpoints


class Registry(Protocol):
    @property
    def snapshot(self) -> RegistrySnapshot: ...


@dataclass(frozen=True, slots=True)
class Route:
    endpoint_id: str
    events: frozenset[str]


class OutboxWriter:
    def __init__(
        self,
        *,
        database: Database,
        registry: Registry,
        metrics: Metrics,
        retry_horizon_ns: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._database = database
        self._registry = registry
        self._metrics = metrics
        self.retry_horizon_ns = retry_horizon_ns
        self._clock = clock
        self._routes: dict[str, tuple[Route, ...]] = {}
        self._targets: dict[str, dict[str, tuple[str, ...]]] = {}
        self._endpoint_ids: set[str] = set()
        self._written = False
        self._on_written: list[Callable[[], None]] = []

    # --- the endpoint cache -------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload the enabled endpoints (after a change here, or periodically)."""
        async with self._database.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    webhook_endpoints.c.endpoint_id,
                    webhook_endpoints.c.account,
                    webhook_endpoints.c.events,
                )
                .where(webhook_endpoints.c.enabled.is_(True))
                .order_by(webhook_endpoints.c.created_ns, webhook_endpoints.c.endpoint_id)
            )
            self.set_routes(
                (row.account, row.endpoint_id, orjson.loads(row.events)) for row in rows
            )

    def set_routes(self, endpoints: Iterable[tuple[str, str, list[str]]]) -> None:
        routes: dict[str, list[Route]] = {}
        for account, endpoint_id, events in endpoints:
            routes.setdefault(account, []).append(Route(endpoint_id, frozenset(events)))
        self._routes = {account: tuple(found) for account, found in routes.items()}
        self._endpoint_ids = {r.endpoint_id for found in routes.values() for r in found}
        # For the hook: account -> event type -> the endpoints that take it.
        self._targets = {
            account: {
                event: tuple(r.endpoint_id for r in found if event in r.events)
                for event in ORDER_EVENTS
            }
            for account, found in self._routes.items()
        }

    def routes(self, account: str) -> tuple[Route, ...]:
        return self._routes.get(account, ())

    def endpoint_ids(self) -> set[str]:
        """Every enabled endpoint (as last refreshed)."""
        return self._endpoint_ids

    # --- the journal hooks --------------------------------------------------------------------

    def on_written(self, callback: Callable[[], None]) -> None:
        """``callback`` runs after a commit that wrote outbox rows (to wake the dispatcher)."""
        self._on_written.append(callback)

    async def write(self, conn: AsyncConnection, units: list[JournalUnit]) -> None:
        """The transaction hook: runs inside the journal's transaction."""
        rows = self.rows_for(units)
        if rows:
            now = self._clock()
            await insert_outbox(conn, rows, created_ns=now, deadline_ns=now + self.retry_horizon_ns)
            self._written = True
            self._metrics.webhook_outbox_rows.inc(len(rows))

    def after_commit(self, _units: list[JournalUnit]) -> None:
        """The journal listener: the rows are committed now, so deliveries may start."""
        if self._written:
            self._written = False
            for callback in self._on_written:
                callback()

    def rows_for(self, units: list[JournalUnit]) -> list[OutboxRow]:
        """Outbox rows for the units' events, in order (the hot loop of the hook)."""
        targets = self._targets
        if not targets:
            return []
        rows: list[OutboxRow] = []
        append = rows.append
        for unit in units:
            created = unit.created
            fills = fills_by_order(unit.trades) if unit.trades else None
            for row in unit.orders:
                mine = targets.get(row["account"])
                if mine is None:
                    continue
                order_id = row["order_id"]
                order_fills = fills.get(order_id) if fills is not None else None
                payload = None
                for event_type in event_types(
                    row["status"], created=order_id in created, traded=bool(order_fills)
                ):
                    for endpoint_id in mine[event_type]:
                        if payload is None:
                            payload = snapshot(row, order_fills or [])
                        append((endpoint_id, event_type, order_id, payload))
        return rows

    def render(self, event_type: str, created_ns: int, payload: str) -> bytes:
        """The body of a stored message (raises if its instrument is unknown)."""
        return render_body(event_type, created_ns, payload, self._registry.snapshot.instrument)
