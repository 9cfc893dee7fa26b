"""The ticker service across a restart (the day's statistics and the depth come back from
the journal), and the TimescaleDB form of the candle query."""

from __future__ import annotations

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
