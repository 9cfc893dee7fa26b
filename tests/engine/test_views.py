"""Queries, statistics, snapshot/restore/hash, and the invariant checker itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from app.engine import (
    BookSnapshot,
    CancelOrder,
    Depth,
    DepthLevel,
    InvariantError,
    OrderBook,
    OrderStatus,
    OrderType,
    Sequencer,
    empty_book_hash,
)
from app.engine.views import BookViews
from tests.engine.reference import as_tuples
from tests.engine.support import BUY, SELL, Harness, limit, market, stop, stop_limit


def busy_book() -> Harness:
    h = Harness()
    h.run(
        limit(1, BUY, 5, 99),
        limit(2, BUY, 7, 100),
        limit(3, BUY, 1, 100),
        limit(4, SELL, 4, 102),
        limit(5, SELL, 6, 104),
        market(6, SELL, 2, account="x"),  # last price 100
        stop(7, SELL, 3, 95),
        stop_limit(8, BUY, 2, 110, 105),
        CancelOrder(1),
        limit(9, BUY, 8, 98),
    )
    return h


class TestQueries:
    def test_best_prices_and_sizes(self) -> None:
        h = busy_book()
        assert h.book.best_bid() == (100, 6)
        assert h.book.best_ask() == (102, 4)
        assert Harness().book.best_bid() is None

    def test_depth_is_aggregated_best_first(self) -> None:
        book = busy_book().book
        assert book.depth(1) == Depth([DepthLevel(100, 6, 2)], [DepthLevel(102, 4, 1)])
        assert book.depth(5).bids == [DepthLevel(100, 6, 2), DepthLevel(98, 8, 1)]
        assert book.depth(5).asks == [DepthLevel(102, 4, 1), DepthLevel(104, 6, 1)]
        assert book.depth(0) == Depth([], [])

    def test_order_lookup(self) -> None:
        book = busy_book().book
        two = book.order(2)
        assert two is not None
        assert (two.remaining, two.filled, two.price, two.side) == (5, 2, 100, BUY)
        assert (two.priority, two.status, two.order_type) == (
            2,
            OrderStatus.PARTIALLY_FILLED,
            OrderType.LIMIT,
        )
        seven = book.order(7)
        assert seven is not None
        assert (seven.price, seven.trigger_price, seven.status) == (
            None,
            95,
            OrderStatus.PENDING_TRIGGER,
        )
        nine = book.order(9)
        assert nine is not None
        assert nine.status is OrderStatus.OPEN
        assert book.order(1) is None
        assert book.order(6) is None

    def test_counts_and_stats(self) -> None:
        book = busy_book().book
        assert len(book) == 7
        assert 7 in book
        assert 1 not in book
        stats = book.stats()
        assert (stats.orders, stats.pending_stops) == (5, 2)
        assert (stats.bid_levels, stats.ask_levels) == (2, 2)
        assert (stats.bid_quantity, stats.ask_quantity) == (14, 10)
        assert (stats.traded_volume, stats.trade_count, stats.last_price) == (2, 1, 100)


class TestSnapshot:
    def test_snapshot_lists_live_orders_in_priority_order(self) -> None:
        snap = busy_book().book.snapshot()
        assert [s.order_id for s in snap.orders] == [2, 3, 4, 5, 7, 8, 9]
        assert [s.pending for s in snap.orders] == [False] * 4 + [True, True, False]
        assert (snap.last_price, snap.priority, snap.traded_volume, snap.trade_count) == (
            100,
            9,
            2,
            1,
        )

    def test_restore_rebuilds_an_identical_book(self) -> None:
        h = busy_book()
        snap = h.book.snapshot()
        copy = OrderBook.restore(h.book.instrument_id, snap, Sequencer(h.book.sequencer.last))
        assert copy.state_hash() == h.book.state_hash()
        assert copy.snapshot() == snap
        assert copy.stats() == h.book.stats()
        later = [limit(20, BUY, 3, 100), market(21, SELL, 20, account="x"), limit(22, BUY, 1, 1)]
        for cmd in later:
            assert as_tuples(copy.submit(cmd)) == h.run(cmd)
            copy.check_invariants()
        assert copy.state_hash() == h.book.state_hash()

    def test_restore_continues_the_priority_counter(self) -> None:
        snap = busy_book().book.snapshot()
        snap.priority = 0  # the journal may only know the orders' priorities
        copy = OrderBook.restore(7, snap)
        events = copy.submit(limit(30, BUY, 1, 50))
        assert as_tuples(events)[0] == ("accepted", 30, 10)

    def test_restore_accepts_orders_in_any_order(self) -> None:
        h = busy_book()
        snap = h.book.snapshot()
        shuffled = replace(snap, orders=list(reversed(snap.orders)))
        assert OrderBook.restore(7, shuffled).state_hash() == h.book.state_hash()

    def test_hash_ignores_how_the_book_was_built(self) -> None:
        a, b = Harness(), Harness()
        a.run(limit(1, BUY, 5, 100), limit(2, BUY, 9, 100), CancelOrder(2), limit(3, SELL, 4, 105))
        a.run(stop(4, BUY, 1, 200), CancelOrder(4))
        b.run(limit(1, BUY, 5, 100), limit(3, SELL, 4, 105))
        assert a.book.state_hash() == b.book.state_hash()
        b.run(limit(5, BUY, 1, 90))
        assert a.book.state_hash() != b.book.state_hash()

    def test_empty_book_hash_is_a_book_without_orders_or_trades(self) -> None:
        h = Harness()
        assert h.book.state_hash() == empty_book_hash(7)
        h.run(limit(1, BUY, 5, 100), stop(2, SELL, 1, 90), CancelOrder(1), CancelOrder(2))
        assert h.book.state_hash() == empty_book_hash(7)
        assert empty_book_hash(8) != empty_book_hash(7)

    def test_hash_sees_remaining_quantity_and_last_price(self) -> None:
        a, b = Harness(), Harness()
        a.run(limit(1, BUY, 5, 100))
        b.run(limit(1, BUY, 6, 100))
        assert a.book.state_hash() != b.book.state_hash()
        c = Harness()
        c.run(limit(7, SELL, 1, 100, account="x"), market(8, BUY, 1), limit(1, BUY, 5, 100))
        assert c.book.state_hash() != a.book.state_hash()
        assert len(a.book.state_hash()) == 64

    @pytest.mark.parametrize(
        "damage",
        [
            lambda s: s.orders.append(s.orders[0]),
            lambda s: s.orders.append(replace(s.orders[0], order_id=99, remaining=0)),
            lambda s: s.orders.append(replace(s.orders[0], order_id=99, price=None)),
            lambda s: s.orders.append(replace(s.orders[4], order_id=99, trigger_price=None)),
            lambda s: s.orders.append(replace(s.orders[0], order_id=99, price=200)),
        ],
    )
    def test_restore_refuses_a_broken_snapshot(
        self, damage: Callable[[BookSnapshot], None]
    ) -> None:
        snap = busy_book().book.snapshot()
        damage(snap)
        with pytest.raises(InvariantError):
            OrderBook.restore(7, snap)


def _corruptions() -> list[Callable[[BookViews], None]]:
    def bids(b: BookViews) -> dict[int, object]:
        return b._bids.levels  # type: ignore[return-value]

    return [
        lambda b: b._bids.ranks.reverse(),
        lambda b: b._bids.ranks.append(1),
        lambda b: setattr(b._bids, "best", 98),
        lambda b: setattr(b._bids.levels[100], "price", 101),
        lambda b: setattr(b._bids.levels[100], "count", 5),
        lambda b: setattr(b._bids.levels[100], "total", 1),
        lambda b: b._bids.levels[100].orders.reverse(),
        lambda b: b._orders.pop(2),
        lambda b: setattr(b._orders[2], "side", SELL),
        lambda b: setattr(b._orders[2], "price", 98),
        lambda b: b._orders.update({77: b._orders[2]}),
        lambda b: setattr(b._asks, "best", -99),
        lambda b: setattr(b, "_last", 95),
        lambda b: setattr(b, "_last", 105),
        lambda b: setattr(b, "_top", (None, 0, None, 0)),
        lambda b: b._queue.append(b._orders[2]),
        lambda b: setattr(b, "_priority", 1),
        lambda b: bids(b).clear(),
    ]


class TestInvariants:
    @pytest.mark.parametrize("corrupt", _corruptions())
    def test_checker_detects_corruption(self, corrupt: Callable[[BookViews], None]) -> None:
        book = busy_book().book
        book.check_invariants()
        corrupt(book)
        with pytest.raises(InvariantError):
            book.check_invariants()

    def test_crossed_book_is_detected(self) -> None:
        book = busy_book().book
        book._asks.levels[-102].price = 99
        book._asks.levels[-99] = book._asks.levels.pop(-102)
        book._asks.ranks[:] = sorted(book._asks.levels)
        book._asks.best = book._asks.ranks[-1]
        for o in book._asks.levels[-99].orders:
            o.price = 99
        book._top = book._current_top()
        with pytest.raises(InvariantError, match="crossed"):
            book.check_invariants()
