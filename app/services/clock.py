"""The one clock the service reads time through.

Sessions, DAY expiry, contract expiry and day boundaries all ask ``clock.now_ns()``; tests
hand the service a clock they move themselves (``tests/support/clock.FakeClock``), so nothing
depends on the hour the suite runs at. The order path passes ``clock.now_ns`` (a bound
method, as cheap as ``time.time_ns``) where it used to call ``time.time_ns`` directly.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the epoch (UTC)."""
        ...


class SystemClock:
    """The wall clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()


SYSTEM_CLOCK = SystemClock()
