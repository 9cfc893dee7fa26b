"""The transactional outbox: the journal's transaction hook writes, in the same transaction as
the orders and trades it reports, what the webhook messages are derived from.

A crash therefore can neither lose a webhook (the batch commits with the fills) nor send one
for a fill that never committed (it rolls back with them). The hook runs inside the order
path's serial commit, so it does as little as it can: the enabled endpoints are cached per
account in memory (refreshed on every endpoint change, and every few seconds by the
dispatcher for changes made on other replicas); accounts without endpoints cost one dict
lookup per order row; and it writes ONE batch row per commit holding the requests' changed
order rows (of accounts with endpoints, as positional tuples), the ids of the orders they
placed, their trades and the routes (account -> event type -> endpoints) as they were at the
commit. Which events each order yields and which endpoints get them is worked out later, by
the dispatcher's expansion (``app.store.webhooks.expand_changes``; in SQL on PostgreSQL),
outside the order path: per order, that derivation in Python costs several times what the
tuple does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from app.metrics import Metrics
from app.services.instruments.snapshot import SnapshotSource
from app.services.orders.journal import JournalUnit
from app.services.webhooks.events import (
    CHANGES_VERSION,
    change_fields,
    render_body,
    trade_fields,
)
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.webhooks import ORDER_EVENTS, queue_changes, webhook_endpoints


@dataclass(frozen=True, slots=True)
class Route:
    endpoint_id: str
    events: frozenset[str]


class OutboxWriter:
    def __init__(
        self,
        *,
        database: Database,
        registry: SnapshotSource,
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
        self._few_accounts = True
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
        # For the hook's batches: account -> event type -> the endpoints that take it.
        targets = {
            account: {
                event: tuple(r.endpoint_id for r in found if event in r.events)
                for event in ORDER_EVENTS
            }
            for account, found in self._routes.items()
        }
        self._targets = {
            account: {event: ids for event, ids in by_event.items() if ids}
            for account, by_event in targets.items()
        }
        # Few accounts: every batch carries all the routes (cheaper than finding its own).
        self._few_accounts = len(self._targets) <= 16

    def stop_routing(self, endpoint_ids: Collection[str]) -> None:
        """Route nothing more to ``endpoint_ids`` from now on, ahead of the next ``refresh``
        (their receivers answered 410 Gone: they are being disabled)."""
        self.set_routes(
            (account, route.endpoint_id, list(route.events))
            for account, found in self._routes.items()
            for route in found
            if route.endpoint_id not in endpoint_ids
        )

    def routes(self, account: str) -> tuple[Route, ...]:
        return self._routes.get(account, ())

    def endpoint_ids(self) -> set[str]:
        """Every enabled endpoint (as last refreshed)."""
        return self._endpoint_ids

    # --- the journal hooks --------------------------------------------------------------------

    def on_written(self, callback: Callable[[], None]) -> None:
        """``callback`` runs after a commit that wrote outbox rows (to wake the dispatcher)."""
        self._on_written.append(callback)

    def write(self, tx: JournalTransaction, units: list[JournalUnit]) -> None:
        """The transaction hook: queues the batch in the journal's transaction."""
        found = self.changes_for(units)
        if found is not None:
            doc, changes = found
            now = self._clock()
            queue_changes(tx, doc, changes, created_ns=now, deadline_ns=now + self.retry_horizon_ns)
            self._written = True

    def after_commit(self, _units: list[JournalUnit]) -> None:
        """The journal listener: the rows are committed now, so deliveries may start."""
        if self._written:
            self._written = False
            for callback in self._on_written:
                callback()

    def changes_for(self, units: list[JournalUnit]) -> tuple[dict[str, Any], int] | None:
        """The batch document of the units (``app.store.webhooks.expand_changes`` tells its
        format) and its number of order changes; None when no account of theirs has an
        endpoint. The hot loop of the hook: one C-level tuple per order row of an account
        with endpoints."""
        targets = self._targets
        if not targets:
            return None
        fields = change_fields
        found: list[tuple[list[Any], list[int], list[tuple[int, int, int, int, int, int]]]] = []
        count = 0
        for unit in units:
            changes = [fields(row) for row in unit.orders if row.account in targets]
            if changes:
                trades = [trade_fields(trade) for _token, trade in unit.trades]
                found.append((changes, list(unit.created), trades))
                count += len(changes)
        if not found:
            return None
        if self._few_accounts:
            routes = targets
        else:
            accounts = {change[0] for changes, _created, _trades in found for change in changes}
            routes = {account: targets[account] for account in accounts}
        return {"v": CHANGES_VERSION, "r": routes, "u": found}, count

    def render(self, event_type: str, created_ns: int, payload: str) -> bytes:
        """The body of a stored message (raises if its instrument is unknown)."""
        return render_body(event_type, created_ns, payload, self._registry.snapshot.instrument)
