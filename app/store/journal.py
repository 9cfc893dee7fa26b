"""Journal tables: orders, trades and batches — the durable record books are rebuilt from.

Prices are integer ticks and quantities integer lots, exactly as the engine holds them; the
instrument's tick and lot sizes turn them back into decimals when rendered. Timestamps are
integer nanoseconds (``*_ns``); ``trades.executed_at`` is also kept as a timestamp so the
table can be a TimescaleDB hypertable and candles can use ``time_bucket``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from app.store.commits import JournalTransaction
from app.store.schema import metadata

OPEN_STATUSES = ("open", "partially_filled", "pending_trigger")

orders = Table(
    "orders",
    metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(64), nullable=False),
    Column("client_order_id", String(64)),
    Column("batch_id", String(32)),
    Column("instrument_token", BigInteger, nullable=False),
    Column("side", String(4), nullable=False),
    Column("order_type", String(10), nullable=False),
    Column("time_in_force", String(3), nullable=False),
    Column("post_only", Boolean, nullable=False),
    Column("stp", String(16), nullable=False),
    Column("price", BigInteger),
    Column("trigger_price", BigInteger),
    Column("quantity", BigInteger, nullable=False),
    Column("filled", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("priority", BigInteger),
    Column("reason", String(40)),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    # Kite Connect's terms of an order placed through the Kite API (null for our own API's):
    # fixed at placing, never upserted (migration 0009).
    Column("product", String(8)),
    Column("validity", String(8)),
    Column("validity_ttl", Integer),
    Column("tag", String(20)),
    UniqueConstraint("account", "client_order_id", name="uq_orders_account_client_order_id"),
    Index("ix_orders_status_instrument", "status", "instrument_token"),
    Index("ix_orders_account_order", "account", "order_id"),
)

trades = Table(
    "trades",
    metadata,
    Column("trade_id", BigInteger, nullable=False, autoincrement=False),
    Column("executed_at", DateTime(timezone=True), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("instrument_token", BigInteger, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("maker_order_id", BigInteger, nullable=False),
    Column("taker_order_id", BigInteger, nullable=False),
    Column("maker_account", String(64), nullable=False),
    Column("taker_account", String(64), nullable=False),
    Column("taker_side", String(4), nullable=False),
    # A hypertable's unique keys must include its time column.
    PrimaryKeyConstraint("trade_id", "executed_at", name="pk_trades"),
    Index("ix_trades_instrument_time", "instrument_token", "executed_at"),
    Index("ix_trades_maker", "maker_order_id"),
    Index("ix_trades_taker", "taker_order_id"),
)

# One row per state an order passed through (migration 0009), written in the same commit as the
# order's row: ``event`` is what moved it (``HISTORY_EVENTS``), the rest the order just after,
# ``seq`` the engine event's (a fill's is its trade id). Kite's order history reads it.
order_history = Table(
    "order_history",
    metadata,
    Column("order_id", BigInteger, nullable=False, autoincrement=False),
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("event", String(12), nullable=False),
    Column("status", String(20), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("filled", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("price", BigInteger),
    Column("trigger_price", BigInteger),
    Column("reason", String(40)),
    PrimaryKeyConstraint("order_id", "seq", name="pk_order_history"),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(32), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("idempotency_key", String(128)),
    Column("request_hash", String(64)),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("response", Text, nullable=False),
    UniqueConstraint("account", "idempotency_key", name="uq_batches_account_idempotency_key"),
    Index("ix_batches_account_created", "account", "created_ns"),
)


# --- rows -------------------------------------------------------------------------------------
# What a commit writes, one typed tuple per row, its fields the table's columns in order (checked
# below): the order service builds them, the journal writes them, and the ticker, the webhooks and
# the Kite adapter read the same values after the commit.


class OrderRow(NamedTuple):
    """An order's state as its ``orders`` row (prices in ticks, quantities in lots)."""

    order_id: int
    account: str
    client_order_id: str | None
    batch_id: str | None
    instrument_token: int
    side: str
    order_type: str
    time_in_force: str
    post_only: bool
    stp: str
    price: int | None
    trigger_price: int | None
    quantity: int
    filled: int
    remaining: int
    status: str
    priority: int | None
    reason: str | None
    created_ns: int
    updated_ns: int
    last_seq: int
    product: str | None
    validity: str | None
    validity_ttl: int | None
    tag: str | None


class TradeRow(NamedTuple):
    trade_id: int
    executed_at: datetime
    ts_ns: int
    instrument_token: int
    price: int
    quantity: int
    maker_order_id: int
    taker_order_id: int
    maker_account: str
    taker_account: str
    taker_side: str


class HistoryRow(NamedTuple):
    """One state an order passed through; ``event`` what moved it there."""

    order_id: int
    seq: int
    ts_ns: int
    event: str
    status: str
    quantity: int
    filled: int
    remaining: int
    price: int | None
    trigger_price: int | None
    reason: str | None


class BatchRow(NamedTuple):
    """A batch's stored response (``GET /advanced/batch-orders``, Idempotency-Key replays)."""

    batch_id: str
    account: str
    created_ns: int
    idempotency_key: str | None
    request_hash: str | None
    accepted: int
    rejected: int
    response: str


ORDER_COLUMNS = tuple(c.name for c in orders.columns)
TRADE_COLUMNS = tuple(c.name for c in trades.columns)
BATCH_COLUMNS = tuple(c.name for c in batches.columns)
HISTORY_COLUMNS = tuple(c.name for c in order_history.columns)
for _row, _table in (
    (OrderRow, orders),
    (TradeRow, trades),
    (HistoryRow, order_history),
    (BatchRow, batches),
):
    if _row._fields != tuple(c.name for c in _table.columns):
        raise RuntimeError(f"{_row.__name__} does not list {_table.name}'s columns in order")


# --- bulk writes -----------------------------------------------------------------------------
# The journal writes from one row to thousands per transaction, one statement per table, all
# queued in the group's ``JournalTransaction`` (``app.store.commits``) and sent in one round
# trip. On PostgreSQL every table's rows go in as one JSON parameter, an array of the row
# tuples, taken apart by position in the statement (``jsonb_array_elements``; as ``json``
# every ``->>`` parsed the row again, doubling PostgreSQL's CPU): orjson writes a group's rows
# in one C call, where array literals per column (``unnest``) cost ~15x the client CPU.
# Orders changed since an earlier transaction are upserted; new orders and trades are plain
# INSERTs, so a new row that exists already fails the transaction and nothing is ever
# silently dropped. From ``COPY_MIN_ROWS`` new rows a binary COPY takes them instead: ~3x
# cheaper per row for PostgreSQL and for us, worth its extra round trips in large groups.
# SQLite gets the tuples as they are in a positional executemany, which sqlite3 runs in C.

COPY_MIN_ROWS = 256
_ORDER_MUTABLE = (
    "price",
    "quantity",
    "filled",
    "remaining",
    "status",
    "priority",
    "reason",
    "updated_ns",
    "last_seq",
)


_PG_TYPES = {
    "BigInteger": "bigint",
    "Integer": "integer",
    "Boolean": "boolean",
    "String": "text",
    "Text": "text",
    "DateTime": "timestamptz",
}


def _pg_types(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_PG_TYPES[type(table.c[name].type).__name__] for name in columns)


def _pg_copy(table: Table, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """A binary ``COPY`` of ``columns``, and their types for psycopg: ints go out as their
    8 bytes rather than as text (in 100-order batches, 52 against 58 µs of the server's CPU
    an order, alternating, bench/orders.py)."""
    return (
        f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)",
        _pg_types(table, columns),
    )


_PG_COPY_ORDERS, _PG_ORDER_TYPES = _pg_copy(orders, ORDER_COLUMNS)
_PG_COPY_TRADES, _PG_TRADE_TYPES = _pg_copy(trades, TRADE_COLUMNS)
_PG_COPY_HISTORY, _PG_HISTORY_TYPES = _pg_copy(order_history, HISTORY_COLUMNS)


def _pg_json_insert(table: Table, columns: tuple[str, ...], suffix: str = "") -> str:
    """The INSERT of a JSON array of row tuples (``columns`` in order), each element cast
    to its column's type (``->>`` gives its text, or NULL for a JSON null)."""
    values = ", ".join(f"(r->>{n})::{kind}" for n, kind in enumerate(_pg_types(table, columns)))
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {values} "
        f"FROM jsonb_array_elements(%s::jsonb) AS r{suffix}"
    )


def _pg_json(rows: Sequence[tuple[Any, ...]]) -> tuple[str]:
    """The parameter of a ``_pg_json_insert``: the rows as one JSON text. The values are ours
    (ints, booleans, the enums' values, ids, account names, timestamps, JSON responses as
    text); orjson writes them in one C call."""
    return (orjson.dumps(rows, default=tuple).decode(),)


_PG_INSERT_ORDERS = _pg_json_insert(orders, ORDER_COLUMNS)
_PG_UPSERT_ORDERS = _pg_json_insert(
    orders,
    ORDER_COLUMNS,
    " ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _ORDER_MUTABLE),
)
_PG_INSERT_TRADES = _pg_json_insert(trades, TRADE_COLUMNS)
_PG_INSERT_BATCHES = _pg_json_insert(batches, BATCH_COLUMNS)
_PG_INSERT_HISTORY = _pg_json_insert(order_history, HISTORY_COLUMNS)


def _sqlite_insert(table: Table, columns: tuple[str, ...], suffix: str = "") -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}){suffix}"


_SQLITE_UPSERT_ORDERS = _sqlite_insert(
    orders,
    ORDER_COLUMNS,
    " ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _ORDER_MUTABLE),
)
_SQLITE_INSERT_TRADES = _sqlite_insert(trades, TRADE_COLUMNS)
_SQLITE_INSERT_BATCHES = _sqlite_insert(batches, BATCH_COLUMNS)
_SQLITE_INSERT_HISTORY = _sqlite_insert(order_history, HISTORY_COLUMNS)


def queue_rows(
    tx: JournalTransaction,
    *,
    order_rows: Sequence[OrderRow],
    trade_rows: Sequence[TradeRow],
    batch_rows: Sequence[BatchRow] = (),
    new_order_ids: Collection[int] = (),
    history_rows: Sequence[HistoryRow] = (),
) -> None:
    """Queue order rows (the latest state of each order), trade rows, batch rows and order
    history rows in ``tx``. ``new_order_ids``: orders placed in this transaction, which no
    earlier one wrote (inserted; the other order rows are upserted)."""
    if not tx.postgres:
        if history_rows:
            tx.executemany(_SQLITE_INSERT_HISTORY, list(history_rows))
        if order_rows:
            tx.executemany(_SQLITE_UPSERT_ORDERS, list(order_rows))
        if trade_rows:
            tx.executemany(_SQLITE_INSERT_TRADES, list(trade_rows))
        if batch_rows:
            tx.executemany(_SQLITE_INSERT_BATCHES, list(batch_rows))
        return
    changed = order_rows
    if new_order_ids:
        changed = [row for row in order_rows if row.order_id not in new_order_ids]
        if len(changed) < len(order_rows):
            new = [row for row in order_rows if row.order_id in new_order_ids]
            if len(new) >= COPY_MIN_ROWS:
                tx.copy(_PG_COPY_ORDERS, new, _PG_ORDER_TYPES)
            else:
                tx.execute(_PG_INSERT_ORDERS, _pg_json(new))
    if changed:
        tx.execute(_PG_UPSERT_ORDERS, _pg_json(changed))
    if len(trade_rows) >= COPY_MIN_ROWS:
        tx.copy(_PG_COPY_TRADES, trade_rows, _PG_TRADE_TYPES)
    elif trade_rows:
        tx.execute(_PG_INSERT_TRADES, _pg_json(trade_rows))
    if batch_rows:
        tx.execute(_PG_INSERT_BATCHES, _pg_json(batch_rows))
    # One more INSERT in the same statement (a CTE): no extra round trip.
    if len(history_rows) >= COPY_MIN_ROWS:
        tx.copy(_PG_COPY_HISTORY, history_rows, _PG_HISTORY_TYPES)
    elif history_rows:
        tx.execute(_PG_INSERT_HISTORY, _pg_json(history_rows))
