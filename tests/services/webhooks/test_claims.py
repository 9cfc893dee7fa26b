"""Claiming outbox rows: due order, per-order sequencing, leases, and several dispatchers
on one PostgreSQL database delivering every message exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select, update
from tenacity import wait_random_exponential

from app.metrics import Metrics
from app.services.instruments.snapshot import RegistrySnapshot
from app.services.webhooks import claims, repository
from app.services.webhooks.dispatcher import DispatchConfig, Dispatcher, backoff_seconds
from app.services.webhooks.events import CHANGES_VERSION
from app.services.webhooks.outbox import OutboxWriter
from app.services.webhooks.signing import new_secret
from app.services.webhooks.ssrf import TargetPolicy
from app.store.database import Database
from app.store.webhooks import (
    SNAPSHOT_FIELDS,
    insert_changes,
    webhook_attempts,
    webhook_outbox,
)
from tests.services.webhooks.receiver import Receiver, eventually
from tests.services.webhooks.test_outbox import Registry
from tests.support.instruments import database, database_url  # noqa: F401

NOW = 1_795_000_000_000_000_000


async def add_endpoint(db: Database, endpoint_id: str, url: str, secret: str) -> None:
    await repository.insert_endpoint(
        db,
        {
            "endpoint_id": endpoint_id,
            "account": "a",
            "url": url,
            "description": "",
            "events": orjson.dumps(["order.accepted"]).decode(),
            "secret": secret,
            "enabled": True,
            "created_ns": NOW,
            "updated_ns": NOW,
        },
    )


async def add_rows(db: Database, rows: list[tuple[str, int | None]], *, at: int = NOW) -> None:
    """Messages straight into the outbox, in order (as an expanded batch leaves them)."""
    values = [
        {
            "endpoint_id": endpoint_id,
            "event_type": "webhook.test",
            "order_id": order_id,
            "payload": orjson.dumps({"n": n}).decode(),
            "created_ns": at,
            "next_attempt_ns": at,
            "deadline_ns": at + 10**12,
        }
        for n, (endpoint_id, order_id) in enumerate(rows)
    ]
    async with db.engine.begin() as conn:
        await conn.execute(insert(webhook_outbox), values)


def placed(account: str, order_ids: list[int], batch_id: str) -> dict[str, Any]:
    """A batch document: ``account`` placed these orders, which rest (``order.accepted``,
    routed to ``we_1``)."""
    changes = []
    for order_id in order_ids:
        snapshot = dict.fromkeys(SNAPSHOT_FIELDS) | {
            "order_id": order_id,
            "batch_id": batch_id,
            "status": "open",
        }
        changes.append([account, *(snapshot[name] for name in SNAPSHOT_FIELDS)])
    return {
        "v": CHANGES_VERSION,
        "r": {account: {"order.accepted": ["we_1"]}},
        "u": [[changes, order_ids, []]],
    }


def take_all(_endpoint_id: str) -> bool:
    return True


async def claim(db: Database, *, now: int = NOW, fetch: int = 100) -> list[int]:
    taken = await claims.claim(
        db, now=now, lease_until=now + 10**9, fetch=fetch, exclude=set(), accept=take_all
    )
    return [c.id for c in taken]


class TestClaim:
    async def test_one_event_per_order_at_a_time_oldest_first(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", 7), ("we_1", 7), ("we_1", 8), ("we_1", None)])
        assert await claim(database) == [1, 3, 4]
        assert await claim(database) == []  # leased
        assert await claim(database, now=NOW + 2 * 10**9) == [1, 3, 4]  # leases expired

    async def test_not_due_disabled_and_excluded_are_skipped(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_endpoint(database, "we_2", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", 1)], at=NOW + 10**9)
        await add_rows(database, [("we_2", 2), ("we_gone", 3)])
        assert await claim(database) == [2]  # row 1 is not due; we_gone does not exist
        await repository.update_endpoint(database, "a", "we_2", {"enabled": False})
        later = NOW + 5 * 10**9
        assert await claim(database, now=later) == [1]
        taken = await claims.claim(
            database,
            now=later + 10**10,
            lease_until=later,
            fetch=9,
            exclude={"we_1"},
            accept=take_all,
        )
        assert taken == []

    async def test_accept_caps_what_is_leased(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", n) for n in range(5)])
        seen: list[str] = []

        def two(endpoint_id: str) -> bool:
            seen.append(endpoint_id)
            return len(seen) <= 2

        taken = await claims.claim(
            database, now=NOW, lease_until=NOW + 10**9, fetch=5, exclude=set(), accept=two
        )
        assert [c.id for c in taken] == [1, 2]
        assert await claim(database) == [3, 4, 5]  # the refused ones were not leased

    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    async def test_concurrent_claimers_never_share_a_row(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", n) for n in range(200)])
        rounds = await asyncio.gather(*(claim(database, fetch=7) for _ in range(40)))
        taken = [row for found in rounds for row in found]
        assert len(taken) == len(set(taken)) == 200


class TestBackoff:
    def test_exponential_with_jitter_capped(self) -> None:
        wait = wait_random_exponential(multiplier=5, max=60, min=5)
        for attempt, high in ((1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (12, 60)):
            delays = [backoff_seconds(wait, attempt) for _ in range(50)]
            assert all(5 <= d <= high for d in delays)
        assert len({backoff_seconds(wait, 4) for _ in range(20)}) > 1  # jittered


class TestReplicas:
    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    async def test_two_dispatchers_deliver_each_message_exactly_once(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        secret = new_secret()
        with Receiver() as receiver:
            for n in range(3):
                await add_endpoint(database, f"we_{n}", receiver.url(f"/{n}"), secret)
            await add_rows(database, [(f"we_{n % 3}", n // 3) for n in range(90)])
            dispatchers = [make_dispatcher(database) for _ in range(2)]
            tasks = [asyncio.create_task(d.run()) for d in dispatchers]
            try:
                await eventually(lambda: len(receiver.delivered()) >= 90)
                await eventually(lambda: _all_recorded(database))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        ids = [r.message_id for r in receiver.received]
        assert len(ids) == len(set(ids)) == 90
        async with database.engine.connect() as conn:
            attempts = (await conn.execute(select(webhook_attempts.c.outbox_id))).scalars().all()
        assert sorted(attempts) == list(range(1, 91))


def make_dispatcher(db: Database) -> Dispatcher:
    outbox = OutboxWriter(
        database=db,
        registry=Registry(RegistrySnapshot([], None)),
        metrics=Metrics(),
        retry_horizon_ns=10**12,
    )
    return Dispatcher(
        database=db,
        outbox=outbox,
        metrics=Metrics(),
        policy=TargetPolicy(allow_loopback=True),
        config=DispatchConfig(endpoint_concurrency=2, concurrency=4, poll_seconds=0.02),
    )


async def _all_recorded(db: Database) -> bool:
    async with db.engine.connect() as conn:
        statuses: Any = (await conn.execute(select(webhook_outbox.c.status))).scalars().all()
    return set(statuses) == {"delivered"}


class TestHousekeeping:
    async def test_purge_drops_old_finished_and_orphaned_rows(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", 1), ("we_1", 2), ("we_1", 3), ("we_gone", 4)])
        async with database.engine.begin() as conn:
            await conn.execute(
                update(webhook_outbox)
                .where(webhook_outbox.c.id.in_([1, 2]))
                .values(status="delivered")
            )
        assert await claims.purge(database, before_ns=NOW) == 1  # only the orphan is old enough
        assert await claims.purge(database, before_ns=NOW + 1) == 2  # now the delivered ones
        async with database.engine.connect() as conn:
            left = (await conn.execute(select(webhook_outbox.c.id))).scalars().all()
        assert left == [3]  # pending rows stay, however old

    async def test_backlog_counts_pending_rows_of_enabled_endpoints(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        assert await claims.backlog(database) == (0, None)
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", 1), ("we_gone", 2)], at=NOW + 5)
        await add_rows(database, [("we_1", 3)], at=NOW + 9)
        assert await claims.backlog(database) == (2, NOW + 5)

    async def test_leases_can_be_cleared_and_released(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        await add_rows(database, [("we_1", 1), ("we_1", 2)])
        assert await claim(database) == [1, 2]
        await claims.release(database, [1])
        assert await claim(database) == [1]
        await claims.clear_leases(database)
        assert await claim(database) == [1, 2]


class TestExpand:
    async def test_batches_expand_in_commit_then_event_order(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        for first in (10, 20, 30):
            async with database.engine.begin() as conn:
                doc = placed("a", [first + n for n in range(3)], f"batch-{first}")
                await insert_changes(conn, doc, 3, created_ns=NOW + first, deadline_ns=NOW + 10**12)
        assert await claims.backlog(database) == (9, NOW + 10)  # counted before expansion
        assert await claims.expand(database, rounds=1) == (9, True)  # maybe more: look again
        assert await claims.expand(database) == (0, False)
        async with database.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(webhook_outbox.c.order_id, webhook_outbox.c.payload).order_by(
                        webhook_outbox.c.id
                    )
                )
            ).all()
        assert [order_id for order_id, _ in found] == [10, 11, 12, 20, 21, 22, 30, 31, 32]
        snapshot = dict(zip(SNAPSHOT_FIELDS, orjson.loads(found[4][1])[1], strict=True))
        assert (snapshot["order_id"], snapshot["batch_id"]) == (21, "batch-20")
        assert await claims.backlog(database) == (9, NOW + 10)

    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    async def test_concurrent_expanders_keep_the_order(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        await add_endpoint(database, "we_1", "http://127.0.0.1:9/", new_secret())
        for batch in range(60):
            async with database.engine.begin() as conn:
                doc = placed("a", list(range(5)), f"{batch:03d}")
                await insert_changes(conn, doc, 5, created_ns=NOW, deadline_ns=NOW + 10**12)
        added = await asyncio.gather(*(claims.expand(database) for _ in range(6)))
        assert sum(n for n, _more in added) + (await claims.expand(database))[0] == 300
        async with database.engine.connect() as conn:
            payloads = (
                await conn.execute(select(webhook_outbox.c.payload).order_by(webhook_outbox.c.id))
            ).scalars()
            batch_id = SNAPSHOT_FIELDS.index("batch_id")
            batches = [orjson.loads(p)[1][batch_id] for p in payloads]
        assert batches == sorted(batches)
        assert len(batches) == 300
