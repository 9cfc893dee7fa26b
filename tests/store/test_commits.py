"""The journal's own connection: a group commit is one round trip; a dropped connection is
replaced before the next commit; a failed commit leaves nothing and reconnects; a stale fence
fails the whole group, on both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from app.settings import Settings
from app.store.commits import (
    APPLICATION_NAME,
    CHAIN_BROKEN,
    JournalConnection,
    JournalTransaction,
)
from app.store.database import Database
from app.store.fences import StaleFence, guard_fence, install_fence
from app.store.journal import BatchRow, HistoryRow, TradeRow, batches, orders, queue_rows, trades
from app.store.migrate import migrate
from app.store.webhooks import queue_changes, webhook_batches
from tests.store.test_journal import order_row


def trade_row(trade_id: int) -> TradeRow:
    from datetime import UTC, datetime

    return TradeRow(
        trade_id=trade_id,
        executed_at=datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC),
        ts_ns=5,
        instrument_token=408065,
        price=37508,
        quantity=2,
        maker_order_id=1,
        taker_order_id=2,
        maker_account="a",
        taker_account="b",
        taker_side="sell",
    )


def batch_row(batch_id: str) -> BatchRow:
    return BatchRow(
        batch_id=batch_id,
        account="a",
        created_ns=1,
        idempotency_key=None,
        request_hash=None,
        accepted=1,
        rejected=0,
        response='{results=[{status="accepted", note="a \\"quoted\\" {x,y}"}]}',
    )


def group(tx: JournalTransaction, first: int, *, fence: tuple[int, int] | None = None) -> None:
    """What one group commit of a matcher writes: a new order, a changed one, a trade, the
    batch, the new order's history row, the outbox's batch and the fence check."""
    queue_rows(
        tx,
        order_rows=[order_row(first, "a", None), order_row(first - 1, "a", None)],
        trade_rows=[trade_row(first)],
        batch_rows=[batch_row(f"b{first}")],
        new_order_ids={first},
        history_rows=[HistoryRow(first, first, 1, "accepted", "open", 5, 0, 5, 37508, None, None)],
    )
    queue_changes(tx, {"v": 1, "r": {}, "u": []}, 1, created_ns=1, deadline_ns=2)
    if fence is not None:
        guard_fence(tx, *fence)


async def count(database: Database, table: Any) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


@asynccontextmanager
async def exchanges_counted(pg_url: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A TCP relay in front of PostgreSQL that logs the direction of each chunk it passes:
    'c' client to server, 's' server to client. A round trip is one client burst answered."""
    log: list[str] = []
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mark: str) -> None:
        try:
            while data := await reader.read(65536):
                log.append(mark)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            pump(client_r, server_w, "c"), pump(server_r, client_w, "s"), return_exceptions=True
        )

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = server.sockets[0].getsockname()[1]
    try:
        yield pg_url.replace(host_port, f"127.0.0.1:{relay_port}"), log
    finally:
        server.close()


def round_trips(log: list[str]) -> int:
    """Client bursts that a server burst answered."""
    bursts = [mark for i, mark in enumerate(log) if i == 0 or log[i - 1] != mark]
    return sum(1 for i, mark in enumerate(bursts[:-1]) if mark == "c" and bursts[i + 1] == "s")


@pytest.fixture
async def database(backend_settings: Settings) -> AsyncIterator[Database]:
    database = Database.create(backend_settings.db.url, data_dir=backend_settings.db.data_dir)
    await migrate(database)
    try:
        yield database
    finally:
        await database.dispose()


@asynccontextmanager
async def journal_on(
    pg_url: str, **options: Any
) -> AsyncIterator[tuple[Database, JournalConnection]]:
    """PostgreSQL's journal tables and a journal connection to them."""
    database = Database.create(pg_url)
    await migrate(database)
    connection = JournalConnection(database, **options)
    try:
        yield database, connection
    finally:
        await connection.close()
        await database.dispose()


@pytest.fixture
async def pg_journal(pg_url: str) -> AsyncIterator[tuple[Database, JournalConnection]]:
    async with journal_on(pg_url) as journal:
        yield journal


@pytest.fixture
async def watched_journal(pg_url: str) -> AsyncIterator[tuple[Database, JournalConnection]]:
    """As ``pg_journal``, its watchdog looking every 0.2 s."""
    async with journal_on(pg_url, watch_seconds=0.2) as journal:
        yield journal


class TestRoundTrips:
    async def test_a_group_commit_with_its_hooks_is_one_round_trip(self, pg_url: str) -> None:
        await install_fence_at(pg_url, shard=0, token=5)
        async with exchanges_counted(pg_url) as (relayed_url, log):
            database = Database.create(relayed_url)
            connection = JournalConnection(database)
            try:
                for first in (10, 20, 30):  # the first one also opens the connection
                    tx = connection.transaction()
                    group(tx, first, fence=(0, 5))
                    before = len(log)
                    await connection.commit(tx)
                    await asyncio.sleep(0.05)  # let the relay pass the last chunks on
                    if first > 10:
                        assert round_trips(log[before:]) == 1, log[before:]
                assert connection.connects == 1  # no checkout, no pre-ping: the same session
                assert await count(database, orders) == 6
                assert await count(database, trades) == 3
                assert await count(database, batches) == 3
                assert await count(database, webhook_batches) == 3
            finally:
                await connection.close()
                await database.dispose()


async def install_fence_at(url: str, *, shard: int, token: int) -> None:
    database = Database.create(url)
    try:
        await install_fence(database, shard, token, "test")
    finally:
        await database.dispose()


class TestReconnect:
    async def test_a_connection_the_server_dropped_is_replaced_before_the_commit(
        self, pg_url: str
    ) -> None:
        database = Database.create(pg_url)
        connection = JournalConnection(database)
        try:
            tx = connection.transaction()
            group(tx, 10)
            await connection.commit(tx)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s",
                    (APPLICATION_NAME,),
                ).fetchall()
            assert ended == [(True,)]
            await asyncio.sleep(0.2)  # the backend's goodbye reaches our socket
            tx = connection.transaction()
            group(tx, 20)
            await connection.commit(tx)  # no order lost to the restart
            assert connection.connects == 2
            assert await count(database, orders) == 4
        finally:
            await connection.close()
            await database.dispose()

    async def test_a_session_ended_just_before_the_commit_is_replaced_cleanly(
        self, pg_journal: tuple[Database, JournalConnection], pg_url: str
    ) -> None:
        """The check before sending notices the ended session before the socket's reader
        does; the reader comes off the old socket before it is closed (its number is soon
        the new connection's), every time."""
        database, connection = pg_journal
        for first in range(10, 60, 10):
            tx = connection.transaction()
            group(tx, first)
            await connection.commit(tx)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s",
                    (APPLICATION_NAME,),
                )
                # Until the backend is gone: its goodbye is on our socket, unread.
                while admin.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s",
                    (APPLICATION_NAME,),
                ).fetchone() != (0,):
                    pass
        tx = connection.transaction()
        group(tx, 60)
        await connection.commit(tx)
        assert connection.connects == 6
        assert await count(database, orders) == 12

    async def test_a_failed_commit_leaves_nothing_and_the_next_one_reconnects(
        self, database: Database
    ) -> None:
        connection = JournalConnection(database)
        try:
            tx = connection.transaction()
            group(tx, 10)
            await connection.commit(tx)
            tx = connection.transaction()
            group(tx, 20)
            queue_rows(tx, order_rows=[], trade_rows=[], batch_rows=[batch_row("b10")])
            with pytest.raises(Exception, match="(?i)unique"):
                await connection.commit(tx)  # the batch id exists: the whole group fails
            assert await count(database, orders) == 2
            assert await count(database, webhook_batches) == 1
            tx = connection.transaction()
            group(tx, 30)
            await connection.commit(tx)
            assert await count(database, orders) == 4
            assert connection.connects == 2
        finally:
            await connection.close()


class TestGuards:
    async def test_a_stale_fence_fails_the_whole_group(self, database: Database) -> None:
        await install_fence(database, 0, 5, "new")
        connection = JournalConnection(database)
        try:
            tx = connection.transaction()
            group(tx, 10, fence=(0, 5))
            await connection.commit(tx)
            tx = connection.transaction()
            group(tx, 20, fence=(0, 4))
            with pytest.raises(StaleFence, match="token 4 is no longer current"):
                await connection.commit(tx)
            assert await count(database, orders) == 2
            assert await count(database, trades) == 1
            assert await count(database, webhook_batches) == 1
        finally:
            await connection.close()


class TestCommitted:
    """``commit(tx, committed)``: ``committed`` runs once the group committed, before the
    commit's own waiter resumes (on PostgreSQL from the socket's reader), never for a group
    that failed; what it raises is logged and the commit still stands."""

    async def test_it_runs_before_the_waiter_resumes_and_only_for_a_commit(
        self, database: Database
    ) -> None:
        connection = JournalConnection(database)
        seen: list[str] = []
        try:
            tx = connection.transaction()
            group(tx, 10)
            waiting = asyncio.ensure_future(connection.commit(tx, lambda: seen.append("10")))
            waiting.add_done_callback(lambda _: seen.append("waiter"))
            await waiting
            assert seen == ["10", "waiter"]
            tx = connection.transaction()
            group(tx, 20)
            queue_rows(tx, order_rows=[], trade_rows=[], batch_rows=[batch_row("b10")])
            with pytest.raises(Exception, match="(?i)unique"):
                await connection.commit(tx, lambda: seen.append("20"))
            assert seen == ["10", "waiter"]
        finally:
            await connection.close()

    async def test_what_it_raises_is_logged_and_the_group_stays_committed(
        self, database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        connection = JournalConnection(database)

        def broken() -> None:
            raise RuntimeError("a listener's bug")

        try:
            tx = connection.transaction()
            group(tx, 10)
            await connection.commit(tx, broken)
            tx = connection.transaction()
            group(tx, 20)
            await connection.commit(tx)  # the connection is as good as before
        finally:
            await connection.close()
        assert await count(database, orders) == 4
        assert "a committed group's callback failed" in caplog.text


class TestPipeline:
    async def test_groups_sent_behind_each_other_all_commit_on_one_connection(
        self, pg_journal: tuple[Database, JournalConnection]
    ) -> None:
        database, connection = pg_journal
        sent = []
        for first in (10, 20, 30):
            tx = connection.transaction()
            group(tx, first)
            sent.append(await connection.send(tx))
        assert connection.in_flight == 3  # all on the wire before the first answer
        await asyncio.gather(*sent)
        assert connection.in_flight == 0
        assert connection.connects == 1
        assert await count(database, orders) == 6
        assert await count(database, webhook_batches) == 3

    async def test_a_group_sent_behind_a_failed_one_fails_with_it(
        self, pg_journal: tuple[Database, JournalConnection]
    ) -> None:
        database, connection = pg_journal
        first = connection.transaction()
        group(first, 10)
        failing = connection.transaction()
        group(failing, 20)
        queue_rows(failing, order_rows=[], trade_rows=[], batch_rows=[batch_row("b10")])
        behind = connection.transaction()
        group(behind, 30)
        sent = [await connection.send(tx) for tx in (first, failing, behind)]
        results = await asyncio.gather(*sent, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], psycopg.errors.UniqueViolation)
        assert isinstance(results[2], Exception)
        assert await count(database, orders) == 2  # the first group's only
        tx = connection.transaction()
        group(tx, 40)
        await connection.commit(tx)  # on a new connection
        assert connection.connects == 2
        assert await count(database, orders) == 4

    async def test_the_chain_refuses_a_group_whose_predecessor_did_not_commit(
        self, pg_url: str
    ) -> None:
        """What keeps the order on PostgreSQL's side: a group's statement requires the session
        setting that only its predecessor's commit leaves."""
        database = Database.create(pg_url)
        await migrate(database)
        await database.dispose()

        def statement(first: int, chain: tuple[str | None, str]) -> tuple[str, list[Any]]:
            tx = JournalTransaction(postgres=True)
            group(tx, first)
            return tx.statement(chain)

        with psycopg.connect(pg_url, autocommit=True) as conn:
            cursor = psycopg.RawCursor(conn)
            cursor.execute(*statement(10, (None, "1")))
            with pytest.raises(psycopg.errors.UniqueViolation):
                cursor.execute(*statement(10, ("1", "2")))  # fails: the setting stays "1"
            with pytest.raises(psycopg.DataError, match=CHAIN_BROKEN):
                cursor.execute(*statement(20, ("2", "3")))
            cursor.execute(*statement(20, ("1", "3")))
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (4,)

    async def test_answers_libpq_read_while_flushing_still_complete_their_groups(
        self, pg_journal: tuple[Database, JournalConnection]
    ) -> None:
        """libpq reads the server's answers itself when a flush cannot write everything
        (non-blocking mode), leaving nothing in the socket to wake the reader. Reproduced
        here as it happens: the answer reaches the socket, libpq reads it, the flush ends."""
        database, connection = pg_journal
        tx = connection.transaction()
        group(tx, 10)
        sent = await connection.send(tx)
        time.sleep(0.3)  # blocking: the answer arrives while the loop cannot read it
        pg = connection._pg
        assert pg is not None
        pg.pgconn.consume_input()  # as libpq's flush does; the socket is empty now
        connection._writable()  # the flush that was waiting for the socket ends
        await asyncio.wait_for(sent, 5)
        assert await count(database, orders) == 2

    async def test_a_group_larger_than_the_socket_takes_at_once_is_sent_whole(
        self, pg_journal: tuple[Database, JournalConnection]
    ) -> None:
        database, connection = pg_journal
        tx = connection.transaction()
        group(tx, 10)
        big = batch_row("big")._replace(response="x" * 48_000_000)
        queue_rows(tx, order_rows=[], trade_rows=[], batch_rows=[big])
        await connection.commit(tx)
        assert await count(database, batches) == 2


class TestWatchdog:
    """A wake-up the loop never delivers must not leave a group (and its requests) waiting."""

    @staticmethod
    def lose_the_reader(connection: JournalConnection) -> None:
        """What a registration lost to a reused socket number looks like: no reader."""
        pg = connection._pg
        assert pg is not None
        asyncio.get_running_loop().remove_reader(pg.pgconn.socket)

    async def test_an_answer_no_reader_saw_is_read_by_the_watchdog(
        self, watched_journal: tuple[Database, JournalConnection]
    ) -> None:
        database, connection = watched_journal
        tx = connection.transaction()
        group(tx, 10)
        sent = await connection.send(tx)
        self.lose_the_reader(connection)
        await asyncio.wait_for(sent, 5)
        assert connection.watchdog_reads == 1
        assert await count(database, orders) == 2
        tx = connection.transaction()
        group(tx, 20)
        await asyncio.wait_for(connection.commit(tx), 5)  # on a new connection, read as usual
        assert connection.watchdog_reads == 1
        assert connection.connects == 2
        assert await count(database, orders) == 4

    async def test_a_session_ended_under_a_lost_reader_fails_its_group_then_reconnects(
        self, watched_journal: tuple[Database, JournalConnection], pg_url: str
    ) -> None:
        database, connection = watched_journal
        tx = connection.transaction()
        group(tx, 10)
        await connection.commit(tx)
        tx = connection.transaction()
        # Still running when its session ends (a CTE that changes nothing would not run)
        tx.execute("UPDATE batches SET accepted = accepted WHERE pg_sleep(%s) IS NOT NULL", [2])
        group(tx, 20)
        sent = await connection.send(tx)
        self.lose_the_reader(connection)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (APPLICATION_NAME,),
            )
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(sent, 5)
        assert await count(database, orders) == 2  # nothing of the group
        tx = connection.transaction()
        group(tx, 30)
        await asyncio.wait_for(connection.commit(tx), 5)
        assert connection.connects == 2
        assert await count(database, orders) == 4


class TestStatement:
    def test_placeholders_are_numbered_across_the_statements_and_guards(self) -> None:
        tx = JournalTransaction(postgres=True)
        tx.execute("INSERT INTO a VALUES (%s, %s)", (1, 2))
        tx.require_one("UPDATE b SET x = %s WHERE y LIKE 'z%%'", (3,), StaleFence("stale"))
        tx.execute("INSERT INTO c SELECT 1")
        sql, params = tx.statement()
        assert sql == (
            "WITH s0 AS (INSERT INTO a VALUES ($1, $2)), "
            "s1 AS (UPDATE b SET x = $3 WHERE y LIKE 'z%' RETURNING 1), "
            "s2 AS (INSERT INTO c SELECT 1) "
            "SELECT (CASE WHEN (SELECT count(*) FROM s1) = 1 THEN '1' ELSE $4 END)::int"
        )
        assert params == [1, 2, 3, "journal guard 0: stale"]

    def test_the_text_is_built_once_per_shape_and_numbered_by_each_groups_parameters(
        self,
    ) -> None:
        def statement(first: tuple[int, ...]) -> tuple[str, list[Any]]:
            tx = JournalTransaction(postgres=True)
            tx.execute("INSERT INTO a VALUES (" + ", ".join("%s" for _ in first) + ")", first)
            tx.execute("INSERT INTO b VALUES (%s)", ("b",))
            return tx.statement(("1", "2"))

        one, again, wider = statement((1,)), statement((7,)), statement((1, 2))
        assert one[0] is again[0]  # the same text object: its prepared name is found by it
        assert one[1] == [1, "b", "1", CHAIN_BROKEN, "2"]
        assert again[1] == [7, "b", "1", CHAIN_BROKEN, "2"]
        assert "INSERT INTO b VALUES ($3)" in wider[0]
        assert "IS NOT DISTINCT FROM $4::text THEN '1' ELSE $5 END" in wider[0]
        assert wider[1] == [1, 2, "b", "1", CHAIN_BROKEN, "2"]

    def test_a_placeholder_psycopg_would_read_differently_is_refused(self) -> None:
        tx = JournalTransaction(postgres=True)
        tx.execute("INSERT INTO a VALUES (%(name)s)", ())
        with pytest.raises(ValueError, match="only %s placeholders"):
            tx.statement()
