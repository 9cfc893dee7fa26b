"""Market data reads: the book (depth), its statistics and the recent trades."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from app.engine import empty_book_hash
from app.services.cursors import decode_cursor, encode_cursor
from app.services.instruments.model import Instrument
from app.services.orders.entry import InstrumentControl
from app.services.orders.service import OrderService
from app.store.database import Database
from app.store.journal import trades as trade_rows
from app.store.ticker import day_stats


class MarketDataService:
    def __init__(
        self, *, orders: OrderService, registry: InstrumentControl, database: Database
    ) -> None:
        self._orders = orders
        self._registry = registry
        self._database = database

    def _instrument(self, symbol: str) -> Instrument:
        return self._registry.snapshot.lookup(symbol)

    async def order_book(self, symbol: str, depth: int) -> dict[str, Any]:
        instrument = self._instrument(symbol)
        token = instrument.instrument_token
        book = self._orders.books.get(token)
        price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
        levels = book.depth(depth) if book is not None else None
        return {
            "symbol": instrument.symbol,
            "instrument_token": token,
            "seq": self._orders.book_seq.get(token, 0),
            "bids": [
                {"price": price(lv.price), "quantity": qty(lv.quantity), "orders": lv.orders}
                for lv in (levels.bids if levels else [])
            ],
            "asks": [
                {"price": price(lv.price), "quantity": qty(lv.quantity), "orders": lv.orders}
                for lv in (levels.asks if levels else [])
            ],
        }

    async def stats(self, symbol: str) -> dict[str, Any]:
        instrument = self._instrument(symbol)
        token = instrument.instrument_token
        book = self._orders.books.get(token)
        price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
        stats = book.stats() if book is not None else None
        best_bid = book.best_bid() if book is not None else None
        best_ask = book.best_ask() if book is not None else None
        last = stats.last_price if stats is not None else None
        return {
            "symbol": instrument.symbol,
            "instrument_token": token,
            "status": "halted" if self._orders.is_halted(token) else instrument.status.value,
            "seq": self._orders.book_seq.get(token, 0),
            "orders": stats.orders if stats else 0,
            "pending_stops": stats.pending_stops if stats else 0,
            "bid_levels": stats.bid_levels if stats else 0,
            "ask_levels": stats.ask_levels if stats else 0,
            "bid_quantity": qty(stats.bid_quantity if stats else 0),
            "ask_quantity": qty(stats.ask_quantity if stats else 0),
            "best_bid": price(best_bid[0]) if best_bid else None,
            "best_ask": price(best_ask[0]) if best_ask else None,
            "volume": qty(stats.traded_volume if stats else 0),
            "trade_count": stats.trade_count if stats else 0,
            "last_price": price(last) if last is not None else None,
            # Canonical hash of the resting book: equal on replicas and after a rebuild (which
            # makes no book for an instrument with no open order and no trade).
            "book_hash": book.state_hash() if book is not None else empty_book_hash(token),
            "day": await self._day(instrument),
        }

    async def _day(self, instrument: Instrument) -> dict[str, Any]:
        """The exchange's trading day so far (OHLC, volume, trades), from the journal."""
        calendar = self._orders.calendar.for_exchange(instrument.exchange)
        start, _end, day = calendar.day_bounds(self._orders.now_ns())
        found = await day_stats(self._database, start, instrument.instrument_token)
        price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
        stats = found[0] if found else None
        return {
            "trading_day": date.fromordinal(day).isoformat(),
            "open": None if stats is None else price(stats.open),
            "high": None if stats is None else price(stats.high),
            "low": None if stats is None else price(stats.low),
            "close": None if stats is None else price(stats.close),
            "volume": qty(0 if stats is None else stats.volume),
            "trade_count": 0 if stats is None else stats.trades,
        }

    async def trades(self, symbol: str, limit: int, cursor: str | None = None) -> dict[str, Any]:
        return await trade_page(self._database, self._instrument(symbol), limit, cursor)


async def trade_page(
    database: Database, instrument: Instrument, limit: int, cursor: str | None
) -> dict[str, Any]:
    """An instrument's trades, newest first: ``limit`` of them after ``cursor`` (the last
    trade_id of the previous page; a forged one is 422 ``INVALID_CURSOR``). Trade ids grow
    with time within an instrument (one shard matches it), so they order the page."""
    query = select(trade_rows).where(trade_rows.c.instrument_token == instrument.instrument_token)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        query = query.where(trade_rows.c.trade_id < before)
    query = query.order_by(trade_rows.c.trade_id.desc()).limit(limit + 1)
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    more = len(rows) > limit
    del rows[limit:]
    next_cursor = encode_cursor(rows[-1].trade_id) if more else None
    return render_trades(instrument, rows, next_cursor)


def render_trades(
    instrument: Instrument, rows: list[Any], next_cursor: str | None
) -> dict[str, Any]:
    price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
    return {
        "symbol": instrument.symbol,
        "items": [
            {
                "trade_id": str(row.trade_id),
                "price": price(row.price),
                "quantity": qty(row.quantity),
                "taker_side": row.taker_side,
                "executed_at": row.executed_at.isoformat(),
                "ts_ns": row.ts_ns,
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }
