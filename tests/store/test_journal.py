from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

import app.store.journal
from app.settings import Settings
from app.store.commits import JournalConnection
from app.store.database import Database
from app.store.journal import OrderRow, TradeRow, orders, queue_rows, trades
from app.store.migrate import migrate


async def write_rows(database: Database, **rows: Any) -> None:
    """One transaction through the journal's own connection."""
    connection = JournalConnection(database)
    try:
        tx = connection.transaction()
        queue_rows(tx, **rows)
        await connection.commit(tx)
    finally:
        await connection.close()


@pytest.fixture(params=["insert", "copy"])
def new_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """New rows as an INSERT in the pipeline (small groups) or by COPY (large ones)."""
    if request.param == "copy":
        monkeypatch.setattr(app.store.journal, "COPY_MIN_ROWS", 1)
    return str(request.param)


def order_row(order_id: int, account: str, client_order_id: str | None) -> OrderRow:
    return OrderRow(
        order_id=order_id,
        account=account,
        client_order_id=client_order_id,
        batch_id=None,
        instrument_token=408065,
        side="buy",
        order_type="limit",
        time_in_force="GTC",
        post_only=order_id % 2 == 0,
        stp="cancel_newest",
        price=37508,
        trigger_price=None,
        quantity=5,
        filled=0,
        remaining=5,
        status="open",
        priority=order_id,
        reason=None,
        created_ns=1,
        updated_ns=1,
        last_seq=order_id,
        product=None,
        validity=None,
        validity_ttl=None,
        tag=None,
    )


class TestWriteRows:
    @pytest.mark.parametrize("account", ['desk "a"', "back\\\\slash", "{braces,comma}", "NULL", ""])
    async def test_round_trips_any_text_and_upserts(
        self, backend_settings: Settings, account: str, new_rows: str
    ) -> None:
        database = Database.create(backend_settings.db.url, data_dir=backend_settings.db.data_dir)
        try:
            await migrate(database)
            executed = datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC)
            trade = TradeRow(
                trade_id=7,
                executed_at=executed,
                ts_ns=5,
                instrument_token=408065,
                price=37508,
                quantity=2,
                maker_order_id=1,
                taker_order_id=2,
                maker_account=account,
                taker_account="b",
                taker_side="sell",
            )
            await write_rows(
                database,
                order_rows=[order_row(1, account, None), order_row(2, account, "c-1")],
                trade_rows=[trade],
                new_order_ids={1, 2},
            )
            updated = order_row(1, account, None)._replace(status="filled", remaining=0)
            await write_rows(database, order_rows=[updated], trade_rows=[])  # the upsert
            async with database.engine.connect() as conn:
                rows = (await conn.execute(select(orders).order_by(orders.c.order_id))).all()
                stored_trade = (await conn.execute(select(trades))).one()
        finally:
            await database.dispose()
        assert [(r.account, r.client_order_id, r.status, r.post_only) for r in rows] == [
            (account, None, "filled", False),
            (account, "c-1", "open", True),
        ]
        assert stored_trade.maker_account == account
        assert stored_trade.executed_at.replace(tzinfo=UTC) == executed

    async def test_new_orders_are_inserted_and_changed_ones_updated(
        self, backend_settings: Settings
    ) -> None:
        database = Database.create(backend_settings.db.url, data_dir=backend_settings.db.data_dir)
        try:
            await migrate(database)
            await write_rows(
                database,
                order_rows=[order_row(1, "a", None), order_row(2, "a", "c-2")],
                trade_rows=[],
                new_order_ids={1, 2},
            )
            # One transaction: order 1 changed since the first one, order 3 is new.
            filled = order_row(1, "a", None)._replace(status="filled", remaining=0, filled=5)
            await write_rows(
                database,
                order_rows=[filled, order_row(3, "b", "c-3")],
                trade_rows=[],
                new_order_ids={3},
            )
            async with database.engine.connect() as conn:
                rows = (await conn.execute(select(orders).order_by(orders.c.order_id))).all()
        finally:
            await database.dispose()
        assert [(r.order_id, r.account, r.status, r.filled, r.remaining) for r in rows] == [
            (1, "a", "filled", 5, 0),
            (2, "a", "open", 0, 5),
            (3, "b", "open", 0, 5),
        ]

    async def test_a_new_order_that_exists_already_fails_the_transaction(
        self, pg_url: str, new_rows: str
    ) -> None:
        """An order claimed new that an earlier transaction wrote is an error, never a silent
        overwrite or drop (PostgreSQL inserts new orders, by INSERT or COPY, never upserts)."""
        database = Database.create(pg_url)
        try:
            await write_rows(
                database, order_rows=[order_row(1, "a", None)], trade_rows=[], new_order_ids={1}
            )
            again = order_row(1, "a", None)._replace(status="cancelled", remaining=0)
            with pytest.raises(psycopg.errors.UniqueViolation):
                await write_rows(database, order_rows=[again], trade_rows=[], new_order_ids={1})
            async with database.engine.connect() as conn:
                rows = (await conn.execute(select(orders.c.status))).all()
        finally:
            await database.dispose()
        assert [r.status for r in rows] == ["open"]
