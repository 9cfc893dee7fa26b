"""Positions kept with the journal: moved by each group commit's trades, in its transaction.

The order path's owner (``ROLE=all``, or a matcher for its shard's instruments) holds every
position of its instruments in memory. ``write`` is a journal transaction hook: it moves
*copies* of the positions the group's trades touch (``ledger.apply_fill``), queues their
upsert in the same transaction as the trades, and hangs them on the units (``/ws/orders``
sends them). ``after_commit`` (a journal listener, called only once the commit succeeded)
makes the copies current. A failed commit leaves the committed positions as they were: the
next group starts from them again, exactly as the books are rebuilt from the journal.

The cost on the order path is a few dict operations and integer additions per fill (the
trading day of a fill comes from a per-instrument cache of the day's bounds).
"""

from __future__ import annotations

import logging
from typing import Any

from app.engine import Side
from app.services.instruments.snapshot import SnapshotSource
from app.services.orders.journal import JournalUnit
from app.services.orders.shard import Shard
from app.services.positions.ledger import Position, apply_fill
from app.services.trading_day.calendar import TradingCalendar
from app.services.trading_day.days import TradingDays
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.positions import COLUMNS, load_positions, queue_positions

log = logging.getLogger(__name__)
_BUY = Side.BUY


class PositionBook:
    """The positions of one order path (one process, or one matcher's shard)."""

    def __init__(
        self,
        *,
        database: Database,
        calendar: TradingCalendar,
        registry: SnapshotSource,
        shard: Shard | None = None,
    ) -> None:
        self._database = database
        self._calendar = calendar
        self._registry = registry
        self._shard = shard or Shard()
        self.positions: dict[tuple[str, int], Position] = {}
        self._pending: dict[tuple[str, int], Position] = {}
        self._days = TradingDays(calendar=calendar, registry=registry)

    async def load(self) -> None:
        """Every stored position of the shard's instruments (at start, and after recovery)."""
        loaded = {}
        for row in await load_positions(self._database):
            if self._shard.owns(row.instrument_token):
                position = Position(*(getattr(row, name) for name in COLUMNS))
                loaded[(position.account, position.instrument_token)] = position
        self.positions = loaded
        self._pending = {}

    def net(self, account: str, instrument_token: int) -> int:
        position = self.positions.get((account, instrument_token))
        return 0 if position is None else position.net

    def day_of(self, instrument_token: int, ts_ns: int) -> int:
        """The trading day (ordinal) of a fill at ``ts_ns`` on the instrument's exchange."""
        return self._days.day_of(instrument_token, ts_ns)

    # --- journal hooks ---------------------------------------------------------------------

    def write(self, tx: JournalTransaction, group: list[JournalUnit]) -> None:
        """Move the positions by the group's trades and queue them in its transaction."""
        pending: dict[tuple[str, int], Position] = {}
        self._pending = pending
        current = self.positions
        for unit in group:
            if not unit.trades:
                continue
            moved: dict[tuple[str, int], Position] = {}
            for token, trade in unit.trades:
                day = self.day_of(token, trade.timestamp)
                taker_buys = trade.taker_side is _BUY
                for account, buy in (
                    (trade.maker_account, not taker_buys),
                    (trade.taker_account, taker_buys),
                ):
                    key = (account, token)
                    position = pending.get(key)
                    if position is None:
                        known = current.get(key)
                        position = Position(account, token) if known is None else known.copy()
                        pending[key] = position
                    apply_fill(
                        position, buy=buy, quantity=trade.quantity, price=trade.price,
                        day=day, trade_id=trade.seq, ts_ns=trade.timestamp,
                    )  # fmt: skip
                    moved[key] = position
            # What the order streams send: each position as this unit left it.
            unit.positions = [p.copy() for p in moved.values()]
        if pending:
            queue_positions(tx, [_values(p) for p in pending.values()])

    def after_commit(self, _group: list[JournalUnit]) -> None:
        pending, self._pending = self._pending, {}
        self.positions.update(pending)


def _values(p: Position) -> tuple[Any, ...]:
    return (
        p.account, p.instrument_token, p.net, p.buy_quantity, p.buy_value, p.sell_quantity,
        p.sell_value, p.open_value, p.day, p.overnight, p.day_buy_quantity, p.day_buy_value,
        p.day_sell_quantity, p.day_sell_value, p.last_trade_id, p.updated_ns,
    )  # fmt: skip
