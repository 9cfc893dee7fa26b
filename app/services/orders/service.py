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
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from app.engine import (
    AmendOrder,
    CancelOrder,
    Command,
    NewOrder,
    OrderBook,
    Sequencer,
)
from app.errors import AppError, BadRequest, ValidationFailed
from app.metrics import Metrics
from app.services.instrument import Instrument, InstrumentStatus
from app.services.instrument_snapshot import RegistrySnapshot
from app.services.orders import queries
from app.services.orders.errors import OrderNotFound, OrderNotOpen, OrderRejectedError
from app.services.orders.idempotency import IdempotencyGuard
from app.services.orders.journal import JournalUnavailable, JournalUnit, JournalWriter
from app.services.orders.records import Applied, OrderRecord, apply_events
from app.services.orders.recovery import RecoveredState, load_state
from app.services.orders.render import render_order, render_reject, render_result
from app.services.orders.requests import OrderInvalid, OrderRequest, parse_batch, parse_order
from app.services.orders.risk import CircuitBreaker, RiskChecker, RiskReject
from app.services.orders.shard import Shard
from app.store.database import Database

log = logging.getLogger(__name__)


class Registry(Protocol):
    @property
    def snapshot(self) -> RegistrySnapshot: ...
    async def set_status(self, instrument_token: int, status: InstrumentStatus) -> Instrument: ...


@dataclass(slots=True)
class _Prepared:
    index: int
    request: OrderRequest
    instrument: Instrument
    lots: int
    price: int | None
    trigger: int | None


class OrderService:
    def __init__(
        self,
        *,
        database: Database,
        registry: Registry,
        journal: JournalWriter,
        metrics: Metrics,
        risk: RiskChecker,
        breaker: CircuitBreaker,
        max_batch_orders: int,
        shard: Shard | None = None,
        clock: Callable[[], int] = time.time_ns,
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
        self._sequencer = Sequencer()
        self.books: dict[int, OrderBook] = {}
        self.book_seq: dict[int, int] = {}
        self._records: dict[int, OrderRecord] = {}
        self._by_account: dict[str, set[int]] = {}
        self._client_ids: dict[tuple[str, str], int] = {}
        self._last_order_id = 0
        self._halted: set[int] = set()
        self._idempotency = IdempotencyGuard(database)
        self._recovery: asyncio.Task[None] | None = None
        self.ready = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._install(await load_state(self._database, self.shard))
        self.ready = True
        log.info(
            "books rebuilt from the journal",
            extra={"books": len(self.books), "live_orders": len(self._records)},
        )

    def _install(self, state: RecoveredState) -> None:
        self._sequencer.last = state.last_seq
        self.books = {
            token: OrderBook.restore(token, snapshot, self._sequencer)
            for token, snapshot in state.snapshots.items()
        }
        self.book_seq = dict.fromkeys(self.books, state.last_seq)
        self._records = state.records
        self._by_account = {}
        for record in state.records.values():
            self._by_account.setdefault(record.account, set()).add(record.order_id)
        self._client_ids = state.client_ids
        self._last_order_id = state.last_order_id

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
            self._install(state)
            self.journal.available = True
            log.info("journal available again; books rebuilt from it")
            return

    def book(self, token: int) -> OrderBook:
        book = self.books.get(token)
        if book is None:
            book = self.books[token] = OrderBook(token, self._sequencer)
        return book

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
    ) -> dict[str, Any]:
        """Place parsed batch items; ``indices`` renumbers results (a gateway's shard part)."""
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
            response, unit = self._place(account, items, atomic, batch_id, known)
            if indices is not None:
                for result in response["results"]:
                    result["index"] = indices[result["index"]]
            unit.batch = {
                "batch_id": batch_id,
                "account": account,
                "created_ns": self._clock(),
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
                "accepted": response["accepted"],
                "rejected": response["rejected"],
                "response": orjson.dumps(response).decode(),
            }
            await self.journal.enqueue(unit)
        finally:
            if idempotency_key is not None:
                self._idempotency.release(account, idempotency_key)
        self._metrics.batch_size.observe(len(items))
        self._metrics.order_ack_seconds.observe(time.perf_counter() - started)
        return response

    async def place_order(self, account: str, body: bytes) -> dict[str, Any]:
        """One order (``POST /orders``): the batch path with a single order."""
        try:
            item = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("request body is not valid JSON", code="INVALID_JSON") from exc
        response = await self.place_batch(account, orjson.dumps({"orders": [item]}))
        result: dict[str, Any] = response["results"][0]
        result.pop("index", None)
        if result["status"] == "rejected":
            error = result["error"]
            raise OrderRejectedError(error["message"], code=error["code"], details=result)
        return result

    async def _known_orders(self, account: str, items: list[Any]) -> dict[int, OrderRecord]:
        """Finished orders whose client_order_id this batch repeats (read before matching)."""
        wanted = []
        for item in items:
            cid = item.get("client_order_id") if isinstance(item, dict) else None
            if isinstance(cid, str):
                order_id = self._client_ids.get((account, cid))
                if order_id is not None and order_id not in self._records:
                    wanted.append(order_id)
        if not wanted:
            return {}
        return await queries.order_records(self._database, account, wanted)

    def _prepare(self, account: str, index: int, item: Any, pending: int) -> _Prepared:
        request = parse_order(item)
        instrument = self._registry.snapshot.resolve(request.symbol)
        token = instrument.instrument_token
        if instrument.status is InstrumentStatus.HALTED or token in self._halted:
            raise RiskReject("INSTRUMENT_HALTED", f"{instrument.symbol} is halted")
        lots = instrument.quantity_to_lots(request.quantity)
        price = None if request.price is None else instrument.price_to_ticks(request.price)
        trigger = (
            None
            if request.trigger_price is None
            else instrument.price_to_ticks(request.trigger_price)
        )
        open_orders = len(self._by_account.get(account, ())) + pending
        self._risk.check(
            instrument,
            lots=lots,
            price=price,
            reference=self._reference(instrument),
            open_orders=open_orders,
        )
        return _Prepared(index, request, instrument, lots, price, trigger)

    def _reference(self, instrument: Instrument) -> int | None:
        book = self.books.get(instrument.instrument_token)
        if book is not None and book.last_price is not None:
            return book.last_price
        if instrument.last_price > 0:
            return int(instrument.last_price / instrument.tick_size)
        return None

    def _place(
        self,
        account: str,
        items: list[Any],
        atomic: bool,
        batch_id: str,
        known: dict[int, OrderRecord],
    ) -> tuple[dict[str, Any], JournalUnit]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        prepared: list[_Prepared] = []
        codes: Counter[str] = Counter()
        for index, item in enumerate(items):
            try:
                prepared.append(self._prepare(account, index, item, len(prepared)))
            except (OrderInvalid, RiskReject, AppError) as exc:
                cid = item.get("client_order_id") if isinstance(item, dict) else None
                code = getattr(exc, "code", "VALIDATION_ERROR")
                results[index] = render_reject(
                    index, cid if isinstance(cid, str) else None, code, _message(exc)
                )
                codes[code] += 1
        if atomic and codes:
            for p in prepared:
                results[p.index] = render_reject(
                    p.index,
                    p.request.client_order_id,
                    "BATCH_ABORTED",
                    "not placed: another order of this atomic batch was rejected",
                )
                codes["BATCH_ABORTED"] += 1
            prepared = []

        unit = JournalUnit()
        touched: dict[int, OrderRecord] = {}
        seen: set[str] = set()
        now = self._clock()
        placed: list[tuple[_Prepared, OrderRecord]] = []
        for p in prepared:
            cid = p.request.client_order_id
            if cid is not None:
                if cid in seen:
                    results[p.index] = render_reject(
                        p.index,
                        cid,
                        "DUPLICATE_CLIENT_ORDER_ID",
                        "client_order_id repeats an earlier order of this batch",
                    )
                    codes["DUPLICATE_CLIENT_ORDER_ID"] += 1
                    continue
                seen.add(cid)
                existing = self._client_ids.get((account, cid))
                if existing is not None:
                    record = self._records.get(existing) or known.get(existing)
                    if record is not None:  # a resubmission: the original, unchanged
                        placed.append((p, record))
                        continue
            record = self._new_record(account, batch_id, p, now)
            unit.created.add(record.order_id)
            placed.append((p, record))
            self._submit(
                NewOrder(
                    record.order_id,
                    account,
                    p.request.side,
                    p.request.order_type,
                    p.lots,
                    p.price,
                    p.trigger,
                    p.request.time_in_force,
                    p.request.post_only,
                    p.request.stp,
                    now,
                ),
                p.instrument.instrument_token,
                unit,
                touched,
            )
        self._finish(unit, touched)

        accepted = 0
        for p, record in placed:
            results[p.index] = render_result(p.instrument, record, p.index)
            if record.status == "rejected":
                codes[record.reason or "REJECTED"] += 1
            else:
                accepted += 1
        self._count(accepted, codes)
        final = [r for r in results if r is not None]
        response = {
            "batch_id": batch_id,
            "accepted": accepted,
            "rejected": len(final) - accepted,
            "results": final,
        }
        return response, unit

    def _new_record(self, account: str, batch_id: str, p: _Prepared, now: int) -> OrderRecord:
        self._last_order_id += 1
        request = p.request
        record = OrderRecord(
            order_id=self._last_order_id,
            account=account,
            client_order_id=request.client_order_id,
            batch_id=batch_id,
            instrument_token=p.instrument.instrument_token,
            side=request.side.value,
            order_type=request.order_type.value,
            time_in_force=request.time_in_force.value,
            post_only=request.post_only,
            stp=request.stp.value,
            price=p.price,
            trigger_price=p.trigger,
            quantity=p.lots,
            remaining=p.lots,
            created_ns=now,
            updated_ns=now,
        )
        self._records[record.order_id] = record
        self._by_account.setdefault(account, set()).add(record.order_id)
        if request.client_order_id is not None:
            self._client_ids[(account, request.client_order_id)] = record.order_id
        return record

    def _submit(
        self, command: Command, token: int, unit: JournalUnit, touched: dict[int, OrderRecord]
    ) -> Applied:
        events = self.book(token).submit(command)
        applied = Applied(touched=touched)
        apply_events(events, self._records, applied)
        if events:
            self.book_seq[token] = events[-1].seq
        if applied.top is not None:
            unit.tops[token] = applied.top
        for trade in applied.trades:
            unit.trades.append((token, trade))
            if self._breaker.observe(token, trade.timestamp, trade.price):
                self._trip(token)
        return applied

    def _finish(self, unit: JournalUnit, touched: dict[int, OrderRecord]) -> None:
        """Freeze the touched orders into journal rows; forget the ones that are done."""
        for record in touched.values():
            unit.orders.append(record.to_row())
            if not record.live:
                self._records.pop(record.order_id, None)
                mine = self._by_account.get(record.account)
                if mine is not None:
                    mine.discard(record.order_id)

    def _count(self, accepted: int, codes: Counter[str]) -> None:
        if accepted:
            self._metrics.orders.labels(outcome="accepted", code="").inc(accepted)
        for code, count in codes.items():
            self._metrics.orders.labels(outcome="rejected", code=code).inc(count)

    def _trip(self, token: int) -> None:
        if token in self._halted:
            return
        self._halted.add(token)
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

    def _own_live(self, account: str, order_id: int) -> OrderRecord | None:
        record = self._records.get(order_id)
        return record if record is not None and record.account == account else None

    async def _not_live(self, account: str, order_id: int) -> AppError:
        record = await queries.order_record(self._database, account, order_id)
        if record is None:
            return OrderNotFound()
        return OrderNotOpen(f"the order is {record.status}", details={"status": record.status})

    async def _commit(self, unit: JournalUnit) -> None:
        await self.journal.enqueue(unit)

    async def cancel_order(self, account: str, order_id: int) -> dict[str, Any]:
        record = self._own_live(account, order_id)
        if record is None:
            raise await self._not_live(account, order_id)
        self.journal.check_available()
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        self._submit(CancelOrder(order_id, self._clock()), record.instrument_token, unit, touched)
        self._finish(unit, touched)
        await self._commit(unit)
        return render_order(self._registry.snapshot.instrument(record.instrument_token), record)

    async def amend_order(
        self, account: str, order_id: int, *, quantity: str | None, price: str | None
    ) -> dict[str, Any]:
        if quantity is None and price is None:
            raise ValidationFailed("give quantity and/or price")
        record = self._own_live(account, order_id)
        if record is None:
            raise await self._not_live(account, order_id)
        self.journal.check_available()
        instrument = self._registry.snapshot.instrument(record.instrument_token)
        lots = None if quantity is None else instrument.quantity_to_lots(quantity)
        ticks = None if price is None else instrument.price_to_ticks(price)
        try:
            self._risk.check(
                instrument,
                lots=lots if lots is not None else record.remaining,
                price=ticks,
                reference=self._reference(instrument),
                open_orders=0,
            )
        except RiskReject as exc:
            raise ValidationFailed(exc.message, code=exc.code) from exc
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        applied = self._submit(
            AmendOrder(order_id, lots, ticks, self._clock()), record.instrument_token, unit, touched
        )
        if applied.rejected is not None:
            raise ValidationFailed(
                f"the amend was refused ({applied.rejected.reason})", code=applied.rejected.reason
            )
        self._finish(unit, touched)
        await self._commit(unit)
        return render_order(instrument, record)

    async def cancel_all(self, account: str, symbol: str | None = None) -> dict[str, Any]:
        token = None if symbol is None else self._registry.snapshot.lookup(symbol).instrument_token
        self.journal.check_available()
        mine = [
            self._records[order_id]
            for order_id in sorted(self._by_account.get(account, ()))
            if token is None or self._records[order_id].instrument_token == token
        ]
        unit, touched = JournalUnit(), dict[int, OrderRecord]()
        now = self._clock()
        for record in mine:
            self._submit(CancelOrder(record.order_id, now), record.instrument_token, unit, touched)
        self._finish(unit, touched)
        if unit.orders:
            await self._commit(unit)
        snapshot = self._registry.snapshot
        cancelled = [
            render_order(snapshot.instrument(r.instrument_token), r)
            for r in mine
            if r.status == "cancelled"
        ]
        return {"cancelled": len(cancelled), "items": cancelled}

    async def set_halted(self, instrument_token: int, halted: bool) -> Instrument:
        instrument = self._registry.snapshot.instrument(instrument_token)
        status = InstrumentStatus.HALTED if halted else InstrumentStatus.ACTIVE
        updated = await self._registry.set_status(instrument.instrument_token, status)
        if halted:
            self._halted.add(instrument_token)
            self._metrics.halts.labels(cause="admin").inc()
        else:
            self._halted.discard(instrument_token)
            self._breaker.reset(instrument_token)
        return updated

    def is_halted(self, instrument_token: int) -> bool:
        return instrument_token in self._halted

    def live_order_ids(self, account: str) -> list[int]:
        return sorted(self._by_account.get(account, ()))


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


__all__ = ["JournalUnavailable", "OrderService"]
