"""Scenario suite: amend (priority rules, crossing, pending stops) and stops (trigger rule,
trigger order, immediate trigger, cascade)."""

from __future__ import annotations

from app.engine import AmendOrder, CancelOrder, OrderStatus, Reason, TimeInForce
from tests.engine.support import BUY, SELL, Harness, limit, market, stop, stop_limit

IOC, FOK = TimeInForce.IOC, TimeInForce.FOK


def traded_with(out: list[tuple[object, ...]]) -> list[object]:
    return [t[1] for t in out if t[0] == "trade"]


class TestAmend:
    def test_quantity_down_keeps_priority(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100), limit(2, SELL, 10, 100))
        assert h.run(AmendOrder(1, quantity=4)) == [
            ("amended", 1, 100, 4, 1),
            ("top", None, 0, 100, 14),
        ]
        assert traded_with(h.run(market(3, BUY, 5))) == [1, 2]

    def test_quantity_down_behind_the_best_level_leaves_the_top_alone(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100), limit(2, SELL, 10, 101))
        assert h.run(AmendOrder(2, quantity=4)) == [("amended", 2, 101, 4, 2)]

    def test_same_quantity_keeps_priority(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100), limit(2, SELL, 10, 100))
        assert h.run(AmendOrder(1, quantity=10, price=100)) == [("amended", 1, 100, 10, 1)]

    def test_quantity_up_loses_priority(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100), limit(2, SELL, 10, 100))
        assert h.run(AmendOrder(1, quantity=12)) == [
            ("amended", 1, 100, 12, 3),
            ("top", None, 0, 100, 22),
        ]
        assert traded_with(h.run(market(3, BUY, 11))) == [2, 1]

    def test_price_change_loses_priority(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 10, 99), limit(2, BUY, 10, 100))
        h.run(AmendOrder(1, price=100))
        assert h.resting() == [(2, 10), (1, 10)]

    def test_quantity_is_the_new_remaining_quantity(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 10, 100), market(2, BUY, 6))
        assert h.run(AmendOrder(1, quantity=3))[0] == ("amended", 1, 100, 3, 1)
        state = h.book.order(1)
        assert state is not None
        assert (state.remaining, state.filled, state.status) == (3, 6, OrderStatus.PARTIALLY_FILLED)

    def test_price_that_crosses_trades_as_taker(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101, account="x"), limit(2, BUY, 8, 99))
        assert h.run(AmendOrder(2, price=101, timestamp=9)) == [
            ("amended", 2, 101, 8, 3),
            ("trade", 1, 2, 101, 5, 0, 3),
            ("filled", 1),
            ("top", 101, 3, None, 0),
        ]
        state = h.book.order(2)
        assert state is not None
        assert (state.remaining, state.filled, state.priority) == (3, 5, 3)

    def test_crossing_amend_can_fill_completely(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101, account="x"), limit(2, BUY, 5, 99))
        out = h.run(AmendOrder(2, price=102))
        assert out[-2:] == [("filled", 2), ("top", None, 0, None, 0)]

    def test_post_only_amend_that_would_take_is_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 5, 101), limit(2, BUY, 5, 99, post_only=True))
        before = h.book.state_hash()
        assert h.run(AmendOrder(2, price=101)) == [("rejected", 2, Reason.POST_ONLY_WOULD_TAKE)]
        assert h.book.state_hash() == before
        assert h.run(AmendOrder(2, price=100))[0] == ("amended", 2, 100, 5, 3)

    def test_invalid_amends_are_rejected(self) -> None:
        h = Harness()
        h.run(limit(1, BUY, 5, 100), stop(2, BUY, 5, 120), limit(3, SELL, 5, 101, account="x"))
        h.run(market(4, BUY, 5))
        assert h.run(AmendOrder(3, quantity=1)) == [("rejected", 3, Reason.UNKNOWN_ORDER)]
        assert h.run(AmendOrder(9, quantity=1)) == [("rejected", 9, Reason.UNKNOWN_ORDER)]
        assert h.run(AmendOrder(1)) == [("rejected", 1, Reason.INVALID_AMEND)]
        assert h.run(AmendOrder(1, quantity=0)) == [("rejected", 1, Reason.INVALID_QUANTITY)]
        assert h.run(AmendOrder(1, price=0)) == [("rejected", 1, Reason.INVALID_PRICE)]
        assert h.run(AmendOrder(2, price=100)) == [("rejected", 2, Reason.INVALID_PRICE)]

    def test_pending_stop_amends_among_the_stops(self) -> None:
        h = Harness()
        h.run(limit(1, SELL, 20, 105), limit(2, BUY, 1, 100), market(3, SELL, 1))
        h.run(stop_limit(4, BUY, 5, 106, 103), stop_limit(5, BUY, 5, 106, 103))
        assert h.run(AmendOrder(4, quantity=3)) == [("amended", 4, 106, 3, 4)]
        assert h.run(AmendOrder(4, price=107)) == [("amended", 4, 107, 3, 6)]
        state = h.book.order(4)
        assert state is not None
        assert state.status is OrderStatus.PENDING_TRIGGER
        out = h.run(limit(9, BUY, 1, 105, account="x"))  # trades at 105: both stops trigger
        assert [t[1] for t in out if t[0] == "triggered"] == [5, 4]


class TestStops:
    @staticmethod
    def with_last(price: int) -> Harness:
        """A book whose last trade price is ``price`` and which is empty."""
        h = Harness()
        h.run(limit(100, SELL, 1, price, account="mm"), market(101, BUY, 1, account="mm2"))
        assert h.book.last_price == price
        return h

    def test_stop_waits_outside_the_book(self) -> None:
        h = self.with_last(100)
        assert h.run(stop(1, BUY, 5, 102)) == [("accepted", 1, 3)]
        assert h.book.best_bid() is None
        assert h.book.stats().pending_stops == 1

    def test_stop_without_a_last_price_waits(self) -> None:
        h = Harness()
        assert h.run(stop(1, SELL, 5, 100)) == [("accepted", 1, 1)]

    def test_buy_stop_triggers_when_last_reaches_the_trigger(self) -> None:
        h = self.with_last(100)
        h.run(stop(1, BUY, 5, 102), limit(2, SELL, 1, 101, account="mm"))
        h.run(limit(3, SELL, 10, 103, account="mm"))
        assert h.run(market(4, BUY, 1, account="x")) == [
            ("accepted", 4, 6),
            ("trade", 2, 4, 101, 1, 0, 0),
            ("filled", 2),
            ("filled", 4),
            ("top", None, 0, 103, 10),
        ]
        out = h.run(limit(5, SELL, 1, 102, account="mm"), market(6, BUY, 1, account="x"))
        assert out[4:] == [
            ("triggered", 1, 102, 9),
            ("trade", 3, 1, 103, 5, 5, 0),
            ("filled", 1),
            ("top", None, 0, 103, 5),
        ]

    def test_sell_stop_triggers_when_last_falls_to_the_trigger(self) -> None:
        h = self.with_last(100)
        h.run(stop(1, SELL, 5, 98), limit(2, BUY, 10, 97, account="mm"))
        h.run(limit(3, BUY, 1, 98, account="mm"))
        out = h.run(market(4, SELL, 1, account="x"))
        assert out[4:] == [
            ("triggered", 1, 98, 7),
            ("trade", 2, 1, 97, 5, 5, 0),
            ("filled", 1),
            ("top", 97, 5, None, 0),
        ]

    def test_stop_already_crossed_triggers_at_once(self) -> None:
        h = self.with_last(100)
        h.run(limit(1, SELL, 10, 101, account="mm"))
        assert h.run(stop(2, BUY, 4, 99)) == [
            ("accepted", 2, 4),
            ("triggered", 2, 100, 5),
            ("trade", 1, 2, 101, 4, 6, 0),
            ("filled", 2),
            ("top", None, 0, 101, 6),
        ]

    def test_triggered_stop_limit_rests_with_a_new_priority(self) -> None:
        h = self.with_last(100)
        h.run(stop_limit(1, BUY, 5, 100, 100))
        state = h.book.order(1)
        assert state is not None
        assert (state.priority, state.status, state.price) == (4, OrderStatus.OPEN, 100)
        assert h.book.best_bid() == (100, 5)

    def test_triggered_market_stop_without_liquidity_is_cancelled(self) -> None:
        h = self.with_last(100)
        assert h.run(stop(1, SELL, 5, 101))[-1] == ("cancelled", 1, 5, Reason.NO_LIQUIDITY)

    def test_triggered_fok_stop_that_cannot_fill_is_cancelled(self) -> None:
        h = self.with_last(100)
        h.run(limit(1, SELL, 3, 101, account="mm"))
        out = h.run(stop(2, BUY, 5, 100, time_in_force=FOK))
        assert out[-1] == ("cancelled", 2, 5, Reason.FOK_NOT_FILLABLE)
        out = h.run(stop_limit(3, BUY, 3, 101, 100, time_in_force=FOK))
        assert out[-2:] == [("filled", 3), ("top", None, 0, None, 0)]

    def test_triggered_ioc_stop_limit_cancels_the_rest(self) -> None:
        h = self.with_last(100)
        h.run(limit(1, SELL, 3, 101, account="mm"))
        out = h.run(stop_limit(2, BUY, 5, 101, 100, time_in_force=IOC))
        assert out[-2:] == [("cancelled", 2, 2, Reason.IOC_UNFILLED), ("top", None, 0, None, 0)]

    def test_trigger_order_buy_lowest_first_sell_highest_first_ties_by_arrival(self) -> None:
        h = Harness()  # no last price yet: everything waits
        h.run(
            stop_limit(1, BUY, 1, 50, 103),
            stop_limit(2, BUY, 1, 50, 101),
            stop_limit(3, BUY, 1, 50, 101),
            stop_limit(4, SELL, 1, 500, 98),
            stop_limit(5, SELL, 1, 500, 99),
            stop_limit(6, SELL, 1, 500, 98),
            stop_limit(7, BUY, 1, 50, 120),
            stop_limit(8, SELL, 1, 500, 80),
        )
        h.run(limit(10, SELL, 1, 95, account="mm"), limit(11, SELL, 1, 105, account="mm"))
        out = h.run(market(12, BUY, 2, account="x"))  # trades at 95 and 105
        assert [t[1] for t in out if t[0] == "triggered"] == [2, 3, 1, 5, 4, 6]
        assert h.resting() == [(7, 1), (8, 1), (2, 1), (3, 1), (1, 1), (5, 1), (4, 1), (6, 1)]

    def test_cascade_runs_triggered_stops_one_after_another(self) -> None:
        h = self.with_last(100)
        h.run(
            limit(1, SELL, 1, 101, account="mm"),
            limit(2, SELL, 1, 102, account="mm"),
            limit(3, SELL, 1, 103, account="mm"),
            stop(4, BUY, 1, 101),
            stop(5, BUY, 1, 102),
        )
        out = h.run(market(6, BUY, 1, account="x"))
        assert [(t[0], t[1]) for t in out if t[0] in ("trade", "triggered")] == [
            ("trade", 1),
            ("triggered", 4),
            ("trade", 2),
            ("triggered", 5),
            ("trade", 3),
        ]
        assert h.book.last_price == 103
        assert len(h.book) == 0

    def test_many_stops_at_one_trigger_cancelled_keep_arrival_order(self) -> None:
        h = self.with_last(100)
        h.run(*(stop(i, SELL, 1, 90) for i in range(1, 61)))
        h.run(*(CancelOrder(i) for i in range(1, 61) if i % 5))
        h.run(limit(70, BUY, 50, 90, account="mm"))
        out = h.run(market(71, SELL, 1, account="x"))
        assert [t[1] for t in out if t[0] == "triggered"] == list(range(5, 61, 5))

    def test_stop_removed_before_it_triggers(self) -> None:
        h = self.with_last(100)
        h.run(stop(1, BUY, 1, 101), stop(2, BUY, 1, 101), CancelOrder(1))
        h.run(limit(3, SELL, 5, 101, account="mm"))
        out = h.run(market(4, BUY, 1, account="x"))
        assert [t[1] for t in out if t[0] == "triggered"] == [2]
