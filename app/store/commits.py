"""The journal's own connection: one group commit, one round trip.

Unlike the rest of the store (SQLAlchemy's engine and pool), the journal writer holds one
driver connection of its own (STYLE, "Hot paths"): a group commit through ``engine.begin()``
paid a pool checkout, a pre-ping, greenlet hops and one round trip per statement, 6-9 in all,
hundreds of times a second on the order path. Here a group's statements are queued in a
``JournalTransaction`` (one statement per table; the transaction hooks add theirs) and sent
at once. On PostgreSQL they become ONE statement, each a data-modifying CTE, which runs in
its own implicit transaction: the whole commit is one network round trip.

That statement goes out through libpq's pipeline mode, driven here rather than through
psycopg's cursor: each group is its statement (prepared once per shape) and a sync point, and
one reader on the socket, installed once, settles each group's future at its sync point.
psycopg's cursor paid, per commit, a reader added and removed, a timer, a future and its
generator steps: 118 us of CPU per single-order commit against 62 us here (bench/journal.py's
statement, one in flight), and about twice that inside the server, where the commit is a
third of an order's CPU at one connection. The pipeline also lets a group go out while the
one before it is still on its way (``send``); each group's statement then checks and moves a
session setting that only a committed group advances, so a group never commits after one
that failed. Large groups put their new rows in with COPY first, inside ``BEGIN``/``COMMIT``
(cheaper per row for us and for PostgreSQL, worth the extra round trips there), through
psycopg, with nothing in flight. On SQLite the statements run in one call on the
connection's own thread: one transaction, ``executemany``, no ORM.

A group still the oldest in flight after ``watch_seconds`` is looked at by a watchdog as
well: its socket read again (then the connection replaced). A wake-up the event loop never
delivers (a registration lost to a reused socket number, a socket libpq closed inside a
call that reported no error) would otherwise leave the group, and every request waiting for
it, unanswered for ever, and a stop or a claim's take-over waiting behind them; the watchdog
turns it into the group's answer or its connection's failure, within a second or two.

A check that must hold for the commit to happen (a fence) cannot be read back before the
commit, so ``require_one`` makes the statement fail the transaction itself when it does not
change exactly one row; the failure surfaces as the caller's exception. A check that holds
for a session's life is made once, when the session opens (``add_session_hook``: the journal
claim's writer lock and token). After any failure the connection is closed; the next commit
opens a new one. An idle connection that the server dropped is noticed (its socket turned
readable) and replaced before a commit is sent, so a database restart between commits costs
no order.
"""

from __future__ import annotations

import asyncio
import logging
import select
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors
from psycopg import pq

from app.store.database import Database

log = logging.getLogger(__name__)

APPLICATION_NAME = "ticker-journal"
ONE, MANY = -1, -2
CHAIN_SETTING = "ticker.journal_group"  # the last group committed on this session
CHAIN_BROKEN = "journal chain: a group sent before this one failed"
PREPARED_MAX = 128  # statements kept prepared per connection; others are sent unprepared

#: Run on each new PostgreSQL session of the journal, before its first group; what it raises
#: fails the group that needed the session, and the session is closed (e.g. the journal
#: claim's writer lock and token: ``app.store.claims.hold_journal_writer``).
SessionHook = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]


@dataclass(slots=True)
class JournalTransaction:
    """The statements of one group commit, in order; nothing is sent until the commit."""

    postgres: bool
    # (sql, params, kind): kind is ONE, MANY, or the index of a guard in ``guards``
    statements: list[tuple[str, Any, int]] = field(default_factory=list)
    # (sql, rows, types): ``types`` the columns' PostgreSQL types, one per column
    copies: list[tuple[str, Iterable[Sequence[Any]], Sequence[str]]] = field(default_factory=list)
    guards: list[tuple[str, Exception]] = field(default_factory=list)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements.append((sql, params, ONE))

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        if rows:
            self.statements.append((sql, rows, MANY))

    def copy(self, sql: str, rows: Iterable[Sequence[Any]], types: Sequence[str]) -> None:
        """PostgreSQL: ``COPY ... FROM STDIN`` of ``rows``, before the other statements;
        ``types``, one per column, tell psycopg how to write them (a binary COPY needs them)."""
        self.copies.append((sql, rows, types))

    def require_one(self, update: str, params: Sequence[Any], error: Exception) -> None:
        """``update`` (an UPDATE without RETURNING) must change exactly one row, or the
        transaction fails with ``error`` (its row lock is held until the commit)."""
        index = len(self.guards)
        self.guards.append((f"journal guard {index}: {error}", error))
        self.statements.append((update, params, index))

    def statement(self, chain: tuple[str | None, str] | None = None) -> tuple[str, list[Any]]:
        """PostgreSQL: the whole transaction as ONE statement, each queued statement a
        data-modifying CTE (all run to completion, atomically, whether read or not). A guard
        casts its marker to int unless its UPDATE changed one row: that fails at run time
        (the CASE depends on the row count, so the planner cannot fold it) and aborts all.

        The statement comes with PostgreSQL's own ``$n`` placeholders (the queued statements
        are written with ``%s``), for a raw cursor: psycopg converts ``%s`` queries on every
        execution once they pass 4 kB, as a group's statement does, and that conversion cost
        more CPU than building the statement.

        ``chain`` (previous, this): the connection's pipeline (``JournalConnection.send``)
        chains its groups. The statement then fails unless the session's ``CHAIN_SETTING``
        is ``previous`` (None: never set on this connection), and sets it to ``this``. A
        setting made by a transaction that failed is undone with it, so a group sent behind
        one that failed fails too: it can never commit without the groups before it."""
        statements = self.statements
        sql = _statement_text(
            tuple((text, kind, len(values)) for text, values, kind in statements),
            chain is not None,
        )
        params = [value for _, values, _ in statements for value in values]
        params += [self.guards[kind][0] for _, _, kind in statements if kind >= 0]
        if chain is not None:
            params += [chain[0], CHAIN_BROKEN, chain[1]]
        return sql, params

    def guard_error(self, exc: BaseException) -> Exception | None:
        text = str(exc)
        for marker, error in self.guards:
            if marker in text:
                return error
        return None


class JournalConnection:
    """The journal writer's connection. ``commit`` runs one ``JournalTransaction``; on
    PostgreSQL, ``send`` puts one on the wire and returns at once, so that several can be in
    flight (libpq's pipeline mode, each group its own implicit transaction, chained: see
    ``JournalTransaction.statement``), their results read in order by one socket reader."""

    def __init__(
        self, database: Database, *, connect_timeout: float = 5.0, watch_seconds: float = 1.0
    ) -> None:
        self.postgres = database.is_postgres
        self._url = database.engine.url
        self._connect_timeout = connect_timeout
        self._watch_seconds = watch_seconds
        self._watchdog: asyncio.TimerHandle | None = None
        self.watchdog_reads = 0  # groups settled by the watchdog, not the reader (tests)
        self._pg: psycopg.AsyncConnection[Any] | None = None
        self._sqlite: sqlite3.Connection | None = None
        self.connects = 0  # connections opened (tests, health)
        # The pipeline: groups sent and not answered yet, oldest first.
        self._in_flight: deque[_Sent] = deque()
        self._piped = False  # in pipeline mode, with our reader on the socket
        self._fd = -1  # the socket our reader (and writer, when one is needed) watch
        self._prepared: dict[str, bytes] = {}
        self._sent = 0  # groups sent on this connection: the chain's last link
        self._session_hooks: list[SessionHook] = []

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the connection (benches read its CPU time)."""
        return None if self._pg is None else self._pg.info.backend_pid

    @property
    def in_flight(self) -> int:
        """Groups sent and not answered yet."""
        return len(self._in_flight)

    def transaction(self) -> JournalTransaction:
        return JournalTransaction(postgres=self.postgres)

    def add_session_hook(self, hook: SessionHook) -> None:
        """PostgreSQL: ``hook`` runs on each new session before it carries a group."""
        self._session_hooks.append(hook)

    def pipelined(self, tx: JournalTransaction) -> bool:
        """Whether ``send`` takes ``tx``: PostgreSQL, no COPY. The others go through
        ``commit`` alone, with nothing in flight."""
        return self.postgres and not tx.copies

    async def commit(
        self, tx: JournalTransaction, committed: Callable[[], None] | None = None
    ) -> None:
        """Run ``tx`` in one transaction; on any error nothing of it is committed, the error
        (or the failed guard's) is raised, and the connection is dropped. ``committed``, if
        given, is called once it committed, before this returns (see ``send``)."""
        if self.pipelined(tx):
            await (await self.send(tx, committed))
            return
        try:
            if self.postgres:
                await self._pg_copy_commit(tx)
            else:
                await self._sqlite_run(self._sqlite_commit, tx)
        except Exception as exc:
            await self.close()
            error = tx.guard_error(exc)
            if error is not None:
                raise error from exc
            raise
        if committed is not None:
            _tell(committed)

    async def send(
        self, tx: JournalTransaction, committed: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        """PostgreSQL: send ``tx`` (``pipelined``) behind the groups in flight; the future is
        done when it committed, or failed as ``commit`` fails. A group fails if any group
        sent before it on the connection failed, so they commit in order or not at all.
        ``committed`` is called by the socket's reader at the group's sync point, before the
        future is done: whoever it wakes resumes on the loop's next turn, not on the turn
        after the future's waiter (the journal writer) ran: 2.9% fewer instructions an
        order at 16 clients, about 2% at one (bench/instructions.py)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not tx.statements:
            if committed is not None:
                _tell(committed)
            future.set_result(None)
            return future
        try:
            conn = self._pg
            if not self._in_flight and (conn is None or not _pg_alive(conn)):
                conn = await self._pg_connection()
            assert conn is not None
            if not self._piped:
                self._enter_pipeline(conn)
            pg = conn.pgconn
            previous = str(self._sent) if self._sent else None
            self._sent += 1
            sql, params = tx.statement((previous, str(self._sent)))
            values = [_text(value) for value in params]
            name = self._prepared.get(sql)
            if name is None and len(self._prepared) < PREPARED_MAX:
                name = self._prepared[sql] = b"journal_%d" % len(self._prepared)
                pg.send_prepare(name, sql.encode())
            if name is None:
                pg.send_query_params(sql.encode(), values)
            else:
                pg.send_query_prepared(name, values)
            pg.pipeline_sync()
            self._in_flight.append(_Sent(future, tx, committed))
            if pg.flush():  # more to send than the socket took: the rest when writable
                loop.add_writer(self._fd, self._writable)
                loop.call_soon(self._look)
        except Exception as exc:
            self._drop(exc)
            if not future.done():
                future.set_exception(exc)
        return future

    async def close(self) -> None:
        self._lost(ConnectionError("the journal connection was closed"))
        pg, self._pg = self._pg, None
        if pg is not None:
            await pg.close()
        if self._sqlite is not None:
            await asyncio.get_running_loop().run_in_executor(_SQLITE_THREAD, self._sqlite_close)

    # --- PostgreSQL ---------------------------------------------------------------------------

    async def _pg_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._pg
        if conn is not None and not self._in_flight and _pg_alive(conn):
            return conn
        self._pg = None
        if conn is not None:
            self._lost(ConnectionError("the journal connection was lost"))
            await conn.close()
        url = self._url.set(drivername="postgresql")
        conn = await psycopg.AsyncConnection.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,  # a group is one statement; with COPY, BEGIN and COMMIT are ours
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name=APPLICATION_NAME,
        )
        try:
            for hook in self._session_hooks:
                await hook(conn)
        except BaseException:
            await conn.close()
            raise
        self.connects += 1
        self._pg = conn
        self._prepared.clear()
        self._sent = 0
        return conn

    def _enter_pipeline(self, conn: psycopg.AsyncConnection[Any]) -> None:
        conn.pgconn.enter_pipeline_mode()
        self._fd = conn.pgconn.socket
        loop = asyncio.get_running_loop()
        loop.add_reader(self._fd, self._readable)
        self._piped = True
        self._watchdog = loop.call_later(self._watch_seconds, self._watch, None)

    def _watch(self, oldest: _Sent | None) -> None:
        """The watchdog (see the module header), every ``watch_seconds`` while in pipeline
        mode: a group that was the oldest in flight at the last look and still is gets its
        socket read here. If that settles it, the reader missed its wake-up: once nothing is
        in flight the connection is replaced (the next group opens another, with a new
        registration), rather than trusted again. Nothing on the order path pays for it."""
        self._watchdog = None
        if not self._piped:
            return
        in_flight = self._in_flight
        if in_flight and in_flight[0] is oldest:
            self._readable()
            if not self._in_flight or self._in_flight[0] is not oldest:
                self.watchdog_reads += 1
                log.warning(
                    "journal: a group unanswered for over %ss was settled by the watchdog, "
                    "not by the socket's reader; the connection is replaced",
                    self._watch_seconds,
                )
                if self._piped and not self._in_flight:
                    self._drop(ConnectionError("replaced after a missed wake-up"))
        if self._piped:
            current = self._in_flight[0] if self._in_flight else None
            self._watchdog = asyncio.get_running_loop().call_later(
                self._watch_seconds, self._watch, current
            )

    def _leave_pipeline(self) -> None:
        """Back to psycopg's own use of the connection (its cursor waits on the socket)."""
        if not self._piped:
            return
        self._unwatch()
        conn = self._pg
        if conn is not None and not conn.closed:
            conn.pgconn.exit_pipeline_mode()

    def _unwatch(self) -> None:
        """Take our reader and writer off the socket, before anything else uses or closes it
        (a closed socket's number is soon another's)."""
        if self._piped:
            self._piped = False
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    def _readable(self) -> None:
        """The socket reader: each group's results, in order; its future settled at its sync
        point. Anything readable with nothing in flight is the server ending the session."""
        conn = self._pg
        if conn is None:
            return
        pg = conn.pgconn
        try:
            if not self._in_flight:
                raise ConnectionError("the server ended the journal's idle session")
            pg.consume_input()
            nulls = 0
            while self._in_flight and not pg.is_busy():
                result = pg.get_result()
                if result is None:  # the end of one command's results
                    nulls += 1
                    if nulls > 1:
                        break
                    continue
                nulls = 0
                sent = self._in_flight[0]
                status = result.status
                if status == _PIPELINE_SYNC:
                    self._in_flight.popleft()
                    if sent.error is not None:
                        self._failed(sent, sent.error)
                        return
                    if sent.committed is not None:
                        _tell(sent.committed)
                    if not sent.future.done():
                        sent.future.set_result(None)
                elif status == _FATAL_ERROR and sent.error is None:
                    sent.error = _error(result)
            if self._in_flight and pg.status == _BAD:
                # The session ended (libpq read its last words and let the socket go): no
                # sync point will come, and no readable socket will call this again.
                error = self._in_flight[0].error
                raise error if error is not None else ConnectionError("the session ended")
        except Exception as exc:
            self._drop(exc)

    def _writable(self) -> None:
        conn = self._pg
        if conn is None:
            return
        try:
            if not conn.pgconn.flush():
                asyncio.get_running_loop().remove_writer(self._fd)
        except Exception as exc:
            self._drop(exc)
            return
        self._look()

    def _look(self) -> None:
        """After a flush that could not send everything at once: libpq then reads what the
        server sent meanwhile (its guard against both sides waiting to write), and answers
        it read wake no reader, since the socket holds nothing more. Look at them now."""
        if self._in_flight and self._pg is not None:
            self._readable()

    def _failed(self, sent: _Sent, error: Exception) -> None:
        """A group failed: it raises its error (a failed guard's own), the groups behind it
        fail with it (their chain check would fail them anyway), the connection is dropped."""
        guard = sent.tx.guard_error(error)
        if guard is not None:
            guard.__cause__ = error
            error = guard
        if not sent.future.done():
            sent.future.set_exception(error)
        self._drop(ConnectionError(f"an earlier journal group failed: {error}"))

    def _drop(self, error: Exception) -> None:
        """``_lost``, and the connection closed: the next group opens a new one."""
        self._lost(error)
        conn, self._pg = self._pg, None
        if conn is not None:
            conn.pgconn.finish()

    def _lost(self, error: Exception) -> None:
        """Fail every group in flight with ``error``; stop reading the socket."""
        self._unwatch()
        in_flight, self._in_flight = self._in_flight, deque()
        for sent in in_flight:
            if not sent.future.done():
                sent.future.set_exception(error)

    async def _pg_copy_commit(self, tx: JournalTransaction) -> None:
        """A group with COPY: ``BEGIN``, the copies, the statement, ``COMMIT``, by psycopg,
        with nothing in flight."""
        if self._in_flight:
            raise RuntimeError("a COPY commit needs the pipeline empty")
        conn = await self._pg_connection()
        self._leave_pipeline()
        cursor = psycopg.AsyncRawCursor(conn)
        sql, params = tx.statement()
        await cursor.execute("BEGIN")
        for copy_sql, rows, types in tx.copies:
            async with cursor.copy(copy_sql) as copy:
                copy.set_types(types)
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


@lru_cache(maxsize=PREPARED_MAX)
def _statement_text(shape: tuple[tuple[str, int, int], ...], chained: bool) -> str:
    """``JournalTransaction.statement``'s text for its statements' shape (each one's SQL,
    kind and number of parameters), built once per shape: a group's statement is the same
    text for every group of the same tables, and the connection finds its prepared name by it
    (the same string object, whose hash Python keeps)."""
    parts: list[str] = []
    guarded: list[int] = []  # the CTEs that are guards
    count = 0
    for n, (sql, kind, size) in enumerate(shape):
        if kind == MANY:
            raise ValueError("executemany is for SQLite; on PostgreSQL send arrays")
        numbered = _numbered(sql, count)
        if kind >= 0:
            parts.append(f"s{n} AS ({numbered} RETURNING 1)")
            guarded.append(n)
        else:
            parts.append(f"s{n} AS ({numbered})")
        count += size
    checks = [
        f"(CASE WHEN (SELECT count(*) FROM s{n}) = 1 THEN '1' ELSE ${count + i} END)::int"
        for i, n in enumerate(guarded, 1)
    ]
    if chained:
        n = count + len(guarded)
        checks.append(
            f"(CASE WHEN current_setting('{CHAIN_SETTING}', true) IS NOT DISTINCT FROM"
            f" ${n + 1}::text THEN '1' ELSE ${n + 2} END)::int"
        )
        checks.append(f"set_config('{CHAIN_SETTING}', ${n + 3}, false)")
    select = "SELECT " + (", ".join(checks) if checks else "1")
    return "WITH " + ", ".join(parts) + " " + select if parts else select


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


@dataclass(slots=True)
class _Sent:
    """A group on the wire: its future, its transaction, the first error it met."""

    future: asyncio.Future[None]
    tx: JournalTransaction
    committed: Callable[[], None] | None = None
    error: Exception | None = None


_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_BAD = pq.ConnStatus.BAD
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR


def _tell(committed: Callable[[], None]) -> None:
    """Call a commit's ``committed``; what it raises is logged, never taken for the commit's
    own failure (the group did commit)."""
    try:
        committed()
    except Exception:
        log.exception("journal: a committed group's callback failed")


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the statement's casts and columns type it)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"t" if value else b"f"
    return str(value).encode()


def _error(result: pq.abc.PGresult) -> Exception:
    """The psycopg exception of a failed result (``UniqueViolation``, ...)."""
    message = (result.error_message or b"").decode(errors="replace").strip()
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    kind = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.DatabaseError
    return kind(message)


def _pg_alive(conn: psycopg.AsyncConnection[Any]) -> bool:
    """False if the idle connection is closed or the server sent something (an idle session
    is told nothing but its end: a terminated backend, a server shutting down)."""
    if conn.closed or conn.broken:
        return False
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    return not readable
