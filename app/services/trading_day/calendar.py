"""Session calendars: when each exchange trades, from a TOML file (``TRADING_CALENDAR``).

A calendar has a zone (an IANA name, resolved by ``zoneinfo``; ``tzdata`` supplies the
database where the machine has none), local open and close times, optional pre-open and
post-close windows (shown, not traded), its weekdays and its holidays. Every instant is
turned into local dates and back only through ``datetime`` with a ``ZoneInfo``: no offsets
are computed by hand. ``always_open`` calendars trade around the clock; their trading day is
the local date (midnight to midnight), so a DAY order there lasts until local midnight.

``TradingCalendar.default()`` (``TRADING_CALENDAR`` unset) maps every exchange to one
always-open UTC calendar: the service behaves as before sessions existed.

The order path asks ``is_open`` for every order, so each calendar caches the interval
around the last instant it was asked about in which its state cannot change.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BUILTIN = "builtin"
BUILTIN_FILE = Path(__file__).resolve().parents[2] / "data" / "calendars.toml"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LOOKAHEAD_DAYS = 400  # a calendar with no session within this many days never opens
NS = 1_000_000_000


class CalendarError(ValueError):
    """The calendar file is missing or malformed (one clear message, at start-up)."""


def _ns(moment: datetime) -> int:
    # Exact: whole seconds of the aware datetime, then its microseconds.
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def _time(value: Any, where: str) -> time | None:
    """``"HH:MM"``; ``"24:00"`` means the end of the day (returned as None)."""
    if not isinstance(value, str):
        raise CalendarError(f'{where}: expected a time as "HH:MM", got {value!r}')
    if value == "24:00":
        return None
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise CalendarError(f'{where}: {value!r} is not a time ("HH:MM")') from exc


@dataclass(frozen=True, slots=True)
class Session:
    """One trading date's session, as instants (ns since the epoch)."""

    day: date
    open_ns: int
    close_ns: int
    pre_open_ns: int | None = None
    post_close_ns: int | None = None


@dataclass(slots=True)
class Calendar:
    name: str
    zone: ZoneInfo
    open: time
    close: time | None  # None: midnight at the end of the day
    weekdays: frozenset[int]
    holidays: frozenset[date]
    always_open: bool = False
    pre_open: time | None = None
    post_close: time | None = None
    # (start, end, open?): the state holds for start <= ns < end
    _cached: tuple[int, int, bool] = field(default=(0, 0, False), repr=False)

    def trades_on(self, day: date) -> bool:
        return self.always_open or (day.weekday() in self.weekdays and day not in self.holidays)

    def local_date(self, ns: int) -> date:
        return datetime.fromtimestamp(ns // NS, self.zone).date()

    def _at(self, day: date, moment: time | None) -> int:
        if moment is None:
            return _ns(datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone))
        return _ns(datetime.combine(day, moment, tzinfo=self.zone))

    def session(self, day: date) -> Session | None:
        """The session on local date ``day``, None if the exchange does not trade then."""
        if not self.trades_on(day):
            return None
        return Session(
            day,
            self._at(day, self.open),
            self._at(day, self.close),
            None if self.pre_open is None else self._at(day, self.pre_open),
            None if self.post_close is None else self._at(day, self.post_close),
        )

    def _sessions_from(self, day: date, step: int) -> Iterator[Session]:
        for offset in range(_LOOKAHEAD_DAYS):
            found = self.session(day + timedelta(days=offset * step))
            if found is not None:
                yield found

    def current(self, ns: int) -> Session | None:
        """The session ``ns`` falls in (open <= ns < close), else None."""
        if self.always_open:
            return self.session(self.local_date(ns))
        for session in self._sessions_from(self.local_date(ns) - timedelta(days=1), 1):
            if session.open_ns > ns:
                return None
            if ns < session.close_ns:
                return session
        return None

    def is_open(self, ns: int) -> bool:
        start, end, is_open = self._cached
        if start <= ns < end:
            return is_open
        if self.always_open:
            return True
        session = self.current(ns)
        if session is not None:
            self._cached = (session.open_ns, session.close_ns, True)
            return True
        previous = self.last_close(ns)
        following = self.next_open(ns)
        self._cached = (previous or 0, following or 1 << 62, False)
        return False

    def next_open(self, ns: int) -> int | None:
        """The first open strictly after ``ns`` (for an always-open calendar: None)."""
        if self.always_open:
            return None
        for session in self._sessions_from(self.local_date(ns), 1):
            if session.open_ns > ns:
                return session.open_ns
        return None

    def next_close(self, ns: int) -> int | None:
        """The first close strictly after ``ns``."""
        for session in self._sessions_from(self.local_date(ns) - timedelta(days=1), 1):
            if session.close_ns > ns:
                return session.close_ns
        return None

    def last_close(self, ns: int) -> int | None:
        """The latest close at or before ``ns``: DAY orders placed before it have expired."""
        for session in self._sessions_from(self.local_date(ns) + timedelta(days=1), -1):
            if session.close_ns <= ns:
                return session.close_ns
        return None

    def trading_day(self, ns: int) -> date:
        """The trading date ``ns`` belongs to: the local date (day statistics, positions)."""
        return self.local_date(ns)

    def day_bounds(self, ns: int) -> tuple[int, int, int]:
        """``ns``'s trading day: (its start, its end, the date's ordinal). Day statistics
        and positions' day fields start again at each start (local midnight)."""
        day = self.local_date(ns)
        return self._at(day, time(0)), self._at(day, None), day.toordinal()

    def expiry_close(self, day: date) -> int:
        """When a contract expiring on ``day`` stops trading: that day's close, or the end
        of the local day if the exchange does not trade then."""
        session = self.session(day)
        if session is not None:
            return session.close_ns
        return self._at(day, None)

    def state(self, ns: int) -> str:
        """``open``, ``pre_open``, ``post_close`` or ``closed``."""
        if self.is_open(ns):
            return "open"
        session = self.session(self.local_date(ns))
        if session is not None:
            if session.pre_open_ns is not None and session.pre_open_ns <= ns < session.open_ns:
                return "pre_open"
            if session.post_close_ns is not None and session.close_ns <= ns < session.post_close_ns:
                return "post_close"
        return "closed"


ALWAYS_OPEN_UTC = "24x7"


def _always(name: str, zone: ZoneInfo) -> Calendar:
    return Calendar(name, zone, time(0), None, frozenset(range(7)), frozenset(), always_open=True)


@dataclass(slots=True)
class TradingCalendar:
    """Exchange -> ``Calendar``; ``source`` says where it came from (start-up line)."""

    calendars: dict[str, Calendar]
    exchanges: dict[str, str]
    fallback: str
    source: str

    @classmethod
    def default(cls) -> TradingCalendar:
        always = _always(ALWAYS_OPEN_UTC, ZoneInfo("UTC"))
        return cls({always.name: always}, {}, always.name, "none (every exchange trades 24x7)")

    @classmethod
    def load(cls, setting: str | None) -> TradingCalendar:
        """``TRADING_CALENDAR``: unset, ``builtin`` (the shipped file) or a TOML path."""
        if not setting:
            return cls.default()
        path = BUILTIN_FILE if setting == BUILTIN else Path(setting)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalendarError(f"TRADING_CALENDAR: cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise CalendarError(f"TRADING_CALENDAR: {path} is not valid TOML: {exc}") from exc
        return cls.parse(document, source=str(path))

    @classmethod
    def parse(cls, document: dict[str, Any], *, source: str) -> TradingCalendar:
        raw = document.get("calendars")
        if not isinstance(raw, dict) or not raw:
            raise CalendarError(f"{source}: no [calendars.<name>] table")
        calendars = {name: _calendar(name, spec, source) for name, spec in raw.items()}
        mapping = document.get("exchanges", {})
        if not isinstance(mapping, dict):
            raise CalendarError(f"{source}: [exchanges] must map exchange names to calendars")
        for exchange, name in mapping.items():
            if name not in calendars:
                raise CalendarError(f"{source}: exchange {exchange} uses unknown calendar {name!r}")
        exchanges = {str(k).upper(): str(v) for k, v in mapping.items() if k != "*"}
        fallback = str(mapping.get("*", ALWAYS_OPEN_UTC))
        if fallback not in calendars:
            calendars[fallback] = _always(fallback, ZoneInfo("UTC"))
        return cls(calendars, exchanges, fallback, source)

    def for_exchange(self, exchange: str) -> Calendar:
        return self.calendars[self.exchanges.get(exchange, self.fallback)]

    def is_open(self, exchange: str, ns: int) -> bool:
        return self.for_exchange(exchange).is_open(ns)

    def describe(self) -> str:
        if not self.exchanges:
            return self.source
        names = ", ".join(f"{ex}={cal}" for ex, cal in sorted(self.exchanges.items()))
        return f"{self.source} ({names}; others {self.fallback})"


def _calendar(name: str, spec: Any, source: str) -> Calendar:
    where = f"{source}: calendars.{name}"
    if not isinstance(spec, dict):
        raise CalendarError(f"{where} must be a table")
    try:
        zone = ZoneInfo(str(spec.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"{where}: unknown time zone {spec.get('timezone')!r}") from exc
    if spec.get("always_open"):
        return _always(name, zone)
    opens = _time(spec.get("open"), f"{where}.open")
    closes = _time(spec.get("close"), f"{where}.close")
    if opens is None:
        raise CalendarError(f"{where}.open cannot be 24:00")
    if closes is not None and closes <= opens:
        raise CalendarError(f"{where}: close must be after open (sessions within one day)")
    days = spec.get("weekdays", list(WEEKDAYS[:5]))
    if not isinstance(days, list) or any(d not in WEEKDAYS for d in days):
        raise CalendarError(f"{where}.weekdays: a list of {', '.join(WEEKDAYS)}")
    holidays = spec.get("holidays", [])
    try:
        dates = frozenset(h if isinstance(h, date) else date.fromisoformat(h) for h in holidays)
    except (TypeError, ValueError) as exc:
        raise CalendarError(f"{where}.holidays: a list of dates (YYYY-MM-DD)") from exc
    pre = spec.get("pre_open")
    post = spec.get("post_close")
    return Calendar(
        name,
        zone,
        opens,
        closes,
        frozenset(WEEKDAYS.index(d) for d in days),
        dates,
        pre_open=None if pre is None else _time(pre, f"{where}.pre_open"),
        post_close=None if post is None else _time(post, f"{where}.post_close"),
    )
