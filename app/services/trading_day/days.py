"""Which trading day an instant belongs to, per instrument (its exchange's calendar).

Asked for every trade (day statistics of ticks, positions' day fields), so the bounds of the
last day seen are cached per instrument: a lookup is then one dict get and two comparisons.
"""

from __future__ import annotations

from app.services.instruments.snapshot import SnapshotSource
from app.services.trading_day.calendar import TradingCalendar


class TradingDays:
    def __init__(self, *, calendar: TradingCalendar, registry: SnapshotSource) -> None:
        self._calendar = calendar
        self._registry = registry
        self._bounds: dict[int, tuple[int, int, int]] = {}  # token -> (start, end, ordinal)

    def bounds(self, instrument_token: int, ts_ns: int) -> tuple[int, int, int]:
        """(start ns, end ns, date ordinal) of the trading day ``ts_ns`` falls in."""
        cached = self._bounds.get(instrument_token)
        if cached is not None and cached[0] <= ts_ns < cached[1]:
            return cached
        instrument = self._registry.snapshot.get(instrument_token)
        exchange = "" if instrument is None else instrument.exchange
        found = self._calendar.for_exchange(exchange).day_bounds(ts_ns)
        self._bounds[instrument_token] = found
        return found

    def day_of(self, instrument_token: int, ts_ns: int) -> int:
        return self.bounds(instrument_token, ts_ns)[2]
