"""Book state and its read-only views: queries, statistics, snapshot/restore, hash, invariants.

Layout: four ``Ladder``s (bids, asks, buy stops, sell stops), two id indexes (``_orders``:
resting, ``_stops``: pending stops) and counters. ``OrderBook`` adds the commands on top.
Ordering invariant (``check_invariants``): never crossed at rest; each level's live entries are
FIFO in strictly increasing priority, with cached size and count equal to their sums; index and
levels hold exactly the same orders; no pending stop is crossed by the last trade price.
Modify semantics: read-only, except ``_load`` which fills an empty book from a snapshot.
Complexity: best bid/ask, lookup and counts O(1); depth O(levels asked); stats O(levels);
snapshot, hash, restore and invariant checks O(orders).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field

from app.engine.audit import InvariantError, check_book
from app.engine.commands import NewOrder
from app.engine.ladder import EMPTY, Ladder
from app.engine.model import Order, OrderState, Sequencer, Side


@dataclass(slots=True, frozen=True)
class DepthLevel:
    price: int
    quantity: int
    orders: int


@dataclass(slots=True, frozen=True)
class Depth:
    """Aggregated levels, best first."""

    bids: list[DepthLevel]
    asks: list[DepthLevel]


@dataclass(slots=True, frozen=True)
class BookStats:
    orders: int
    pending_stops: int
    bid_levels: int
    ask_levels: int
    bid_quantity: int
    ask_quantity: int
    traded_volume: int
    trade_count: int
    last_price: int | None


@dataclass(slots=True)
class BookSnapshot:
    """Everything needed to rebuild a book: live orders (resting and pending stops) in
    priority order, the last trade price and the counters."""

    instrument_id: int | str
    orders: list[OrderState] = field(default_factory=list)
    last_price: int | None = None
    priority: int = 0
    traded_volume: int = 0
    trade_count: int = 0


def _state(order: Order, pending: bool) -> OrderState:
    terms = order.terms
    return OrderState(
        order.order_id,
        order.account,
        order.side,
        terms.order_type,
        terms.time_in_force,
        order.price or None,
        terms.trigger_price,
        order.remaining,
        order.priority,
        order.filled,
        terms.post_only,
        terms.stp,
        pending,
    )


class BookViews:
    __slots__ = (
        "_asks",
        "_bids",
        "_buy_stops",
        "_last",
        "_orders",
        "_priority",
        "_queue",
        "_sell_stops",
        "_seq",
        "_stops",
        "_top",
        "_trade_count",
        "_volume",
        "instrument_id",
    )

    def __init__(self, instrument_id: int | str, sequencer: Sequencer | None = None) -> None:
        self.instrument_id = instrument_id
        self._seq = sequencer if sequencer is not None else Sequencer()
        self._bids = Ladder(1)
        self._asks = Ladder(-1)
        self._buy_stops = Ladder(-1)  # lowest trigger first
        self._sell_stops = Ladder(1)  # highest trigger first
        self._orders: dict[int, Order] = {}
        self._stops: dict[int, Order] = {}
        self._priority = 0
        self._last: int | None = None
        self._volume = 0
        self._trade_count = 0
        self._top: tuple[int | None, int, int | None, int] = (None, 0, None, 0)
        self._queue: deque[Order] = deque()  # triggered stops waiting for their turn

    @property
    def sequencer(self) -> Sequencer:
        return self._seq

    @property
    def last_price(self) -> int | None:
        return self._last

    def __len__(self) -> int:
        """Live orders: resting plus pending stops."""
        return len(self._orders) + len(self._stops)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders or order_id in self._stops

    def best_bid(self) -> tuple[int, int] | None:
        """(price, total quantity) of the best bid, or None."""
        return _best(self._bids)

    def best_ask(self) -> tuple[int, int] | None:
        return _best(self._asks)

    def depth(self, levels: int = 10) -> Depth:
        def rows(ladder: Ladder) -> list[DepthLevel]:
            return [DepthLevel(lv.price, lv.total, lv.count) for lv in ladder.top(levels)]

        return Depth(rows(self._bids), rows(self._asks))

    def order(self, order_id: int) -> OrderState | None:
        """A live order (resting or pending stop) by id; None once it is done or unknown."""
        order = self._orders.get(order_id)
        if order is not None:
            return _state(order, False)
        order = self._stops.get(order_id)
        return None if order is None else _state(order, True)

    def stats(self) -> BookStats:
        return BookStats(
            orders=len(self._orders),
            pending_stops=len(self._stops),
            bid_levels=len(self._bids.levels),
            ask_levels=len(self._asks.levels),
            bid_quantity=self._bids.quantity(),
            ask_quantity=self._asks.quantity(),
            traded_volume=self._volume,
            trade_count=self._trade_count,
            last_price=self._last,
        )

    def snapshot(self) -> BookSnapshot:
        states = [_state(o, False) for o in self._orders.values()]
        states += (_state(o, True) for o in self._stops.values())
        states.sort(key=lambda s: s.priority)
        return BookSnapshot(
            self.instrument_id,
            states,
            self._last,
            self._priority,
            self._volume,
            self._trade_count,
        )

    def _load(self, snapshot: BookSnapshot) -> None:
        """Fill an empty book from ``snapshot`` (orders are re-sorted by priority)."""
        for s in sorted(snapshot.orders, key=lambda s: s.priority):
            terms = NewOrder(
                s.order_id,
                s.account,
                s.side,
                s.order_type,
                s.remaining + s.filled,
                s.price,
                s.trigger_price,
                s.time_in_force,
                s.post_only,
                s.stp,
            )
            order = Order(
                s.order_id,
                s.account,
                s.side,
                s.price or 0,
                s.remaining,
                s.filled,
                s.priority,
                terms,
            )
            if s.order_id in self or s.remaining <= 0:
                raise InvariantError(f"snapshot order {s.order_id} is duplicated or empty")
            buy = s.side is Side.BUY
            if s.pending:
                self._stops[s.order_id] = order
                ladder = self._buy_stops if buy else self._sell_stops
                ladder.add(order, _required(s.trigger_price, s.order_id))
            else:
                self._orders[s.order_id] = order
                (self._bids if buy else self._asks).add(order, _required(s.price, s.order_id))
            self._priority = max(self._priority, s.priority)
        self._priority = max(self._priority, snapshot.priority)
        self._last = snapshot.last_price
        self._volume = snapshot.traded_volume
        self._trade_count = snapshot.trade_count
        self._top = self._current_top()
        self.check_invariants()

    def state_hash(self) -> str:
        """sha256 of the canonical book state: each ladder's live orders in book order (best
        level first, FIFO) with their remaining quantity, and the last price. Priority values,
        filled quantities and statistics are history, not state, and are left out."""

        def rows(ladder: Ladder) -> list[tuple[object, ...]]:
            return [_row(o) for o in ladder.orders()]

        return _canonical_hash(
            self.instrument_id,
            rows(self._bids),
            rows(self._asks),
            rows(self._buy_stops),
            rows(self._sell_stops),
            self._last,
        )

    def _current_top(self) -> tuple[int | None, int, int | None, int]:
        bid = _best(self._bids)
        ask = _best(self._asks)
        return (
            None if bid is None else bid[0],
            0 if bid is None else bid[1],
            None if ask is None else ask[0],
            0 if ask is None else ask[1],
        )

    def check_invariants(self) -> None:
        """Raise ``InvariantError`` if the book's structures disagree (the tests call it after
        every command; ``restore`` calls it on the rebuilt book)."""
        check_book(self)


def empty_book_hash(instrument_id: int | str) -> str:
    """``state_hash`` of a book with no order and no trade: what a caller reports for an
    instrument it holds no book for, so that having a book object or not (a rebuild creates
    none for such an instrument) never shows in the hash."""
    return _canonical_hash(instrument_id, [], [], [], [], None)


def _canonical_hash(
    instrument_id: int | str,
    bids: list[tuple[object, ...]],
    asks: list[tuple[object, ...]],
    buy_stops: list[tuple[object, ...]],
    sell_stops: list[tuple[object, ...]],
    last_price: int | None,
) -> str:
    state = {
        "instrument_id": instrument_id,
        "bids": bids,
        "asks": asks,
        "buy_stops": buy_stops,
        "sell_stops": sell_stops,
        "last_price": last_price,
    }
    text = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _row(o: Order) -> tuple[object, ...]:
    """Canonical row of a live order (its side is the ladder it is listed under)."""
    t = o.terms
    kind, tif, stp = t.order_type.value, t.time_in_force.value, t.stp.value
    return (o.order_id, o.account, kind, tif, o.price, o.trigger, o.remaining, t.post_only, stp)


def _best(ladder: Ladder) -> tuple[int, int] | None:
    if ladder.best == EMPTY:
        return None
    level = ladder.levels[ladder.best]
    return level.price, level.total


def _required(value: int | None, order_id: int) -> int:
    if value is None:
        raise InvariantError(f"snapshot order {order_id} lacks its price")
    return value
