"""The ``ROLE=all`` journal claim on PostgreSQL: one holder, a standby, and the writer's lock
and token that stop a holder whose session ended from committing after a successor took
over."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from app.services.cluster.claim import JournalClaimService
from app.store.claims import JOURNAL_LOCK_KEY
from app.store.commits import JournalConnection
from app.store.database import Database
from app.store.fences import StaleFence
from app.store.journal import batches, queue_rows
from tests.conftest import REDIS_URL
from tests.store.test_commits import batch_row
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, add_accounts, order


@pytest.fixture
async def databases(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database.create(pg_url), Database.create(pg_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def end_lock_session(database: Database, key: int | None = None) -> None:
    """What a network cut or a long pause does: the server ends the lock's session (``key``:
    the sessions holding that lock only; None: every advisory lock's)."""
    only = "" if key is None else f" AND classid = {key >> 32} AND objid = {key & 0xFFFFFFFF}"
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())" + only
            )
        )


@asynccontextmanager
async def journal_of(
    claim: JournalClaimService, database: Database
) -> AsyncIterator[JournalConnection]:
    """A journal connection that writes as ``claim``'s holder, as ``hold_journal_claim``
    wires the writer's."""
    connection = JournalConnection(database)
    connection.add_session_hook(claim.writer_session)
    try:
        yield connection
    finally:
        await connection.close()


async def commit_batch(connection: JournalConnection, batch_id: str) -> None:
    tx = connection.transaction()
    queue_rows(
        tx,
        order_rows=[],
        trade_rows=[],
        batch_rows=[batch_row(batch_id)],
        new_order_ids=set(),
        history_rows=[],
    )
    await connection.commit(tx)


async def batch_ids(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return set((await conn.scalars(select(batches.c.batch_id))).all())


async def session_exists(database: Database, pid: int) -> bool:
    async with database.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
    return bool(found)


class TestJournalClaimService:
    async def test_a_standby_names_the_holder_and_takes_over_when_its_session_ends(
        self, databases: tuple[Database, Database]
    ) -> None:
        holder = JournalClaimService(database=databases[0], holder="desk-a", poll_seconds=0.05)
        standby = JournalClaimService(database=databases[1], holder="desk-b", poll_seconds=0.05)
        try:
            assert await holder.try_take()
            assert not await standby.try_take()
            waiting = asyncio.create_task(standby.wait())
            await asyncio.sleep(0.2)
            assert not waiting.done()
            assert standby.health()["status"] == "standby"
            assert "desk-a" in standby.waiting_for()
            assert "advisory lock" in standby.waiting_for()

            keeper = asyncio.create_task(holder.keep())
            await end_lock_session(databases[1])
            await asyncio.wait_for(keeper, 5)  # keep() returns once the claim is lost
            await asyncio.wait_for(waiting, 5)
            assert holder.status == "lost"
            assert standby.is_held()
            assert holder.token is not None
            assert standby.token == holder.token + 1
        finally:
            await holder.release()
            await standby.release()

    async def test_a_holder_whose_session_ended_cannot_commit_after_a_takeover(
        self, databases: tuple[Database, Database]
    ) -> None:
        old = JournalClaimService(database=databases[0], holder="old")
        new = JournalClaimService(database=databases[1], holder="new")
        try:
            async with journal_of(old, databases[0]) as late, journal_of(new, databases[1]) as nxt:
                assert await old.try_take()
                await commit_batch(late, "before")
                writer = late.backend_pid
                assert writer is not None
                # A paused process: its claim's session ends, but it has not noticed (status
                # "held") and its journal's session, holding the writer's lock, lives on.
                await end_lock_session(databases[1], JOURNAL_LOCK_KEY)
                assert await session_exists(databases[1], writer)
                assert await new.try_take()
                assert old.is_held()
                assert not await session_exists(databases[1], writer)  # ended by the takeover
                with pytest.raises(StaleFence):  # a new session reads the new token
                    await commit_batch(late, "late")
                await commit_batch(nxt, "after")
            assert await batch_ids(databases[1]) == {"before", "after"}
        finally:
            await old.release()
            await new.release()

    async def test_one_session_at_a_time_writes_the_journal(
        self, databases: tuple[Database, Database]
    ) -> None:
        holder = JournalClaimService(database=databases[0], holder="a", check_timeout=0.3)
        try:
            assert await holder.try_take()
            async with journal_of(holder, databases[0]) as first:
                await commit_batch(first, "first")
                async with journal_of(holder, databases[1]) as second:
                    with pytest.raises(StaleFence):  # the first holds the writer's lock
                        await commit_batch(second, "second")
                await commit_batch(first, "first again")
            assert await batch_ids(databases[0]) == {"first", "first again"}
        finally:
            await holder.release()

    async def test_a_standby_cannot_commit(self, databases: tuple[Database, Database]) -> None:
        holder = JournalClaimService(database=databases[0], holder="a")
        standby = JournalClaimService(database=databases[1], holder="b")
        try:
            assert await holder.try_take()
            assert not await standby.try_take()
            async with journal_of(standby, databases[1]) as journal:
                with pytest.raises(StaleFence):
                    await commit_batch(journal, "standby")
                tx = journal.transaction()
                with pytest.raises(StaleFence):  # the transaction hook refuses before sending
                    standby.guard(tx, [])
            assert await batch_ids(databases[0]) == set()
        finally:
            await holder.release()
            await standby.release()


@pytest.fixture
def two_services(
    tmp_path: Path, pg_url: str, redis_prefix: str
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    add_accounts(tokens)
    base = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "API_KEY": ADMIN_KEY,
        "TOKENS_DIR": str(tokens),
    }
    first, second = (
        ServiceProcess(base | {"INSTANCE_ID": name, "DATA_DIR": str(tmp_path / name)}, tmp_path)
        for name in ("first", "second")
    )
    try:
        yield first, second
    finally:
        for service in (first, second):
            if service.process is not None:
                service.kill()


async def wait_ready(client: httpx.AsyncClient, url: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await client.get(url + "/health/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "never became ready"
        await asyncio.sleep(0.1)


@pytest.mark.slow
class TestTwoAllProcessesOnOneDatabase:
    async def test_one_is_ready_the_other_cannot_commit_and_takes_over_when_it_dies(
        self, two_services: tuple[ServiceProcess, ServiceProcess]
    ) -> None:
        first, second = two_services
        first.start()
        second.start(ready_path="/health/live")
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(first.url + "/health/ready")).status_code == 200
            standby = await client.get(second.url + "/health/ready")
            assert standby.status_code == 503, second.explain(standby)
            claim = standby.json()["error"]["checks"]["journal_claim"]
            assert claim.startswith("standby: waiting for the journal claim"), claim
            assert "held by first" in claim

            refused = await client.post(
                second.url + "/orders", json=order("buy", "1", "1800"), headers=ADMIN
            )
            assert refused.status_code == 503, second.explain(refused)
            placed = await client.post(
                first.url + "/orders",
                json=order("buy", "2", "1800", client_order_id="acked-by-first"),
                headers=ADMIN,
            )
            assert placed.status_code < 300, first.explain(placed)
            order_id = placed.json()["order_id"]
            listed = (await client.get(first.url + "/orders", headers=ADMIN)).json()["items"]
            assert [o["order_id"] for o in listed] == [order_id]  # nothing from the standby

            await asyncio.to_thread(first.kill)
            await wait_ready(client, second.url)
            kept = await client.get(f"{second.url}/orders/{order_id}", headers=ADMIN)
            assert kept.json()["status"] == "open", second.explain(kept)
            book = (await client.get(second.url + "/orderbook/NSE:INFY", headers=ADMIN)).json()
            assert book["bids"] == [{"price": "1800", "quantity": "2", "orders": 1}]
            crossed = await client.post(
                second.url + "/orders", json=order("sell", "2", "1800"), headers=DESK_B
            )
            assert crossed.json()["status"] == "filled", second.explain(crossed)

    async def test_a_paused_holder_cannot_commit_once_the_standby_took_over(
        self, two_services: tuple[ServiceProcess, ServiceProcess], pg_url: str
    ) -> None:
        first, second = two_services
        first.start()
        second.start(ready_path="/health/live")
        assert first.process is not None
        async with httpx.AsyncClient(timeout=30) as client:
            # An order first: the holder's journal session is open (holding the writer's
            # lock, its token checked) when the process is paused.
            placed = await client.post(
                first.url + "/orders",
                json=order("buy", "1", "1800", client_order_id="early"),
                headers=ADMIN,
            )
            assert placed.status_code == 201, first.explain(placed)
            first.process.send_signal(signal.SIGSTOP)
            try:
                late = asyncio.create_task(
                    client.post(
                        first.url + "/orders",
                        json=order("buy", "1", "1800", client_order_id="late"),
                        headers=ADMIN,
                    )
                )
                database = Database.create(pg_url)
                try:  # the claim's session: the takeover ends the journal's
                    await end_lock_session(database, JOURNAL_LOCK_KEY)
                finally:
                    await database.dispose()
                await wait_ready(client, second.url)
            finally:
                first.process.send_signal(signal.SIGCONT)
            response = await late
            assert response.status_code == 503, first.explain(response)
            found = await client.get(second.url + "/orders", headers=ADMIN)
            assert [o["client_order_id"] for o in found.json()["items"]] == ["early"]
            # The old holder notices the lost claim at its first poll after it resumed (its
            # late order's failed commit may be answered, and its books rebuilt, a few
            # milliseconds before that): then it is the standby.
            for _ in range(100):
                ready = await client.get(first.url + "/health/ready")
                if (
                    ready.status_code == 503
                    and "held by second" in (ready.json()["error"]["checks"]["journal_claim"])
                ):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(first.explain(ready))
            refused = await client.post(
                first.url + "/orders", json=order("buy", "1", "1800"), headers=ADMIN
            )
            assert refused.status_code == 503, first.explain(refused)
