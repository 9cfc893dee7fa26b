"""The journal: replaying it rebuilds the running books exactly; losing the database refuses
orders with 503 and changes nothing; recovery needs no restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from app.engine import OrderBook, Sequencer
from app.services.orders.recovery import load_state
from app.settings import Settings
from tests.conftest import PG_ADMIN_URL, running_app
from tests.support.trading import ADMIN, DESK_B, add_accounts, batch, order


def random_orders(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        kind = rng.random()
        side = rng.choice(["buy", "sell"])
        cents = 187540 + rng.randint(-10, 10) * 5
        price = f"{cents // 100}.{cents % 100:02d}"
        if kind < 0.7:
            out.append(
                order(side, str(rng.randint(1, 9)), price, time_in_force=rng.choice(["GTC", "DAY"]))
            )
        elif kind < 0.8:
            out.append(order(side, str(rng.randint(1, 9)), type="market"))
        elif kind < 0.9:
            trigger = f"{(cents + 25) // 100}.{(cents + 25) % 100:02d}"
            out.append(order(side, str(rng.randint(1, 5)), type="stop", trigger_price=trigger))
        else:
            out.append(order(side, str(rng.randint(1, 9)), price, time_in_force="IOC"))
    return out


async def journal_hashes(database_url: str | None, data_dir: Path) -> dict[int, str]:
    from app.store.database import Database

    database = Database.create(database_url, data_dir=data_dir)
    try:
        state = await load_state(database)
    finally:
        await database.dispose()
    return {
        token: OrderBook.restore(token, snapshot, Sequencer()).state_hash()
        for token, snapshot in state.snapshots.items()
    }


class TestReplay:
    async def test_replaying_the_journal_gives_the_running_books(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        rng = random.Random(7)
        async with running_app(backend_settings) as (_app, client):
            for round_ in range(15):
                headers = ADMIN if round_ % 2 else DESK_B
                response = await client.post(
                    "/advanced/batch-orders", json=batch(*random_orders(rng, 20)), headers=headers
                )
                assert response.status_code == 200
            live = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
        assert live["trade_count"] > 0
        replayed = await journal_hashes(backend_settings.db.url, backend_settings.db.data_dir)
        assert replayed[408065] == live["book_hash"]

    async def test_a_restarted_app_rebuilds_the_same_books(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        rng = random.Random(11)
        async with running_app(backend_settings) as (_app, client):
            for _ in range(5):
                await client.post(
                    "/advanced/batch-orders", json=batch(*random_orders(rng, 30)), headers=ADMIN
                )
                await client.post(
                    "/advanced/batch-orders", json=batch(*random_orders(rng, 30)), headers=DESK_B
                )
            before = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
            book_before = (await client.get("/orderbook/NSE:INFY?depth=100", headers=ADMIN)).json()
        async with running_app(backend_settings) as (_app, client):
            after = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
            book_after = (await client.get("/orderbook/NSE:INFY?depth=100", headers=ADMIN)).json()
            # New order ids and trade ids continue above the old ones.
            placed = await client.post(
                "/advanced/batch-orders", json=batch(order("buy", "1", "1800")), headers=ADMIN
            )
        assert after["book_hash"] == before["book_hash"]
        assert after["trade_count"] == before["trade_count"]
        assert book_after["bids"] == book_before["bids"]
        assert book_after["asks"] == book_before["asks"]
        assert int(placed.json()["results"][0]["order_id"]) > 0


class TestDatabaseLoss:
    async def test_orders_503_while_the_database_is_gone_then_recover(
        self, make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        name = pg_url.rsplit("/", 1)[1]
        settings = make_settings(db={"url": pg_url, "connect_timeout": 1}, health_check_timeout=2)
        async with running_app(settings) as (_app, client):
            ok = await client.post(
                "/advanced/batch-orders", json=batch(order("buy", "1", "1875")), headers=ADMIN
            )
            assert ok.status_code == 200
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
            try:
                failed = await client.post(
                    "/advanced/batch-orders",
                    json=batch(order("buy", "7", "1870", client_order_id="lost")),
                    headers=ADMIN,
                )
                assert failed.status_code == 503
                assert failed.json()["error"]["code"] == "JOURNAL_UNAVAILABLE"
                refused = await client.post(
                    "/advanced/batch-orders", json=batch(order("buy", "1", "1875")), headers=ADMIN
                )
                assert refused.status_code == 503
                book = await client.get("/orderbook/NSE:INFY", headers=ADMIN)
                assert book.status_code == 200  # reads of the book keep working
                health = (await client.get("/health")).json()
                assert health["dependencies"]["journal"]["status"] == "unavailable"
            finally:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # type: ignore[arg-type]
            for _ in range(100):
                health = (await client.get("/health")).json()
                if health["dependencies"]["journal"]["status"] == "ok":
                    break
                await asyncio.sleep(0.1)
            assert health["dependencies"]["journal"]["status"] == "ok"
            book = (await client.get("/orderbook/NSE:INFY", headers=ADMIN)).json()
            assert book["bids"] == [{"price": "1875", "quantity": "1", "orders": 1}]
            orders = (await client.get("/orders", headers=ADMIN)).json()["items"]
            assert [o["client_order_id"] for o in orders] == [None]
            again = await client.post(
                "/advanced/batch-orders",
                json=batch(order("buy", "7", "1870", client_order_id="lost")),
                headers=ADMIN,
            )
            assert again.status_code == 200
            assert again.json()["accepted"] == 1


class TestSuspension:
    async def test_a_suspended_journal_refuses_until_resumed_even_after_a_recovery(
        self, tmp_path: Path
    ) -> None:
        """A standby's journal stays shut although failure recovery sets ``available``."""
        from app.metrics import Metrics
        from app.services.orders.journal import JournalUnavailable, JournalWriter
        from app.store.database import Database

        database = Database.create(None, data_dir=tmp_path)
        try:
            journal = JournalWriter(database=database, metrics=Metrics())
            journal.suspend("standby: waiting for the journal claim")
            with pytest.raises(JournalUnavailable):
                journal.check_available()
            journal.available = True  # what rebuilding after a failed commit does
            with pytest.raises(JournalUnavailable):
                journal.check_available()
            assert journal.health()["status"] == "unavailable"
            assert journal.health()["suspended"] == "standby: waiting for the journal claim"
            journal.resume()
            journal.check_available()
            assert journal.health()["status"] == "ok"
        finally:
            await database.dispose()
