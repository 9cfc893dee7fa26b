"""``GET /candles/{symbol}``: OHLCV from the recorded trades against hand-computed values, on
SQLite and PostgreSQL; interval and time validation; the bucket cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from app.settings import Settings
from app.store.database import Database
from app.store.journal import trades
from tests.conftest import running_app
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, batch, order

INFY, TCS = 408065, 2953217
BASE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def trade(trade_id: int, seconds: float, price: int, quantity: int, token: int = INFY) -> dict:
    at = BASE + timedelta(seconds=seconds)
    ts_ns = int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000
    return {
        "trade_id": trade_id,
        "executed_at": at,
        "ts_ns": ts_ns,
        "instrument_token": token,
        "price": price,
        "quantity": quantity,
        "maker_order_id": trade_id * 10,
        "taker_order_id": trade_id * 10 + 1,
        "maker_account": "a",
        "taker_account": "b",
        "taker_side": "buy",
    }


# INFY ticks of 0.05: 37508 = 1875.40. Trade ids grow with time, as the sequencer makes them;
# trades 6 and 7 share a timestamp and the later id closes the candle.
RECORDED = [
    trade(1, -1, 1, 1),  # a second before the window (in its day, not in its minutes)
    trade(2, 5, 37508, 2),
    trade(3, 20, 37510, 1),
    trade(4, 30, 82046, 9, token=TCS),  # another instrument
    trade(5, 59.999, 37500, 3),
    trade(6, 61, 37520, 1),
    trade(7, 130, 37490, 4),
    trade(8, 130, 37495, 1),
    trade(9, 300, 99999, 1),  # at the window's end (exclusive)
]


@pytest.fixture
async def client(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings) as (_app, client):
        database = Database.create(backend_settings.db.url, data_dir=backend_settings.db.data_dir)
        try:
            async with database.engine.begin() as conn:
                await conn.execute(insert(trades), RECORDED)
        finally:
            await database.dispose()
        yield client


def window(interval: str, minutes: int = 5, **extra: str) -> dict[str, str]:
    return {
        "interval": interval,
        "start": BASE.isoformat(),
        "end": (BASE + timedelta(minutes=minutes)).isoformat(),
        **extra,
    }


class TestCandles:
    async def test_one_minute_candles(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/candles/NSE:INFY", params=window("1m"), headers=READER)
        assert response.status_code == 200
        body = response.json()
        assert (body["symbol"], body["interval"], body["next_cursor"]) == ("NSE:INFY", "1m", None)
        assert body["items"] == [
            {
                "start": "2026-11-20T10:00:00Z",
                "open": "1875.4",
                "high": "1875.5",
                "low": "1875",
                "close": "1875",
                "volume": "6",
                "trades": 3,
            },
            {
                "start": "2026-11-20T10:01:00Z",
                "open": "1876",
                "high": "1876",
                "low": "1876",
                "close": "1876",
                "volume": "1",
                "trades": 1,
            },
            {
                "start": "2026-11-20T10:02:00Z",
                "open": "1874.5",
                "high": "1874.75",
                "low": "1874.5",
                "close": "1874.75",
                "volume": "5",
                "trades": 2,
            },
        ]

    @pytest.mark.parametrize("interval", ["5m", "15m", "1h"])
    async def test_wider_intervals_hold_the_window_in_one_candle(
        self, client: httpx.AsyncClient, interval: str
    ) -> None:
        body = (
            await client.get("/candles/NSE:INFY", params=window(interval), headers=READER)
        ).json()
        assert body["items"] == [
            {
                "start": "2026-11-20T10:00:00Z",
                "open": "1875.4",
                "high": "1876",
                "low": "1874.5",
                "close": "1874.75",
                "volume": "12",
                "trades": 6,
            }
        ]

    async def test_a_day_starts_at_utc_midnight(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/candles/NSE:INFY", params=window("1d"), headers=READER)).json()
        assert body["items"] == [
            {
                "start": "2026-11-20T00:00:00Z",
                "open": "0.05",
                "high": "1876",
                "low": "0.05",
                "close": "1874.75",
                "volume": "13",
                "trades": 7,
            }
        ]

    async def test_start_is_rounded_down_to_its_bucket(self, client: httpx.AsyncClient) -> None:
        params = window("1m")
        params["start"] = (BASE + timedelta(seconds=30)).isoformat()  # inside minute 0
        params["end"] = (BASE + timedelta(minutes=1)).isoformat()
        body = (await client.get("/candles/NSE:INFY", params=params, headers=READER)).json()
        assert [(c["start"], c["trades"]) for c in body["items"]] == [("2026-11-20T10:00:00Z", 3)]

    async def test_offsets_and_naive_times(self, client: httpx.AsyncClient) -> None:
        params = {
            "interval": "1m",
            "start": "2026-11-20T15:31:00+05:30",
            "end": "2026-11-20T10:02:00",
        }
        body = (await client.get("/candles/NSE:INFY", params=params, headers=READER)).json()
        assert [c["start"] for c in body["items"]] == ["2026-11-20T10:01:00Z"]

    @pytest.mark.parametrize(
        ("params", "code"),
        [
            ({"interval": "2m"}, "INVALID_INTERVAL"),
            ({"interval": "1m", "start": "yesterday"}, "INVALID_TIME"),
            ({"interval": "1m", "end": "2026-13-01T00:00:00Z"}, "INVALID_TIME"),
            (
                {"interval": "1m", "start": "2026-11-20T10:00:00Z", "end": "2026-11-20T10:00:00Z"},
                "INVALID_TIME_RANGE",
            ),
            ({"interval": "1m", "start": "1969-12-31T00:00:00Z"}, "INVALID_TIME_RANGE"),
            (
                {"interval": "1d", "start": "9999-12-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"},
                "INVALID_TIME_RANGE",
            ),
            (
                {"interval": "1m", "start": "2026-11-01T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
                "TOO_MANY_CANDLES",
            ),
            ({"interval": "1m" * 10}, "VALIDATION_ERROR"),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: httpx.AsyncClient, params: dict[str, str], code: str
    ) -> None:
        response = await client.get("/candles/NSE:INFY", params=params, headers=READER)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == code

    async def test_unknown_symbol_and_scopes(self, client: httpx.AsyncClient) -> None:
        unknown = await client.get("/candles/NSE:NOPE", headers=READER)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"
        assert (await client.get("/candles/NSE:INFY")).status_code == 401

    async def test_trades_placed_through_the_api_show_up(self, client: httpx.AsyncClient) -> None:
        await client.post(
            "/advanced/batch-orders",
            json=batch(order("sell", "5", "4102.3", symbol="NSE:TCS")),
            headers=ADMIN,
        )
        await client.post(
            "/advanced/batch-orders",
            json=batch(order("buy", "2", "4102.35", symbol="NSE:TCS")),
            headers=DESK_B,
        )
        await client.post(
            "/advanced/batch-orders",
            json=batch(order("buy", "1", "4102.3", symbol="NSE:TCS")),
            headers=DESK_B,
        )
        body = (await client.get("/candles/NSE:TCS?interval=1d", headers=READER)).json()
        today = body["items"][-1]
        assert (today["open"], today["close"], today["volume"], today["trades"]) == (
            "4102.3",
            "4102.3",
            "3",
            2,
        )
