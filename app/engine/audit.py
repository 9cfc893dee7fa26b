"""Invariant checks of a book (exchange-core's ``validateInternalState``).

Layout: ``check_book`` walks every ladder, level and index of a ``BookViews``.
Ordering invariant checked: never crossed at rest; ranks sorted and ``best`` current; every
level's live entries FIFO in strictly increasing priority, with cached size and count equal to
their sums; index and levels hold exactly the same orders, on the right side and price; no
pending stop crossed by the last trade price; cached top of book current; counter above every
priority. Modify semantics: read-only. Complexity: O(orders + dead entries).
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from app.engine.ladder import EMPTY, Ladder
from app.engine.model import Order, Side

if TYPE_CHECKING:
    from app.engine.views import BookViews


class InvariantError(RuntimeError):
    """The book's internal state is inconsistent: a bug, never a business outcome."""


def check_book(book: BookViews) -> None:
    """Raise ``InvariantError`` on the first inconsistency found in ``book``."""
    _check(book._bids, Side.BUY, book._orders, pending=False)
    _check(book._asks, Side.SELL, book._orders, pending=False)
    _check(book._buy_stops, Side.BUY, book._stops, pending=True)
    _check(book._sell_stops, Side.SELL, book._stops, pending=True)
    for ladders, index in (
        ((book._bids, book._asks), book._orders),
        ((book._buy_stops, book._sell_stops), book._stops),
    ):
        count = sum(lv.count for ld in ladders for lv in ld.levels.values())
        _expect(count == len(index), "index and levels differ in size")
    bid, ask = book.best_bid(), book.best_ask()
    _expect(bid is None or ask is None or bid[0] < ask[0], "book is crossed at rest")
    last = book._last
    if last is not None:
        _expect(-book._buy_stops.best > last, "a pending buy stop is crossed by last")
        _expect(book._sell_stops.best < last, "a pending sell stop is crossed by last")
    _expect(book._top == book._current_top(), "cached top of book is stale")
    _expect(not book._queue, "triggered stops left unprocessed")
    every = [*book._orders.values(), *book._stops.values()]
    _expect(all(o.priority <= book._priority for o in every), "priority above the counter")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


def _check(ladder: Ladder, side: Side, index: dict[int, Order], *, pending: bool) -> None:
    ranks = ladder.ranks
    _expect(all(a < b for a, b in pairwise(ranks)), "ranks not sorted")
    _expect(set(ranks) == set(ladder.levels), "ranks and levels differ")
    _expect(ladder.best == (ranks[-1] if ranks else EMPTY), "cached best is stale")
    for rank, level in ladder.levels.items():
        live = [o for o in level.orders if o.remaining]
        _expect(level.price * ladder.sign == rank, "level filed under the wrong rank")
        _expect(0 < level.count == len(live), "level count differs from its orders")
        _expect(level.total == sum(o.remaining for o in live), "level size differs from sum")
        prios = [o.priority for o in live]
        _expect(all(a < b for a, b in pairwise(prios)), "FIFO broken")
        for o in live:
            _expect(index.get(o.order_id) is o, "order in a level but not in the index")
            _expect(o.side is side, "order on the wrong side")
            price = o.trigger if pending else o.price
            _expect(price == level.price, "order filed at the wrong price")
