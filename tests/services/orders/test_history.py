"""``order_history``: one row per state an order passed through, committed with the order, so
every order's last history row is its journaled state (on both storage backends)."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select

from app.services.orders.records import CANCEL_ON_DISCONNECT, HISTORY_EVENTS
from app.settings import Settings
from app.store.journal import order_history, orders
from tests.services.orders.test_journal import random_orders
from tests.support.orders import batch_body, serving_orders
from tests.support.trading import add_accounts, order


class TestHistoryRows:
    async def test_the_last_row_of_every_order_is_its_journaled_state(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        rng = random.Random(11)
        async with serving_orders(backend_settings) as service:
            for round_ in range(10):
                account = "default" if round_ % 2 else "desk-b"
                await service.place_batch(account, batch_body(*random_orders(rng, 20)))
                for order_id in service.live_order_ids(account)[:2]:
                    await service.amend_order(account, order_id, quantity="3", price=None)
            await service.cancel_all("default", reason=CANCEL_ON_DISCONNECT)
            await service.journal.flush()
            database = service._database
            async with database.engine.connect() as conn:
                finals = {row.order_id: row for row in await conn.execute(select(orders))}
                rows = list(
                    await conn.execute(
                        select(order_history).order_by(
                            order_history.c.order_id, order_history.c.seq
                        )
                    )
                )
        last = {row.order_id: row for row in rows}  # ordered by seq: the last wins
        assert set(last) == set(finals)
        for order_id, final in finals.items():
            row = last[order_id]
            assert (row.status, row.filled, row.remaining, row.quantity, row.price) == (
                final.status,
                final.filled,
                final.remaining,
                final.quantity,
                final.price,
            ), order_id
            assert row.reason == final.reason
            assert row.seq <= final.last_seq
        events = {row.event for row in rows}
        assert events <= set(HISTORY_EVENTS)
        assert {"accepted", "traded", "amended", "cancelled"} <= events
        assert any(row.reason == CANCEL_ON_DISCONNECT for row in rows)

    async def test_a_new_order_rejected_by_the_book_has_one_rejected_row(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        async with serving_orders(backend_settings) as service:
            await service.place_batch("default", batch_body(order("sell", "2", "1875.5")))
            response = await service.place_batch(
                "default", batch_body(order("buy", "1", "1875.5", post_only=True))
            )
            order_id = int(response["results"][0]["order_id"])
            await service.journal.flush()
            async with service._database.engine.connect() as conn:
                found = list(
                    await conn.execute(
                        select(order_history).where(order_history.c.order_id == order_id)
                    )
                )
        assert [(row.event, row.status, row.reason) for row in found] == [
            ("rejected", "rejected", "POST_ONLY_WOULD_TAKE")
        ]
