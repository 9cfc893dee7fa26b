"""``GET /positions``: the account's positions and P&L, read from the journal's database.

Served by any role (a gateway too): the stored rows are exactly the committed fills'
(``app.services.positions.service``). Unrealised P&L is marked at the instrument's last
trade price (from ``trades``); day fields are shown for the exchange's current trading day,
so a position untouched since an earlier day shows all of itself as overnight.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.services.clock import Clock
from app.services.cursors import decode_cursor, encode_cursor
from app.services.instruments.model import Instrument
from app.services.instruments.snapshot import SnapshotSource
from app.services.positions.ledger import Position
from app.services.render import render_position
from app.services.trading_day.calendar import TradingCalendar
from app.store.database import Database
from app.store.journal import trades
from app.store.positions import COLUMNS, load_positions


class PositionReads:
    def __init__(
        self,
        *,
        database: Database,
        registry: SnapshotSource,
        calendar: TradingCalendar,
        clock: Clock,
    ) -> None:
        self._database = database
        self._registry = registry
        self._calendar = calendar
        self._clock = clock

    async def list_positions(
        self,
        account: str,
        *,
        symbol: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """The account's positions in instrument token order, ``limit`` at a time."""
        snapshot = self._registry.snapshot
        token = None if symbol is None else snapshot.lookup(symbol).instrument_token
        after = None if cursor is None else int(decode_cursor(cursor, 1)[0])
        rows = await load_positions(
            self._database,
            account=account,
            tokens=None if token is None else [token],
            after_token=after,
            limit=limit + 1,
        )
        next_cursor = None
        if len(rows) > limit:
            del rows[limit:]
            next_cursor = encode_cursor(rows[-1].instrument_token)
        stored = [Position(*(getattr(row, name) for name in COLUMNS)) for row in rows]
        last = await self._last_prices([p.instrument_token for p in stored])
        items = []
        for position in stored:
            instrument = snapshot.get(position.instrument_token)
            if instrument is not None:
                items.append(
                    self._render(instrument, position, last.get(instrument.instrument_token))
                )
        return {"items": items, "next_cursor": next_cursor}

    async def get_position(self, account: str, instrument: Instrument) -> dict[str, Any]:
        """One instrument's position; flat (all zeros) when the account never traded it."""
        token = instrument.instrument_token
        rows = await load_positions(self._database, account=account, tokens=[token])
        position = (
            Position(*(getattr(rows[0], name) for name in COLUMNS))
            if rows
            else Position(account, token)
        )
        last = await self._last_prices([token])
        return self._render(instrument, position, last.get(token))

    async def _last_prices(self, tokens: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        if not tokens:
            return found
        async with self._database.engine.connect() as conn:
            for token in sorted(set(tokens)):
                query = (
                    select(trades.c.price)
                    .where(trades.c.instrument_token == token)
                    .order_by(trades.c.executed_at.desc(), trades.c.trade_id.desc())
                    .limit(1)
                )
                price = (await conn.execute(query)).scalar()
                if price is not None:
                    found[token] = int(price)
        return found

    def _render(
        self, instrument: Instrument, stored: Position, last_price: int | None
    ) -> dict[str, Any]:
        calendar = self._calendar.for_exchange(instrument.exchange)
        today = calendar.day_bounds(self._clock.now_ns())[2]
        return render_position(instrument, stored.on_day(today), last_price)
