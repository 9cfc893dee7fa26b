"""Candles (OHLCV) from the recorded trades, bucketed on UTC boundaries since the epoch.

``start`` is rounded down to its bucket, so the first candle is whole; ``end`` is exclusive
(the last candle may still be forming). Buckets without trades are left out. The number of
buckets a request may span is capped, so one request cannot scan years of 1m candles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.errors import ValidationFailed
from app.services.instruments.snapshot import SnapshotSource
from app.services.render import iso_time
from app.store.database import Database
from app.store.ticker import candles

NS = 1_000_000_000
INTERVALS = {
    "1m": 60 * NS,
    "3m": 180 * NS,
    "5m": 300 * NS,
    "10m": 600 * NS,
    "15m": 900 * NS,
    "30m": 1800 * NS,
    "1h": 3600 * NS,
    "1d": 86_400 * NS,
}
MAX_BUCKETS = 5000
MAX_NS = 2**63 - 1  # trades.ts_ns is a signed 64-bit integer
DEFAULT_BUCKETS = 500


def parse_time(text: str, name: str) -> int:
    """An ISO 8601 date or date-time (UTC when it has no offset) as epoch nanoseconds."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be an ISO 8601 date-time, e.g. 2026-11-22T09:15:00Z",
            code="INVALID_TIME",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int(value.timestamp())
    return seconds * NS + value.microsecond * 1000


class CandleService:
    def __init__(
        self,
        *,
        database: Database,
        registry: SnapshotSource,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._database = database
        self._registry = registry
        self._max_buckets = max_buckets
        self._clock = clock

    async def candles(
        self, symbol: str, *, interval: str, start: str | None, end: str | None
    ) -> dict[str, Any]:
        width = INTERVALS.get(interval)
        if width is None:
            raise ValidationFailed(
                f"interval must be one of {', '.join(INTERVALS)}", code="INVALID_INTERVAL"
            )
        instrument = self._registry.snapshot.lookup(symbol)
        end_ns = self._clock() if end is None else parse_time(end, "end")
        start_ns = end_ns - DEFAULT_BUCKETS * width if start is None else parse_time(start, "start")
        if start_ns >= end_ns:
            raise ValidationFailed("start must be before end", code="INVALID_TIME_RANGE")
        if start_ns < 0 or end_ns > MAX_NS:
            raise ValidationFailed(
                "start and end must lie between 1970 and 2262", code="INVALID_TIME_RANGE"
            )
        first = start_ns // width * width
        buckets = -(-(end_ns - first) // width)
        if buckets > self._max_buckets:
            raise ValidationFailed(
                f"{buckets} {interval} candles requested; at most {self._max_buckets} per "
                "request (narrow start/end or use a wider interval)",
                code="TOO_MANY_CANDLES",
            )
        rows = await candles(
            self._database,
            instrument.instrument_token,
            width_ns=width,
            start_ns=first,
            end_ns=end_ns,
        )
        price, qty = instrument.ticks_to_price, instrument.lots_to_quantity
        return {
            "symbol": instrument.symbol,
            "instrument_token": instrument.instrument_token,
            "interval": interval,
            "items": [
                {
                    "start": iso_time(row.start_ns) if row.start_ns else "1970-01-01T00:00:00Z",
                    "open": price(row.open),
                    "high": price(row.high),
                    "low": price(row.low),
                    "close": price(row.close),
                    "volume": qty(row.volume),
                    "trades": row.trades,
                }
                for row in rows
            ],
            "next_cursor": None,
        }
