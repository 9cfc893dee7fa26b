"""Scenario suite: limit and market orders, time in force, post-only, self-trade prevention,
cancels, events. Every command goes through ``Harness``, which checks the book's invariants."""

from __future__ import annotations

import pytest

from app.engine import (
    MAX_PRICE,
    AmendOrder,
    CancelOrder,
    ExpireDay,
    NewOrder,
    OrderType,
    Reason,
    SelfTradePrevention,
    Sequencer,
    TimeInForce,
    Trade,
)
from tests.engine.support import BUY, SELL, Harness, limit, market, stop

IOC, FOK, DAY = TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY
STP = SelfTradePrevention


class TestLimitOrders:
    def test_resting_order_is_accepted_and_moves_the_top(self) -> None:
        h = Harness()
        assert h.run(limit(1, BUY, 10, 100)) == [("accepted", 1, 1), ("top", 100, 10, None, 0)]

    def test_order_behind_the_best_level_leaves_the_top_alone(self) -> None:
        h = Harness()
        assert h.run(limit(1, BUY, 10, 100), limit(2, BUY, 5, 99)) == [("accepted", 2, 2)]
        assert h.run(limit(3, SELL, 5, 102), limit(4, SELL, 5, 103)) == [("accepted", 4, 4)]

    def test_joining_the_best_level_reports_its_new_size(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100))
        assert h.run(limit(2, SELL, 5, 100)) == [("accepted", 2, 2), ("top", None, 0, 100, 15)]

    def test_crossing_order_trades_at_the_maker_price(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 101))
        assert h.run(limit(2, BUY, 4, 102, account="bob")) == [
            ("accepted", 2, 2),
            ("trade", 1, 2, 101, 4, 6, 0),
            ("filled", 2),
            ("top", None, 0, 101, 6),
        ]

    def test_fifo_within_a_level(self) -> None:
        h = Harness()
        h.run(*(limit(i, SELL, 5, 100) for i in (1, 2, 3)))
        out = h.run(limit(4, BUY, 12, 100, account="bob"))
        assert [t[1:5] for t in out if t[0] == "trade"] == [
            (1, 4, 100, 5),
            (2, 4, 100, 5),
            (3, 4, 100, 2),
        ]
        assert h.resting() == [(3, 3)]

    def test_taker_filled_exactly_by_the_first_of_several_makers(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 100))
        assert h.run(limit(3, BUY, 5, 100, account="bob")) == [
            ("accepted", 3, 3),
            ("trade", 1, 3, 100, 5, 0, 0),
            ("filled", 1),
            ("filled", 3),
            ("top", None, 0, 100, 5),
        ]

    def test_price_beats_time(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101), limit(2, SELL, 5, 100))
        out = h.run(limit(3, BUY, 5, 101, account="bob"))
        assert out[1] == ("trade", 2, 3, 100, 5, 0, 0)

    def test_sweeps_levels_and_rests_the_remainder(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 101), limit(3, SELL, 5, 103))
        assert h.run(limit(4, BUY, 12, 101, account="bob")) == [
            ("accepted", 4, 4),
            ("trade", 1, 4, 100, 5, 0, 7),
            ("filled", 1),
            ("trade", 2, 4, 101, 5, 0, 2),
            ("filled", 2),
            ("top", 101, 2, 103, 5),
        ]
        assert h.book.order(4) is not None
        assert h.book.order(4).filled == 10  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("cmd", "reason"),
        [
            (limit(1, BUY, 0, 100), Reason.INVALID_QUANTITY),
            (limit(1, BUY, -3, 100), Reason.INVALID_QUANTITY),
            (limit(1, BUY, 5, 0), Reason.INVALID_PRICE),
            (limit(1, BUY, 5, MAX_PRICE + 1), Reason.INVALID_PRICE),
            (NewOrder(1, "a", BUY, OrderType.LIMIT, 5), Reason.INVALID_PRICE),
            (NewOrder(1, "a", BUY, OrderType.LIMIT, 5, 100, 99), Reason.INVALID_TRIGGER_PRICE),
            (NewOrder(1, "a", BUY, OrderType.MARKET, 5, 100), Reason.INVALID_PRICE),
            (NewOrder(1, "a", BUY, OrderType.MARKET, 5, None, 9), Reason.INVALID_TRIGGER_PRICE),
            (NewOrder(1, "a", BUY, OrderType.STOP, 5, None, None), Reason.INVALID_TRIGGER_PRICE),
            (NewOrder(1, "a", BUY, OrderType.STOP, 5, None, -1), Reason.INVALID_TRIGGER_PRICE),
            (NewOrder(1, "a", BUY, OrderType.STOP, 5, 100, 100), Reason.INVALID_PRICE),
            (NewOrder(1, "a", BUY, OrderType.STOP_LIMIT, 5, None, 100), Reason.INVALID_PRICE),
            (limit(1, BUY, 5, 100, post_only=True, time_in_force=IOC), Reason.INVALID_POST_ONLY),
            (limit(1, BUY, 5, 100, post_only=True, time_in_force=FOK), Reason.INVALID_POST_ONLY),
            (market(1, BUY, 5, post_only=True), Reason.INVALID_POST_ONLY),
            (stop(1, BUY, 5, 100, post_only=True), Reason.INVALID_POST_ONLY),
        ],
    )
    def test_malformed_orders_are_rejected(self, cmd: NewOrder, reason: str) -> None:
        h = Harness()
        h.run(limit(50, SELL, 5, 200))
        before = h.book.state_hash()
        assert h.run(cmd) == [("rejected", 1, reason)]
        assert h.book.state_hash() == before

    def test_duplicate_live_order_id_is_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100), stop(2, BUY, 5, 120))
        assert h.run(limit(1, BUY, 5, 100)) == [("rejected", 1, Reason.DUPLICATE_ORDER_ID)]
        assert h.run(limit(2, BUY, 5, 100)) == [("rejected", 2, Reason.DUPLICATE_ORDER_ID)]

    def test_order_id_of_a_done_order_can_be_reused(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100), CancelOrder(1))
        assert h.run(limit(1, BUY, 5, 100))[0] == ("accepted", 1, 2)


class TestMarketOrders:
    def test_market_order_sweeps_and_cancels_what_is_left(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 105))
        assert h.run(market(3, BUY, 12)) == [
            ("accepted", 3, 3),
            ("trade", 1, 3, 100, 5, 0, 7),
            ("filled", 1),
            ("trade", 2, 3, 105, 5, 0, 2),
            ("filled", 2),
            ("cancelled", 3, 2, Reason.NO_LIQUIDITY),
            ("top", None, 0, None, 0),
        ]
        assert len(h.book) == 0

    def test_market_order_against_an_empty_side_is_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100))
        assert h.run(market(2, BUY, 5)) == [("rejected", 2, Reason.NO_LIQUIDITY)]

    def test_market_order_fills_completely(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100))
        assert h.run(market(2, SELL, 3)) == [
            ("accepted", 2, 2),
            ("trade", 1, 2, 100, 3, 2, 0),
            ("filled", 2),
            ("top", 100, 2, None, 0),
        ]


class TestTimeInForce:
    def test_ioc_cancels_the_unfilled_part(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100))
        out = h.run(limit(2, BUY, 8, 101, account="bob", time_in_force=IOC))
        assert out[-2:] == [("cancelled", 2, 3, Reason.IOC_UNFILLED), ("top", None, 0, None, 0)]

    def test_ioc_that_does_not_cross_is_accepted_then_cancelled(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100))
        out = h.run(limit(2, BUY, 8, 99, time_in_force=IOC))
        assert out == [("accepted", 2, 2), ("cancelled", 2, 8, Reason.IOC_UNFILLED)]

    def test_fok_fills_completely(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 101))
        out = h.run(limit(3, BUY, 8, 101, account="bob", time_in_force=FOK))
        assert [t[0] for t in out] == ["accepted", "trade", "filled", "trade", "filled", "top"]

    @pytest.mark.parametrize("price", [101, 100, 99])
    def test_fok_that_cannot_fill_is_rejected_without_side_effects(self, price: int) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 101), limit(3, SELL, 5, 102))
        before, seq = h.book.state_hash(), h.book.sequencer.last
        out = h.run(limit(4, BUY, 11, price, account="bob", time_in_force=FOK))
        assert out == [("rejected", 4, Reason.FOK_NOT_FILLABLE)]
        assert h.book.state_hash() == before
        assert h.book.sequencer.last == seq + 1

    def test_fok_market_order(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100))
        assert h.run(market(2, BUY, 6, time_in_force=FOK)) == [
            ("rejected", 2, Reason.FOK_NOT_FILLABLE)
        ]
        assert h.run(market(3, BUY, 5, time_in_force=FOK))[1][0] == "trade"

    def test_expire_day_removes_day_orders_only(self) -> None:
        h = Harness()
        h.run(
            limit(1, BUY, 5, 100, time_in_force=DAY),
            limit(2, BUY, 5, 100),
            limit(3, SELL, 5, 110, time_in_force=DAY),
            stop(4, SELL, 5, 90, time_in_force=DAY),
            stop(5, SELL, 5, 90),
        )
        assert h.run(ExpireDay(timestamp=99)) == [
            ("expired", 1, 5),
            ("expired", 3, 5),
            ("expired", 4, 5),
            ("top", 100, 5, None, 0),
        ]
        assert h.resting() == [(2, 5), (5, 5)]
        assert h.book.expire_day(100) == []

    def test_expire_day_of_some_orders_only(self) -> None:
        """The service expires the DAY orders placed before the close that passed."""
        h = Harness()
        h.run(
            limit(1, BUY, 5, 100, time_in_force=DAY),
            limit(2, BUY, 5, 101, time_in_force=DAY),
            stop(3, SELL, 5, 90, time_in_force=DAY),
        )
        assert h.run(ExpireDay(timestamp=99, order_ids=frozenset({2, 3}))) == [
            ("expired", 2, 5),
            ("expired", 3, 5),
            ("top", 100, 5, None, 0),
        ]
        assert h.resting() == [(1, 5)]
        h.book.check_invariants()

    def test_expire_day_on_the_book(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100, time_in_force=DAY), limit(2, BUY, 5, 99, time_in_force=DAY))
        assert [type(e).__name__ for e in h.book.expire_day(5)] == [
            "OrderExpired",
            "OrderExpired",
            "TopOfBookChanged",
        ]
        h.book.check_invariants()


class TestPostOnly:
    def test_post_only_order_rests(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101))
        assert h.run(limit(2, BUY, 5, 100, post_only=True))[0] == ("accepted", 2, 2)

    def test_post_only_order_that_would_take_is_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101))
        before = h.book.state_hash()
        out = h.run(limit(2, BUY, 5, 101, post_only=True))
        assert out == [("rejected", 2, Reason.POST_ONLY_WOULD_TAKE)]
        assert h.book.state_hash() == before


class TestSelfTradePrevention:
    def test_cancel_newest_is_the_default_and_cancels_the_taker(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"))
        assert h.run(limit(2, BUY, 3, 100, account="al")) == [
            ("accepted", 2, 2),
            ("cancelled", 2, 3, Reason.SELF_TRADE_PREVENTION),
        ]
        assert h.resting() == [(1, 5)]

    def test_cancel_newest_after_trading_with_others(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 2, 100, account="x"), limit(2, SELL, 5, 100, account="al"))
        assert h.run(limit(3, BUY, 6, 100, account="al")) == [
            ("accepted", 3, 3),
            ("trade", 1, 3, 100, 2, 0, 4),
            ("filled", 1),
            ("cancelled", 3, 4, Reason.SELF_TRADE_PREVENTION),
            ("top", None, 0, 100, 5),
        ]
        assert h.book.stats().traded_volume == 2

    def test_cancel_oldest_cancels_the_resting_order_and_keeps_matching(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"), limit(2, SELL, 5, 100, account="x"))
        out = h.run(limit(3, BUY, 8, 100, account="al", stp=STP.CANCEL_OLDEST))
        assert out == [
            ("accepted", 3, 3),
            ("cancelled", 1, 5, Reason.SELF_TRADE_PREVENTION),
            ("trade", 2, 3, 100, 5, 0, 3),
            ("filled", 2),
            ("top", 100, 3, None, 0),
        ]

    def test_cancel_oldest_can_empty_a_level(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"), limit(2, SELL, 5, 101, account="x"))
        out = h.run(market(3, BUY, 2, account="al", stp=STP.CANCEL_OLDEST))
        assert out[1:3] == [
            ("cancelled", 1, 5, Reason.SELF_TRADE_PREVENTION),
            ("trade", 2, 3, 101, 2, 3, 0),
        ]

    def test_cancel_both(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"), limit(2, SELL, 5, 100, account="x"))
        assert h.run(limit(3, BUY, 8, 100, account="al", stp=STP.CANCEL_BOTH)) == [
            ("accepted", 3, 3),
            ("cancelled", 1, 5, Reason.SELF_TRADE_PREVENTION),
            ("cancelled", 3, 8, Reason.SELF_TRADE_PREVENTION),
            ("top", None, 0, 100, 5),
        ]

    def test_cancel_both_on_the_last_order_of_a_level(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"))
        out = h.run(limit(2, BUY, 8, 100, account="al", stp=STP.CANCEL_BOTH))
        assert out[-1] == ("top", None, 0, None, 0)
        assert len(h.book) == 0

    def test_none_lets_an_account_trade_with_itself(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al"))
        out = h.run(limit(2, BUY, 5, 100, account="al", stp=STP.NONE))
        assert out[1] == ("trade", 1, 2, 100, 5, 0, 0)

    def test_the_taker_mode_decides(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="al", stp=STP.CANCEL_BOTH))
        assert h.run(limit(2, BUY, 5, 100, account="al", stp=STP.NONE))[1][0] == "trade"

    def test_fok_counts_own_liquidity_only_when_it_would_trade(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100, account="x"), limit(2, SELL, 5, 100, account="al"))
        h.run(limit(3, SELL, 5, 101, account="x"))
        before = h.book.state_hash()
        fok = {"account": "al", "time_in_force": FOK}
        # cancel_newest: the walk stops at the own order after 5 lots.
        assert h.run(limit(4, BUY, 6, 101, **fok)) == [("rejected", 4, Reason.FOK_NOT_FILLABLE)]
        assert h.run(limit(4, BUY, 6, 101, stp=STP.CANCEL_BOTH, **fok))[0][0] == "rejected"
        # cancel_oldest: own orders are skipped (10 other lots reachable), nothing is cancelled
        # when the FOK is refused...
        assert h.run(limit(4, BUY, 11, 101, stp=STP.CANCEL_OLDEST, **fok))[0][0] == "rejected"
        assert h.book.state_hash() == before
        # ... and the own order is cancelled when it executes.
        out = h.run(limit(5, BUY, 10, 101, stp=STP.CANCEL_OLDEST, **fok))
        assert ("cancelled", 2, 5, Reason.SELF_TRADE_PREVENTION) in out
        assert ("filled", 5) in out
        # cancelled orders left in a level are skipped by the walk.
        h.run(limit(8, SELL, 5, 101, account="x"), limit(10, SELL, 5, 101, account="x"))
        h.run(CancelOrder(8))
        assert h.run(limit(9, BUY, 5, 101, **fok))[1] == ("trade", 10, 9, 101, 5, 0, 0)
        # none: own liquidity counts.
        h.run(limit(6, SELL, 5, 102, account="al"))
        assert h.run(limit(7, BUY, 5, 102, stp=STP.NONE, **fok))[1][0] == "trade"


class TestCancel:
    def test_cancel_resting_order(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100), limit(2, BUY, 5, 99))
        assert h.run(CancelOrder(1, timestamp=3)) == [
            ("cancelled", 1, 5, Reason.USER_CANCELLED),
            ("top", 99, 5, None, 0),
        ]
        assert h.run(CancelOrder(2)) == [
            ("cancelled", 2, 5, Reason.USER_CANCELLED),
            ("top", None, 0, None, 0),
        ]

    def test_cancel_behind_the_best_level_leaves_the_top_alone(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 5, 101), limit(3, SELL, 5, 101))
        assert h.run(CancelOrder(2)) == [("cancelled", 2, 5, Reason.USER_CANCELLED)]
        assert h.run(CancelOrder(3)) == [("cancelled", 3, 5, Reason.USER_CANCELLED)]

    def test_cancel_one_of_several_at_the_best_level(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 100), limit(2, SELL, 4, 100))
        assert h.run(CancelOrder(1))[-1] == ("top", None, 0, 100, 4)

    def test_cancel_pending_stop(self) -> None:
        h = Harness()
        h.run(stop(1, BUY, 5, 120))
        assert h.run(CancelOrder(1)) == [("cancelled", 1, 5, Reason.USER_CANCELLED)]
        assert len(h.book) == 0

    def test_cancel_unknown_or_done_order_is_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100), CancelOrder(1))
        assert h.run(CancelOrder(1)) == [("rejected", 1, Reason.UNKNOWN_ORDER)]
        assert h.run(CancelOrder(42)) == [("rejected", 42, Reason.UNKNOWN_ORDER)]

    @pytest.mark.parametrize("price", [100, 102])
    def test_many_cancels_keep_fifo(self, price: int) -> None:
        """Cancelled entries are dropped lazily and compacted, at the best level or behind it."""
        h = Harness()
        h.run(limit(499, SELL, 1, 101))
        h.run(*(limit(i, SELL, 1, price) for i in range(1, 201)))
        h.run(limit(500, SELL, 1, price))
        kept = [i for i in range(1, 201) if i % 7 == 0]
        h.run(*(CancelOrder(i) for i in range(1, 201) if i % 7))
        h.run(CancelOrder(499))
        out = h.run(market(900, BUY, len(kept) + 1))
        assert [t[1] for t in out if t[0] == "trade"] == [*kept, 500]

    def test_many_amends_away_keep_fifo(self) -> None:
        """Entries left behind by re-queued orders are compacted too."""
        h = Harness()
        h.run(*(limit(i, SELL, 1, 102) for i in range(1, 201)))
        moved = [i for i in range(1, 201) if i % 7]
        h.run(*(AmendOrder(i, price=103) for i in moved))
        assert len(h.book._asks.levels[-102].orders) < 200  # compacted
        out = h.run(market(900, BUY, 200))
        kept = [i for i in range(1, 201) if i % 7 == 0]
        assert [t[1] for t in out if t[0] == "trade"] == [*kept, *moved]


class TestEvents:
    def test_a_shared_sequencer_orders_events_across_books(self) -> None:
        seq = Sequencer()
        a, b = Harness(seq, "A"), Harness(seq, "B")
        e1 = a.submit(limit(1, BUY, 5, 100))
        e2 = b.submit(limit(1, BUY, 5, 100))
        e3 = a.submit(limit(2, SELL, 5, 100, account="x"))
        seqs = [e.seq for e in e1 + e2 + e3]
        assert seqs == list(range(1, len(seqs) + 1))
        assert seq.next() == len(seqs) + 1

    def test_trade_id_is_the_event_sequence_number(self) -> None:
        h = Harness(Sequencer(1000))
        h.submit(limit(1, BUY, 5, 100))
        trade = next(e for e in h.submit(market(2, SELL, 5)) if isinstance(e, Trade))
        assert trade.trade_id == trade.seq > 1000
        assert (trade.maker_account, trade.taker_account, trade.taker_side) == (
            "alice",
            "bob",
            SELL,
        )

    def test_submit_refuses_what_is_not_a_command(self) -> None:
        with pytest.raises(TypeError):
            Harness().book.submit("cancel everything")  # type: ignore[arg-type]
