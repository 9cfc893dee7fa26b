"""Reading orders and batches back (committed state only), scoped to the caller's account."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound, ValidationFailed
from app.services.orders import queries
from app.services.orders.errors import OrderNotFound
from app.services.orders.render import render_order
from app.services.orders.router import Registry
from app.store.database import Database

ORDER_STATUSES = frozenset(
    {"open", "partially_filled", "filled", "cancelled", "expired", "rejected", "pending_trigger"}
)


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"
    message = "no such batch"


class OrderReads:
    def __init__(self, *, database: Database, registry: Registry) -> None:
        self._database = database
        self._registry = registry

    async def get_order(self, account: str, order_id: int) -> dict[str, Any]:
        record = await queries.order_record(self._database, account, order_id)
        if record is None:
            raise OrderNotFound()
        instrument = self._registry.snapshot.instrument(record.instrument_token)
        return render_order(instrument, record)

    async def list_orders(
        self,
        account: str,
        *,
        status: str | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        if status is not None and status not in ORDER_STATUSES:
            raise ValidationFailed(f"status must be one of {', '.join(sorted(ORDER_STATUSES))}")
        snapshot = self._registry.snapshot
        token = None if symbol is None else snapshot.lookup(symbol).instrument_token
        records, next_cursor = await queries.list_orders(
            self._database,
            account,
            status=status,
            instrument_token=token,
            limit=limit,
            cursor=cursor,
        )
        return {
            "items": [render_order(snapshot.instrument(r.instrument_token), r) for r in records],
            "next_cursor": next_cursor,
        }

    async def list_batches(self, account: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        items, next_cursor = await queries.list_batches(
            self._database, account, limit=limit, cursor=cursor
        )
        return {"items": items, "next_cursor": next_cursor}

    async def get_batch(self, account: str, batch_id: str) -> dict[str, Any]:
        found = await queries.batch(self._database, account, batch_id)
        if found is None:
            raise BatchNotFound()
        return found
