"""The ``instruments`` table and its SQL: bulk upsert, full load, status changes.

Decimals (tick_size, lot_size, strike, last_price) must round-trip exactly. PostgreSQL's
NUMERIC does that; SQLite has no decimal type (NUMERIC affinity stores a float, so 0.05
would come back as 0.05000000000000000277). ``ExactDecimal`` therefore keeps NUMERIC(20, 8)
on PostgreSQL and stores the canonical decimal string on SQLite; both read back as an
exact, normalised ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.database import Database
from app.store.schema import metadata

STATUSES = ("active", "halted", "delisted", "expired")
DECIMAL_PRECISION, DECIMAL_SCALE = 20, 8
# The bind-parameter budget of one statement is what bounds a chunk (PostgreSQL: 65535).
UPSERT_CHUNK = 2000


def canonical_decimal(value: Decimal) -> str:
    """``Decimal("0.0500")`` -> ``"0.05"``; never exponent notation."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class ExactDecimal(sa.TypeDecorator[Decimal]):
    impl = sa.Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return canonical_decimal(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # psycopg already yields exact Decimals; skipping a per-value Python call here is a
        # third of the registry's cold load at 100,000 instruments.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes on both backends (SQLite drops the offset on the way back: it is
    stored in UTC, so UTC is put back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # psycopg yields aware datetimes (in the session's zone): nothing to add.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


instruments = sa.Table(
    "instruments",
    metadata,
    sa.Column("instrument_token", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("exchange_token", sa.BigInteger, nullable=False),
    sa.Column("exchange", sa.String(16), nullable=False),
    sa.Column("tradingsymbol", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("instrument_type", sa.String(16), nullable=False),
    sa.Column("segment", sa.String(32), nullable=False),
    sa.Column("tick_size", ExactDecimal(), nullable=False),
    sa.Column("lot_size", ExactDecimal(), nullable=False),
    sa.Column("expiry", sa.Date, nullable=True),
    sa.Column("strike", ExactDecimal(), nullable=False),
    sa.Column("last_price", ExactDecimal(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("exchange", "tradingsymbol", name="uq_instruments_exchange_symbol"),
    sa.CheckConstraint(
        "status IN ('active', 'halted', 'delisted', 'expired')", name="ck_instruments_status"
    ),
)

DATA_COLUMNS = (
    "exchange_token",
    "exchange",
    "tradingsymbol",
    "name",
    "instrument_type",
    "segment",
    "tick_size",
    "lot_size",
    "expiry",
    "strike",
    "last_price",
)
IMPORT_COLUMNS = ("instrument_token", *DATA_COLUMNS)
ALL_COLUMNS = (*IMPORT_COLUMNS, "status", "updated_at")
_STAGING = "instruments_import"


class InstrumentStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def load_all(self) -> Sequence[Sequence[Any]]:
        """Every instrument as a tuple in ``ALL_COLUMNS`` order, ordered by token."""
        query = sa.select(*(instruments.c[name] for name in ALL_COLUMNS)).order_by(
            instruments.c.instrument_token
        )
        async with self._database.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return list((await conn.execute(query)).all())
            # psycopg's own tuples already hold exact Decimals and aware datetimes; skipping
            # SQLAlchemy's row layer takes a fifth off a 100,000-instrument cold load.
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            async with driver.cursor() as cursor:
                await cursor.execute(str(query.compile(dialect=conn.dialect)))
                rows: list[tuple[Any, ...]] = await cursor.fetchall()
                return rows

    async def count(self) -> int:
        async with self._database.engine.connect() as conn:
            result = await conn.execute(sa.select(sa.func.count()).select_from(instruments))
            return int(result.scalar_one())

    async def keys(self) -> dict[int, tuple[str, str, str]]:
        """token -> (exchange, tradingsymbol, status), for import planning."""
        query = sa.select(
            instruments.c.instrument_token,
            instruments.c.exchange,
            instruments.c.tradingsymbol,
            instruments.c.status,
        )
        async with self._database.engine.connect() as conn:
            result = await conn.execute(query)
            return {row[0]: (row[1], row[2], row[3]) for row in result}

    async def apply_import(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        delist: Iterable[int] = (),
        now: datetime,
    ) -> None:
        """Upsert ``rows`` (keys: ``IMPORT_COLUMNS``) and delist the ``delist`` tokens, in one
        transaction. An existing row keeps its status, except that delisted comes back active.
        """
        async with self._database.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await self._upsert_postgres(conn, rows, now)
            else:
                await self._upsert_executemany(conn, rows, now)
            tokens = list(delist)
            if tokens:
                update = (
                    instruments.update()
                    .where(instruments.c.instrument_token == sa.bindparam("token"))
                    .values(status="delisted", updated_at=now)
                )
                await conn.execute(update, [{"token": token} for token in tokens])

    @staticmethod
    async def _upsert_executemany(
        conn: AsyncConnection, rows: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        insert = sqlite.insert(instruments)
        statement = _on_conflict(insert, insert.excluded)
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = [
                {**row, "status": "active", "updated_at": now}
                for row in rows[start : start + UPSERT_CHUNK]
            ]
            await conn.execute(statement, chunk)

    @staticmethod
    async def _upsert_postgres(
        conn: AsyncConnection, rows: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        # COPY into a temporary table, then one INSERT .. SELECT .. ON CONFLICT: about five
        # times the rate of a pipelined executemany (see BENCHMARKS.md).
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        columns = ", ".join(ALL_COLUMNS)
        async with driver.cursor() as cursor:
            await cursor.execute(
                f"CREATE TEMPORARY TABLE {_STAGING} (LIKE instruments INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            async with cursor.copy(f"COPY {_STAGING} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row((*(row[name] for name in IMPORT_COLUMNS), "active", now))
        staging = sa.table(_STAGING, *(sa.column(name) for name in ALL_COLUMNS))
        insert = postgresql.insert(instruments).from_select(
            list(ALL_COLUMNS), sa.select(*(staging.c[name] for name in ALL_COLUMNS))
        )
        await conn.execute(_on_conflict(insert, insert.excluded))

    async def set_status(self, token: int, status: str, *, now: datetime) -> bool:
        """True when the instrument exists (its status is then ``status``)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        async with self._database.engine.begin() as conn:
            result = await conn.execute(
                instruments.update()
                .where(instruments.c.instrument_token == token)
                .values(status=status, updated_at=now)
            )
            return bool(result.rowcount)


def _on_conflict(insert: Any, excluded: Any) -> Any:
    updates: dict[str, Any] = {name: excluded[name] for name in DATA_COLUMNS}
    # Re-listing revives a delisted instrument; a halt stays until an operator resumes.
    updates["status"] = sa.case(
        (instruments.c.status == "delisted", sa.literal("active")),
        else_=instruments.c.status,
    )
    updates["updated_at"] = excluded["updated_at"]
    return insert.on_conflict_do_update(index_elements=["instrument_token"], set_=updates)
