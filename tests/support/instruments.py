"""Instrument test support: a migrated database on either backend, and CSV builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.services.instruments.model import Instrument
from app.store.database import Database
from app.store.migrate import migrate

HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
    "tick_size,lot_size,instrument_type,segment,exchange"
)


def csv_row(
    token: int,
    symbol: str,
    exchange: str = "NSE",
    *,
    name: str | None = None,
    last_price: str = "100.5",
    expiry: str = "",
    strike: str = "0",
    tick: str = "0.05",
    lot: str = "1",
    instrument_type: str = "EQ",
    segment: str | None = None,
    exchange_token: int | None = None,
) -> str:
    return ",".join(
        [
            str(token),
            str(exchange_token if exchange_token is not None else token % 100_000),
            symbol,
            name if name is not None else symbol.title(),
            last_price,
            expiry,
            strike,
            tick,
            lot,
            instrument_type,
            segment or exchange,
            exchange,
        ]
    )


def csv_text(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (under the test's tmp_path), else a fresh PostgreSQL clone."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return None


@pytest.fixture
async def database(database_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    db = Database.create(database_url, data_dir=tmp_path / "data")
    await migrate(db, use_timescaledb=False)
    try:
        yield db
    finally:
        await db.dispose()


def instrument_rows(
    count: int, *, start: int = 1000, prefix: str = "SYM", **overrides: Any
) -> list[str]:
    return [csv_row(start + n, f"{prefix}{n:05d}", **overrides) for n in range(count)]


def future(tick: str = "0.05", lot: str = "25", token: int = 1) -> Instrument:
    """A futures contract on the given grid, for tests that need no registry."""
    return Instrument.create(
        instrument_token=token,
        exchange_token=token,
        exchange="NFO",
        tradingsymbol=f"TEST{token}",
        name="TEST",
        instrument_type="FUT",
        segment="NFO-FUT",
        tick_size=Decimal(tick),
        lot_size=Decimal(lot),
        expiry=None,
        strike=Decimal(0),
        last_price=Decimal("100"),
    )


def infy() -> Instrument:
    """NSE:INFY as the sample registry has it (token 408065, tick 0.05), for tests that need
    no registry."""
    return Instrument.create(
        instrument_token=408065,
        exchange_token=1594,
        exchange="NSE",
        tradingsymbol="INFY",
        name="INFOSYS",
        instrument_type="EQ",
        segment="NSE",
        tick_size=Decimal("0.05"),
        lot_size=Decimal(1),
        expiry=None,
        strike=Decimal(0),
        last_price=Decimal("1875.4"),
    )
