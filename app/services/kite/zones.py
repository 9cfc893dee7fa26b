"""Exchange-local time as Kite shows it: ``YYYY-MM-DD HH:MM:SS`` without an offset.

``exchange_zone`` is the one lookup of an exchange's time zone for the Kite adapter; the
trading-day calendar (a separate component) owns the exchanges' zones, and this function is
the single place to point at it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

_INDIAN = frozenset({"NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCO"})
_FORMAT = "%Y-%m-%d %H:%M:%S"
NS = 1_000_000_000


@cache
def exchange_zone(exchange: str) -> ZoneInfo:
    """The exchange's time zone: Asia/Kolkata for the Indian exchanges, UTC otherwise."""
    return ZoneInfo("Asia/Kolkata" if exchange.upper() in _INDIAN else "UTC")


def local(ns: int, exchange: str) -> datetime:
    return datetime.fromtimestamp(ns / NS, UTC).astimezone(exchange_zone(exchange))


def kite_time(ns: int | None, exchange: str) -> str | None:
    """Epoch nanoseconds as Kite's exchange-local timestamp (None for none)."""
    if not ns:
        return None
    return local(ns, exchange).strftime(_FORMAT)


def candle_time(ns: int, exchange: str) -> str:
    """A candle's start as Kite's historical API gives it: ISO 8601 with the offset."""
    return local(ns, exchange).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_local(text: str, exchange: str) -> datetime | None:
    """``YYYY-MM-DD[ HH:MM:SS]`` read in the exchange's zone (None if it is neither)."""
    for pattern in (_FORMAT, "%Y-%m-%d"):
        try:
            value = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return value.replace(tzinfo=exchange_zone(exchange))
    return None
