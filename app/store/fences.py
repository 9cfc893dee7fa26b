"""Fencing tokens for matcher leases and for the ``ROLE=all`` journal claim.

A matcher that takes over a shard stores its (larger) token here; every journal transaction
of a matcher then checks, under the row lock, that the stored token is still its own. A
matcher that was paused past its lease therefore cannot commit once a successor started.
"""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Integer, String, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.schema import metadata

matcher_fences = Table(
    "matcher_fences",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("token", BigInteger, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)


class StaleFence(Exception):
    """A newer matcher holds this shard: this one must not write."""


async def install_fence(database: Database, shard: int, token: int, holder: str) -> None:
    """Record ``token`` for ``shard`` unless a larger one is already there."""
    dialect = postgresql if database.is_postgres else sqlite
    statement = dialect.insert(matcher_fences).values(
        shard=shard, token=token, holder=holder, updated_ns=time.time_ns()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[matcher_fences.c.shard],
        set_={
            "token": func.max(matcher_fences.c.token, statement.excluded.token)
            if database.is_sqlite
            else func.greatest(matcher_fences.c.token, statement.excluded.token),
            "holder": statement.excluded.holder,
            "updated_ns": statement.excluded.updated_ns,
        },
    )
    async with database.engine.begin() as conn:
        await conn.execute(statement)
        stored = await conn.scalar(
            select(matcher_fences.c.token).where(matcher_fences.c.shard == shard)
        )
    if stored != token:
        raise StaleFence(f"shard {shard} is fenced at {stored}, above our {token}")


async def take_fence(database: Database, shard: int, holder: str) -> int:
    """The next token for ``shard``, installed at once. Only for a caller that holds the
    shard's exclusive claim (the ``ROLE=all`` advisory lock): the row is its own counter."""
    dialect = postgresql if database.is_postgres else sqlite
    statement = dialect.insert(matcher_fences).values(
        shard=shard, token=1, holder=holder, updated_ns=time.time_ns()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[matcher_fences.c.shard],
        set_={
            "token": matcher_fences.c.token + 1,
            "holder": statement.excluded.holder,
            "updated_ns": statement.excluded.updated_ns,
        },
    ).returning(matcher_fences.c.token)
    async with database.engine.begin() as conn:
        token = await conn.scalar(statement)
    return int(token)


async def fence_holder(database: Database, shard: int) -> str | None:
    """Who installed ``shard``'s current token (for messages; None if nobody ever did)."""
    async with database.engine.connect() as conn:
        holder = await conn.scalar(
            select(matcher_fences.c.holder).where(matcher_fences.c.shard == shard)
        )
    return None if holder is None else str(holder)


async def stored_fence(database: Database, shard: int) -> int:
    async with database.engine.connect() as conn:
        token = await conn.scalar(
            select(matcher_fences.c.token).where(matcher_fences.c.shard == shard)
        )
    return int(token or 0)


async def check_fence(conn: AsyncConnection, shard: int, token: int) -> None:
    """Inside a journal transaction: lock the shard's row and require our token."""
    result = await conn.execute(
        update(matcher_fences)
        .where(matcher_fences.c.shard == shard, matcher_fences.c.token == token)
        .values(token=token)
    )
    if result.rowcount != 1:
        raise StaleFence(f"shard {shard}: token {token} is no longer current")


_CHECK_FENCE = "UPDATE matcher_fences SET token = token WHERE shard = {mark} AND token = {mark}"


def guard_fence(tx: JournalTransaction, shard: int, token: int) -> None:
    """``check_fence`` as a journal transaction's statement: the group commits only if it
    locked the shard's row with our token (sent with the rest of the group, not before)."""
    sql = _CHECK_FENCE.format(mark="%s" if tx.postgres else "?")
    stale = StaleFence(f"shard {shard}: token {token} is no longer current")
    tx.require_one(sql, (shard, token), stale)
