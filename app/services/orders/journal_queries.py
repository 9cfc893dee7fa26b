"""Reads of the journal: orders with their fills, batches, recent trades.

Everything here reads committed rows only, so what a client reads back is what survives a
crash. Lists use keyset pagination with an opaque cursor (``app.services.cursors``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import and_, or_, select

from app.services.cursors import decode_cursor, encode_cursor
from app.services.orders.records import Fill, OrderRecord
from app.store.database import Database
from app.store.journal import batches, orders, trades


async def batch_by_idempotency_key(
    database: Database, account: str, key: str
) -> tuple[str | None, dict[str, Any]] | None:
    async with database.engine.connect() as conn:
        row = (
            await conn.execute(
                select(batches.c.request_hash, batches.c.response).where(
                    batches.c.account == account, batches.c.idempotency_key == key
                )
            )
        ).first()
    if row is None:
        return None
    return row.request_hash, orjson.loads(row.response)


async def attach_fills(conn: Any, records: Mapping[int, OrderRecord], *, chunk: int = 500) -> None:
    """Append to each record its fills from the journal, in trade order (the orders' ids are
    asked ``chunk`` at a time: an order's trades all come in its chunk)."""
    ids = list(records)
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        rows = await conn.execute(
            select(trades)
            .where(or_(trades.c.maker_order_id.in_(part), trades.c.taker_order_id.in_(part)))
            .order_by(trades.c.trade_id)
        )
        for trade in rows:
            for order_id, liquidity in (
                (trade.maker_order_id, "maker"),
                (trade.taker_order_id, "taker"),
            ):
                owner = records.get(order_id)
                if owner is not None:
                    owner.fills.append(Fill(trade.trade_id, trade.price, trade.quantity, liquidity))


async def order_records(
    database: Database, account: str, order_ids: Iterable[int]
) -> dict[int, OrderRecord]:
    """The account's orders with these ids, with their fills (others' orders are invisible)."""
    ids = list(order_ids)
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            select(orders).where(orders.c.account == account, orders.c.order_id.in_(ids))
        )
        records = {row.order_id: OrderRecord.from_row(row) for row in rows}
        await attach_fills(conn, records)
    return records


async def order_record(database: Database, account: str, order_id: int) -> OrderRecord | None:
    return (await order_records(database, account, [order_id])).get(order_id)


async def order_id_of(database: Database, account: str, client_order_id: str) -> int | None:
    """The id of the account's order with this ``client_order_id`` (unique per account)."""
    async with database.engine.connect() as conn:
        found: int | None = await conn.scalar(
            select(orders.c.order_id).where(
                orders.c.account == account, orders.c.client_order_id == client_order_id
            )
        )
    return found


async def list_orders(
    database: Database,
    account: str,
    *,
    statuses: Collection[str] | None,
    instrument_token: int | None,
    client_order_id: str | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[list[OrderRecord], str | None]:
    """Newest first."""
    query = select(orders).where(orders.c.account == account)
    if statuses is not None:
        query = query.where(orders.c.status.in_(sorted(statuses)))
    if client_order_id is not None:
        query = query.where(orders.c.client_order_id == client_order_id)
    if instrument_token is not None:
        query = query.where(orders.c.instrument_token == instrument_token)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        query = query.where(orders.c.order_id < before)
    query = query.order_by(orders.c.order_id.desc()).limit(limit + 1)
    async with database.engine.connect() as conn:
        records = [OrderRecord.from_row(row) for row in await conn.execute(query)]
        more = len(records) > limit
        del records[limit:]
        await attach_fills(conn, {r.order_id: r for r in records if r.filled})
    next_cursor = encode_cursor(records[-1].order_id) if more and records else None
    return records, next_cursor


async def list_batches(
    database: Database, account: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(
        batches.c.batch_id, batches.c.created_ns, batches.c.accepted, batches.c.rejected
    ).where(
        batches.c.account == account,
        # A matcher's share of a gateway batch is stored under its command id; the
        # gateway's merged row is the one clients see.
        or_(batches.c.idempotency_key.is_(None), ~batches.c.idempotency_key.startswith("cmd:")),
    )
    if cursor is not None:
        created, batch_id = decode_cursor(cursor, 2)
        query = query.where(
            or_(
                batches.c.created_ns < created,
                and_(batches.c.created_ns == created, batches.c.batch_id < batch_id),
            )
        )
    query = query.order_by(batches.c.created_ns.desc(), batches.c.batch_id.desc()).limit(limit + 1)
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    more = len(rows) > limit
    del rows[limit:]
    items = [
        {
            "batch_id": row.batch_id,
            "created_ns": row.created_ns,
            "accepted": row.accepted,
            "rejected": row.rejected,
        }
        for row in rows
    ]
    next_cursor = encode_cursor(rows[-1].created_ns, rows[-1].batch_id) if more else None
    return items, next_cursor


async def batch(database: Database, account: str, batch_id: str) -> dict[str, Any] | None:
    async with database.engine.connect() as conn:
        row = (
            await conn.execute(
                select(batches.c.response, batches.c.created_ns).where(
                    batches.c.account == account, batches.c.batch_id == batch_id
                )
            )
        ).first()
    if row is None:
        return None
    body: dict[str, Any] = orjson.loads(row.response)
    body["created_ns"] = row.created_ns
    return body
