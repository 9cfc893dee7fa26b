"""Placing a parsed batch: each order is validated against the registry and the risk limits,
then submitted to its book, in request order, in one synchronous step.

An order that fails validation is rejected on its own (or, for an ``atomic`` batch, nothing
is placed). A ``client_order_id`` the account already used returns that order unchanged.
The result is the response plus the ``JournalUnit`` holding every row to commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.engine import NewOrder, Side
from app.errors import AppError
from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.orders.books import LiveBooks
from app.services.orders.entry import InstrumentControl
from app.services.orders.errors import OrderRejectedError
from app.services.orders.journal import JournalUnit
from app.services.orders.parsing import OrderInvalid, OrderRequest, parse_order
from app.services.orders.records import OrderRecord, OrderTerms
from app.services.orders.risk import RiskChecker, RiskReject
from app.services.orders.session import SessionGate
from app.services.render import render_reject, render_result

T = TypeVar("T")


@dataclass(slots=True)
class _Prepared:
    index: int
    request: OrderRequest
    instrument: Instrument
    lots: int
    price: int | None
    trigger: int | None


@dataclass(slots=True)
class Placed:
    response: dict[str, Any]
    unit: JournalUnit
    codes: Counter[str]  # rejects by code


class Placement:
    def __init__(
        self,
        *,
        live: LiveBooks,
        registry: InstrumentControl,
        risk: RiskChecker,
        session: SessionGate,
    ) -> None:
        self._live = live
        self._registry = registry
        self._risk = risk
        self._session = session

    def place(
        self,
        account: str,
        items: list[Any],
        atomic: bool,
        batch_id: str,
        known: dict[int, OrderRecord],
        now: int,
        terms: list[OrderTerms | None] | None = None,
    ) -> Placed:
        """``known``: finished orders whose ``client_order_id`` the batch repeats; ``now``:
        the time the orders are placed at (their events' timestamp); ``terms``: each item's
        adapter terms (Kite's), kept on the order."""
        seen: set[str] = set()
        pending = 0

        def prepare(index: int, item: Any) -> _Prepared:
            nonlocal pending
            ready = self._prepare(account, index, item, pending, now)
            cid = ready.request.client_order_id
            if cid is not None:
                # Decided here, before the atomic gate: an atomic batch that repeats a
                # client_order_id places nothing.
                if cid in seen:
                    raise OrderInvalid(
                        "DUPLICATE_CLIENT_ORDER_ID",
                        "client_order_id repeats an earlier order of this batch",
                    )
                seen.add(cid)
            pending += 1
            return ready

        screened = screen(items, atomic, prepare)
        results, codes = screened.results, screened.codes
        prepared = [ready for _, ready in screened.passed]

        live = self._live
        unit = JournalUnit()
        touched: dict[int, OrderRecord] = {}
        placed: list[tuple[_Prepared, OrderRecord]] = []
        for p in prepared:
            cid = p.request.client_order_id
            existing = None if cid is None else live.by_client_id(account, cid)
            if existing is not None:  # a resubmission: the original, unchanged
                record = (
                    live.records.get(existing) or live.finished.get(existing) or known.get(existing)
                )
                if record is None:
                    # Finished and forgotten while the batch read the journal: a new order
                    # would repeat the id, and the journal's unique key would fail the
                    # whole commit group. The client resends and reads the original.
                    results[p.index] = render_reject(
                        p.index, cid, "CLIENT_ORDER_ID_BUSY", "the order with this "
                        "client_order_id changed while this request ran: send it again",
                    )  # fmt: skip
                    codes["CLIENT_ORDER_ID_BUSY"] += 1
                    continue
                placed.append((p, record))
                continue
            record = self._new_record(account, batch_id, p, now)
            if terms is not None:
                record.terms = terms[p.index]
            unit.created.add(record.order_id)
            placed.append((p, record))
            live.submit(
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
        live.finish(unit, touched)

        accepted = 0
        for p, record in placed:
            created = record.order_id in unit.created
            results[p.index] = render_result(p.instrument, record, p.index, created=created)
            if record.status == "rejected":
                codes[record.reason or "REJECTED"] += 1
            else:
                accepted += 1
        final = [r for r in results if r is not None]
        response = {
            "batch_id": batch_id,
            "accepted": accepted,
            "rejected": len(final) - accepted,
            "results": final,
        }
        return Placed(response, unit, codes)

    def reference(self, instrument: Instrument) -> int | None:
        """The price the risk bands are measured from: last trade, else the registry's."""
        last = self._live.last_price(instrument.instrument_token)
        if last is not None:
            return last
        if instrument.last_price > 0:
            return int(instrument.last_price / instrument.tick_size)
        return None

    def _prepare(self, account: str, index: int, item: Any, pending: int, now: int) -> _Prepared:
        request = parse_order(item)
        instrument = self._registry.snapshot.resolve(request.symbol)
        token = instrument.instrument_token
        if instrument.status is InstrumentStatus.HALTED or token in self._live.halted:
            raise RiskReject("INSTRUMENT_HALTED", f"{instrument.symbol} is halted")
        self._session.check(instrument, now)
        lots = instrument.quantity_to_lots(request.quantity)
        price = None if request.price is None else instrument.price_to_ticks(request.price)
        trigger = (
            None
            if request.trigger_price is None
            else instrument.price_to_ticks(request.trigger_price)
        )
        self._risk.check(
            instrument,
            lots=lots,
            price=price,
            reference=self.reference(instrument),
            open_orders=self._live.open_count(account) + pending,
        )
        self._session.check_position(account, instrument, request.side is Side.BUY, lots)
        return _Prepared(index, request, instrument, lots, price, trigger)

    def _new_record(self, account: str, batch_id: str, p: _Prepared, now: int) -> OrderRecord:
        request = p.request
        record = OrderRecord(
            order_id=self._live.next_order_id(),
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
        self._live.add(record)
        return record


@dataclass(slots=True)
class Screened(Generic[T]):
    """A batch after each order's own checks: the rejects' results in place (the other
    slots None), what passed (index, prepared) and the rejects by code."""

    results: list[dict[str, Any] | None]
    passed: list[tuple[int, T]]
    codes: Counter[str]


def screen(items: list[Any], atomic: bool, prepare: Callable[[int, Any], T]) -> Screened[T]:
    """Each order through ``prepare(index, item)``; one that raises an ``AppError`` (an
    ``OrderReject``, or the registry's unknown instrument) is rejected on its own. In an
    ``atomic`` batch one reject aborts the rest: nothing passes. The in-process placement and
    the gateway (before it splits a batch between matchers) screen batches through this."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    passed: list[tuple[int, T]] = []
    codes: Counter[str] = Counter()
    for index, item in enumerate(items):
        try:
            passed.append((index, prepare(index, item)))
        except AppError as exc:
            cid = _client_order_id(item)
            results[index] = render_reject(index, cid, exc.code, exc.message)
            codes[exc.code] += 1
    if atomic and codes:
        for index, _ in passed:
            results[index] = render_reject(
                index,
                _client_order_id(items[index]),
                "BATCH_ABORTED",
                "not placed: another order of this atomic batch was rejected",
            )
            codes["BATCH_ABORTED"] += 1
        passed = []
    return Screened(results, passed, codes)


def _client_order_id(item: Any) -> str | None:
    cid = item.get("client_order_id") if isinstance(item, dict) else None
    return cid if isinstance(cid, str) else None


def single_result(response: dict[str, Any]) -> dict[str, Any]:
    """A single order's answer (``POST /orders``): its result in the one-order batch's
    response, or ``OrderRejectedError`` (422 with that result) if it was rejected."""
    result: dict[str, Any] = response["results"][0]
    if result["status"] == "rejected":
        error = result["error"]
        raise OrderRejectedError(error["message"], code=error["code"], details=result)
    return result
