"""Session calendars: IST sessions seen from UTC, weekends, holidays, the 24x7 default."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.services.trading_day.calendar import BUILTIN, CalendarError, TradingCalendar
from tests.support.clock import ns


def utc(*parts: int) -> int:
    return ns(datetime(*parts, tzinfo=UTC))  # type: ignore[misc]


INDIA = """
[calendars.india]
timezone = "Asia/Kolkata"
pre_open = "09:00"
open = "09:15"
close = "15:30"
post_close = "16:00"
weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
holidays = ["2026-12-25"]

[exchanges]
NSE = "india"
"""


@pytest.fixture
def calendar(tmp_path: Path) -> TradingCalendar:
    path = tmp_path / "calendar.toml"
    path.write_text(INDIA)
    return TradingCalendar.load(str(path))


class TestSessions:
    def test_an_ist_session_in_utc(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        # Monday 2026-12-07: 09:15-15:30 IST is 03:45-10:00 UTC
        assert not nse.is_open(utc(2026, 12, 7, 3, 44, 59))
        assert nse.is_open(utc(2026, 12, 7, 3, 45))
        assert nse.is_open(utc(2026, 12, 7, 9, 59, 59))
        assert not nse.is_open(utc(2026, 12, 7, 10, 0))
        assert nse.next_close(utc(2026, 12, 7, 5)) == utc(2026, 12, 7, 10)
        assert nse.last_close(utc(2026, 12, 7, 10)) == utc(2026, 12, 7, 10)
        assert nse.next_open(utc(2026, 12, 7, 10)) == utc(2026, 12, 8, 3, 45)

    def test_states_around_the_session(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        assert nse.state(utc(2026, 12, 7, 3, 30)) == "pre_open"
        assert nse.state(utc(2026, 12, 7, 4)) == "open"
        assert nse.state(utc(2026, 12, 7, 10, 15)) == "post_close"
        assert nse.state(utc(2026, 12, 7, 12)) == "closed"

    def test_the_cached_state_follows_the_clock(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        moments = [utc(2026, 12, 7, h, m) for h in range(0, 24) for m in (0, 30)]
        expected = [3 * 60 + 45 <= (h * 60 + m) < 10 * 60 for h in range(24) for m in (0, 30)]
        assert [nse.is_open(t) for t in moments] == expected
        assert [nse.is_open(t) for t in reversed(moments)] == list(reversed(expected))

    def test_a_weekend_is_closed(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        friday_close = utc(2026, 12, 11, 10)
        assert not nse.is_open(utc(2026, 12, 12, 5))  # Saturday
        assert not nse.is_open(utc(2026, 12, 13, 5))  # Sunday
        assert nse.next_open(friday_close) == utc(2026, 12, 14, 3, 45)
        assert nse.last_close(utc(2026, 12, 13, 23)) == friday_close

    def test_a_holiday_is_closed(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        assert not nse.is_open(utc(2026, 12, 25, 5))  # Friday, Christmas
        assert nse.session(date(2026, 12, 25)) is None
        assert nse.next_open(utc(2026, 12, 24, 11)) == utc(2026, 12, 28, 3, 45)

    def test_trading_day_is_the_local_date(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        # 20:00 UTC on the 7th is 01:30 IST on the 8th
        assert nse.trading_day(utc(2026, 12, 7, 20)) == date(2026, 12, 8)
        start, end, day = nse.day_bounds(utc(2026, 12, 7, 20))
        assert (start, end) == (utc(2026, 12, 7, 18, 30), utc(2026, 12, 8, 18, 30))
        assert day == date(2026, 12, 8).toordinal()

    def test_a_contract_expires_at_its_dates_close(self, calendar: TradingCalendar) -> None:
        nse = calendar.for_exchange("NSE")
        assert nse.expiry_close(date(2026, 12, 31)) == utc(2026, 12, 31, 10)
        # on a day without a session: the end of that local day
        assert nse.expiry_close(date(2026, 12, 25)) == utc(2026, 12, 25, 18, 30)


class TestDefaults:
    def test_unset_every_exchange_trades_around_the_clock(self) -> None:
        calendar = TradingCalendar.default()
        assert calendar.is_open("NSE", utc(2026, 12, 13, 3))  # a Sunday night
        utc_day = calendar.for_exchange("ANY")
        # a DAY order lasts until midnight UTC
        assert utc_day.next_close(utc(2026, 12, 7, 23, 59)) == utc(2026, 12, 8)
        assert utc_day.last_close(utc(2026, 12, 8, 0, 0, 1)) == utc(2026, 12, 8)
        assert utc_day.next_open(utc(2026, 12, 8)) is None

    def test_exchanges_not_listed_use_the_fallback(self, calendar: TradingCalendar) -> None:
        assert calendar.for_exchange("CRYPTO").always_open
        assert not calendar.for_exchange("NSE").always_open

    def test_the_shipped_file(self) -> None:
        calendar = TradingCalendar.load(BUILTIN)
        for exchange in ("NSE", "BSE", "NFO"):
            cal = calendar.for_exchange(exchange)
            assert cal.zone.key == "Asia/Kolkata"
            assert cal.is_open(utc(2026, 12, 7, 4))
            assert not cal.is_open(utc(2026, 12, 12, 4))
        assert calendar.for_exchange("MCX").always_open
        assert "NSE=india" in calendar.describe()


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("x = 1", "no [calendars.<name>] table"),
            ('[calendars.a]\ntimezone = "Mars/Olympus"', "unknown time zone"),
            ('[calendars.a]\nopen = "9:15"\nclose = "15:30"', "not a time"),
            ('[calendars.a]\nopen = "15:30"\nclose = "09:15"', "close must be after open"),
            ('[calendars.a]\nopen = "09:15"\nclose = "15:30"\nweekdays = ["Mo"]', "weekdays"),
            ('[calendars.a]\nopen = "09:15"\nclose = "15:30"\nholidays = ["x"]', "holidays"),
            ('[calendars.a]\nalways_open = true\n[exchanges]\nNSE = "b"', "unknown calendar"),
            ("[calendars", "not valid TOML"),
        ],
    )
    def test_a_bad_file_is_refused_with_one_message(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        path = tmp_path / "calendar.toml"
        path.write_text(text)
        with pytest.raises(CalendarError, match=message.replace("[", r"\[")):
            TradingCalendar.load(str(path))

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CalendarError, match="cannot read"):
            TradingCalendar.load(str(tmp_path / "nope.toml"))
