"""The trading day's sweep for one order service, in its synchronous steps and on a timer.

``sweep`` ends, in the caller's synchronous step, what must have ended by ``now``
(``session.DayExpiry`` finds it): DAY orders of closed sessions expire, the orders of expired
contracts are cancelled ``INSTRUMENT_EXPIRED``, all in one journal unit. The order service
calls it at the start of a request once ``due`` has passed (before the request touches a
book); ``keep`` calls it when no request comes, and marks expired contracts ``expired`` in the
registry (the shard's own). It does nothing while the service is not ready (a standby) or the
journal cannot take the unit: the books are rebuilt from the journal then, and ``reset``
makes the next call sweep again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.engine import CancelOrder, ExpireDay
from app.metrics import Metrics
from app.services.instruments.model import InstrumentStatus
from app.services.orders.books import LiveBooks
from app.services.orders.entry import InstrumentControl
from app.services.orders.journal import JournalUnavailable, JournalUnit, JournalWriter
from app.services.orders.records import CANCELLED, OrderRecord
from app.services.orders.session import INSTRUMENT_EXPIRED, DayExpiry, SessionGate
from app.services.orders.shard import Shard

log = logging.getLogger(__name__)


class TradingDay:
    def __init__(
        self,
        *,
        live: LiveBooks,
        journal: JournalWriter,
        registry: InstrumentControl,
        gate: SessionGate,
        metrics: Metrics,
        clock: Callable[[], int],
        shard: Shard,
        ready: Callable[[], bool],
    ) -> None:
        self._live = live
        self._journal = journal
        self._registry = registry
        self._gate = gate
        self._metrics = metrics
        self._clock = clock
        self._shard = shard
        self._ready = ready
        self._expiry = DayExpiry(gate, lambda token: registry.snapshot.get(token))
        self._contracts_due = 0
        self._contracts_seen: object = None  # the registry snapshot last swept for expiries

    @property
    def due(self) -> int:
        """From this instant on a sweep may find something (a close has passed)."""
        return self._expiry.due

    def reset(self) -> None:
        self._expiry.due = 0
        self._contracts_due = 0

    def sweep(self, now: int) -> asyncio.Future[None] | None:
        """End what must have ended by ``now`` (``app.services.orders.session``), in this
        synchronous step: DAY orders of closed sessions expire, orders of expired contracts
        are cancelled ``INSTRUMENT_EXPIRED``. Returns the commit to await (if any)."""
        if not self._ready():
            return None
        try:  # before any book changes: what cannot be journaled must not happen
            self._journal.check_available()
        except JournalUnavailable:
            return None
        live = self._live
        found = self._expiry.sweep(list(live.records.values()), now)
        if not found.expire and not found.cancel:
            return None
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        for token, order_ids in found.expire.items():
            live.submit(ExpireDay(now, frozenset(order_ids)), token, unit, touched)
        for record in found.cancel:
            live.submit(CancelOrder(record.order_id, now), record.instrument_token, unit, touched)
            if record.status == CANCELLED:
                live.relabel(unit, record, INSTRUMENT_EXPIRED)
        live.finish(unit, touched)
        expired = sum(len(ids) for ids in found.expire.values())
        if expired:
            self._metrics.orders_ended.labels(reason="DAY_EXPIRED").inc(expired)
        if found.cancel:
            self._metrics.orders_ended.labels(reason=INSTRUMENT_EXPIRED).inc(len(found.cancel))
        log.info(
            "trading day: orders ended",
            extra={"day_expired": expired, "contract_expired": len(found.cancel)},
        )
        future = self._journal.enqueue(unit)  # available: checked above, in this same step
        future.add_done_callback(_retrieve)
        return future

    async def keep(self, interval: float) -> None:
        """Sweep on time while no request does (the close of an idle book), and mark expired
        contracts in the registry."""
        while True:
            try:
                await self.tick()
            except Exception:  # the next tick tries again; a journal failure is recovered
                log.exception("trading day sweep failed")
            await asyncio.sleep(interval)

    async def tick(self) -> None:
        if not self._ready():  # a standby: the holder of the books does this
            return
        now = self._clock()
        if now >= self._expiry.due:
            future = self.sweep(now)
            if future is not None:
                with contextlib.suppress(JournalUnavailable):
                    await future
        await self._mark_expired_contracts(now)

    async def _mark_expired_contracts(self, now: int) -> None:
        """Status ``expired`` for the shard's contracts past their expiry close."""
        snapshot = self._registry.snapshot
        if now < self._contracts_due and snapshot is self._contracts_seen:
            return
        due = 1 << 62
        for instrument in snapshot:
            if instrument.expiry is None or not self._shard.owns(instrument.instrument_token):
                continue
            if instrument.status in (InstrumentStatus.EXPIRED, InstrumentStatus.DELISTED):
                continue
            closes = self._gate.expires_at(instrument)
            if closes <= now:
                await self._registry.set_status(
                    instrument.instrument_token, InstrumentStatus.EXPIRED
                )
                log.info("contract expired", extra={"symbol": instrument.symbol})
            else:
                due = min(due, closes)
        self._contracts_due = due
        self._contracts_seen = self._registry.snapshot


def _retrieve(future: asyncio.Future[None]) -> None:
    """A sweep's commit nobody awaits: its failure is the journal's to report and recover."""
    if not future.cancelled():
        future.exception()
