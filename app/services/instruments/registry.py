"""The instrument registry: every instrument in memory, refreshed from the database.

Readers take ``registry.snapshot`` (one attribute read) and use it for the whole request.
A refresh loads rows, builds a complete ``RegistrySnapshot`` in a worker thread (so the event
loop keeps serving on the old one) and swaps the reference. Concurrent refreshes join the one
in flight. When the database fails the old snapshot keeps serving and health says ``stale``.
Writers of the snapshot (refresh swap, ``set_status``) take one lock, so a status change
made while a refresh is reading cannot be lost by the swap that follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.errors import RegistryRefreshFailed, UnknownInstrument
from app.metrics import Metrics
from app.services.instruments.model import Instrument, InstrumentStatus, grid
from app.services.instruments.snapshot import RegistrySnapshot
from app.store.instruments import ALL_COLUMNS, InstrumentStore

log = logging.getLogger(__name__)

# _build_snapshot unpacks rows positionally for speed; this pins the order it relies on.
assert ALL_COLUMNS[:8] == (
    "instrument_token",
    "exchange_token",
    "exchange",
    "tradingsymbol",
    "name",
    "instrument_type",
    "segment",
    "tick_size",
)
# After a failed refresh, try again this soon (or at the normal period, if shorter).
RETRY_SECONDS = 10.0
_STATUS = {status.value: status for status in InstrumentStatus}


@dataclass(frozen=True, slots=True)
class RefreshResult:
    refreshed: bool
    instruments: int
    counts: dict[str, int]
    last_refresh: datetime | None
    age_seconds: float | None
    duration_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "refreshed": self.refreshed,
            "instruments": self.instruments,
            "counts": self.counts,
            "last_refresh": self.last_refresh.isoformat() if self.last_refresh else None,
            "age_seconds": _round(self.age_seconds),
            "duration_seconds": _round(self.duration_seconds),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _build_snapshot(rows: Sequence[Sequence[Any]], loaded_at: datetime) -> RegistrySnapshot:
    # Allocating 100,000 objects would set off repeated cyclic-GC passes over them (a third
    # of the build time); nothing here makes cycles, so collection just waits until we finish.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build(rows, loaded_at)
    finally:
        if paused:
            gc.enable()


def _build(rows: Sequence[Sequence[Any]], loaded_at: datetime) -> RegistrySnapshot:
    instruments = []
    skipped = 0
    for row in rows:
        token, exch_token, exchange, symbol, name, itype, segment, tick, lot, *rest = row
        expiry, strike, last_price, status, updated_at = rest
        try:
            tick_digits, tick_step = grid(tick)
            lot_digits, lot_step = grid(lot)
        except ValueError:  # only a hand-edited row can get here: import validates steps
            skipped += 1
            continue
        instruments.append(
            Instrument(
                token,
                exch_token,
                exchange,
                symbol,
                name,
                itype,
                segment,
                tick,
                lot,
                expiry,
                strike,
                last_price,
                _STATUS[status],
                updated_at,
                f"{exchange}:{symbol}",
                tick_digits,
                tick_step,
                lot_digits,
                lot_step,
            )
        )
    if skipped:
        log.warning("skipped %d instruments with a non-positive tick or lot size", skipped)
    return RegistrySnapshot(instruments, loaded_at)


class InstrumentRegistry:
    def __init__(
        self,
        *,
        store: InstrumentStore,
        metrics: Metrics,
        refresh_seconds: float,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._refresh_seconds = refresh_seconds
        self._snapshot = RegistrySnapshot.empty()
        self._loaded_monotonic: float | None = None
        self._error: str | None = None
        self._inflight: asyncio.Task[RefreshResult] | None = None
        self._write_lock = asyncio.Lock()
        metrics.instruments_cached.set(0)
        metrics.registry_age_seconds.set_function(lambda: self.age_seconds() or 0.0)

    @property
    def snapshot(self) -> RegistrySnapshot:
        return self._snapshot

    def is_loaded(self) -> bool:
        return self._loaded_monotonic is not None

    def age_seconds(self) -> float | None:
        if self._loaded_monotonic is None:
            return None
        return time.monotonic() - self._loaded_monotonic

    def is_fresh(self) -> bool:
        age = self.age_seconds()
        return age is not None and self._error is None and age < self._refresh_seconds

    async def refresh(self, *, force: bool = True) -> RefreshResult:
        """Reload now (``force``) or only when the snapshot is older than the period.

        Raises ``RegistryRefreshFailed`` when the database fails; the old snapshot stays.
        """
        if not force and self.is_fresh():
            return self._result(refreshed=False)
        task = self._inflight
        if task is None or task.done():
            task = asyncio.create_task(self._load(), name="instrument-registry-refresh")
            task.add_done_callback(_retrieve)
            self._inflight = task
        # shield: a caller that goes away (client disconnect) must not cancel the shared load.
        return await asyncio.shield(task)

    async def _load(self) -> RefreshResult:
        started = time.perf_counter()
        try:
            async with self._write_lock:
                rows = await self._store.load_all()
                loaded_at = datetime.now(UTC)
                snapshot = await asyncio.to_thread(_build_snapshot, rows, loaded_at)
                self._swap(snapshot)
        except Exception as exc:
            self._error = _describe(exc)
            self._metrics.registry_refresh_failures.inc()
            log.warning("instrument registry refresh failed: %s", self._error)
            raise RegistryRefreshFailed(
                f"instrument registry refresh failed ({self._error}); "
                f"still serving {len(self._snapshot)} cached instruments"
            ) from exc
        duration = time.perf_counter() - started
        self._metrics.registry_refresh_seconds.observe(duration)
        log.info(
            "instrument registry loaded",
            extra={"instruments": len(snapshot), "duration_seconds": round(duration, 3)},
        )
        return self._result(refreshed=True, duration=duration)

    def _swap(self, snapshot: RegistrySnapshot) -> None:
        self._snapshot = snapshot
        self._loaded_monotonic = time.monotonic()
        self._error = None
        self._metrics.instruments_cached.set(len(snapshot))

    def _result(self, *, refreshed: bool, duration: float | None = None) -> RefreshResult:
        snapshot = self._snapshot
        return RefreshResult(
            refreshed=refreshed,
            instruments=len(snapshot),
            counts=dict(snapshot.counts),
            last_refresh=snapshot.loaded_at,
            age_seconds=self.age_seconds(),
            duration_seconds=duration,
        )

    async def run_periodic(self) -> None:
        """The background refresh loop (``background.start("instrument-refresh", ...)``)."""
        try:
            while True:
                await asyncio.sleep(self._next_delay())
                # A failure is counted and logged in _load; the old snapshot keeps serving.
                with contextlib.suppress(RegistryRefreshFailed):
                    await self.refresh(force=False)
        finally:
            task = self._inflight
            if task is not None and not task.done():
                task.cancel()

    def _next_delay(self) -> float:
        age = self.age_seconds()
        if self._error is not None or age is None:
            return min(self._refresh_seconds, RETRY_SECONDS)
        return max(0.05, self._refresh_seconds - age)

    async def set_status(self, token: int, status: InstrumentStatus | str) -> Instrument:
        """Persist ``status`` for ``token`` and publish it in a new snapshot."""
        wanted = InstrumentStatus(status)
        async with self._write_lock:
            current = self._snapshot.get(token)
            if current is None:
                raise UnknownInstrument(f"no instrument with instrument_token {token}")
            now = datetime.now(UTC)
            if not await self._store.set_status(token, wanted.value, now=now):
                raise UnknownInstrument(f"instrument_token {token} is no longer in the database")
            updated = current.with_status(wanted, now)
            self._snapshot = self._snapshot.with_instrument(updated)
        log.info("instrument status changed", extra={"symbol": updated.symbol, "status": wanted})
        return updated

    def health(self) -> dict[str, Any]:
        """The ``dependencies.instrument_registry`` entry of ``/health``."""
        snapshot = self._snapshot
        age = self.age_seconds()
        error = self._error
        if error is None and age is not None and age > 3 * self._refresh_seconds:
            error = f"no successful refresh for {age:.0f} s"
        if age is None:
            status = "loading"
        elif error is not None:
            status = "stale"
        else:
            status = "ok"
        report: dict[str, Any] = {
            "status": status,
            "cached_instruments": len(snapshot),
            "last_refresh": snapshot.loaded_at.isoformat() if snapshot.loaded_at else None,
            "age_seconds": _round(age),
        }
        if error is not None:
            report["error"] = error
        return report


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Mark the outcome as seen even when every waiter went away (no "never retrieved").
    if not task.cancelled():
        task.exception()
