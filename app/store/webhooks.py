"""Webhook tables: endpoints, the outbox (one row per event per endpoint), attempts, and the
batches the outbox is fed from.

The order path's commit writes one ``webhook_batches`` row (that commit's events), in the
journal's transaction, so the messages exist exactly when the order changes they report were
committed. The dispatcher expands batches into ``webhook_outbox`` rows right after, in its own
transaction. ``payload`` is the event's data as committed (the order row and the request's
fills, compact); the body is rendered from it when sent, the same on every attempt. The
``webhook-id`` derives from the row id (see the services). ``lease_until_ns`` marks a row a
dispatcher is delivering right now (claimed outside any open transaction), so no other
dispatcher takes it meanwhile; the lease of a dispatcher that died simply expires.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    literal_column,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.schema import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY (its rowid); PostgreSQL gets BIGSERIAL.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
# A literal (not a bound parameter), so both databases match the partial index's predicate.
IS_PENDING = literal_column("status") == literal_column("'pending'")

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", String(32), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("description", String(500), nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types
    # Kept as is: the service must sign with it. Protect database access accordingly.
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128)),
    Column("previous_secret_expires_ns", BigInteger),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(64)),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Index("ix_webhook_endpoints_account", "account", "created_ns"),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(32), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("order_id", BigInteger),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    Column("attempt_count", Integer, nullable=False, server_default=text("0")),
    Column("created_ns", BigInteger, nullable=False),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("deadline_ns", BigInteger, nullable=False),
    Column("lease_until_ns", BigInteger),
    Column("last_attempt_ns", BigInteger),
    Column("last_status_code", Integer),
    Column("last_error", String(300)),
    Column("delivered_ns", BigInteger),
    # Pending rows only (the claim's scan, oldest first); delivered rows drop out of it.
    Index("ix_webhook_outbox_pending", "id", postgresql_where=IS_PENDING, sqlite_where=IS_PENDING),
    # An order's earlier events (the claim's ordering check); also serves per-endpoint deletes.
    Index("ix_webhook_outbox_order", "endpoint_id", "order_id", "id"),
    # Ids are never reused (they are part of the webhook-id a receiver deduplicates on).
    sqlite_autoincrement=True,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("attempted_ns", BigInteger, nullable=False),
    Column("status_code", Integer),
    Column("error", String(300)),
    Column("duration_ms", Float, nullable=False),
    Index("ix_webhook_attempts_outbox", "outbox_id", "id"),
)

# What the hook writes in the order path's commit: ONE row per commit, the commit's events as
# a JSON list of [endpoint_id, event_type, order_id, payload]. The dispatcher expands it into
# per-message rows of webhook_outbox in its own transaction (``expand_batches``), in SQL: a
# row per event would lengthen the journal's serial commit by the cost of inserting it.
webhook_batches = Table(
    "webhook_batches",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("events", Text, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("deadline_ns", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# One message as the hook hands it over: (endpoint_id, event_type, order_id, payload), the
# payload any JSON-able value (stored as its JSON text).
OutboxRow = tuple[str, str, int | None, Any]

_INSERT_BATCH = (
    "INSERT INTO webhook_batches (events, event_count, created_ns, deadline_ns) "
    "VALUES (%s, %s, %s, %s)"
)
_COLUMNS = "endpoint_id, event_type, order_id, payload, created_ns, next_attempt_ns, deadline_ns"
# Oldest batches first and, inside one, in event order: ids follow the journal's order, which
# is what keeps an order's events in sequence.
_PG_EXPAND = (
    "WITH taken AS (DELETE FROM webhook_batches WHERE id IN "
    "(SELECT id FROM webhook_batches ORDER BY id LIMIT %s) RETURNING *) "
    f"INSERT INTO webhook_outbox ({_COLUMNS}) "
    "SELECT e->>0, e->>1, (e->>2)::bigint, (e->3)::text, taken.created_ns, taken.created_ns, "
    "taken.deadline_ns FROM taken, json_array_elements(taken.events::json) WITH ORDINALITY "
    "AS t(e, n) ORDER BY taken.id, t.n"
)
_SQLITE_OLDEST = "SELECT id FROM webhook_batches ORDER BY id LIMIT ?"
_SQLITE_EXPAND = (
    f"INSERT INTO webhook_outbox ({_COLUMNS}) "
    "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
    "json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'), b.created_ns, b.created_ns, "
    f"b.deadline_ns FROM webhook_batches b, json_each(b.events) j WHERE b.id IN ({_SQLITE_OLDEST}) "
    "ORDER BY b.id, j.key"
)
_SQLITE_TAKEN = f"DELETE FROM webhook_batches WHERE id IN ({_SQLITE_OLDEST})"
# Expanding is serialised (several PostgreSQL dispatchers): two expanding at once could
# give a later batch lower message ids than an earlier one.
_EXPAND_LOCK = 7_727_274_005


async def insert_outbox(
    conn: AsyncConnection, rows: list[OutboxRow], *, created_ns: int, deadline_ns: int
) -> None:
    """Queue messages, in order, in the caller's transaction (one row, one statement)."""
    events = orjson.dumps(rows).decode()
    params = (events, len(rows), created_ns, deadline_ns)
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(_INSERT_BATCH, params)
    else:
        await conn.exec_driver_sql(_INSERT_BATCH.replace("%s", "?"), params)


async def expand_batches(conn: AsyncConnection, *, limit: int = 50) -> int | None:
    """Turn the oldest queued batches into outbox rows (in the caller's transaction): the
    number of messages added, or None when another dispatcher is expanding right now."""
    if conn.dialect.name == "postgresql":
        locked = await conn.exec_driver_sql("SELECT pg_try_advisory_xact_lock(%s)", (_EXPAND_LOCK,))
        if not locked.scalar():
            return None
        result = await conn.exec_driver_sql(_PG_EXPAND, (limit,))
        return int(result.rowcount or 0)
    result = await conn.exec_driver_sql(_SQLITE_EXPAND, (limit,))
    await conn.exec_driver_sql(_SQLITE_TAKEN, (limit,))  # the same batches: we hold the lock
    return int(result.rowcount or 0)
