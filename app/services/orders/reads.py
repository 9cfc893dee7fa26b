"""Reading orders, fills and batches back (committed state only), scoped to the caller's
account. The gateway role serves these too: they read the database, not the books."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound, ValidationFailed
from app.services.orders import journal_queries
from app.services.orders.entry import InstrumentControl
from app.services.orders.errors import OrderNotFound
from app.services.orders.fills import FillFilter, list_fills
from app.services.orders.records import LIVE_STATUSES
from app.services.render import render_account_fill, render_order
from app.services.ticker.candles import MAX_NS, parse_time
from app.store.database import Database

ORDER_STATUSES = frozenset(
    {"open", "partially_filled", "filled", "cancelled", "expired", "rejected", "pending_trigger"}
)
WORKING = "working"  # every live status: what a client still has in the market


def parse_statuses(text: str | None) -> frozenset[str] | None:
    """``status=open,partially_filled`` (any of them), ``working`` for every live status."""
    if text is None:
        return None
    wanted: set[str] = set()
    for name in (part.strip() for part in text.split(",")):
        if name == WORKING:
            wanted |= LIVE_STATUSES
        elif name in ORDER_STATUSES:
            wanted.add(name)
        else:
            choices = ", ".join([*sorted(ORDER_STATUSES), WORKING])
            raise ValidationFailed(f"status must be a comma-separated list of {choices}")
    return frozenset(wanted)


def _time(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    ns = parse_time(text, name)
    if not 0 <= ns <= MAX_NS:
        raise ValidationFailed(f"{name} must lie between 1970 and 2262", code="INVALID_TIME_RANGE")
    return ns


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"
    message = "no such batch"


class OrderReads:
    def __init__(self, *, database: Database, registry: InstrumentControl) -> None:
        self._database = database
        self._registry = registry

    async def get_order(self, account: str, order_id: int) -> dict[str, Any]:
        record = await journal_queries.order_record(self._database, account, order_id)
        if record is None:
            raise OrderNotFound()
        instrument = self._registry.snapshot.instrument(record.instrument_token)
        return render_order(instrument, record)

    async def get_order_by_client_id(self, account: str, client_order_id: str) -> dict[str, Any]:
        order_id = await journal_queries.order_id_of(self._database, account, client_order_id)
        if order_id is None:
            raise OrderNotFound()
        return await self.get_order(account, order_id)

    async def list_orders(
        self,
        account: str,
        *,
        status: str | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        statuses = parse_statuses(status)
        snapshot = self._registry.snapshot
        token = None if symbol is None else snapshot.lookup(symbol).instrument_token
        records, next_cursor = await journal_queries.list_orders(
            self._database,
            account,
            statuses=statuses,
            instrument_token=token,
            client_order_id=client_order_id,
            limit=limit,
            cursor=cursor,
        )
        return {
            "items": [render_order(snapshot.instrument(r.instrument_token), r) for r in records],
            "next_cursor": next_cursor,
        }

    async def list_fills(
        self,
        account: str,
        *,
        symbol: str | None,
        start: str | None,
        end: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        snapshot = self._registry.snapshot
        token = None if symbol is None else snapshot.lookup(symbol).instrument_token
        wanted = FillFilter(account, token, _time(start, "start"), _time(end, "end"))
        start_ns, end_ns = wanted.start_ns, wanted.end_ns
        if start_ns is not None and end_ns is not None and start_ns >= end_ns:
            raise ValidationFailed("start must be before end", code="INVALID_TIME_RANGE")
        rows, next_cursor = await list_fills(self._database, wanted, limit=limit, cursor=cursor)
        return {
            "items": [
                render_account_fill(
                    snapshot.instrument(r.instrument_token),
                    trade_id=r.trade_id,
                    order_id=r.order_id,
                    client_order_id=r.client_order_id,
                    side=r.side,
                    price=r.price,
                    quantity=r.quantity,
                    liquidity=r.liquidity,
                    ts_ns=r.ts_ns,
                )
                for r in rows
            ],
            "next_cursor": next_cursor,
        }

    async def list_batches(self, account: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        items, next_cursor = await journal_queries.list_batches(
            self._database, account, limit=limit, cursor=cursor
        )
        return {"items": items, "next_cursor": next_cursor}

    async def get_batch(self, account: str, batch_id: str) -> dict[str, Any]:
        found = await journal_queries.batch(self._database, account, batch_id)
        if found is None:
            raise BatchNotFound()
        return found
