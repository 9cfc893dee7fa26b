"""A clock the test moves: the service reads every time through it (``create_app(clock=)``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class FakeClock:
    """Starts at ``start`` and moves only when told; each reading adds ``step_ns`` so that
    events read in one step still get distinct, increasing timestamps."""

    def __init__(self, start: datetime, *, step_ns: int = 1000) -> None:
        self._now = ns(start)
        self._step = step_ns

    def now_ns(self) -> int:
        self._now += self._step
        return self._now

    def set(self, moment: datetime) -> None:
        target = ns(moment)
        assert target >= self._now, "a clock never goes back"
        self._now = target

    def advance(self, **delta: float) -> None:
        self._now += int(timedelta(**delta).total_seconds() * 1e9)
