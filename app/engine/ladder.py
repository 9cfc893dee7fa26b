"""One side of a book (or of the pending stops): price levels sorted by rank, best cached.

Layout: ``levels`` maps rank -> ``Level``; ``ranks`` is a plain sorted list of the ranks
(ascending, so the best is the last element); ``best`` caches ``ranks[-1]`` (``EMPTY`` when
there is none). Rank is the price for bids (higher is better) and minus the price for asks; the
stop ladders reuse it with the trigger price (buy stops: lowest trigger first, rank -trigger;
sell stops: highest first, rank +trigger). So "crosses" is always ``rank >= threshold``.

Ordering invariant: a level's deque is FIFO; its live entries (``remaining > 0``) have strictly
increasing ``priority``. Entries that left the level (cancelled, re-queued) stay in the deque
as dead entries until they reach the front or the level is compacted.

Modify semantics: ``shrink`` lowers a live order's quantity in place; anything else that moves an
order (amend re-queue, cancel) makes its entry dead and appends a fresh one where needed.
Complexity: append and cancel O(1) (lazy removal; compaction is amortised O(1)); a new or
emptied level costs a binary search plus a memmove of the ranks behind it (C speed, O(levels)
worst case, in practice a few levels since activity is near the top); best is O(1).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Final

from app.engine.model import Order

#: ``best`` of a ladder without levels: below any real rank, so nothing ever crosses it.
EMPTY: Final = -(1 << 62)
#: Threshold of a market order: every real level crosses it.
ANY_PRICE: Final = EMPTY + 1
#: A level is compacted once its entries exceed COMPACT_FACTOR x its live ones + COMPACT_SLACK.
COMPACT_FACTOR: Final = 3
COMPACT_SLACK: Final = 32
_LIVE = attrgetter("remaining")  # an entry is live while it has quantity left


@dataclass(slots=True, eq=False)
class Level:
    """All orders at one price: FIFO ``orders`` with cached live ``total`` quantity and
    ``count``."""

    price: int
    orders: deque[Order]
    total: int
    count: int


class Ladder:
    __slots__ = ("best", "levels", "ranks", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1: rank = price (bids, sell stops); -1: rank = -price
        self.levels: dict[int, Level] = {}
        self.ranks: list[int] = []
        self.best: int = EMPTY

    def add(self, order: Order, price: int) -> None:
        """Append ``order`` at the back of the level at ``price``."""
        rank = price if self.sign > 0 else -price
        level = self.levels.get(rank)
        if level is None:
            self.levels[rank] = Level(price, deque((order,)), order.remaining, 1)
            if rank > self.best:
                self.ranks.append(rank)
                self.best = rank
            else:
                insort(self.ranks, rank)
        else:
            level.orders.append(order)
            level.total += order.remaining
            level.count += 1

    def discard(self, order: Order, price: int) -> bool:
        """Take a live ``order`` out of its level (it becomes a dead entry); return whether
        that level was the best one."""
        rank = price if self.sign > 0 else -price
        level = self.levels[rank]
        level.total -= order.remaining
        order.remaining = 0
        level.count -= 1
        was_best = rank == self.best
        if not level.count:
            self.drop(rank)
        elif len(level.orders) > COMPACT_FACTOR * level.count + COMPACT_SLACK:
            self.compact(level)
        return was_best

    @staticmethod
    def compact(level: Level) -> None:
        """Drop a level's dead entries, called when there are more than twice as many as live
        ones, plus 32 (``COMPACT_*``; the same test is inlined in ``OrderBook._cancel``).
        Memory stays O(live orders); a laxer bound than "dead > live" halves how often a
        level is rescanned, and dead entries near the top are mostly dropped for free by the
        matching loop first."""
        level.orders = deque(filter(_LIVE, level.orders))

    def shrink(self, order: Order, price: int, quantity: int) -> bool:
        """Lower a live order's remaining quantity in place (it keeps its place); return
        whether its level is the best one."""
        rank = price if self.sign > 0 else -price
        self.levels[rank].total -= order.remaining - quantity
        order.remaining = quantity
        return rank == self.best

    def drop(self, rank: int) -> None:
        """Remove a whole level (its live orders must have been accounted for)."""
        del self.levels[rank]
        ranks = self.ranks
        if rank == self.best:
            ranks.pop()
            self.best = ranks[-1] if ranks else EMPTY
        else:
            del ranks[bisect_left(ranks, rank)]

    def orders(self) -> Iterator[Order]:
        """Live orders, best level first, FIFO within a level."""
        levels = self.levels
        for rank in reversed(self.ranks):
            for order in levels[rank].orders:
                if order.remaining:
                    yield order

    def top(self, n: int) -> Iterator[Level]:
        """The ``n`` best levels, best first."""
        levels = self.levels
        for rank in self.ranks[: -n - 1 : -1] if n > 0 else ():
            yield levels[rank]

    def quantity(self) -> int:
        return sum(level.total for level in self.levels.values())
