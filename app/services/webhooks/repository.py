"""SQL for endpoints and the delivery log, always scoped to the owning account.

Write transactions start with their write (no read-then-write), so on SQLite they take the
write lock up front instead of failing on a stale read snapshot while the journal commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, update

from app.services.cursors import decode_cursor, encode_cursor
from app.store.database import Database
from app.store.webhooks import webhook_attempts, webhook_endpoints, webhook_outbox

EP, OB, AT = webhook_endpoints, webhook_outbox, webhook_attempts


async def count_endpoints(database: Database, account: str) -> int:
    async with database.engine.connect() as conn:
        found = await conn.scalar(select(func.count()).where(EP.c.account == account))
    return int(found or 0)


async def insert_endpoint(database: Database, values: dict[str, Any]) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(insert(EP).values(**values))


async def get_endpoint(database: Database, account: str, endpoint_id: str) -> Row[Any] | None:
    async with database.engine.connect() as conn:
        result = await conn.execute(
            select(EP).where(EP.c.account == account, EP.c.endpoint_id == endpoint_id)
        )
        return result.first()


async def list_endpoints(
    database: Database, account: str, *, limit: int, cursor: str | None
) -> tuple[list[Row[Any]], str | None]:
    query = select(EP).where(EP.c.account == account)
    if cursor is not None:
        created_ns, endpoint_id = decode_cursor(cursor, 2)
        query = query.where(
            or_(
                EP.c.created_ns > created_ns,
                and_(EP.c.created_ns == created_ns, EP.c.endpoint_id > endpoint_id),
            )
        )
    query = query.order_by(EP.c.created_ns, EP.c.endpoint_id).limit(limit + 1)
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_ns, last.endpoint_id)


async def update_endpoint(
    database: Database, account: str, endpoint_id: str, values: dict[str, Any]
) -> Row[Any] | None:
    async with database.engine.begin() as conn:
        result = await conn.execute(
            update(EP)
            .where(EP.c.account == account, EP.c.endpoint_id == endpoint_id)
            .values(**values)
            .returning(*EP.c)
        )
        return result.first()


async def delete_endpoint(database: Database, account: str, endpoint_id: str) -> bool:
    """The endpoint with its outbox rows and attempts, or False when it is not the account's."""
    async with database.engine.begin() as conn:
        gone = await conn.execute(
            delete(EP).where(EP.c.account == account, EP.c.endpoint_id == endpoint_id)
        )
        if gone.rowcount == 0:
            return False
        mine = select(OB.c.id).where(OB.c.endpoint_id == endpoint_id).scalar_subquery()
        await conn.execute(delete(AT).where(AT.c.outbox_id.in_(mine)))
        await conn.execute(delete(OB).where(OB.c.endpoint_id == endpoint_id))
    return True


async def list_deliveries(
    database: Database,
    endpoint_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row[Any]], dict[int, list[Row[Any]]], str | None]:
    """Newest first, with each delivery's attempts (oldest first)."""
    query = select(OB).where(OB.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(OB.c.status == status)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        query = query.where(OB.c.id < before)
    query = query.order_by(OB.c.id.desc()).limit(limit + 1)
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
        page = rows[:limit]
        attempts = await _attempts(conn, page)
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return page, attempts, next_cursor


async def get_delivery(
    database: Database, endpoint_id: str, outbox_id: int
) -> tuple[Row[Any], list[Row[Any]]] | None:
    async with database.engine.connect() as conn:
        row = (
            await conn.execute(
                select(OB).where(OB.c.endpoint_id == endpoint_id, OB.c.id == outbox_id)
            )
        ).first()
        if row is None:
            return None
        attempts = await _attempts(conn, [row])
    return row, attempts[row.id]


async def _attempts(conn: Any, deliveries: list[Row[Any]]) -> dict[int, list[Row[Any]]]:
    """Each delivery's attempts, as many as its row counts. Each read is its own snapshot
    (READ COMMITTED; SQLite outside a write), so an attempt recorded between reading the rows
    and reading the attempts is left out: it belongs with the row state it was stored with,
    which the caller has not seen (attempts are only ever appended, in the same transaction
    that increments ``attempt_count``)."""
    found: dict[int, list[Row[Any]]] = {row.id: [] for row in deliveries}
    if deliveries:
        rows = await conn.execute(
            select(AT).where(AT.c.outbox_id.in_(list(found))).order_by(AT.c.outbox_id, AT.c.id)
        )
        for row in rows:
            found[row.outbox_id].append(row)
    return {row.id: found[row.id][: row.attempt_count] for row in deliveries}


async def requeue(
    database: Database, endpoint_id: str, outbox_id: int, *, now: int, deadline: int
) -> bool:
    """Make a delivery pending and due now, with a fresh retry horizon."""
    async with database.engine.begin() as conn:
        result = await conn.execute(
            update(OB)
            .where(OB.c.endpoint_id == endpoint_id, OB.c.id == outbox_id)
            .values(status="pending", next_attempt_ns=now, deadline_ns=deadline)
        )
    return result.rowcount > 0


async def insert_outbox_row(database: Database, values: dict[str, Any]) -> int:
    async with database.engine.begin() as conn:
        result = await conn.execute(insert(OB).values(**values).returning(OB.c.id))
        return int(result.scalar_one())
