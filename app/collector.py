"""The cyclic garbage collector, kept off the order path.

CPython's collector stops the event loop for as long as a pass walks its objects, and what
the order path keeps (resting orders, their records, the finished-order cache) survives
every young pass into the older generations, where each later pass walks it again. Left as
CPython sets it (or with the larger young threshold this service used before), a venue
under steady load stalls for a time that grows with its books: measured with
bench/single.py's order stream at 16 connections for 100 s (~6,500 orders/s), young passes
of ~41 ms every ~4 s and, after 20 of them, one older pass of 0.6 s; a full pass over that
heap takes ~0.9 s.

The policy of a process that keeps order books (``apply(..., keeps_books=True)`` at start-up,
``QuietCollector`` in the background):

- What start-up built (registry, books as recovered) is collected once, then frozen out of
  every later pass.
- Young passes run every ``YOUNG_THRESHOLD`` net allocations of tracked objects: each walks
  about that many, 1 to 2 ms here.
- No older pass runs on its own (its thresholds are out of reach): what survives a young
  pass is not walked again while orders come in.
- What becomes cyclic garbage only after surviving a young pass (measured: ~6 objects/s,
  SQLAlchemy statements of the background polls; the order path makes none) waits for a
  full pass. ``QuietCollector`` runs one once the order path has been quiet for a while (no
  request on its way to the journal, none committing, none committed for ``quiet_seconds``),
  at most every ``min_interval`` seconds, and only if young passes ran since the last. Under
  load that never pauses, that garbage stays until it does.

A gateway (``keeps_books=False``) keeps no books: its heap does not grow with the day, and
CPython's generations, with a larger young threshold, stay in charge there.

Every pass's pause is in ``ticker_gc_pause_seconds{generation}``. Several services in one
process (the tests run many, sometimes two at once) each register their own timer; the
thresholds go back to what they were when the last one is released.

CPython 3.11 to 3.13's generational collector is what this is written for (the Docker
image runs 3.11); 3.14's incremental collector gives the older threshold another meaning.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from app.metrics import LoopMetric

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 2_000
_OUT_OF_REACH = 1 << 30  # older passes: never reached by counting young ones
_GATEWAY_THRESHOLDS = (50_000, 20, 50)

_before: tuple[int, int, int] | None = None  # the thresholds the first ``apply`` replaced
_timers: list[PauseTimer] = []  # one per service applied and not released yet


def apply(pauses: LoopMetric, *, keeps_books: bool) -> PauseTimer:
    """Collect, freeze what is left, set the thresholds (see the module header); each pass's
    pause is observed in ``pauses`` (by generation). Returns the handle for ``release``."""
    global _before
    if _before is None:
        _before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(
        *((YOUNG_THRESHOLD, _OUT_OF_REACH, _OUT_OF_REACH) if keeps_books else _GATEWAY_THRESHOLDS)
    )
    timer = PauseTimer(pauses)
    gc.callbacks.append(timer)
    _timers.append(timer)
    return timer


def release(timer: PauseTimer) -> None:
    """A service stopped: its timer goes; with the last one, the thresholds are as before
    ``apply`` (a process that goes on: the tests', an embedding program's). What was frozen
    stays frozen: a later ``apply`` collects only what came since."""
    global _before
    if timer in gc.callbacks:
        gc.callbacks.remove(timer)
    if timer in _timers:
        _timers.remove(timer)
    if not _timers and _before is not None:
        gc.set_threshold(*_before)
        _before = None


class PauseTimer:
    """``apply``'s handle, a ``gc.callbacks`` entry: the time from each pass's start to
    its stop. It allocates nothing and takes no lock: a pass may start in any thread,
    inside anything (CPython runs one pass at a time, and none from inside a callback)."""

    def __init__(self, pauses: LoopMetric) -> None:
        self._generations = [pauses.labels(str(generation)) for generation in range(3)]
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:  # not a pass that started before the timer was in
            self._generations[info["generation"]].observe(time.perf_counter() - self._started)
            self._started = None


class QuietCollector:
    """A full pass once the order path is quiet (``idle()``: seconds since it last worked)
    for ``quiet_seconds``, at most every ``min_interval`` seconds, and only if at least
    ``young_passes`` young passes ran since the last full pass."""

    def __init__(
        self,
        idle: Callable[[], float],
        *,
        quiet_seconds: float = 2.0,
        young_passes: int = 50,
        min_interval: float = 600.0,
        interval: float = 1.0,
    ) -> None:
        self._idle = idle
        self._quiet_seconds = quiet_seconds
        self._young_passes = young_passes
        self._min_interval = min_interval
        self._interval = interval
        self._last = -min_interval  # time.monotonic() of the last full pass

    def tick(self) -> bool:
        """Run the full pass if it is due and the order path is quiet; whether it ran."""
        now = time.monotonic()
        if (
            now - self._last < self._min_interval
            or gc.get_count()[1] < self._young_passes
            or self._idle() < self._quiet_seconds
        ):
            return False
        found = gc.collect()
        self._last = time.monotonic()
        log.info(
            "full garbage collection while quiet",
            extra={"unreachable": found, "ms": round((self._last - now) * 1e3, 1)},
        )
        return True

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.tick()
