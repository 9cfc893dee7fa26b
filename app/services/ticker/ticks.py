"""Tick state per instrument, built only from committed journal units.

Durable before visible: the order books may hold changes whose commit is still in flight, so
nothing here reads a book after start-up. Trades give ltp, last quantity, the day's OHLC and
volume (UTC day); order rows keep a committed depth index (resting limit orders aggregated per
price level), which gives bid/ask, their sizes and the 5-level depth. ``seq`` counts the ticks
emitted for an instrument: the service bumps it once per flush in which the instrument changed,
so a client that receives every tick sees consecutive numbers and a gap means it missed one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.engine import BookSnapshot, Trade
from app.services.instruments.model import Instrument, decimal_text
from app.services.orders.journal import JournalUnit
from app.services.render import iso_time_or_none
from app.store.journal import OrderRow
from app.store.ticker import DayStats

NS_PER_DAY = 86_400 * 1_000_000_000
DEPTH_LEVELS = 5
_RESTING = frozenset({"open", "partially_filled"})


class Mode(StrEnum):
    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


MODE_RANK = {Mode.LTP: 0, Mode.QUOTE: 1, Mode.FULL: 2}
Level = tuple[int, list[int]]

_LTP_KEYS = ("type", "mode", "symbol", "instrument_token", "seq", "timestamp", "ts_ns", "ltp")
_QUOTE_KEYS = (
    *_LTP_KEYS,
    "last_quantity",
    "last_trade_time",
    "volume",
    "trades",
    "bid",
    "bid_quantity",
    "ask",
    "ask_quantity",
    "ohlc",
)
_KEYS = {Mode.LTP: _LTP_KEYS, Mode.QUOTE: _QUOTE_KEYS}


DayOf = Callable[[int, int], int]  # (instrument token, ts ns) -> its trading day


def utc_day(_token: int, ts_ns: int) -> int:
    return ts_ns // NS_PER_DAY


@dataclass(slots=True)
class InstrumentTicks:
    """One instrument's trade statistics for its exchange's current trading day (``day``:
    the day's ordinal, or the UTC day number by default), in ticks and lots."""

    token: int
    seq: int = 0
    day: int = -1
    ltp: int | None = None
    last_quantity: int = 0
    last_trade_ns: int = 0
    open: int | None = None
    high: int | None = None
    low: int | None = None
    volume: int = 0
    trades: int = 0
    changed_ns: int = 0

    def trade(self, trade: Trade, day: int | None = None) -> None:
        price, ts = trade.price, trade.timestamp
        if day is None:
            day = ts // NS_PER_DAY
        if day > self.day:  # the first trade of a new day opens it
            self.day, self.open, self.high, self.low = day, price, price, price
            self.volume = self.trades = 0
        else:
            if self.high is None or price > self.high:
                self.high = price
            if self.low is None or price < self.low:
                self.low = price
            if self.open is None:
                self.open = price
        self.ltp = price
        self.last_quantity = trade.quantity
        self.last_trade_ns = ts
        self.volume += trade.quantity
        self.trades += 1
        self.changed_ns = max(self.changed_ns, ts)

    def load(self, stats: DayStats, day: int | None = None) -> None:
        """The day so far, read from the journal at start (before any new trade)."""
        self.day = stats.last_ns // NS_PER_DAY if day is None else day
        self.open, self.high, self.low = stats.open, stats.high, stats.low
        self.ltp, self.last_quantity = stats.close, stats.last_quantity
        self.last_trade_ns = self.changed_ns = stats.last_ns
        self.volume, self.trades = stats.volume, stats.trades


class DepthIndex:
    """Resting limit orders per instrument, aggregated as price -> [quantity, orders]."""

    def __init__(self) -> None:
        self._orders: dict[int, tuple[int, bool, int, int]] = {}  # id -> token, buy, price, qty
        self._books: dict[int, tuple[dict[int, list[int]], dict[int, list[int]]]] = {}

    def _sides(self, token: int) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        sides = self._books.get(token)
        if sides is None:
            sides = self._books[token] = ({}, {})
        return sides

    def _add(self, token: int, buy: bool, price: int, quantity: int, count: int) -> None:
        levels = self._sides(token)[0 if buy else 1]
        level = levels.get(price)
        if level is None:
            levels[price] = [quantity, count]
            return
        level[0] += quantity
        level[1] += count
        if level[1] <= 0:
            del levels[price]

    def apply(self, row: OrderRow) -> bool:
        """Take an order's committed state; True when it changed the instrument's depth."""
        order_id = row.order_id
        old = self._orders.pop(order_id, None)
        if old is not None:
            self._add(old[0], old[1], old[2], -old[3], -1)
        price = row.price
        if price is None or row.remaining <= 0 or row.status not in _RESTING:
            return old is not None
        token, buy = row.instrument_token, row.side == "buy"
        self._orders[order_id] = (token, buy, price, row.remaining)
        self._add(token, buy, price, row.remaining, 1)
        return True

    def load(self, snapshot: BookSnapshot, token: int) -> None:
        """Index a book's resting orders, replacing what is indexed for the same orders."""
        for order in snapshot.orders:
            if not order.pending and order.price is not None and order.remaining > 0:
                old = self._orders.pop(order.order_id, None)
                if old is not None:
                    self._add(old[0], old[1], old[2], -old[3], -1)
                buy = order.side.value == "buy"
                self._orders[order.order_id] = (token, buy, order.price, order.remaining)
                self._add(token, buy, order.price, order.remaining, 1)

    def depth(self, token: int, levels: int) -> tuple[list[Level], list[Level]]:
        """Best ``levels`` bids and asks as (price, [quantity, orders]), best first."""
        sides = self._books.get(token)
        if sides is None:
            return [], []
        bids, asks = sides
        return (
            [(p, bids[p]) for p in heapq.nlargest(levels, bids)],
            [(p, asks[p]) for p in heapq.nsmallest(levels, asks)],
        )


class TickState:
    """Every instrument's statistics and depth; ``apply`` returns the instruments changed."""

    def __init__(self, day_of: DayOf = utc_day) -> None:
        self.instruments: dict[int, InstrumentTicks] = {}
        self.depth = DepthIndex()
        self.day_of = day_of

    def get(self, token: int) -> InstrumentTicks:
        state = self.instruments.get(token)
        if state is None:
            state = self.instruments[token] = InstrumentTicks(token)
        return state

    def apply(self, units: Iterable[JournalUnit]) -> set[int]:
        changed: set[int] = set()
        depth = self.depth
        for unit in units:
            for row in unit.orders:
                if depth.apply(row):
                    token = row.instrument_token
                    changed.add(token)
                    state = self.get(token)
                    state.changed_ns = max(state.changed_ns, row.updated_ns)
            for token, trade in unit.trades:
                self.get(token).trade(trade, self.day_of(token, trade.timestamp))
                changed.add(token)
            for token, top in unit.tops.items():
                changed.add(token)
                state = self.get(token)
                state.changed_ns = max(state.changed_ns, top.timestamp)
        return changed


def render(state: InstrumentTicks, instrument: Instrument, depth: DepthIndex) -> dict[str, Any]:
    """The full-mode tick (decimal strings); other modes are views of it (``view``)."""
    price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
    bids, asks = depth.depth(state.token, DEPTH_LEVELS)
    ltp = state.ltp
    return {
        "type": "tick",
        "mode": "full",
        "symbol": instrument.symbol,
        "instrument_token": state.token,
        "seq": state.seq,
        # Null both until the instrument changes: a snapshot of an instrument nothing has
        # happened to yet (since this replica started, beyond today's trades) has no time.
        "timestamp": iso_time_or_none(state.changed_ns),
        "ts_ns": state.changed_ns or None,
        # Before the first trade the registry's last price stands in (Kite's last_price).
        "ltp": price(ltp)
        if ltp is not None
        else (decimal_text(instrument.last_price) if instrument.last_price > 0 else None),
        "last_quantity": qty(state.last_quantity),
        "last_trade_time": iso_time_or_none(state.last_trade_ns),
        "volume": qty(state.volume),
        "trades": state.trades,
        "bid": price(bids[0][0]) if bids else None,
        "bid_quantity": qty(bids[0][1][0]) if bids else "0",
        "ask": price(asks[0][0]) if asks else None,
        "ask_quantity": qty(asks[0][1][0]) if asks else "0",
        "ohlc": {
            "open": None if state.open is None else price(state.open),
            "high": None if state.high is None else price(state.high),
            "low": None if state.low is None else price(state.low),
            "close": None if ltp is None or state.open is None else price(ltp),
        },
        "depth": {
            "bids": [{"price": price(p), "quantity": qty(v[0]), "orders": v[1]} for p, v in bids],
            "asks": [{"price": price(p), "quantity": qty(v[0]), "orders": v[1]} for p, v in asks],
        },
    }


def view(full: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """``full`` cut down to ``mode``'s fields."""
    if mode is Mode.FULL:
        return full
    out = {key: full[key] for key in _KEYS[mode] if key in full}
    out["mode"] = mode.value
    return out
