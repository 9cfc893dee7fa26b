"""One writer per journal: the claim a ``ROLE=all`` process takes before it rebuilds books.

- SQLite: an exclusive ``flock`` on ``<database>.lock``, beside the file. The kernel drops it
  when the process dies, and a paused process keeps it, so no fencing token is needed. The
  holder writes who it is into the file, so that the next one can name it when refused.
- PostgreSQL: a session-level advisory lock, held on a connection of its own for the life of
  the process, plus a fence row (``matcher_fences``, shard ``JOURNAL_FENCE``) whose token the
  holder bumps when it takes the claim. The lock's session can end while the process lives on
  (network loss, ``pg_terminate_backend``, a pause long enough for the server to drop the
  connection); a standby then takes over, and the old process must not commit again.

  That is kept per session, not per commit: the journal's own session holds a second lock,
  the writer's (``JOURNAL_WRITER_KEY``), from before its first group to its end, and it
  checks the token once, after taking that lock (``hold_journal_writer``). A new holder bumps
  the token, then ends every session that holds the writer's lock and waits until the lock is
  free (``PostgresClaim.end_writers``), and only then reads the books. So a session that wrote
  under the old token has ended before the books are read (a session's locks go only when it
  ends, after its last commit), and one that takes the lock later reads the new token and
  writes nothing. A fence row updated in every commit, as the matchers do, cost each
  single-order commit about 40 us of PostgreSQL's CPU and 50-65 us of its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.database import Database, normalise_url
from app.store.fences import StaleFence

#: The ``matcher_fences`` row of the ``ROLE=all`` claim; matchers use their shard ids (>= 0).
JOURNAL_FENCE = -1
#: The advisory lock's key (any constant bigint; advisory locks are per database).
JOURNAL_LOCK_KEY = 0x7469636B65720001
#: The lock of the session that writes the journal (see the module's header).
JOURNAL_WRITER_KEY = JOURNAL_LOCK_KEY + 1

# Every other session that holds the writer's lock (a bigint key is in pg_locks as its high
# and low halves, objsubid 1).
_END_WRITERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    f" AND classid = {JOURNAL_WRITER_KEY >> 32} AND objid = {JOURNAL_WRITER_KEY & 0xFFFFFFFF}"
    " AND objsubid = 1 AND pid <> pg_backend_pid()"
)
_WAIT_STEP = 0.02  # seconds between two tries for a lock that a session being ended holds


_KEEPALIVES = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)


class JournalClaimed(Exception):
    """Another process holds the journal."""

    def __init__(self, journal: str, holder: str) -> None:
        self.journal = journal
        self.holder = holder
        super().__init__(
            f"another ticker-service ({holder}) holds {journal}; "
            "stop it or use another DATA_DIR / DATABASE_URL"
        )


def describe_holder(instance_id: str | None = None) -> str:
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    return f"{instance_id}, {where}" if instance_id else where


def sqlite_file(url: str | None, data_dir: Path) -> Path | None:
    """The SQLite file a database URL names (None for PostgreSQL or an in-memory database).
    Computed without creating anything, so a refused start leaves ``DATA_DIR`` untouched."""
    if not url:
        return data_dir / "ticker.db"
    parsed = make_url(normalise_url(url, data_dir))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


class FileClaim:
    """An exclusive ``flock`` beside a SQLite file, held until ``release`` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, database_file: Path, holder: str) -> FileClaim:
        path = database_file.with_name(database_file.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            named = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown holder"
            os.close(fd)
            raise JournalClaimed(str(database_file), named) from None
        # The file is never removed: unlinking a lock file lets a newcomer lock a fresh inode
        # while another process still holds the old one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class PostgresClaim:
    """The advisory lock, on a connection of its own (AUTOCOMMIT: a session lock needs no
    transaction, and an open one would hold back vacuum for the life of the process)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: AsyncConnection | None = None
        self.held = False

    async def try_acquire(self) -> bool:
        try:
            if self._conn is None:
                conn = await self._database.engine.connect()
                self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                # If the holder's host vanishes without closing the connection, the server
                # ends the session (and frees the lock) after ~11 s, not the OS's 2 hours.
                await self._conn.execute(text(_KEEPALIVES))
            taken = await self._conn.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": JOURNAL_LOCK_KEY}
            )
        except Exception:
            await self._drop()
            raise
        self.held = bool(taken)
        return self.held

    async def end_writers(self, timeout: float) -> None:
        """Holding the claim, after the token was bumped: end every session that holds the
        journal writer's lock, and return once the lock is free (``TimeoutError`` if it is
        not within ``timeout``: a session of ours that cannot be ended)."""
        if self._conn is None or not self.held:
            raise RuntimeError("end_writers needs the claim held")
        conn, key = self._conn, {"key": JOURNAL_WRITER_KEY}

        async def ended() -> bool:
            await conn.execute(text(_END_WRITERS))
            if not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), key):
                return False
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            return True

        if not await _within(timeout, ended):
            raise TimeoutError("the journal's writer session could not be ended")

    async def alive(self, timeout: float) -> bool:
        """Whether the session holding the lock still answers (if it ended, so did the lock)."""
        if self._conn is None or not self.held:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def release(self) -> None:
        unlocked = not self.held
        try:
            if self._conn is not None and self.held:
                # If the session is gone, so is the lock.
                with contextlib.suppress(Exception):
                    # All of the session's: the claim's, and the writer's if ``end_writers``
                    # was stopped while it held it (the connection goes back to the pool).
                    await self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                    unlocked = True
        finally:  # also when cancelled (a stop's bound): the session must not keep the lock
            self.held = False
            await self._drop(close_session=not unlocked)

    async def _drop(self, *, close_session: bool = False) -> None:
        """Give the connection back to the pool; ``close_session``: close it instead (its
        session may still hold the lock)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if close_session:
            await conn.invalidate()
            return
        try:
            await conn.close()
        except Exception:  # a broken connection: nothing to give back
            await conn.invalidate()


async def hold_journal_writer(
    conn: psycopg.AsyncConnection[Any], token: int, timeout: float
) -> None:
    """On a new session of the journal (autocommit), before its first group: take the
    writer's lock, waiting up to ``timeout`` for a session being ended to let it go, then
    require the journal claim's token to be ``token``; ``StaleFence`` otherwise. The lock
    stays with the session until it ends."""

    async def locked() -> bool:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (JOURNAL_WRITER_KEY,))
        row = await cursor.fetchone()
        return row is not None and bool(row[0])

    if not await _within(timeout, locked):
        raise StaleFence("another session holds the journal writer's lock")
    cursor = await conn.execute(
        "SELECT token FROM matcher_fences WHERE shard = %s", (JOURNAL_FENCE,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] != token:
        raise StaleFence(f"journal claim: token {token} is no longer current")


async def _within(timeout: float, attempt: Callable[[], Awaitable[bool]]) -> bool:
    """Try ``attempt`` until it succeeds, every ``_WAIT_STEP`` seconds for up to ``timeout``
    (a lock that a session being ended still holds); whether it did."""
    deadline = time.monotonic() + timeout
    while not await attempt():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_WAIT_STEP)
    return True
