"""The ``positions`` table: each account's position per instrument, as the ledger holds it.

Written only inside the journal's group commit (``queue_positions``), in the same transaction
as the trades that moved it, so it is never ahead of or behind them. One upsert of the
changed positions' full state per commit: on PostgreSQL one statement over arrays (``unnest``,
as the journal's own tables), on SQLite an ``executemany``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, String, Table, select

from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.schema import metadata

VALUE_COLUMNS = (
    "net",
    "buy_quantity",
    "buy_value",
    "sell_quantity",
    "sell_value",
    "open_value",
    "day",
    "overnight",
    "day_buy_quantity",
    "day_buy_value",
    "day_sell_quantity",
    "day_sell_value",
    "last_trade_id",
    "updated_ns",
)
COLUMNS = ("account", "instrument_token", *VALUE_COLUMNS)

positions = Table(
    "positions",
    metadata,
    Column("account", String(64), nullable=False),
    Column("instrument_token", BigInteger, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in VALUE_COLUMNS),
    PrimaryKeyConstraint("account", "instrument_token", name="pk_positions"),
)

_UPDATE = ", ".join(f"{name} = excluded.{name}" for name in VALUE_COLUMNS)
_PG_UPSERT = (
    f"INSERT INTO positions ({', '.join(COLUMNS)}) SELECT * FROM unnest(%s::text[], "
    + ", ".join("%s::bigint[]" for _ in COLUMNS[1:])
    + f") ON CONFLICT (account, instrument_token) DO UPDATE SET {_UPDATE}"
)
_SQLITE_UPSERT = (
    f"INSERT INTO positions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    f" ON CONFLICT (account, instrument_token) DO UPDATE SET {_UPDATE}"
)


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def queue_positions(tx: JournalTransaction, rows: Sequence[Sequence[Any]]) -> None:
    """Upsert ``rows`` (values in ``COLUMNS`` order) in the journal transaction ``tx``."""
    if not rows:
        return
    if not tx.postgres:
        tx.executemany(_SQLITE_UPSERT, list(rows))
        return
    columns = list(zip(*rows, strict=True))
    arrays = ["{" + ",".join(map(_text, columns[0])) + "}"]
    arrays.extend("{" + ",".join(map(str, values)) + "}" for values in columns[1:])
    tx.execute(_PG_UPSERT, arrays)


async def load_positions(
    database: Database,
    *,
    account: str | None = None,
    tokens: Collection[int] | None = None,
    after_token: int | None = None,
    limit: int | None = None,
) -> list[Any]:
    """Stored positions (rows with ``COLUMNS``) by account and instrument token, optionally
    one account's, some tokens', a page of them (tokens above ``after_token``)."""
    query = select(positions).order_by(positions.c.account, positions.c.instrument_token)
    if account is not None:
        query = query.where(positions.c.account == account)
    if tokens is not None:
        query = query.where(positions.c.instrument_token.in_(list(tokens)))
    if after_token is not None:
        query = query.where(positions.c.instrument_token > after_token)
    if limit is not None:
        query = query.limit(limit)
    async with database.engine.connect() as conn:
        return list((await conn.execute(query)).all())
