"""The session gate and the DAY/contract sweep, on the shipped calendar (NFO: IST)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.services.orders.records import OrderRecord
from app.services.orders.risk import RiskReject
from app.services.orders.session import DayExpiry, SessionGate
from app.services.trading_day.calendar import TradingCalendar
from tests.support.clock import ns
from tests.support.instruments import future

CALENDAR = TradingCalendar.load("builtin")
MONDAY_OPEN = ns(datetime(2026, 12, 7, 4, tzinfo=UTC))  # 09:30 IST
MONDAY_CLOSE = ns(datetime(2026, 12, 7, 10, tzinfo=UTC))  # 15:30 IST
CONTRACT = replace(future(token=7), expiry=date(2026, 12, 8))


def record(order_id: int, tif: str, created: int, token: int = 7) -> OrderRecord:
    return OrderRecord(
        order_id, "a", None, None, token, "buy", "limit", tif, False, "cancel_newest",
        100, None, 1, remaining=1, created_ns=created,
    )  # fmt: skip


class TestGate:
    def test_sessions_and_expiry(self) -> None:
        gate = SessionGate(CALENDAR)
        gate.check(CONTRACT, MONDAY_OPEN)
        with pytest.raises(RiskReject) as closed:
            gate.check(CONTRACT, MONDAY_CLOSE)
        assert closed.value.code == "MARKET_CLOSED"
        tuesday_close = ns(datetime(2026, 12, 8, 10, tzinfo=UTC))
        assert gate.expires_at(CONTRACT) == tuesday_close
        with pytest.raises(RiskReject) as expired:
            gate.check(CONTRACT, tuesday_close)
        assert expired.value.code == "INSTRUMENT_EXPIRED"

    def test_position_limit_counts_the_order_as_filled(self) -> None:
        positions = {("a", 7): 4}  # lots of 25: 100 units long
        gate = SessionGate(
            CALENDAR,
            position_limit=lambda account: Decimal(150) if account == "a" else None,
            net_position=lambda account, token: positions.get((account, token), 0),
        )
        gate.check_position("a", CONTRACT, True, 2)  # 150: at the limit
        with pytest.raises(RiskReject) as over:
            gate.check_position("a", CONTRACT, True, 3)
        assert over.value.code == "RISK_MAX_POSITION"
        gate.check_position("a", CONTRACT, False, 8)  # 100 long to 100 short: no larger
        with pytest.raises(RiskReject):
            gate.check_position("a", CONTRACT, False, 11)
        gate.check_position("b", CONTRACT, True, 1000)  # no limit


class TestSweep:
    def test_day_orders_before_the_last_close_and_expired_contracts(self) -> None:
        gate = SessionGate(CALENDAR)
        other = replace(future(token=8), expiry=None)
        instruments = {7: CONTRACT, 8: other}
        expiry = DayExpiry(gate, instruments.get)
        orders = [
            record(1, "DAY", MONDAY_OPEN, token=8),
            record(2, "GTC", MONDAY_OPEN, token=8),
            record(3, "DAY", MONDAY_OPEN),
        ]
        assert expiry.sweep(orders, MONDAY_OPEN + 1).expire == {}
        assert expiry.due == MONDAY_CLOSE
        found = expiry.sweep(orders, MONDAY_CLOSE)
        assert found.expire == {8: {1}, 7: {3}}
        assert found.cancel == []
        tuesday_after_close = ns(datetime(2026, 12, 8, 10, 0, 1, tzinfo=UTC))
        found = expiry.sweep(orders, tuesday_after_close)
        assert [r.order_id for r in found.cancel] == [3]  # the contract's, DAY or not
        assert found.expired_tokens == {7}
