"""Ticker tables and queries: durable instrument subscriptions, candles and day statistics.

Candles and day statistics read the ``trades`` journal table. Buckets are computed on the
integer ``ts_ns`` column: ``time_bucket(width, ts_ns)`` when TimescaleDB is installed (with
its ``first``/``last`` aggregates), else ``(ts_ns / width) * width`` with open and close
taken from the first and last trade id of each bucket. Trade ids increase with time on the
book's owner, so both forms give the same rows on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from app.store.database import Database
from app.store.journal import trades
from app.store.schema import metadata

MODES = ("ltp", "quote", "full")
STATUSES = ("active", "paused")

instrument_subscriptions = Table(
    "instrument_subscriptions",
    metadata,
    Column("instrument_token", BigInteger, primary_key=True, autoincrement=False),
    Column("mode", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64)),
    CheckConstraint("mode IN ('ltp', 'quote', 'full')", name="ck_instrument_subscriptions_mode"),
    CheckConstraint("status IN ('active', 'paused')", name="ck_instrument_subscriptions_status"),
)

# Candles filter one instrument by time: this index serves them (added by migration 0004).
Index("ix_trades_instrument_ts_ns", trades.c.instrument_token, trades.c.ts_ns)


@dataclass(frozen=True, slots=True)
class Candle:
    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    trades: int


@dataclass(frozen=True, slots=True)
class DayStats:
    instrument_token: int
    open: int
    high: int
    low: int
    close: int
    last_quantity: int
    last_ns: int
    volume: int
    trades: int


class SubscriptionStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def page(self, *, after: int | None, limit: int) -> list[Any]:
        query = select(instrument_subscriptions).order_by(
            instrument_subscriptions.c.instrument_token
        )
        if after is not None:
            query = query.where(instrument_subscriptions.c.instrument_token > after)
        async with self._database.engine.connect() as conn:
            return list(await conn.execute(query.limit(limit)))

    async def active(self) -> dict[int, str]:
        """Active subscriptions: instrument_token -> mode."""
        query = select(
            instrument_subscriptions.c.instrument_token, instrument_subscriptions.c.mode
        ).where(instrument_subscriptions.c.status == "active")
        async with self._database.engine.connect() as conn:
            return {row.instrument_token: row.mode for row in await conn.execute(query)}

    async def upsert(
        self, instrument_token: int, *, mode: str, status: str, account: str
    ) -> tuple[Any, bool]:
        """Create or change one subscription; returns the row and whether it was created."""
        now = datetime.now(UTC)
        table = instrument_subscriptions
        where = table.c.instrument_token == instrument_token
        async with self._database.engine.begin() as conn:
            exists = (await conn.execute(select(table.c.instrument_token).where(where))).first()
            values = {"mode": mode, "status": status, "updated_at": now, "updated_by": account}
            if exists is None:
                await conn.execute(
                    insert(table).values(
                        instrument_token=instrument_token, created_at=now, **values
                    )
                )
            else:
                await conn.execute(update(table).where(where).values(**values))
            row = (await conn.execute(select(table).where(where))).one()
        return row, exists is None

    async def delete(self, instrument_token: int) -> Any | None:
        table = instrument_subscriptions
        where = table.c.instrument_token == instrument_token
        async with self._database.engine.begin() as conn:
            row = (await conn.execute(select(table).where(where))).first()
            if row is not None:
                await conn.execute(delete(table).where(where))
        return row


def _time_window(start_ns: int, end_ns: int) -> tuple[datetime, datetime]:
    """``executed_at`` bounds around a ``ts_ns`` range (a second of slack either side): lets
    PostgreSQL skip hypertable chunks; ``ts_ns`` stays the exact filter."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (
        epoch + timedelta(microseconds=start_ns // 1000) - timedelta(seconds=1),
        epoch + timedelta(microseconds=end_ns // 1000) + timedelta(seconds=1),
    )


def _where(
    database: Database, start_ns: int, end_ns: int | None, *extra: ColumnElement[bool]
) -> ColumnElement[bool]:
    clauses = [trades.c.ts_ns >= start_ns, *extra]
    if end_ns is not None:
        clauses.append(trades.c.ts_ns < end_ns)
    if database.is_postgres:
        low, high = _time_window(start_ns, end_ns if end_ns is not None else start_ns)
        clauses.append(trades.c.executed_at >= low)
        if end_ns is not None:
            clauses.append(trades.c.executed_at < high)
    return and_(*clauses)


async def candles(
    database: Database, instrument_token: int, *, width_ns: int, start_ns: int, end_ns: int
) -> list[Candle]:
    """OHLCV buckets of ``width_ns`` for trades in ``[start_ns, end_ns)``, oldest first;
    buckets without trades are absent."""
    query = candle_query(
        database, instrument_token, width_ns=width_ns, start_ns=start_ns, end_ns=end_ns
    )
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    return [
        Candle(int(r.bucket), r.open, r.high, r.low, r.close, int(r.volume), int(r.n)) for r in rows
    ]


def candle_query(
    database: Database, instrument_token: int, *, width_ns: int, start_ns: int, end_ns: int
) -> Any:
    """``time_bucket`` with TimescaleDB's ``first``/``last``; the portable form otherwise."""
    width = bindparam("width", width_ns, type_=BigInteger)
    where = _where(database, start_ns, end_ns, trades.c.instrument_token == instrument_token)
    if database.timescaledb:
        bucket = func.time_bucket(width, trades.c.ts_ns).label("bucket")
        return (
            select(
                bucket,
                func.first(trades.c.price, trades.c.trade_id).label("open"),
                func.max(trades.c.price).label("high"),
                func.min(trades.c.price).label("low"),
                func.last(trades.c.price, trades.c.trade_id).label("close"),
                func.sum(trades.c.quantity).label("volume"),
                func.count().label("n"),
            )
            .where(where)
            .group_by(bucket)
            .order_by(bucket)
        )
    bucket = ((trades.c.ts_ns // width) * width).label("bucket")
    return _first_last(bucket, where, "bucket").order_by("bucket")


def _first_last(key: Any, where: ColumnElement[bool], key_name: str) -> Any:
    """Aggregate per ``key`` with open/close from the first/last trade id (portable SQL)."""
    grouped = (
        select(
            key,
            trades.c.instrument_token.label("token"),
            func.min(trades.c.trade_id).label("first_id"),
            func.max(trades.c.trade_id).label("last_id"),
            func.max(trades.c.price).label("high"),
            func.min(trades.c.price).label("low"),
            func.sum(trades.c.quantity).label("volume"),
            func.count().label("n"),
        )
        .where(where)
        .group_by(key_name, trades.c.instrument_token)
        .cte("grouped")
    )
    first = trades.alias("first_trade")
    last = trades.alias("last_trade")
    return select(
        grouped.c[key_name],
        grouped.c.token,
        first.c.price.label("open"),
        grouped.c.high,
        grouped.c.low,
        last.c.price.label("close"),
        last.c.quantity.label("last_quantity"),
        last.c.ts_ns.label("last_ns"),
        grouped.c.volume,
        grouped.c.n,
    ).select_from(
        grouped.join(
            first,
            and_(
                first.c.trade_id == grouped.c.first_id, first.c.instrument_token == grouped.c.token
            ),
        ).join(
            last,
            and_(last.c.trade_id == grouped.c.last_id, last.c.instrument_token == grouped.c.token),
        )
    )


async def day_stats(
    database: Database, since_ns: int, instrument_token: int | None = None
) -> list[DayStats]:
    """Per instrument (or for one), the trades since ``since_ns`` (the start of its day)."""
    extra = () if instrument_token is None else (trades.c.instrument_token == instrument_token,)
    query = _first_last(
        trades.c.instrument_token.label("key"), _where(database, since_ns, None, *extra), "key"
    )
    async with database.engine.connect() as conn:
        rows: Sequence[Any] = list(await conn.execute(query))
    return [
        DayStats(
            int(r.token),
            r.open,
            r.high,
            r.low,
            r.close,
            r.last_quantity,
            r.last_ns,
            int(r.volume),
            int(r.n),
        )
        for r in rows
    ]
