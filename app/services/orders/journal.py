"""The journal writer: group commit of order state, trades and batches.

Durable before visible: a request applies its commands to the books, hands the resulting rows
to ``enqueue`` *in the same synchronous step* (so the queue is in book order), and awaits the
returned future; the writer drains everything queued into one transaction, resolves the
futures, then tells the listeners (ticks, order streams). A request therefore answers only
after its rows are committed, and one transaction carries many concurrent requests. A group
closes once the requests that are ready have joined it (``_fill``), or at half a burst that
would leave the loop idle through its commit (``_should_split``); it is written through the
writer's own connection (``app.store.commits``) in one round trip, its transaction hooks (the
webhook outbox, the fences) queueing their statements in the same transaction.

If a transaction fails, that group and everything queued behind it (computed on top of it)
fail with ``JournalUnavailable``; the journal stays unavailable (new orders are refused before
they touch a book) until the owner has rebuilt the books from what was committed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.engine import TopOfBookChanged, Trade
from app.errors import ServiceUnavailable
from app.metrics import Metrics
from app.store.commits import JournalConnection, JournalTransaction, SessionHook
from app.store.database import Database
from app.store.journal import BatchRow, HistoryRow, OrderRow, TradeRow, queue_rows

log = logging.getLogger(__name__)

# A burst of fewer units is never split in two groups (``JournalWriter._should_split``).
_SPLIT_MIN = 4


class JournalUnavailable(ServiceUnavailable):
    code = "JOURNAL_UNAVAILABLE"
    message = "the order journal is unavailable; nothing was changed, retry later"


@dataclass(slots=True, eq=False)
class JournalUnit:
    """What one request changed: rows to write and events to release after the commit."""

    orders: list[OrderRow] = field(default_factory=list)
    trades: list[tuple[int, Trade]] = field(default_factory=list)
    tops: dict[int, TopOfBookChanged] = field(default_factory=dict)
    batch: BatchRow | None = None
    created: set[int] = field(default_factory=set)  # orders this unit placed
    # The states its orders passed through (``order_history`` rows), in event order
    history: list[HistoryRow] = field(default_factory=list)
    # The positions this unit's fills moved, as it left them (set by the positions hook)
    positions: list[Any] | None = None
    future: asyncio.Future[None] | None = None

    @property
    def instruments(self) -> set[int]:
        tokens = {row.instrument_token for row in self.orders}
        tokens.update(token for token, _ in self.trades)
        return tokens


# A hook queues its statements in the group's transaction (it must not wait for anything:
# the whole transaction is sent at once); raising fails the commit.
TransactionHook = Callable[[JournalTransaction, list[JournalUnit]], None]
Listener = Callable[[list[JournalUnit]], None]


def trade_row(instrument_token: int, trade: Trade) -> TradeRow:
    return TradeRow(
        trade.seq,
        datetime.fromtimestamp(trade.timestamp / 1e9, UTC),
        trade.timestamp,
        instrument_token,
        trade.price,
        trade.quantity,
        trade.maker_order_id,
        trade.taker_order_id,
        trade.maker_account,
        trade.taker_account,
        trade.taker_side.value,
    )


class JournalWriter:
    def __init__(
        self,
        *,
        database: Database,
        metrics: Metrics,
        max_group: int = 512,
        fill_seconds: float = 0.001,
    ) -> None:
        self._database = database
        self.connection = JournalConnection(database)
        self._metrics = metrics
        self._max_group = max_group
        self._fill_seconds = fill_seconds
        self.in_flight = 0  # requests between arrival and ``enqueue`` (see ``arriving``)
        self._last_group = 0
        self._split = False  # the next group takes half of the last (``_should_split``)
        self._first_cpu = 0.0  # the loop thread's CPU time at the queue's first unit
        self._last_end = -math.inf  # when the last group's commit ended (perf_counter)
        self._committing: list[JournalUnit] = []  # the group whose commit is in flight
        self._queue: list[JournalUnit] = []
        self._wakeup = asyncio.Event()
        self._filling: asyncio.Future[None] | None = None  # ``_fill`` waiting for units
        self._fill_target = 0
        self._hooks: list[TransactionHook] = []
        self._listeners: list[Listener] = []
        self._on_failure: Callable[[], None] | None = None
        self._available = True  # False from a failed commit until the books are rebuilt
        self.last_error: str | None = None
        self._suspended: str | None = None

    def set_failure_handler(self, handler: Callable[[], None]) -> None:
        """Called once a commit failed, to rebuild state from what the journal holds."""
        self._on_failure = handler

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._available and self._suspended is None else "unavailable",
            "backlog": len(self._queue),
            "last_error": self.last_error,
            "suspended": self._suspended,
        }

    def add_transaction_hook(self, hook: TransactionHook) -> None:
        """Called inside each commit's transaction (e.g. the webhook outbox)."""
        self._hooks.append(hook)

    def add_session_hook(self, hook: SessionHook) -> None:
        """Run on each new database session of the journal, before its first group (the
        journal claim's writer lock)."""
        self.connection.add_session_hook(hook)

    def add_listener(self, listener: Listener) -> None:
        """Called after each commit with the committed units (ticks, order streams)."""
        self._listeners.append(listener)

    def idle_seconds(self) -> float:
        """Seconds since the last group's commit ended; 0 while a request is on its way to
        the journal (``arriving``), a unit waits for a group, or a group commits."""
        if self._queue or self.in_flight > 0 or self._committing:
            return 0.0
        return time.perf_counter() - self._last_end

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def suspend(self, reason: str) -> None:
        """Refuse new work until ``resume`` (a standby, or a writer that lost its claim).
        Separate from ``available``: recovering from a failed commit must not lift it."""
        self._suspended = reason

    def resume(self) -> None:
        self._suspended = None

    @property
    def available(self) -> bool:
        """False from a failed commit until ``recovered``."""
        return self._available

    def recovered(self) -> None:
        """The books were rebuilt from what the journal holds: take units again."""
        self._available = True

    def check_available(self) -> None:
        if not self._available or self._suspended is not None:
            raise JournalUnavailable()

    def enqueue(self, unit: JournalUnit) -> asyncio.Future[None]:
        """Queue ``unit`` (synchronously, right after the books changed); await the result."""
        self.check_available()
        unit.future = asyncio.get_running_loop().create_future()
        if not self._queue:  # the first unit of a group: the loop's CPU time from here
            self._first_cpu = time.thread_time()
        self._queue.append(unit)
        if self._filling is not None:
            self._poke()
        self._wakeup.set()
        return unit.future

    def arriving(self) -> Arrival:
        """Count a request from its arrival to its ``enqueue`` (``with journal.arriving():``),
        so that the group it is ready for waits for it (within ``fill_seconds``)."""
        return Arrival(self)

    async def run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    limit = await self._fill()
                    group = self._queue[:limit]
                    del self._queue[:limit]
                    self._last_group = len(group)
                    started, cpu = time.perf_counter(), time.thread_time()
                    placing, self._first_cpu = cpu - self._first_cpu, cpu
                    # With units left for the next group the loop idles through this commit
                    # whatever the grouping: that says nothing about splitting.
                    whole = not self._queue
                    self._committing = group
                    try:
                        await self._commit(group)
                    finally:
                        self._committing = []
                    self._last_end = time.perf_counter()
                    busy = time.thread_time() - cpu
                    self._split = whole and self._should_split(
                        len(group), placing, self._last_end - started, busy
                    )
        finally:
            await self.connection.close()

    def _should_split(self, size: int, placing: float, wall: float, busy: float) -> bool:
        """Whether the next group should take half of this one's size: the loop idled for
        more than half of this group's commit (``wall`` seconds, of which ``busy`` its
        thread's CPU time: the rows, the listeners and whatever requests came meanwhile), as
        nearly every request of the burst was in this one group, and placing the group took
        its thread longer than that idle time (``placing``: CPU time from the group's first
        unit to the commit). Then two halves, one placed while the other commits, keep the
        loop busy: the idle time of each commit is spent placing the other half. Where
        placing is quick against the round trip (few clients, requests arriving apart, a slow
        database), one group is better, and stays."""
        idle = wall - busy
        return size >= _SPLIT_MIN and idle > wall / 2 and placing > idle

    async def _fill(self) -> int:
        """Let the requests that are ready join the group before it closes; returns how many
        units it may take. It stays open while units keep arriving (yielding the loop: sockets
        with a request waiting are read, requests on their way reach ``enqueue``), while
        requests are counted in flight, and while it holds less than 3/4 of the last group:
        in a closed loop the clients answered by that group come back within a round trip,
        and a group of one between two full ones (what closing on the first unit did,
        alternating 15 and 1) pays a whole commit for one order. Never longer than
        ``fill_seconds``, never more than half the last group after ``_should_split``."""
        queue = self._queue
        now = time.perf_counter()
        # Clients answered longer than fill_seconds ago are not on their way any more.
        recent = now - self._last_end < self._fill_seconds
        limit = max(1, self._last_group // 2) if self._split else self._max_group
        target = min(self._last_group * 3 // 4, limit) if recent else 0
        deadline = now + self._fill_seconds
        if len(queue) < limit and (len(queue) < target or self.in_flight > 0):
            # One wait until enough units are queued (``_poke``, from ``enqueue``) or the
            # deadline: not a wake-up per unit, each with its own timeout.
            loop = asyncio.get_running_loop()
            waiter = self._filling = loop.create_future()
            self._fill_target = target
            timer = loop.call_later(self._fill_seconds, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._filling = None
        seen = len(queue)
        while seen < limit and time.perf_counter() < deadline:
            await asyncio.sleep(0)  # the requests that are ready join
            if len(queue) == seen and self.in_flight <= 0:
                break
            seen = len(queue)
        return limit

    def _poke(self) -> None:
        """Wake ``_fill``'s wait once the group holds its target and no request is in
        flight."""
        waiter = self._filling
        if (
            waiter is not None
            and len(self._queue) >= self._fill_target
            and self.in_flight <= 0
            and not waiter.done()
        ):
            waiter.set_result(None)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far, and the group committing, is committed (or
        failed), at most ``timeout`` seconds; whether it was. The requests waiting for those
        units are left alone."""
        futures = [unit.future for unit in self._committing + self._queue]
        pending = [future for future in futures if future is not None and not future.done()]
        if not pending:
            return True
        _done, waiting = await asyncio.wait(pending, timeout=timeout)
        return not waiting

    async def _commit(self, group: list[JournalUnit]) -> None:
        started = time.perf_counter()
        try:
            await self._write(group, functools.partial(self._committed, group, started))
        except Exception as exc:  # the database failed: nothing of this group is visible
            failed = group + self._queue
            self._queue.clear()
            self._available = False
            self.last_error = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            log.error("journal commit failed; refusing orders until recovered: %s", self.last_error)
            self._metrics.journal_failures.inc()
            for unit in failed:
                _resolve(unit, JournalUnavailable())
            if self._on_failure is not None:
                self._on_failure()

    def _committed(self, group: list[JournalUnit], started: float) -> None:
        """The group committed: its requests' futures settled, then the listeners told
        (before any request resumes). Called by the connection as soon as it reads the
        commit: on PostgreSQL by the socket's reader at the group's sync point, so that the
        requests resume on the loop's next turn rather than after the writer's own."""
        self._metrics.journal_commit_seconds.observe(time.perf_counter() - started)
        self._metrics.journal_group_size.observe(len(group))
        for unit in group:
            _resolve(unit, None)
        for listener in self._listeners:
            try:
                listener(group)
            except Exception:  # a listener's bug must not stop the journal
                log.exception("journal listener failed")

    async def _write(self, group: list[JournalUnit], committed: Callable[[], None]) -> None:
        order_rows: dict[int, OrderRow] = {}
        trade_rows: list[TradeRow] = []
        batch_rows: list[BatchRow] = []
        history_rows: list[HistoryRow] = []
        created: set[int] = set()
        for unit in group:
            created |= unit.created
            history_rows += unit.history
            for row in unit.orders:
                order_rows[row.order_id] = row  # the latest state of an order wins
            trade_rows.extend(trade_row(token, trade) for token, trade in unit.trades)
            if unit.batch is not None:
                batch_rows.append(unit.batch)
        tx = self.connection.transaction()
        queue_rows(
            tx,
            order_rows=list(order_rows.values()),
            trade_rows=trade_rows,
            batch_rows=batch_rows,
            new_order_ids=created,
            history_rows=history_rows,
        )
        for hook in self._hooks:
            hook(tx, group)
        await self.connection.commit(tx, committed)


class Arrival:
    """``JournalWriter.arriving``: a request counted in flight until it leaves the block."""

    __slots__ = ("_writer",)

    def __init__(self, writer: JournalWriter) -> None:
        self._writer = writer

    def __enter__(self) -> None:
        self._writer.in_flight += 1

    def __exit__(self, *_exc: object) -> None:
        writer = self._writer
        writer.in_flight -= 1
        if writer._filling is not None:
            writer._poke()


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _resolve(unit: JournalUnit, error: Exception | None) -> None:
    future = unit.future
    if future is None or future.done():  # the waiting request may have gone away
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
