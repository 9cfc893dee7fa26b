"""The cyclic garbage collector, kept off the order path.

CPython's collector stops the event loop for as long as a pass walks its objects, and what
the order path keeps (resting orders, their records, the finished-order cache) survives
every young pass into the older generations, where each later pass walks it again. Left as
CPython sets it (or with the larger young threshold this service used before), a venue
under steady load stalls for a time that grows with its books: measured with
bench/single.py's order stream at 16 connections for 100 s (~6,500 orders/s), young passes
of ~41 ms every ~4 s and, after 20 of them, one older pass of 0.6 s; a full pass over that
heap takes ~0.9 s.

The policy (``apply`` at start-up, ``QuietCollector`` in the background):

- Everything built at start-up (registry, books as recovered) is frozen out of every pass.
- Young passes run every ``YOUNG_THRESHOLD`` net allocations of tracked objects: each walks
  at most that many, 1 to 2 ms here.
- No older pass runs on its own (its thresholds are out of reach): what survives a young
  pass is not walked again while orders come in.
- What becomes cyclic garbage only after surviving a young pass (measured: ~6 objects/s,
  SQLAlchemy statements of the background polls; the order path makes none) waits for a
  full pass, which ``QuietCollector`` runs once the order path has been quiet for a while
  (no journal commit for ``quiet_seconds``) and young passes have run since the last one.
  Under load that never pauses that garbage stays until it does.

Every pass's pause is in ``ticker_gc_pause_seconds{generation}``.
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


_before: tuple[int, int, int] | None = None  # the thresholds ``apply`` replaced
_timer: _PauseTimer | None = None


def apply(pauses: LoopMetric) -> None:
    """Freeze what exists and set the thresholds (see the module header); each pass's
    pause is observed in ``pauses`` (by generation)."""
    global _before, _timer
    if _before is None:
        _before = gc.get_threshold()
    if _timer is not None:
        gc.callbacks.remove(_timer)
    _timer = _PauseTimer(pauses)
    gc.callbacks.append(_timer)
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, _OUT_OF_REACH, _OUT_OF_REACH)


def release() -> None:
    """The thresholds as they were before ``apply`` (a service stopped in a process that
    goes on: the tests', an embedding program's), so older passes run again."""
    global _before, _timer
    if _timer is not None:
        gc.callbacks.remove(_timer)
        _timer = None
    if _before is not None:
        gc.set_threshold(*_before)
        _before = None


class _PauseTimer:
    """A ``gc.callbacks`` entry: the time from each pass's start to its stop. It allocates
    nothing and takes no lock (a pass may start in any thread, inside anything)."""

    def __init__(self, pauses: LoopMetric) -> None:
        self._generations = [pauses.labels(str(generation)) for generation in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._generations[info["generation"]].observe(time.perf_counter() - self._started)


class QuietCollector:
    """A full pass once the order path is quiet (``idle()``: seconds since it last worked)
    for ``quiet_seconds``, if at least ``young_passes`` young passes ran since the last."""

    def __init__(
        self,
        idle: Callable[[], float],
        *,
        quiet_seconds: float = 2.0,
        young_passes: int = 50,
        interval: float = 1.0,
    ) -> None:
        self._idle = idle
        self._quiet_seconds = quiet_seconds
        self._young_passes = young_passes
        self._interval = interval

    def tick(self) -> bool:
        """Run the full pass if it is due and the order path is quiet; whether it ran."""
        if gc.get_count()[1] < self._young_passes or self._idle() < self._quiet_seconds:
            return False
        started = time.perf_counter()
        found = gc.collect()
        log.info(
            "full garbage collection while quiet",
            extra={"unreachable": found, "ms": round((time.perf_counter() - started) * 1e3, 1)},
        )
        return True

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.tick()
