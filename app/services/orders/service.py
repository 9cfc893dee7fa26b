"""The order service: batches and single orders into the books, journaled before answered.

Each request runs its checks and its book changes in one synchronous step (so a batch is
never interleaved with another request and is never half applied), queues the resulting
journal rows in that same step, then awaits the group commit. Results, ticks and webhooks
exist only once the commit succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from app.engine import AmendOrder, CancelOrder, OrderBook, Trade
from app.errors import AppError, ValidationFailed
from app.metrics import Metrics
from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.orders import journal_queries
from app.services.orders.books import LiveBooks
from app.services.orders.entry import InstrumentControl
from app.services.orders.errors import OrderNotFound, OrderNotOpen
from app.services.orders.idempotency import IdempotencyGuard
from app.services.orders.journal import JournalUnavailable, JournalUnit, JournalWriter
from app.services.orders.parsing import parse_batch, parse_single
from app.services.orders.placement import Placement, single_result
from app.services.orders.records import CANCELLED, OrderRecord, OrderTerms
from app.services.orders.recovery import load_state
from app.services.orders.risk import CircuitBreaker, RiskChecker
from app.services.orders.session import PositionLimit, SessionGate
from app.services.orders.shard import Shard
from app.services.orders.trading_day import TradingDay
from app.services.positions.service import PositionBook
from app.services.render import render_order
from app.services.trading_day.calendar import TradingCalendar
from app.store.database import Database
from app.store.journal import BatchRow

log = logging.getLogger(__name__)


class OrderService:
    def __init__(
        self,
        *,
        database: Database,
        registry: InstrumentControl,
        journal: JournalWriter,
        metrics: Metrics,
        risk: RiskChecker,
        breaker: CircuitBreaker,
        max_batch_orders: int,
        shard: Shard | None = None,
        clock: Callable[[], int] = time.time_ns,
        calendar: TradingCalendar | None = None,
        positions: PositionBook | None = None,
        position_limit: PositionLimit | None = None,
        session_check_seconds: float = 1.0,
    ) -> None:
        self.shard = shard or Shard()
        self._database = database
        self._registry = registry
        self.journal = journal
        self._metrics = metrics
        self._risk = risk
        self._breaker = breaker
        self.max_batch_orders = max_batch_orders
        self._clock = clock
        self._live = LiveBooks(on_trade=self._observe)
        self.calendar = calendar or TradingCalendar.default()
        self.session_check_seconds = session_check_seconds
        self.positions = positions
        if position_limit is not None and positions is not None:
            self._gate = SessionGate(
                self.calendar, position_limit=position_limit, net_position=positions.net
            )
        else:
            self._gate = SessionGate(self.calendar)
        self.trading_day = TradingDay(
            live=self._live,
            journal=journal,
            registry=registry,
            gate=self._gate,
            metrics=metrics,
            clock=clock,
            shard=self.shard,
            ready=lambda: self.ready,
        )
        self._placement = Placement(
            live=self._live, registry=registry, risk=risk, session=self._gate
        )
        self._idempotency = IdempotencyGuard(database)
        self._recovery: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # set while the books are the journal's

    @property
    def books(self) -> dict[int, OrderBook]:
        return self._live.books

    @property
    def book_seq(self) -> dict[int, int]:
        """The last event sequence number each book emitted (for ticks and snapshots)."""
        return self._live.book_seq

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The books are rebuilt from the journal and orders are taken."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def suspend(self, reason: str) -> None:
        """Take no more orders (the journal refuses them with ``reason``) until ``start``
        rebuilt the books and the journal is resumed: the claim or lease was lost."""
        self._ready.clear()
        self.journal.suspend(reason)

    async def start(self) -> None:
        self._live.install(await load_state(self._database, self.shard))
        if self.positions is not None:
            await self.positions.load()
        self.trading_day.reset()  # the first request (or tick) sweeps what ended while down
        self._ready.set()
        log.info(
            "books rebuilt from the journal",
            extra={"books": len(self.books), "live_orders": len(self._live.records)},
        )

    def on_journal_failure(self) -> None:
        """The journal lost a commit: rebuild everything from what it holds, once it answers."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self, interval: float = 0.5) -> None:
        attempts = 0
        while True:
            try:
                await self.journal.flush()
                state = await load_state(self._database, self.shard)
                if self.positions is not None:  # a failure here is retried as well
                    await self.positions.load()
            except Exception as exc:  # still down: keep refusing orders, try again
                if attempts % 20 == 0:  # every ~10 s, not every attempt
                    log.warning(
                        "journal still unavailable (%s); retrying every %ss",
                        type(exc).__name__,
                        interval,
                    )
                attempts += 1
                await asyncio.sleep(interval)
                continue
            self._live.install(state)
            self.trading_day.reset()
            self.journal.recovered()
            log.info("journal available again; books rebuilt from it")
            return

    # --- placing -----------------------------------------------------------------------------

    async def place_batch(
        self, account: str, body: bytes, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.journal.check_available()
        items, atomic = parse_batch(body, self.max_batch_orders)
        request_hash = hashlib.sha256(body).hexdigest() if idempotency_key else None
        return await self.place_items(
            account,
            items,
            atomic,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )

    async def place_items(
        self,
        account: str,
        items: list[Any],
        atomic: bool,
        *,
        batch_id: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        indices: list[int] | None = None,
        terms: list[OrderTerms | None] | None = None,
    ) -> dict[str, Any]:
        """Place parsed batch items; ``indices`` renumbers results (a gateway's shard part);
        ``terms``: an adapter's terms of each item (Kite's), kept on the order."""
        started = time.perf_counter()
        self.journal.check_available()
        if idempotency_key is not None:
            self._idempotency.claim(account, idempotency_key)
        try:
            if idempotency_key is not None:
                stored = await self._idempotency.replay(account, idempotency_key, request_hash)
                if stored is not None:
                    return stored
            known = await self._known_orders(account, items)
            batch_id = batch_id or secrets.token_hex(12)
            now = self._clock()
            if now >= self.trading_day.due:
                self.trading_day.sweep(now)
            placed = self._placement.place(account, items, atomic, batch_id, known, now, terms)
            response, unit = placed.response, placed.unit
            self._count(response["accepted"], placed.codes)
            if indices is not None:
                for result in response["results"]:
                    result["index"] = indices[result["index"]]
            unit.batch = BatchRow(
                batch_id,
                account,
                self._clock(),
                idempotency_key,
                request_hash,
                response["accepted"],
                response["rejected"],
                orjson.dumps(response).decode(),
            )
            await self.journal.enqueue(unit)
        finally:
            if idempotency_key is not None:
                self._idempotency.release(account, idempotency_key)
        self._metrics.batch_size.observe(len(items))
        self._metrics.order_ack_seconds.observe(time.perf_counter() - started)
        return response

    async def place_order(
        self, account: str, body: bytes, *, terms: OrderTerms | None = None
    ) -> dict[str, Any]:
        """One order (``POST /orders``): the batch path with a single order, whose result
        (``index`` 0) it returns as it is. ``terms``: the Kite adapter's, kept on the order."""
        items = [parse_single(body)]
        return single_result(
            await self.place_items(account, items, False, terms=None if terms is None else [terms])
        )

    async def _known_orders(self, account: str, items: list[Any]) -> dict[int, OrderRecord]:
        """Finished orders whose client_order_id this batch repeats (read before matching)."""
        wanted = []
        for item in items:
            cid = item.get("client_order_id") if isinstance(item, dict) else None
            if isinstance(cid, str):
                order_id = self._live.by_client_id(account, cid)
                live = self._live
                if order_id is None or order_id in live.records or order_id in live.finished:
                    continue
                wanted.append(order_id)
        if not wanted:
            return {}
        return await journal_queries.order_records(self._database, account, wanted)

    def _observe(self, token: int, trade: Trade) -> None:
        if self._breaker.observe(token, trade.timestamp, trade.price):
            self._trip(token)

    def _count(self, accepted: int, codes: Counter[str]) -> None:
        if accepted:
            self._metrics.orders.labels(outcome="accepted", code="").inc(accepted)
        for code, count in codes.items():
            self._metrics.orders.labels(outcome="rejected", code=code).inc(count)

    def _trip(self, token: int) -> None:
        if token in self._live.halted:
            return
        self._live.halted.add(token)
        self._metrics.halts.labels(cause="circuit_breaker").inc()
        log.warning("circuit breaker halted instrument %s", token)
        asyncio.get_running_loop().create_task(self._persist_status(token, halted=True))

    async def _persist_status(self, token: int, *, halted: bool) -> None:
        status = InstrumentStatus.HALTED if halted else InstrumentStatus.ACTIVE
        try:
            await self._registry.set_status(token, status)
        except Exception:  # the in-memory halt holds; the operator sees the log
            log.exception("could not store status %s for instrument %s", status, token)

    # --- changing orders ----------------------------------------------------------------------

    async def _not_live(self, account: str, order_id: int) -> AppError:
        record = await journal_queries.order_record(self._database, account, order_id)
        if record is None:
            return OrderNotFound()
        return OrderNotOpen(f"the order is {record.status}", details={"status": record.status})

    async def _commit(self, unit: JournalUnit) -> None:
        await self.journal.enqueue(unit)

    async def cancel_order(self, account: str, order_id: int) -> dict[str, Any]:
        self._sweep_if_due()
        record = self._live.own_live(account, order_id)
        if record is None:
            raise await self._not_live(account, order_id)
        self.journal.check_available()
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        live = self._live
        live.submit(CancelOrder(order_id, self._clock()), record.instrument_token, unit, touched)
        live.finish(unit, touched)
        await self._commit(unit)
        return render_order(self._registry.snapshot.instrument(record.instrument_token), record)

    async def amend_order(
        self, account: str, order_id: int, *, quantity: str | None, price: str | None
    ) -> dict[str, Any]:
        if quantity is None and price is None:
            raise ValidationFailed("give quantity and/or price")
        now = self._sweep_if_due()
        record = self._live.own_live(account, order_id)
        if record is None:
            raise await self._not_live(account, order_id)
        self.journal.check_available()
        instrument = self._registry.snapshot.instrument(record.instrument_token)
        self._gate.check(instrument, now)  # an OrderReject answers 422 with its code
        lots = None if quantity is None else instrument.quantity_to_lots(quantity)
        ticks = None if price is None else instrument.price_to_ticks(price)
        self._risk.check(  # a RiskReject answers 422 with its code
            instrument,
            lots=lots if lots is not None else record.remaining,
            price=ticks,
            reference=self._placement.reference(instrument),
            open_orders=0,
        )
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        applied = self._live.submit(
            AmendOrder(order_id, lots, ticks, self._clock()), record.instrument_token, unit, touched
        )
        if applied.rejected is not None:
            raise ValidationFailed(
                f"the amend was refused ({applied.rejected.reason})", code=applied.rejected.reason
            )
        self._live.finish(unit, touched)
        await self._commit(unit)
        return render_order(instrument, record)

    async def cancel_all(
        self, account: str, symbol: str | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Cancel the account's live orders; ``reason`` replaces the book's ``USER_CANCELLED``
        (e.g. ``CANCEL_ON_DISCONNECT``) in the journaled order, its update and its webhook."""
        token = None if symbol is None else self._registry.snapshot.lookup(symbol).instrument_token
        self.journal.check_available()
        self._sweep_if_due()
        live = self._live
        mine = [
            live.records[order_id]
            for order_id in live.live_order_ids(account)
            if token is None or live.records[order_id].instrument_token == token
        ]
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        now = self._clock()
        for record in mine:
            live.submit(CancelOrder(record.order_id, now), record.instrument_token, unit, touched)
            if reason is not None and record.status == CANCELLED:
                live.relabel(unit, record, reason)
        live.finish(unit, touched)
        if unit.orders:
            await self._commit(unit)
        snapshot = self._registry.snapshot
        cancelled = [
            render_order(snapshot.instrument(r.instrument_token), r)
            for r in mine
            if r.status == CANCELLED
        ]
        return {"cancelled": len(cancelled), "items": cancelled}

    async def set_halted(self, instrument_token: int, halted: bool) -> Instrument:
        instrument = self._registry.snapshot.instrument(instrument_token)
        status = InstrumentStatus.HALTED if halted else InstrumentStatus.ACTIVE
        updated = await self._registry.set_status(instrument.instrument_token, status)
        if halted:
            self._live.halted.add(instrument_token)
            self._metrics.halts.labels(cause="admin").inc()
        else:
            self._live.halted.discard(instrument_token)
            self._breaker.reset(instrument_token)
        return updated

    # --- the trading day -------------------------------------------------------------------

    def now_ns(self) -> int:
        """The service's clock (``app.services.clock``)."""
        return self._clock()

    def _sweep_if_due(self) -> int:
        now = self._clock()
        if now >= self.trading_day.due:
            self.trading_day.sweep(now)
        return now

    async def keep_trading_day(self, interval: float) -> None:
        await self.trading_day.keep(interval)

    def is_halted(self, instrument_token: int) -> bool:
        return instrument_token in self._live.halted

    def live_order_ids(self, account: str) -> list[int]:
        return self._live.live_order_ids(account)


__all__ = ["JournalUnavailable", "OrderService"]
