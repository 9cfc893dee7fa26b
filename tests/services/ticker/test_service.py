"""The ticker service across a restart (the day's statistics and the depth come back from
the journal), the flush cadence, and the TimescaleDB form of the candle query."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from app.store.database import Database
from app.store.ticker import candle_query
from tests.support.live import live_app, place, ws_client
from tests.support.trading import ADMIN, DESK_B, READER_KEY, add_accounts, order


class TestRestart:
    async def test_day_statistics_and_depth_survive_a_restart(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        settings = make_settings()
        async with live_app(settings) as live:
            await place(live.http, ADMIN, order("sell", "5", "1875.4"), order("sell", "2", "1876"))
            await place(live.http, DESK_B, order("buy", "3", "1875.4"))
            await place(live.http, DESK_B, order("buy", "1", "1875.4"))
        async with (
            live_app(settings) as again,
            ws_client(again.ws_url + "/ws/ticker", key=READER_KEY) as ws,
        ):
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "full"})
            await ws.expect("subscribed")
            tick = await ws.tick()
            assert tick["seq"] == 0  # a new process: its own sequence of ticks
            assert (tick["ltp"], tick["last_quantity"], tick["volume"], tick["trades"]) == (
                "1875.4",
                "1",
                "4",
                2,
            )
            assert tick["ohlc"]["open"] == "1875.4"
            assert tick["depth"]["asks"] == [
                {"price": "1875.4", "quantity": "1", "orders": 1},
                {"price": "1876", "quantity": "2", "orders": 1},
            ]
            await place(again.http, DESK_B, order("buy", "1", "1875.4"))
            after = await ws.tick(volume="5")
            assert after["seq"] == 1
            assert after["ask"] == "1876"


class TestFlushCadence:
    async def test_a_change_after_a_quiet_spell_goes_out_at_once_and_the_next_waits(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        """``TICKER_FLUSH_INTERVAL_MS`` spaces flushes: the first change after a quiet spell
        does not wait for it, a change right after a flush waits for what is left of it."""
        add_accounts(tokens_dir)
        settings = make_settings(ticker={"flush_interval_ms": 1000})
        async with (
            live_app(settings) as live,
            ws_client(live.ws_url + "/ws/ticker", key=READER_KEY) as ws,
        ):
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "quote"})
            await ws.expect("subscribed")
            await ws.tick()  # the snapshot
            await asyncio.sleep(1.1)  # a quiet spell longer than the interval
            loop = asyncio.get_running_loop()
            placed = loop.time()
            await place(live.http, ADMIN, order("sell", "5", "1875.4"))
            first = await ws.tick(ask="1875.4")
            first_at = loop.time()
            assert first_at - placed < 0.7, "the first change waited for the interval"
            await place(live.http, DESK_B, order("buy", "1", "1875.4"))
            second = await ws.tick(volume="1")
            assert loop.time() - first_at > 0.8, "two flushes within one interval"
            assert second["seq"] == first["seq"] + 1


class TestCandleQuery:
    def test_timescaledb_uses_time_bucket_with_first_and_last(self) -> None:
        engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        database = Database(engine)
        database.timescaledb = True
        query = candle_query(database, 7, width_ns=60_000_000_000, start_ns=0, end_ns=10**18)
        sql = str(query.compile(dialect=postgresql.dialect()))
        assert "time_bucket(" in sql
        assert "first(trades.price, trades.trade_id)" in sql
        assert "last(trades.price, trades.trade_id)" in sql
        assert "trades.executed_at >=" in sql  # lets TimescaleDB skip chunks
        database.timescaledb = False
        portable = str(
            candle_query(database, 7, width_ns=60, start_ns=0, end_ns=1).compile(
                dialect=postgresql.dialect()
            )
        )
        assert "time_bucket" not in portable
        assert "min(trades.trade_id)" in portable
