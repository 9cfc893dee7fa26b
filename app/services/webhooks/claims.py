"""The dispatcher's SQL: claim due messages, record attempts, release, backlog, purge.

Claiming: a message is due when it is pending, its next attempt time has come, no lease is
running on it, its endpoint is enabled, and no earlier message for the same order and
endpoint is still pending (events of one order go out in order: N+1 waits until N was
delivered or finally failed). On PostgreSQL the candidates are locked with ``FOR UPDATE
SKIP LOCKED`` and leased in the same transaction, so any number of dispatchers (replicas)
can claim side by side without taking the same row. SQLite has no row locks: there, one
process dispatches (the embedded database is single-process anyway), reading then leasing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.services.webhooks.events import message_id
from app.services.webhooks.signing import protect
from app.store.database import Database
from app.store.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    expand_batches,
    webhook_attempts,
    webhook_batches,
    webhook_endpoints,
    webhook_outbox,
)

EP, OB, AT, BA = webhook_endpoints, webhook_outbox, webhook_attempts, webhook_batches


@dataclass(slots=True)
class Claimed:
    id: int
    endpoint_id: str
    url: str
    secrets: list[str]
    event_type: str
    created_ns: int
    payload: str
    attempt_count: int
    deadline_ns: int

    @property
    def message_id(self) -> str:
        return message_id(self.endpoint_id, self.id)


@dataclass(slots=True)
class Outcome:
    """One attempt and what it decided: the row's new status and next attempt time."""

    claimed: Claimed
    attempted_ns: int
    status_code: int | None
    error: str | None
    duration: float
    status: str = PENDING
    next_attempt_ns: int = 0


# A claim walks the pending rows in id order (the partial index) and stops at its limit. The
# planner, whose statistics lag a table that fills and drains in bursts (a fresh backlog looks
# like a few dozen rows to it), would rather fetch every pending row and sort them: ~60 ms
# instead of ~2 ms at a 10k backlog, per claim. The ordered walk is never the worse plan here.
_CLAIM_PLANNER = ("enable_bitmapscan", "enable_sort")


@asynccontextmanager
async def _transaction(
    database: Database, *, off: tuple[str, ...] = ()
) -> AsyncIterator[AsyncConnection]:
    """A dispatcher transaction. On PostgreSQL it does not wait for its WAL flush
    (``synchronous_commit = off``): what the dispatcher writes may be lost in a database
    crash without harm (an expansion is redone from its batch; a lost lease or attempt record
    only means the message is sent again, at least once is the contract), and not flushing
    keeps these commits from queueing with the journal's, which must flush. ``off``: planner
    settings turned off for this transaction (PostgreSQL)."""
    async with database.engine.begin() as conn:
        if database.is_postgres:
            settings = ", ".join(
                f"set_config('{name}', 'off', true)" for name in ("synchronous_commit", *off)
            )
            await conn.exec_driver_sql(f"SELECT {settings}")
        yield conn


def _pending(table: Any) -> Any:
    # A literal, not a parameter: the planners then use the partial index on pending rows.
    return table.c.status == literal_column("'pending'")


def _due(now: int, exclude: set[str]) -> Any:
    earlier = OB.alias("earlier")
    blocked = exists().where(
        earlier.c.endpoint_id == OB.c.endpoint_id,
        earlier.c.order_id == OB.c.order_id,
        earlier.c.id < OB.c.id,
        _pending(earlier),
    )
    query = (
        select(
            OB.c.id,
            OB.c.endpoint_id,
            OB.c.event_type,
            OB.c.created_ns,
            OB.c.payload,
            OB.c.attempt_count,
            OB.c.deadline_ns,
            EP.c.url,
            EP.c.secret,
            EP.c.previous_secret,
            EP.c.previous_secret_expires_ns,
        )
        .join(EP, EP.c.endpoint_id == OB.c.endpoint_id)
        .where(
            _pending(OB),
            OB.c.next_attempt_ns <= now,
            or_(OB.c.lease_until_ns.is_(None), OB.c.lease_until_ns <= now),
            EP.c.enabled.is_(True),
            ~blocked,
        )
    )
    if exclude:
        query = query.where(OB.c.endpoint_id.not_in(sorted(exclude)))
    return query


def signing_secrets(row: Any, now: int) -> list[str]:
    """The endpoint's secret, and the previous one while its rotation grace lasts."""
    secrets = [row.secret]
    if row.previous_secret and (row.previous_secret_expires_ns or 0) > now:
        secrets.append(row.previous_secret)
    for secret in secrets:
        protect(secret)
    return secrets


def _claimed(row: Any, now: int) -> Claimed:
    return Claimed(
        id=row.id,
        endpoint_id=row.endpoint_id,
        url=row.url,
        secrets=signing_secrets(row, now),
        event_type=row.event_type,
        created_ns=row.created_ns,
        payload=row.payload,
        attempt_count=row.attempt_count,
        deadline_ns=row.deadline_ns,
    )


async def claim(
    database: Database,
    *,
    now: int,
    lease_until: int,
    fetch: int,
    exclude: set[str],
    accept: Callable[[str], bool],
) -> list[Claimed]:
    """Lease up to ``fetch`` due messages, oldest first, keeping those ``accept`` takes."""
    query = _due(now, exclude).order_by(OB.c.id).limit(fetch)
    lease = update(OB).where(OB.c.id.in_(bindparam("ids", expanding=True)))
    if database.is_postgres:
        async with _transaction(database, off=_CLAIM_PLANNER) as conn:
            rows = await conn.execute(query.with_for_update(skip_locked=True, of=OB))
            taken = [_claimed(row, now) for row in rows if accept(row.endpoint_id)]
            if taken:
                await conn.execute(
                    lease.values(lease_until_ns=lease_until), {"ids": [c.id for c in taken]}
                )
        return taken
    async with database.engine.connect() as conn:
        rows = await conn.execute(query)
        taken = [_claimed(row, now) for row in rows if accept(row.endpoint_id)]
    if taken:
        async with _transaction(database) as conn:
            await conn.execute(
                lease.values(lease_until_ns=lease_until), {"ids": [c.id for c in taken]}
            )
    return taken


# PostgreSQL: a flush's attempts and row updates as one JSON document each, two statements
# whatever the count (an executemany would be a round of the pipeline per row).
_PG_RECORD_ATTEMPTS = (
    "INSERT INTO webhook_attempts (outbox_id, attempted_ns, status_code, error, duration_ms) "
    "SELECT v.id, v.at, v.code, v.error, v.ms FROM json_to_recordset(%s::json) "
    "AS v(id bigint, at bigint, code integer, error text, ms float8)"
)
_PG_RECORD_ROWS = (
    "UPDATE webhook_outbox AS o SET status = v.status, attempt_count = o.attempt_count + 1, "
    "next_attempt_ns = v.next, lease_until_ns = NULL, last_attempt_ns = v.at, "
    "last_status_code = v.code, last_error = v.error, delivered_ns = v.delivered "
    "FROM json_to_recordset(%s::json) AS v(id bigint, status text, next bigint, at bigint, "
    "code integer, error text, delivered bigint) WHERE o.id = v.id"
)
_SQLITE_RECORD_ATTEMPTS = (
    "INSERT INTO webhook_attempts (outbox_id, attempted_ns, status_code, error, duration_ms) "
    "VALUES (?, ?, ?, ?, ?)"
)
_SQLITE_RECORD_ROWS = (
    "UPDATE webhook_outbox SET status = ?, attempt_count = attempt_count + 1, "
    "next_attempt_ns = ?, lease_until_ns = NULL, last_attempt_ns = ?, last_status_code = ?, "
    "last_error = ?, delivered_ns = ? WHERE id = ?"
)


async def record(database: Database, outcomes: list[Outcome], *, disable: set[str]) -> None:
    """Store attempts and the rows' new state in one transaction; disable gone endpoints."""
    attempts = [
        {
            "id": o.claimed.id,
            "at": o.attempted_ns,
            "code": o.status_code,
            "error": o.error,
            "ms": round(o.duration * 1000, 3),
        }
        for o in outcomes
    ]
    rows = [
        {
            "id": o.claimed.id,
            "status": o.status,
            "next": o.next_attempt_ns,
            "at": o.attempted_ns,
            "code": o.status_code,
            "error": o.error,
            "delivered": o.attempted_ns if o.status == DELIVERED else None,
        }
        for o in outcomes
    ]
    async with _transaction(database) as conn:
        if database.is_postgres:
            await conn.exec_driver_sql(_PG_RECORD_ATTEMPTS, (orjson.dumps(attempts).decode(),))
            await conn.exec_driver_sql(_PG_RECORD_ROWS, (orjson.dumps(rows).decode(),))
        else:
            await conn.exec_driver_sql(
                _SQLITE_RECORD_ATTEMPTS,
                [(a["id"], a["at"], a["code"], a["error"], a["ms"]) for a in attempts],
            )
            await conn.exec_driver_sql(
                _SQLITE_RECORD_ROWS,
                [
                    (
                        r["status"],
                        r["next"],
                        r["at"],
                        r["code"],
                        r["error"],
                        r["delivered"],
                        r["id"],
                    )
                    for r in rows
                ],
            )
        if disable:
            await conn.execute(
                update(EP)
                .where(EP.c.endpoint_id.in_(sorted(disable)))
                .values(
                    enabled=False,
                    disabled_reason="gone",
                    updated_ns=max(o.attempted_ns for o in outcomes),
                )
            )


async def release(database: Database, ids: list[int]) -> None:
    """Give back leases of attempts that were interrupted (shutdown): due again at once."""
    if ids:
        async with _transaction(database) as conn:
            await conn.execute(update(OB).where(OB.c.id.in_(ids)).values(lease_until_ns=None))


async def clear_leases(database: Database) -> None:
    """SQLite, at start: leases left by a crash of the only dispatcher can go at once."""
    async with _transaction(database) as conn:
        await conn.execute(
            update(OB).where(OB.c.lease_until_ns.is_not(None)).values(lease_until_ns=None)
        )


async def backlog(database: Database) -> tuple[int, int | None]:
    """Messages waiting (pending, to enabled endpoints; plus those not yet expanded from
    their batch) and the oldest one's creation time."""
    async with database.engine.connect() as conn:
        pending = (
            await conn.execute(
                select(func.count(), func.min(OB.c.created_ns))
                .select_from(OB.join(EP, EP.c.endpoint_id == OB.c.endpoint_id))
                .where(_pending(OB), EP.c.enabled.is_(True))
            )
        ).one()
        queued = (
            await conn.execute(select(func.sum(BA.c.event_count), func.min(BA.c.created_ns)))
        ).one()
    oldest = [t for t in (pending[1], queued[1]) if t is not None]
    return int(pending[0]) + int(queued[0] or 0), min(oldest) if oldest else None


async def expand(database: Database, *, rounds: int = 1000) -> tuple[int, bool]:
    """Expand queued batches into outbox rows, up to ``rounds`` transactions of up to 50
    batches: (messages added, whether batches may remain)."""
    added = 0
    for _ in range(rounds):
        async with _transaction(database) as conn:
            done = await expand_batches(conn)
        if not done or not done[0]:  # another dispatcher is at it, or none left
            return added, False
        added += done[1]
    return added, True


async def purge(database: Database, *, before_ns: int) -> int:
    """Drop finished messages older than the retention, and rows of deleted endpoints."""
    orphan = ~exists().where(EP.c.endpoint_id == OB.c.endpoint_id)
    old = OB.c.status.in_((DELIVERED, FAILED)) & (OB.c.created_ns < before_ns)
    doomed = select(OB.c.id).where(or_(old, orphan)).scalar_subquery()
    async with _transaction(database) as conn:
        await conn.execute(delete(AT).where(AT.c.outbox_id.in_(doomed)))
        result = await conn.execute(delete(OB).where(or_(old, orphan)))
    return int(result.rowcount or 0)
