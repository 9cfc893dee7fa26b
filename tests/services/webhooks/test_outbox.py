"""The outbox hook inside the journal's transaction, with a real database on both backends:
rows commit with the orders they report, roll back with them, and only for subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from app.engine import Side, Trade
from app.errors import UnknownInstrument
from app.metrics import Metrics
from app.services.instruments.snapshot import RegistrySnapshot
from app.services.orders.journal import JournalUnavailable, JournalUnit, JournalWriter
from app.services.webhooks import claims, repository
from app.services.webhooks.outbox import OutboxWriter
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.journal import OrderRow, orders
from app.store.webhooks import ORDER_EVENTS, expand_changes, webhook_batches, webhook_outbox
from tests.support.instruments import database, database_url, infy  # noqa: F401

TOKEN = 408065
NOW = 1_795_000_000_000_000_000


@dataclass
class Registry:
    snapshot: RegistrySnapshot


async def subscribed(db: Database, outbox: OutboxWriter) -> list[bool]:
    """Account a's endpoint ``we_all`` (accepted and filled); the list gets True per commit
    that wrote outbox rows."""
    woken: list[bool] = []
    outbox.on_written(lambda: woken.append(True))
    await add_endpoint(db, outbox, "we_all", "a", ["order.accepted", "order.filled"])
    return woken


def row(order_id: int, account: str, status: str, **changes: Any) -> OrderRow:
    values: dict[str, Any] = {
        "order_id": order_id,
        "account": account,
        "client_order_id": f"c{order_id}",
        "batch_id": "b1",
        "instrument_token": TOKEN,
        "side": "sell",
        "order_type": "limit",
        "time_in_force": "GTC",
        "post_only": False,
        "stp": "cancel_newest",
        "price": 37508,
        "trigger_price": None,
        "quantity": 10,
        "filled": 0,
        "remaining": 10,
        "status": status,
        "priority": order_id,
        "reason": None,
        "created_ns": NOW,
        "updated_ns": NOW,
        "last_seq": order_id,
        "product": None,
        "validity": None,
        "validity_ttl": None,
        "tag": None,
    }
    return OrderRow(**(values | changes))


def trade(seq: int, maker: int, taker: int, quantity: int) -> tuple[int, Trade]:
    return TOKEN, Trade(seq, NOW + seq, 37508, quantity, maker, taker, "a", "b", Side.BUY, 0, 0)


@dataclass
class Box:
    """The journal writer with the outbox hooked into its transactions, on one database."""

    database: Database
    journal: JournalWriter
    outbox: OutboxWriter

    async def add_endpoint(self, endpoint_id: str, account: str, events: list[str]) -> None:
        await add_endpoint(self.database, self.outbox, endpoint_id, account, events)


@pytest.fixture
async def box(database: Database) -> AsyncIterator[Box]:  # noqa: F811
    journal = JournalWriter(database=database, metrics=Metrics())
    outbox = OutboxWriter(
        database=database,
        registry=Registry(RegistrySnapshot([infy()], None)),
        metrics=Metrics(),
        retry_horizon_ns=10**9,
        clock=lambda: NOW,
    )
    journal.add_transaction_hook(outbox.write)
    journal.add_listener(outbox.after_commit)
    task = asyncio.create_task(journal.run())
    yield Box(database, journal, outbox)
    task.cancel()


async def add_endpoint(
    db: Database, outbox: OutboxWriter, endpoint_id: str, account: str, events: list[str]
) -> None:
    await repository.insert_endpoint(
        db,
        {
            "endpoint_id": endpoint_id,
            "account": account,
            "url": "http://127.0.0.1:9/hook",
            "description": "",
            "events": orjson.dumps(events).decode(),
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "enabled": True,
            "created_ns": NOW,
            "updated_ns": NOW,
        },
    )
    await outbox.refresh()


async def outbox_rows(db: Database) -> list[Any]:
    """The outbox once the queued batches are expanded (as the dispatcher does)."""
    await claims.expand(db)
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(webhook_batches)) == 0
        return list(await conn.execute(select(webhook_outbox).order_by(webhook_outbox.c.id)))


def traded_unit() -> JournalUnit:
    """Order 2 (account a) took 4 of resting order 1 (account b), then was done."""
    return JournalUnit(
        orders=[
            row(1, "b", "partially_filled", filled=4, remaining=6),
            row(2, "a", "filled", side="buy", quantity=4, filled=4, remaining=0),
        ],
        trades=[trade(3, maker=1, taker=2, quantity=4)],
        created={2},
    )


class TestOutboxWriter:
    async def test_rows_commit_with_the_journal_for_subscribers_only(self, box: Box) -> None:
        woken = await subscribed(box.database, box.outbox)
        await box.add_endpoint("we_fills", "a", ["order.filled"])
        await box.journal.enqueue(traded_unit())
        rows = await outbox_rows(box.database)
        assert [(r.endpoint_id, r.event_type, r.order_id) for r in rows] == [
            ("we_all", "order.accepted", 2),
            ("we_all", "order.filled", 2),
            ("we_fills", "order.filled", 2),
        ]
        assert woken == [True]
        assert rows[0].payload == rows[1].payload == rows[2].payload  # one snapshot, shared
        assert {r.status for r in rows} == {"pending"}
        assert {r.attempt_count for r in rows} == {0}
        assert rows[0].deadline_ns == NOW + 10**9
        body = orjson.loads(
            box.outbox.render(rows[1].event_type, rows[1].created_ns, rows[1].payload)
        )
        assert body["type"] == "order.filled"
        assert body["timestamp"] == "2026-11-18T11:06:40Z"
        assert body["data"]["order"]["price"] == "1875.4"
        assert body["data"]["order"]["symbol"] == "NSE:INFY"
        assert body["data"]["order"]["filled_quantity"] == "4"
        assert body["data"]["fills"] == [
            {
                "trade_id": "3",
                "price": "1875.4",
                "quantity": "4",
                "liquidity": "taker",
                "executed_at": "2026-11-18T11:06:40Z",
            }
        ]
        accepted = orjson.loads(
            box.outbox.render(rows[0].event_type, rows[0].created_ns, rows[0].payload)
        )
        assert accepted["type"] == "order.accepted"
        assert accepted["data"]["fills"] == []

    async def test_expansion_matches_the_rules_on_both_backends(self, box: Box) -> None:
        """The batch holds order changes; the messages are derived when it is expanded (in
        SQL on PostgreSQL): the same messages, in the same order, as ``expand_changes``,
        which follows ``event_types`` (the messages a commit yields)."""
        await box.add_endpoint("we_a1", "a", list(ORDER_EVENTS))
        await box.add_endpoint("we_a2", "a", ["order.filled", "order.cancelled"])
        await box.add_endpoint("we_b", "b", list(ORDER_EVENTS))
        units = [
            traded_unit(),  # 1 (b) partially filled by 2 (a), which is filled
            JournalUnit(  # 4 (a) takes 1 (b) and 5 (c, no endpoint), IOC rest cancelled
                orders=[
                    row(1, "b", "filled", filled=10, remaining=0),
                    row(5, "c", "filled", remaining=0, filled=10),
                    row(4, "a", "cancelled", side="buy", time_in_force="IOC", filled=16),
                ],
                trades=[
                    trade(6, maker=1, taker=4, quantity=6),
                    trade(7, maker=5, taker=4, quantity=10),
                ],
                created={4},
            ),
            JournalUnit(  # a rejected post-only, an expired and an amended order
                orders=[
                    row(8, "a", "rejected", reason="WOULD_TAKE"),
                    row(9, "b", "expired", remaining=0),
                    row(10, "a", "open", quantity=5, remaining=5),
                ],
                created={8},
            ),
            JournalUnit(orders=[row(11, "c", "open")], created={11}),  # nobody listens
        ]
        found = box.outbox.changes_for(units)
        assert found is not None
        doc, changes = found
        assert changes == 7  # order rows of accounts with endpoints
        expected = expand_changes(orjson.loads(orjson.dumps(doc)))
        assert [(e, t, o) for e, t, o, _p in expected] == [
            ("we_b", "order.partially_filled", 1),
            ("we_a1", "order.accepted", 2),
            ("we_a1", "order.filled", 2),
            ("we_a2", "order.filled", 2),
            ("we_b", "order.filled", 1),
            ("we_a1", "order.accepted", 4),
            ("we_a1", "order.partially_filled", 4),
            ("we_a1", "order.cancelled", 4),
            ("we_a2", "order.cancelled", 4),
            ("we_a1", "order.rejected", 8),
            ("we_b", "order.expired", 9),
        ]
        await asyncio.gather(*(box.journal.enqueue(unit) for unit in units))  # one commit
        rows = await outbox_rows(box.database)
        stored = [(r.endpoint_id, r.event_type, r.order_id, orjson.loads(r.payload)) for r in rows]
        assert stored == expected
        fills = {r.event_type: orjson.loads(r.payload)[2] for r in rows if r.order_id == 4}
        assert fills["order.partially_filled"] == [
            [6, NOW + 6, 37508, 6, "taker"],
            [7, NOW + 7, 37508, 10, "taker"],
        ]

    async def test_rows_roll_back_with_a_failed_commit(self, box: Box) -> None:
        woken = await subscribed(box.database, box.outbox)

        def crash(_tx: JournalTransaction, _units: list[JournalUnit]) -> None:
            raise RuntimeError("the commit dies after the outbox rows were written")

        box.journal.add_transaction_hook(crash)
        with pytest.raises(JournalUnavailable):
            await box.journal.enqueue(traded_unit())
        async with box.database.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(webhook_batches)) == 0
        assert await outbox_rows(box.database) == []
        async with box.database.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(orders)) == 0
        assert woken == []

    async def test_nothing_is_written_without_endpoints(self, box: Box) -> None:
        await box.add_endpoint("we_other", "c", ["order.filled"])
        assert box.outbox.changes_for([traded_unit()]) is None
        await box.journal.enqueue(traded_unit())
        assert await outbox_rows(box.database) == []

    async def test_an_unknown_instrument_fails_at_rendering_not_in_the_commit(
        self, box: Box
    ) -> None:
        await box.add_endpoint("we_all", "a", ["order.accepted"])
        unit = JournalUnit(orders=[row(5, "a", "open", instrument_token=1)], created={5})
        await box.journal.enqueue(unit)
        (stored,) = await outbox_rows(box.database)
        with pytest.raises(UnknownInstrument):
            box.outbox.render(stored.event_type, stored.created_ns, stored.payload)

    async def test_disabled_endpoints_are_not_routed(self, box: Box) -> None:
        await box.add_endpoint("we_all", "a", ["order.accepted"])
        assert [r.endpoint_id for r in box.outbox.routes("a")] == ["we_all"]
        await repository.update_endpoint(box.database, "a", "we_all", {"enabled": False})
        await box.outbox.refresh()
        assert box.outbox.routes("a") == ()
