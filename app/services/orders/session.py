"""The trading day on the order path: sessions, contract expiry, DAY expiry, position limits.

``SessionGate.check`` runs for every new order and amend: an instrument whose contract has
expired (at the close of its expiry date in its exchange's zone) is refused
``INSTRUMENT_EXPIRED``; outside its exchange's session an order is refused ``MARKET_CLOSED``
(cancels always work). Both are a dict lookup and an integer comparison on a cached interval.

``DayExpiry.due`` tells the order service when a close may have passed (the earliest next
close of every calendar since the last sweep); only then does ``sweep`` walk the live orders:
DAY orders placed before their exchange's last close expire, and the orders of expired
contracts are cancelled with reason ``INSTRUMENT_EXPIRED``. The service runs the sweep in the
same synchronous step as a request (before the request touches a book, so no order ever
matches against a DAY order of a session that has ended) and from a timer when idle. What the
sweep changes is journaled like any other change; a process that dies before the commit
leaves those orders live in the journal, and the next process's first sweep (its ``due`` starts
at 0) expires them: exactly once, because an expired order is no longer live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.orders.records import OrderRecord
from app.services.orders.risk import RiskReject
from app.services.trading_day.calendar import TradingCalendar

INSTRUMENT_EXPIRED = "INSTRUMENT_EXPIRED"
MARKET_CLOSED = "MARKET_CLOSED"
RISK_MAX_POSITION = "RISK_MAX_POSITION"
_NEVER = 1 << 62

PositionLimit = Callable[[str], Decimal | None]  # account -> max |net| (instrument units)
NetPosition = Callable[[str, int], int]  # (account, token) -> committed net lots


def _no_limit(_account: str) -> Decimal | None:
    return None


def _flat(_account: str, _token: int) -> int:
    return 0


@dataclass(slots=True)
class SessionGate:
    calendar: TradingCalendar
    position_limit: PositionLimit = _no_limit
    net_position: NetPosition = _flat
    # token -> (expiry date, its close in ns): recomputed if the registry changes the date
    _expiries: dict[int, tuple[date | None, int]] = field(default_factory=dict)

    def expires_at(self, instrument: Instrument) -> int:
        """When ``instrument`` stops trading: its expiry date's close (``_NEVER`` if none)."""
        token, expiry = instrument.instrument_token, instrument.expiry
        found = self._expiries.get(token)
        if found is not None and found[0] == expiry:
            return found[1]
        close = _NEVER
        if expiry is not None:
            close = self.calendar.for_exchange(instrument.exchange).expiry_close(expiry)
        self._expiries[token] = (expiry, close)
        return close

    def check(self, instrument: Instrument, now: int) -> None:
        if instrument.status is InstrumentStatus.EXPIRED or now >= self.expires_at(instrument):
            raise RiskReject(INSTRUMENT_EXPIRED, f"{instrument.symbol} has expired")
        if not self.calendar.is_open(instrument.exchange, now):
            raise RiskReject(MARKET_CLOSED, f"{instrument.exchange} is closed (see GET /calendar)")

    def check_position(self, account: str, instrument: Instrument, buy: bool, lots: int) -> None:
        """Refuse an order that, filled completely, would take the account's committed net
        position in the instrument beyond its limit (a reducing order always passes)."""
        limit = self.position_limit(account)
        if limit is None:
            return
        net = self.net_position(account, instrument.instrument_token)
        after = net + lots if buy else net - lots
        if abs(after) <= abs(net):
            return
        if abs(after) > int(limit // instrument.lot_size):
            raise RiskReject(
                RISK_MAX_POSITION,
                f"the position would exceed the limit of {limit} in {instrument.symbol}",
            )


@dataclass(slots=True)
class Sweep:
    """What a sweep found: DAY orders to expire and contract orders to cancel, by book."""

    expire: dict[int, set[int]] = field(default_factory=dict)
    cancel: list[OrderRecord] = field(default_factory=list)
    expired_tokens: set[int] = field(default_factory=set)


class DayExpiry:
    def __init__(self, gate: SessionGate, exchange_of: Callable[[int], Instrument | None]) -> None:
        self._gate = gate
        self._instrument = exchange_of
        self.due = 0  # a sweep is due from this instant on

    def sweep(self, records: list[OrderRecord], now: int) -> Sweep:
        """The live orders that must end at ``now``; sets the next ``due``."""
        calendar = self._gate.calendar
        found = Sweep()
        last_close: dict[str, int | None] = {}
        for record in records:
            if not record.live:
                continue
            token = record.instrument_token
            instrument = self._instrument(token)
            if instrument is None:
                continue
            if self._gate.expires_at(instrument) <= now:
                found.cancel.append(record)
                found.expired_tokens.add(token)
                continue
            if record.time_in_force != "DAY":
                continue
            exchange = instrument.exchange
            if exchange not in last_close:
                last_close[exchange] = calendar.for_exchange(exchange).last_close(now)
            close = last_close[exchange]
            if close is not None and record.created_ns < close:
                found.expire.setdefault(token, set()).add(record.order_id)
        closes = [c.next_close(now) for c in calendar.calendars.values()]
        self.due = min((c for c in closes if c is not None), default=_NEVER)
        return found
