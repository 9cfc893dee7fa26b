"""Tick state from committed journal units: trades, depth, day rollover, rendering, modes."""

from __future__ import annotations

from app.engine import (
    BookSnapshot,
    OrderState,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TopOfBookChanged,
    Trade,
)
from app.services.orders.journal import JournalUnit
from app.services.ticker.ticks import (
    NS_PER_DAY,
    DepthIndex,
    InstrumentTicks,
    Mode,
    TickState,
    render,
    view,
)
from app.store.journal import OrderRow
from app.store.ticker import DayStats
from tests.services.ticker.support import INFY

DAY = 20_412 * NS_PER_DAY  # 2025-11-20 00:00 UTC


def a_trade(seq: int, ts: int, price: int, quantity: int) -> Trade:
    return Trade(seq, ts, price, quantity, 1, 2, "a", "b", Side.BUY, 0, 0)


def row(
    order_id: int, side: str, price: int | None, remaining: int, status: str = "open"
) -> OrderRow:
    return OrderRow(
        order_id=order_id,
        account="a",
        client_order_id=None,
        batch_id=None,
        instrument_token=INFY.instrument_token,
        side=side,
        order_type="limit",
        time_in_force="GTC",
        post_only=False,
        stp="cancel_newest",
        price=price,
        trigger_price=None,
        quantity=remaining,
        filled=0,
        remaining=remaining,
        status=status,
        priority=order_id,
        reason=None,
        created_ns=DAY + order_id,
        updated_ns=DAY + order_id,
        last_seq=order_id,
        product=None,
        validity=None,
        validity_ttl=None,
        tag=None,
    )


class TestInstrumentTicks:
    def test_trades_make_the_days_ohlc_and_volume(self) -> None:
        state = InstrumentTicks(1)
        for seq, (price, quantity) in enumerate([(100, 2), (105, 1), (98, 3), (101, 1)], 1):
            state.trade(a_trade(seq, DAY + seq, price, quantity))
        assert (state.open, state.high, state.low, state.ltp) == (100, 105, 98, 101)
        assert (state.volume, state.trades, state.last_quantity) == (7, 4, 1)
        assert state.last_trade_ns == state.changed_ns == DAY + 4

    def test_the_first_trade_of_a_new_day_starts_it_afresh(self) -> None:
        state = InstrumentTicks(1)
        state.trade(a_trade(1, DAY + 5, 100, 2))
        state.trade(a_trade(2, DAY + NS_PER_DAY + 5, 90, 1))
        assert (state.open, state.high, state.low, state.volume, state.trades) == (90, 90, 90, 1, 1)
        state.trade(a_trade(3, DAY + 6, 200, 1))  # a late clock: counted in the current day
        assert (state.high, state.volume) == (200, 2)

    def test_loading_the_day_from_the_journal(self) -> None:
        state = InstrumentTicks(1)
        state.load(DayStats(1, 100, 110, 95, 104, 3, DAY + 50, 40, 7))
        assert (state.open, state.high, state.low, state.ltp, state.last_quantity) == (
            100,
            110,
            95,
            104,
            3,
        )
        state.trade(a_trade(9, DAY + 60, 111, 2))
        assert (state.high, state.volume, state.trades) == (111, 42, 8)


class TestDepthIndex:
    def test_resting_orders_aggregate_per_level_and_leave_when_done(self) -> None:
        depth = DepthIndex()
        token = INFY.instrument_token
        assert depth.apply(row(1, "buy", 100, 5))
        assert depth.apply(row(2, "buy", 100, 3))
        assert depth.apply(row(3, "buy", 99, 1))
        assert depth.apply(row(4, "sell", 102, 2))
        assert depth.depth(token, 5) == ([(100, [8, 2]), (99, [1, 1])], [(102, [2, 1])])
        assert depth.apply(row(1, "buy", 100, 2, "partially_filled"))
        assert depth.apply(row(2, "buy", 101, 3))  # amended to a new price
        assert depth.apply(row(4, "sell", 102, 0, "filled"))
        assert depth.depth(token, 5) == ([(101, [3, 1]), (100, [2, 1]), (99, [1, 1])], [])
        assert depth.depth(token, 1) == ([(101, [3, 1])], [])
        assert depth.depth(999, 5) == ([], [])

    def test_orders_that_never_rest_change_nothing(self) -> None:
        depth = DepthIndex()
        assert not depth.apply(row(1, "buy", None, 5, "cancelled"))  # a market remainder
        assert not depth.apply(row(2, "sell", 100, 5, "pending_trigger")._replace(price=None))
        assert not depth.apply(row(3, "buy", 100, 0, "filled"))
        assert depth.depth(INFY.instrument_token, 5) == ([], [])

    def test_loading_a_book_replaces_what_is_indexed(self) -> None:
        depth = DepthIndex()
        token = INFY.instrument_token
        depth.apply(row(1, "buy", 100, 5))

        def resting(order_id: int, price: int, remaining: int, pending: bool = False) -> OrderState:
            return OrderState(
                order_id,
                "a",
                Side.BUY,
                OrderType.LIMIT,
                TimeInForce.GTC,
                price,
                None,
                remaining,
                order_id,
                0,
                False,
                SelfTradePrevention.CANCEL_NEWEST,
                pending,
            )

        snapshot = BookSnapshot(
            token, [resting(1, 100, 4), resting(2, 99, 1), resting(3, 98, 1, True)]
        )
        depth.load(snapshot, token)
        depth.load(snapshot, token)  # twice: still each order once
        assert depth.depth(token, 5) == ([(100, [4, 1]), (99, [1, 1])], [])


class TestTickState:
    def test_apply_reports_the_instruments_that_changed(self) -> None:
        state = TickState()
        token = INFY.instrument_token
        unit = JournalUnit(
            orders=[row(1, "sell", 37508, 3)],
            trades=[(token, a_trade(7, DAY + 9, 37508, 2))],
            tops={token: TopOfBookChanged(8, DAY + 10, None, 0, 37508, 3)},
        )
        assert state.apply([unit]) == {token}
        assert state.apply([JournalUnit(orders=[row(2, "buy", None, 0, "rejected")])]) == set()
        ticks = state.get(token)
        assert (ticks.ltp, ticks.volume, ticks.changed_ns) == (37508, 2, DAY + 10)
        other = JournalUnit(tops={5: TopOfBookChanged(9, DAY + 11, 1, 1, None, 0)})
        assert state.apply([other]) == {5}


class TestRender:
    def test_full_tick_in_decimal_strings_and_its_mode_views(self) -> None:
        state = TickState()
        token = INFY.instrument_token
        state.apply(
            [
                JournalUnit(
                    orders=[row(1, "sell", 37510, 3), row(2, "buy", 37500, 4)],
                    trades=[(token, a_trade(7, DAY + 9, 37508, 2))],
                )
            ]
        )
        ticks = state.get(token)
        ticks.seq = 12
        full = render(ticks, INFY, state.depth)
        assert full["type"] == "tick"
        assert (full["symbol"], full["instrument_token"], full["seq"]) == ("NSE:INFY", token, 12)
        assert (full["ltp"], full["last_quantity"], full["volume"], full["trades"]) == (
            "1875.4",
            "2",
            "2",
            1,
        )
        assert (full["bid"], full["bid_quantity"], full["ask"], full["ask_quantity"]) == (
            "1875",
            "4",
            "1875.5",
            "3",
        )
        assert full["ohlc"] == {
            "open": "1875.4",
            "high": "1875.4",
            "low": "1875.4",
            "close": "1875.4",
        }
        assert full["depth"] == {
            "bids": [{"price": "1875", "quantity": "4", "orders": 1}],
            "asks": [{"price": "1875.5", "quantity": "3", "orders": 1}],
        }
        assert full["timestamp"].startswith("2025-11-20T00:00:00")
        assert full["timestamp"].endswith("Z")
        ltp = view(full, Mode.LTP)
        assert ltp["mode"] == "ltp"
        assert set(ltp) == {
            "type",
            "mode",
            "symbol",
            "instrument_token",
            "seq",
            "timestamp",
            "ts_ns",
            "ltp",
        }
        quote = view(full, Mode.QUOTE)
        assert "depth" not in quote
        assert quote["ohlc"] == full["ohlc"]
        assert quote["mode"] == "quote"
        assert view(full, Mode.FULL) is full

    def test_before_any_trade_ltp_is_the_registry_price(self) -> None:
        full = render(InstrumentTicks(INFY.instrument_token), INFY, DepthIndex())
        assert (full["ltp"], full["volume"], full["bid"]) == ("1875.4", "0", None)
        assert full["ohlc"] == {"open": None, "high": None, "low": None, "close": None}

    def test_before_any_change_the_tick_has_no_time(self) -> None:
        """A snapshot of an untouched instrument says so: no time, rather than 1970."""
        full = render(InstrumentTicks(INFY.instrument_token), INFY, DepthIndex())
        assert (full["timestamp"], full["ts_ns"], full["last_trade_time"]) == (None, None, None)
        assert (view(full, Mode.LTP)["timestamp"], view(full, Mode.LTP)["ts_ns"]) == (None, None)
        state = TickState()
        state.apply([JournalUnit(orders=[row(1, "buy", 37500, 2)])])
        changed = render(state.get(INFY.instrument_token), INFY, state.depth)
        assert (changed["ts_ns"], changed["timestamp"]) == (DAY + 1, "2025-11-20T00:00:00Z")
