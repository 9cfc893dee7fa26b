"""Weighted-average positions, worked by hand (prices in ticks, quantities in lots)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from app.services.positions.ledger import AccountFill, Position, apply_fill, replay

DAY = 740_000


def fill(p: Position, side: str, quantity: int, price: int, day: int = DAY) -> Position:
    apply_fill(p, buy=side == "buy", quantity=quantity, price=price, day=day, trade_id=1, ts_ns=1)
    return p


class TestWeightedAverage:
    def test_adding_averages_the_open_price(self) -> None:
        p = fill(fill(Position("a", 1), "buy", 10, 100), "buy", 10, 110)
        assert (p.net, p.open_value, p.realised) == (20, 2100, 0)
        assert p.unrealised(120) == 20 * 120 - 2100 == 300

    def test_long_to_short_and_back(self) -> None:
        p = Position("a", 1)
        fill(p, "buy", 10, 100)
        fill(p, "buy", 10, 110)  # long 20 at 105
        fill(p, "sell", 5, 120)  # closes 5: +5 x 15
        assert (p.net, p.open_value, p.realised) == (15, 1575, 75)
        fill(p, "sell", 25, 90)  # closes 15 at -15 each, then short 10 at 90
        assert (p.net, p.open_value, p.realised) == (-10, 900, 75 - 225)
        assert p.unrealised(80) == 100  # short 10 from 90 to 80
        fill(p, "buy", 4, 95)  # closes 4 of the short at -5 each
        assert (p.net, p.open_value, p.realised) == (-6, 540, -170)
        fill(p, "buy", 10, 85)  # closes 6 at +5 each, then long 4 at 85
        assert (p.net, p.open_value, p.realised) == (4, 340, -140)
        assert (p.buy_quantity, p.buy_value, p.sell_quantity, p.sell_value) == (
            34, 3330, 30, 2850,
        )  # fmt: skip

    def test_a_short_opened_first(self) -> None:
        p = fill(fill(Position("a", 1), "sell", 3, 50), "buy", 3, 40)
        assert (p.net, p.open_value, p.realised, p.unrealised(10)) == (0, 0, 30, 0)

    def test_the_closed_share_of_the_cost_is_rounded_half_up(self) -> None:
        p = Position("a", 1)
        for price in (10, 10, 11):
            fill(p, "buy", 1, price)  # 3 at 10 1/3
        fill(p, "sell", 1, 12)  # exactly +1 2/3; the cost left 20 2/3 -> 21
        assert (p.open_value, p.realised) == (21, 2)

    def test_day_and_overnight(self) -> None:
        p = fill(Position("a", 1), "buy", 10, 100, day=DAY)
        fill(p, "sell", 4, 105, day=DAY + 1)
        assert (p.overnight, p.day_buy_quantity, p.day_sell_quantity) == (10, 0, 4)
        assert p.day_sell_value == 420
        later = p.on_day(DAY + 3)
        assert (later.overnight, later.day_sell_quantity, later.net) == (6, 0, 6)
        assert p.on_day(DAY + 1) is p


fills = st.lists(st.tuples(st.booleans(), st.integers(1, 50), st.integers(1, 1000)), max_size=60)


class TestProperties:
    @given(fills)
    def test_realised_is_exact_weighted_average_within_rounding(
        self, steps: list[tuple[bool, int, int]]
    ) -> None:
        """Against exact rationals: the realised P&L differs by at most half a tick x lot
        per closing fill (the rounding of the closed share of the cost)."""
        p = Position("a", 1)
        net, average, realised, closings = 0, Fraction(0), Fraction(0), 0
        for buy, quantity, price in steps:
            fill(p, "buy" if buy else "sell", quantity, price)
            signed = quantity if buy else -quantity
            if net == 0 or (net > 0) == buy:
                average = (average * abs(net) + price * quantity) / (abs(net) + quantity)
            else:
                closing = min(quantity, abs(net))
                realised += closing * (price - average) * (1 if net > 0 else -1)
                closings += 1
                if quantity > closing:
                    average = Fraction(price)
            net += signed
            if net == 0:
                average = Fraction(0)
        assert p.net == net
        assert abs(p.realised - realised) <= Fraction(closings, 2)
        total = p.sell_value - p.buy_value + p.net * 500
        assert p.realised + p.unrealised(500) == total

    @given(fills)
    def test_replay_equals_fill_by_fill(self, steps: list[tuple[bool, int, int]]) -> None:
        p = Position("a", 7)
        history = []
        for buy, quantity, price in steps:
            fill(p, "buy" if buy else "sell", quantity, price)
            history.append(AccountFill("a", 7, buy, quantity, price, DAY, 1, 1))
        replayed = replay(history).get(("a", 7), Position("a", 7))
        assert replayed == p
