"""Positions recomputed from the ``trades`` table, and as stored: the two must be equal."""

from __future__ import annotations

from sqlalchemy import select

from app.services.positions.ledger import AccountFill, Position, replay
from app.services.trading_day.calendar import TradingCalendar
from app.store.database import Database
from app.store.journal import trades
from app.store.positions import COLUMNS, load_positions


async def recomputed(database: Database) -> dict[tuple[str, int], Position]:
    """Every position from scratch, from the ``trades`` table (UTC trading days)."""
    calendar = TradingCalendar.default().for_exchange("")
    query = select(trades).order_by(trades.c.trade_id)
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    fills = []
    for t in rows:
        day = calendar.day_bounds(t.ts_ns)[2]
        taker_buys = t.taker_side == "buy"
        for account, buy in ((t.maker_account, not taker_buys), (t.taker_account, taker_buys)):
            fills.append(
                AccountFill(
                    account, t.instrument_token, buy, t.quantity, t.price, day, t.trade_id, t.ts_ns
                )
            )
    return replay(fills)


async def stored(database: Database) -> dict[tuple[str, int], Position]:
    return {
        (row.account, row.instrument_token): Position(*(getattr(row, c) for c in COLUMNS))
        for row in await load_positions(database)
    }
