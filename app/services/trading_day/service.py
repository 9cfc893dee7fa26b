"""``GET /calendar`` and the ``sessions`` section of ``/health``: each exchange's day.

The exchanges shown are those of the registry's instruments plus those the calendar file
names; times are ISO 8601 in UTC and in the exchange's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.services.clock import Clock
from app.services.instruments.snapshot import SnapshotSource
from app.services.trading_day.calendar import NS, Calendar, TradingCalendar


def _iso(ns: int | None, calendar: Calendar | None = None) -> str | None:
    if ns is None:
        return None
    moment = datetime.fromtimestamp(ns // NS, UTC)
    if calendar is not None:
        moment = moment.astimezone(calendar.zone)
    return moment.isoformat().replace("+00:00", "Z")


class CalendarService:
    def __init__(
        self, *, calendar: TradingCalendar, registry: SnapshotSource, clock: Clock
    ) -> None:
        self.calendar = calendar
        self._registry = registry
        self._clock = clock
        self._exchanges: tuple[object, list[str]] = (None, [])  # (snapshot, its exchanges)

    def exchanges(self) -> list[str]:
        snapshot = self._registry.snapshot
        seen, found = self._exchanges
        if seen is not snapshot:  # a registry of 100,000 instruments: once per refresh
            listed = {instrument.exchange for instrument in snapshot}
            found = sorted(listed | set(self.calendar.exchanges))
            self._exchanges = (snapshot, found)
        return found

    def exchange_day(self, exchange: str, now: int) -> dict[str, Any]:
        calendar = self.calendar.for_exchange(exchange)
        today = calendar.trading_day(now)
        session = calendar.session(today)
        return {
            "exchange": exchange,
            "calendar": calendar.name,
            "timezone": calendar.zone.key,
            "state": calendar.state(now),
            "trading_day": today.isoformat(),
            "always_open": calendar.always_open,
            "session": None
            if session is None
            else {
                "pre_open": _iso(session.pre_open_ns, calendar),
                "open": _iso(session.open_ns, calendar),
                "close": _iso(session.close_ns, calendar),
                "post_close": _iso(session.post_close_ns, calendar),
            },
            "holiday": not calendar.always_open and today in calendar.holidays,
            "next_open": _iso(calendar.next_open(now), calendar),
            "next_close": _iso(calendar.next_close(now), calendar),
        }

    def today(self) -> dict[str, Any]:
        now = self._clock.now_ns()
        return {
            "now": _iso(now),
            "source": self.calendar.describe(),
            "items": [self.exchange_day(exchange, now) for exchange in self.exchanges()],
            "next_cursor": None,
        }

    def health(self) -> dict[str, Any]:
        """Session state per exchange (``/health``)."""
        now = self._clock.now_ns()
        return {
            exchange: self.calendar.for_exchange(exchange).state(now)
            for exchange in self.exchanges()
        }
