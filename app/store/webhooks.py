"""Webhook tables: endpoints, the outbox (one row per event per endpoint), attempts, and the
batches the outbox is fed from.

The order path's commit writes one ``webhook_batches`` row (what that commit's messages are
derived from: its order changes and routes), in the journal's transaction, so the messages
exist exactly when the order changes they report were committed. The dispatcher expands
batches into ``webhook_outbox`` rows right after, in its own transaction. ``payload`` is the
event's data as committed (the order row and the request's fills, compact); the body is
rendered from it when sent, the same on every attempt. The ``webhook-id`` derives from the row
id (see the services). ``lease_until_ns`` marks a row a dispatcher is delivering right now
(claimed outside any open transaction), so no other dispatcher takes it meanwhile; the lease
of a dispatcher that died simply expires.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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

from app.store.commits import JournalTransaction
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

# What the hook writes in the order path's commit: ONE row per commit. ``events`` is a JSON
# document, the commit's order changes ``{"v": 2, "r": routes, "u": units}`` (see
# app.services.webhooks.events), which the dispatcher expands into messages in its own
# transaction (``expand_batches``): on PostgreSQL in SQL, on SQLite in Python, both made from
# one table of rules (``EVENT_RULES``). ``event_count``: the order changes (each yields one
# message per subscribed event and endpoint). Both keep work out of the journal's serial
# commit. On PostgreSQL the column is compressed with lz4 (migration 0007) where the server
# has it: pglz took ~10 ms per 600 kB batch.
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


class OrderSnapshot(NamedTuple):
    """A message's stored order, as its webhook renders it (its fields: ``SNAPSHOT_FIELDS``)."""

    order_id: int
    client_order_id: str | None
    batch_id: str | None
    instrument_token: int
    side: str
    order_type: str
    time_in_force: str
    post_only: bool
    price: int | None
    trigger_price: int | None
    quantity: int
    filled: int
    remaining: int
    status: str
    reason: str | None
    created_ns: int
    updated_ns: int


# A message's stored snapshot: ``[1, [SNAPSHOT_FIELDS...], [[seq, ts, price, qty, liquidity]]]``
# (payload version 1). A batch's order change: ``[account, *SNAPSHOT_FIELDS]``.
SNAPSHOT_FIELDS: tuple[str, ...] = OrderSnapshot._fields
CHANGE_FIELDS = ("account", *SNAPSHOT_FIELDS)
CHANGE_STATUS = CHANGE_FIELDS.index("status")
assert CHANGE_FIELDS[:2] == ("account", "order_id")  # the SQL below relies on it

# One message: (endpoint_id, event_type, order_id, payload), the payload any JSON-able value
# (stored as its JSON text).
OutboxRow = tuple[str, str, int | None, Any]

# --- the event rules: one table, read by the Python expansion and made into the SQL one --------

ACCEPTED = "order.accepted"
PARTIALLY_FILLED = "order.partially_filled"
FILLED = "order.filled"
CANCELLED = "order.cancelled"
EXPIRED = "order.expired"
REJECTED = "order.rejected"
ORDER_EVENTS = (ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED)

# Which events an order change fires, in this order: per rule, when it applies (the request
# "created" the order, "traded" it, or "always"), then the event for the order's status after
# the request, else the rule's default (None: no event). So one request can fire several
# events for one order, e.g. accepted, partially filled and cancelled for an IOC.
EVENT_RULES: tuple[tuple[str, dict[str, str], str | None], ...] = (
    ("created", {"rejected": REJECTED}, ACCEPTED),
    ("traded", {"filled": FILLED}, PARTIALLY_FILLED),
    ("always", {"cancelled": CANCELLED, "expired": EXPIRED}, None),
)


def event_types(status: str, *, created: bool, traded: bool) -> list[str]:
    """The events an order change fires (``EVENT_RULES``)."""
    applies = {"created": created, "traded": traded, "always": True}
    types = []
    for when, by_status, default in EVENT_RULES:
        if applies[when]:
            event = by_status.get(status, default)
            if event is not None:
                types.append(event)
    return types


def expand_changes(doc: dict[str, Any]) -> list[OutboxRow]:
    """The messages of a batch document, in order: (endpoint_id, event_type, order_id,
    snapshot). Per unit, per changed order, its events (``event_types``), per endpoint of the
    order's account that took the event type. ``_PG_EXPAND`` is the same, in SQL made from
    the same rules; the tests hold the two to the same output."""
    routes: dict[str, dict[str, list[str]]] = doc["r"]
    messages: list[OutboxRow] = []
    for changes, created_ids, trades in doc["u"]:
        created = set(created_ids)
        fills: dict[int, list[list[Any]]] = {}
        for seq, timestamp, price, quantity, maker, taker in trades:
            fills.setdefault(maker, []).append([seq, timestamp, price, quantity, "maker"])
            fills.setdefault(taker, []).append([seq, timestamp, price, quantity, "taker"])
        for change in changes:
            mine = routes.get(change[0])
            if not mine:
                continue
            order_id = change[1]
            order_fills = fills.get(order_id)
            payload = [1, change[1:], order_fills or []]
            for event_type in event_types(
                change[CHANGE_STATUS], created=order_id in created, traded=bool(order_fills)
            ):
                for endpoint_id in mine.get(event_type, ()):
                    messages.append((endpoint_id, event_type, order_id, payload))
    return messages


def _sql_rule(when: str, by_status: dict[str, str], default: str | None) -> str:
    """One rule of ``EVENT_RULES`` as a SQL expression over a change ``c`` (NULL: no event).
    Only the table's own constants are written into the SQL."""
    status = "c.change->>" + str(CHANGE_STATUS)
    cases = " ".join(f"WHEN '{state}' THEN '{event}'" for state, event in by_status.items())
    otherwise = f" ELSE '{default}'" if default is not None else ""
    event = f"CASE {status} {cases}{otherwise} END"
    guard = {"created": "c.created", "traded": "c.fills IS NOT NULL", "always": None}[when]
    return event if guard is None else f"CASE WHEN {guard} THEN {event} END"


_SQL_RULES = ",\n            ".join(
    f"({k}, {_sql_rule(*rule)})" for k, rule in enumerate(EVENT_RULES, start=1)
)

_INSERT_BATCH = (
    "INSERT INTO webhook_batches (events, event_count, created_ns, deadline_ns) "
    "VALUES (%s, %s, %s, %s)"
)
_SQLITE_INSERT_BATCH = _INSERT_BATCH.replace("%s", "?")
_COLUMNS = "endpoint_id, event_type, order_id, payload, created_ns, next_attempt_ns, deadline_ns"

# PostgreSQL's expansion: ``expand_changes`` in SQL, its events made from ``EVENT_RULES``.
# Message ids follow the batches' order and, inside one, (unit, order row, event, endpoint):
# what keeps an order's events in sequence.
_PG_EXPAND = f"""
WITH taken AS (
    DELETE FROM webhook_batches
    WHERE id IN (SELECT id FROM webhook_batches ORDER BY id LIMIT %s)
    RETURNING id, events::jsonb AS doc, created_ns, deadline_ns
), units AS (
    SELECT taken.id AS b, u.n AS un, u.unit, taken.doc->'r' AS routes
    FROM taken, jsonb_array_elements(taken.doc->'u') WITH ORDINALITY AS u(unit, n)
), fills AS (
    SELECT units.b, units.un, p.order_id, jsonb_agg(
        jsonb_build_array(t.trade->0, t.trade->1, t.trade->2, t.trade->3, p.liquidity)
        ORDER BY t.n, p.k) AS fills
    FROM units, jsonb_array_elements(units.unit->2) WITH ORDINALITY AS t(trade, n),
        LATERAL (VALUES (t.trade->4, 'maker', 0), (t.trade->5, 'taker', 1))
            AS p(order_id, liquidity, k)
    GROUP BY units.b, units.un, p.order_id
), changes AS (
    SELECT units.b, units.un, o.n AS cn, o.change, units.routes,
        units.unit->1 @> (o.change->1) AS created, f.fills
    FROM units CROSS JOIN LATERAL jsonb_array_elements(units.unit->0) WITH ORDINALITY
        AS o(change, n)
    LEFT JOIN fills f ON f.b = units.b AND f.un = units.un AND f.order_id = o.change->1
), messages AS (
    SELECT c.b, c.un AS k1, c.cn AS k2, e.k AS k3, ep.n AS k4, ep.endpoint_id, e.event_type,
        (c.change->>1)::bigint AS order_id,
        jsonb_build_array(1, c.change - 0, coalesce(c.fills, '[]'::jsonb))::text AS payload
    FROM changes c,
        LATERAL (VALUES
            {_SQL_RULES}
        ) AS e(k, event_type),
        jsonb_array_elements_text(c.routes->(c.change->>0)->e.event_type) WITH ORDINALITY
            AS ep(endpoint_id, n)
    WHERE e.event_type IS NOT NULL
), added AS (
    INSERT INTO webhook_outbox ({_COLUMNS})
    SELECT m.endpoint_id, m.event_type, m.order_id, m.payload, taken.created_ns,
        taken.created_ns, taken.deadline_ns
    FROM messages m JOIN taken ON taken.id = m.b
    ORDER BY m.b, m.k1, m.k2, m.k3, m.k4
    RETURNING 1
)
SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM added)
"""
_SQLITE_OLDEST = (
    "SELECT id, events, created_ns, deadline_ns FROM webhook_batches ORDER BY id LIMIT ?"
)
_SQLITE_INSERT = f"INSERT INTO webhook_outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
# Expanding is serialised (several PostgreSQL dispatchers): two expanding at once could
# give a later batch lower message ids than an earlier one.
_EXPAND_LOCK = 7_727_274_005


async def insert_changes(
    conn: AsyncConnection, doc: dict[str, Any], changes: int, *, created_ns: int, deadline_ns: int
) -> None:
    """Queue a commit's order changes (a batch document) in the caller's transaction."""
    params = (orjson.dumps(doc).decode(), changes, created_ns, deadline_ns)
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(_INSERT_BATCH, params)
    else:
        await conn.exec_driver_sql(_SQLITE_INSERT_BATCH, params)


def queue_changes(
    tx: JournalTransaction, doc: dict[str, Any], changes: int, *, created_ns: int, deadline_ns: int
) -> None:
    """``insert_changes`` as a statement of a journal group commit's transaction."""
    params = (orjson.dumps(doc).decode(), changes, created_ns, deadline_ns)
    tx.execute(_INSERT_BATCH if tx.postgres else _SQLITE_INSERT_BATCH, params)


async def expand_batches(conn: AsyncConnection, *, limit: int = 50) -> tuple[int, int] | None:
    """Turn the oldest queued batches into outbox rows (in the caller's transaction):
    (batches taken, messages added), or None when another dispatcher is expanding now."""
    if conn.dialect.name == "postgresql":
        # JIT off: the planner's guesses for the JSON functions (100 rows each) make the
        # query look costly enough to compile, which takes longer than the query itself.
        locked = await conn.exec_driver_sql(
            "SELECT pg_try_advisory_xact_lock(%s), set_config('jit', 'off', true)",
            (_EXPAND_LOCK,),
        )
        if not locked.scalar():
            return None
        taken, added = map(int, (await conn.exec_driver_sql(_PG_EXPAND, (limit,))).one())
        return taken, added
    batches = (await conn.exec_driver_sql(_SQLITE_OLDEST, (limit,))).all()
    values: list[tuple[Any, ...]] = []
    for batch in batches:
        created_ns, deadline_ns = batch.created_ns, batch.deadline_ns
        for endpoint_id, event_type, order_id, payload in expand_changes(
            orjson.loads(batch.events)
        ):
            body = orjson.dumps(payload).decode()
            values.append(
                (endpoint_id, event_type, order_id, body, created_ns, created_ns, deadline_ns)
            )
    if values:
        await conn.exec_driver_sql(_SQLITE_INSERT, values)
    if batches:
        await conn.exec_driver_sql(
            "DELETE FROM webhook_batches WHERE id = ?", [(batch.id,) for batch in batches]
        )
    return len(batches), len(values)
