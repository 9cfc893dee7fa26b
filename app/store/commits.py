"""The journal's own connection: one group commit, one round trip.

Unlike the rest of the store (SQLAlchemy's engine and pool), the journal writer holds one
driver connection of its own (STYLE, "Hot paths"): a group commit through ``engine.begin()``
paid a pool checkout, a pre-ping, greenlet hops and one round trip per statement, 6-9 in all,
hundreds of times a second on the order path. Here a group's statements are queued in a
``JournalTransaction`` (one statement per table; the transaction hooks add theirs) and sent
at once. On PostgreSQL they become ONE statement, each a data-modifying CTE, which runs in
its own implicit transaction: the whole commit is one network round trip. (psycopg's
pipeline mode also sends everything at once, but waits on the event loop once per statement:
measured 417 us of CPU per single-order commit against 262 us for the single statement, and
1,300 us through SQLAlchemy.) Large groups put their new rows in with COPY first, inside
``BEGIN``/``COMMIT`` (cheaper per row for us and for PostgreSQL, worth the extra round trips
there). On SQLite the statements run in one call on the connection's own thread: one
transaction, ``executemany``, no ORM.

A check that must hold for the commit to happen (a fence) cannot be read back before the
commit, so ``require_one`` makes the statement fail the transaction itself when it does not
change exactly one row; the failure surfaces as the caller's exception. After any failure
the connection is closed; the next commit opens a new one. An idle connection that the server
dropped is noticed (its socket turned readable) and replaced before a commit is sent, so a
database restart between commits costs no order.
"""

from __future__ import annotations

import asyncio
import select
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg

from app.store.database import Database

APPLICATION_NAME = "ticker-journal"
ONE, MANY = -1, -2


@dataclass(slots=True)
class JournalTransaction:
    """The statements of one group commit, in order; nothing is sent until the commit."""

    postgres: bool
    # (sql, params, kind): kind is ONE, MANY, or the index of a guard in ``guards``
    statements: list[tuple[str, Any, int]] = field(default_factory=list)
    copies: list[tuple[str, Iterable[Sequence[Any]]]] = field(default_factory=list)
    guards: list[tuple[str, Exception]] = field(default_factory=list)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements.append((sql, params, ONE))

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        if rows:
            self.statements.append((sql, rows, MANY))

    def copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """PostgreSQL: ``COPY ... FROM STDIN`` of ``rows``, before the other statements."""
        self.copies.append((sql, rows))

    def require_one(self, update: str, params: Sequence[Any], error: Exception) -> None:
        """``update`` (an UPDATE without RETURNING) must change exactly one row, or the
        transaction fails with ``error`` (its row lock is held until the commit)."""
        index = len(self.guards)
        self.guards.append((f"journal guard {index}: {error}", error))
        self.statements.append((update, params, index))

    def statement(self) -> tuple[str, list[Any]]:
        """PostgreSQL: the whole transaction as ONE statement, each queued statement a
        data-modifying CTE (all run to completion, atomically, whether read or not). A guard
        casts its marker to int unless its UPDATE changed one row: that fails at run time
        (the CASE depends on the row count, so the planner cannot fold it) and aborts all.

        The statement comes with PostgreSQL's own ``$n`` placeholders (the queued statements
        are written with ``%s``), for a raw cursor: psycopg converts ``%s`` queries on every
        execution once they pass 4 kB, as a group's statement does, and that conversion cost
        more CPU than building the statement."""
        parts: list[str] = []
        params: list[Any] = []
        guarded: list[int] = []  # the CTEs that are guards
        markers: list[str] = []
        for n, (sql, values, kind) in enumerate(self.statements):
            if kind == MANY:
                raise ValueError("executemany is for SQLite; on PostgreSQL send arrays")
            numbered = _numbered(sql, len(params))
            if kind >= 0:
                parts.append(f"s{n} AS ({numbered} RETURNING 1)")
                guarded.append(n)
                markers.append(self.guards[kind][0])
            else:
                parts.append(f"s{n} AS ({numbered})")
            params.extend(values)
        checks = [
            f"(CASE WHEN (SELECT count(*) FROM s{n}) = 1 THEN '1' ELSE ${len(params) + i} END)::int"
            for i, n in enumerate(guarded, 1)
        ]
        select = "SELECT " + (", ".join(checks) if checks else "1")
        return ("WITH " + ", ".join(parts) + " " + select if parts else select), params + markers

    def guard_error(self, exc: BaseException) -> Exception | None:
        text = str(exc)
        for marker, error in self.guards:
            if marker in text:
                return error
        return None


class JournalConnection:
    """The journal writer's connection; ``commit`` sends one ``JournalTransaction``."""

    def __init__(self, database: Database, *, connect_timeout: float = 5.0) -> None:
        self.postgres = database.is_postgres
        self._url = database.engine.url
        self._connect_timeout = connect_timeout
        self._pg: psycopg.AsyncConnection[Any] | None = None
        self._sqlite: sqlite3.Connection | None = None
        self.connects = 0  # connections opened (tests, health)

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the connection (benches read its CPU time)."""
        return None if self._pg is None else self._pg.info.backend_pid

    def transaction(self) -> JournalTransaction:
        return JournalTransaction(postgres=self.postgres)

    async def commit(self, tx: JournalTransaction) -> None:
        """Run ``tx`` in one transaction; on any error nothing of it is committed, the error
        (or the failed guard's) is raised, and the connection is dropped."""
        try:
            if self.postgres:
                await self._pg_commit(tx)
            else:
                await self._sqlite_run(self._sqlite_commit, tx)
        except Exception as exc:
            await self.close()
            error = tx.guard_error(exc)
            if error is not None:
                raise error from exc
            raise

    async def close(self) -> None:
        pg, self._pg = self._pg, None
        if pg is not None:
            await pg.close()
        if self._sqlite is not None:
            await asyncio.get_running_loop().run_in_executor(_SQLITE_THREAD, self._sqlite_close)

    # --- PostgreSQL ---------------------------------------------------------------------------

    async def _pg_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._pg
        if conn is not None and _pg_alive(conn):
            return conn
        self._pg = None
        if conn is not None:
            await conn.close()
        url = self._url.set(drivername="postgresql")
        conn = await psycopg.AsyncConnection.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,  # a group is one statement; with COPY, BEGIN and COMMIT are ours
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name=APPLICATION_NAME,
        )
        self.connects += 1
        self._pg = conn
        return conn

    async def _pg_commit(self, tx: JournalTransaction) -> None:
        if not tx.statements and not tx.copies:
            return
        conn = await self._pg_connection()
        cursor = psycopg.AsyncRawCursor(conn)
        sql, params = tx.statement()
        if not tx.copies:  # the usual group: one statement in its own implicit transaction
            await cursor.execute(sql, params)
            return
        await cursor.execute("BEGIN")
        for copy_sql, rows in tx.copies:
            async with cursor.copy(copy_sql) as copy:
                write = copy.write_row
                for row in rows:
                    await write(row)
        await cursor.execute(sql, params)
        await cursor.execute("COMMIT")

    # --- SQLite -------------------------------------------------------------------------------

    async def _sqlite_run(self, function: Any, tx: JournalTransaction) -> None:
        if not tx.statements:
            return
        await asyncio.get_running_loop().run_in_executor(_SQLITE_THREAD, function, tx)

    def _sqlite_connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._url.database or ":memory:",
            timeout=self._connect_timeout,
            isolation_level=None,  # BEGIN and COMMIT are ours
        )
        # As the engine's connections (``database._sqlite_pragmas``): WAL, durable against a
        # process crash, and a writer that waits for a lock instead of failing.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        self.connects += 1
        return conn

    def _sqlite_commit(self, tx: JournalTransaction) -> None:
        conn = self._sqlite
        if conn is None:
            conn = self._sqlite = self._sqlite_connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params, kind in tx.statements:
                if kind == MANY:
                    conn.executemany(sql, params)
                elif conn.execute(sql, params).rowcount != 1 and kind >= 0:
                    raise tx.guards[kind][1]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _sqlite_close(self) -> None:
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            conn.close()


# The one thread that runs every SQLite journal connection of the process (sqlite3 connections
# belong to the thread that made them). One long-lived thread, started at the first commit and
# never shut down, rather than one per journal: a thread started and ended per journal (each
# test, each restart of the writer) churns thread states, and under coverage's greenlet tracing
# that churn once left the test process's main thread spinning in greenlet's thread clean-up.
_SQLITE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="journal-sqlite")


@lru_cache(maxsize=256)
def _pieces(sql: str) -> tuple[str, ...]:
    """``sql`` split at its ``%s`` placeholders (``%%`` is a literal ``%``)."""
    pieces = sql.replace("%%", "\0").split("%s")
    if any("%" in piece for piece in pieces):
        raise ValueError(f"only %s placeholders are supported: {sql!r}")
    return tuple(piece.replace("\0", "%") for piece in pieces)


def _numbered(sql: str, offset: int) -> str:
    """``sql`` with its ``%s`` placeholders numbered ``$offset+1``, ``$offset+2``, ..."""
    pieces = _pieces(sql)
    if len(pieces) == 1:
        return pieces[0]
    out = [pieces[0]]
    for n, piece in enumerate(pieces[1:], offset + 1):
        out.append(f"${n}")
        out.append(piece)
    return "".join(out)


def _pg_alive(conn: psycopg.AsyncConnection[Any]) -> bool:
    """False if the idle connection is closed or the server sent something (an idle session
    is told nothing but its end: a terminated backend, a server shutting down)."""
    if conn.closed or conn.broken:
        return False
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    return not readable
