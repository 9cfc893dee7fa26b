from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.store.database import Database
from app.store.instruments import ALL_COLUMNS, InstrumentStore, canonical_decimal
from app.store.migrate import migrate
from tests.support.instruments import database, database_url

__all__ = ["database", "database_url"]

NOW = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)


def row(token: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "instrument_token": token,
        "exchange_token": token,
        "exchange": "NSE",
        "tradingsymbol": f"S{token}",
        "name": "",
        "instrument_type": "EQ",
        "segment": "NSE",
        "tick_size": Decimal("0.05"),
        "lot_size": Decimal(1),
        "expiry": None,
        "strike": Decimal(0),
        "last_price": Decimal(0),
    }
    values.update(overrides)
    return values


class TestExactDecimals:
    @pytest.mark.parametrize(
        "value",
        ["0.1", "0.05", "0.0025", "0.00000001", "123456789012.12345678", "24000", "0"],
    )
    async def test_round_trip_exactly(self, database: Database, value: str) -> None:
        store = InstrumentStore(database)
        exact = Decimal(value)
        await store.apply_import(
            [row(1, last_price=exact, strike=exact, tick_size=Decimal("0.00000001"))], now=NOW
        )
        (loaded,) = [
            dict(zip(ALL_COLUMNS, values, strict=True)) for values in await store.load_all()
        ]
        assert loaded["last_price"] == exact
        assert loaded["strike"] == exact
        assert canonical_decimal(loaded["last_price"]) == canonical_decimal(exact)
        assert loaded["updated_at"] == NOW

    async def test_sqlite_stores_the_canonical_string(self, tmp_path: Path) -> None:
        database = Database.create(None, data_dir=tmp_path)
        try:
            await migrate(database)
            await InstrumentStore(database).apply_import(
                [row(1, last_price=Decimal("1875.4000"))], now=NOW
            )
            async with database.engine.connect() as conn:
                raw = await conn.scalar(sa.text("SELECT last_price FROM instruments"))
            assert raw == "1875.4"
        finally:
            await database.dispose()


class TestStore:
    async def test_load_orders_by_token_and_counts(self, database: Database) -> None:
        store = InstrumentStore(database)
        await store.apply_import([row(3), row(1, expiry=date(2026, 11, 26)), row(2)], now=NOW)
        loaded = [dict(zip(ALL_COLUMNS, values, strict=True)) for values in await store.load_all()]
        assert [r["instrument_token"] for r in loaded] == [1, 2, 3]
        assert loaded[0]["expiry"] == date(2026, 11, 26)
        assert await store.count() == 3
        assert (await store.keys())[2] == ("NSE", "S2", "active")

    async def test_set_status(self, database: Database) -> None:
        store = InstrumentStore(database)
        await store.apply_import([row(1)], now=NOW)
        assert await store.set_status(1, "halted", now=NOW)
        assert not await store.set_status(2, "halted", now=NOW)
        with pytest.raises(ValueError):
            await store.set_status(1, "paused", now=NOW)
        assert (await store.keys())[1][2] == "halted"

    async def test_the_database_refuses_unknown_statuses(self, database: Database) -> None:
        await InstrumentStore(database).apply_import([row(1)], now=NOW)
        with pytest.raises(sa.exc.IntegrityError):
            async with database.engine.begin() as conn:
                await conn.execute(sa.text("UPDATE instruments SET status = 'paused'"))
