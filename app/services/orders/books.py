"""The live state of one shard's order path: its books, the records of its open orders and
the indexes requests need (by account, by ``client_order_id``), plus the halted instruments.

Everything here is synchronous and in memory: a request changes it in one step, between two
awaits, so no other request ever sees it half changed. ``install`` replaces it all with what
recovery rebuilt from the journal.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from app.engine import Command, OrderBook, Sequencer, Trade
from app.services.orders.journal import JournalUnit
from app.services.orders.records import Applied, OrderRecord, apply_events
from app.services.orders.recovery import RecoveredState

TradeHook = Callable[[int, Trade], None]


FINISHED_KEPT = 10_000  # far more than finish while one batch reads the journal


class LiveBooks:
    def __init__(self, on_trade: TradeHook) -> None:
        self._on_trade = on_trade
        self._sequencer = Sequencer()
        self.books: dict[int, OrderBook] = {}
        self.book_seq: dict[int, int] = {}  # the last event seq each book emitted
        self.records: dict[int, OrderRecord] = {}  # live orders (and those being finished)
        # The orders that finished last, newest last: a batch that repeats one's
        # client_order_id finds it here even while the journal has not committed it yet.
        # Ordered, so the oldest goes in O(1): a dict's first key, after many deletions at
        # its front, is found by a scan past their slots (~4 µs an order at 10,000).
        self.finished: OrderedDict[int, OrderRecord] = OrderedDict()
        self._by_account: dict[str, set[int]] = {}
        self._client_ids: dict[tuple[str, str], int] = {}
        self._last_order_id = 0
        self.halted: set[int] = set()

    def install(self, state: RecoveredState) -> None:
        self._sequencer.last = state.last_seq
        self.books = {
            token: OrderBook.restore(token, snapshot, self._sequencer)
            for token, snapshot in state.snapshots.items()
        }
        self.book_seq = dict.fromkeys(self.books, state.last_seq)
        self.records = state.records
        self.finished = OrderedDict()
        self._by_account = {}
        for record in state.records.values():
            self._by_account.setdefault(record.account, set()).add(record.order_id)
        self._client_ids = state.client_ids
        self._last_order_id = state.last_order_id

    def book(self, token: int) -> OrderBook:
        book = self.books.get(token)
        if book is None:
            book = self.books[token] = OrderBook(token, self._sequencer)
        return book

    def last_price(self, token: int) -> int | None:
        book = self.books.get(token)
        return None if book is None else book.last_price

    # --- orders ------------------------------------------------------------------------------

    def next_order_id(self) -> int:
        self._last_order_id += 1
        return self._last_order_id

    def add(self, record: OrderRecord) -> None:
        self.records[record.order_id] = record
        self._by_account.setdefault(record.account, set()).add(record.order_id)
        if record.client_order_id is not None:
            self._client_ids[(record.account, record.client_order_id)] = record.order_id

    def by_client_id(self, account: str, client_order_id: str) -> int | None:
        """The order id this account gave ``client_order_id`` to, live or finished."""
        return self._client_ids.get((account, client_order_id))

    def own_live(self, account: str, order_id: int) -> OrderRecord | None:
        record = self.records.get(order_id)
        return record if record is not None and record.account == account else None

    def open_count(self, account: str) -> int:
        return len(self._by_account.get(account, ()))

    def live_order_ids(self, account: str) -> list[int]:
        return sorted(self._by_account.get(account, ()))

    # --- changes -----------------------------------------------------------------------------

    def submit(
        self, command: Command, token: int, unit: JournalUnit, touched: dict[int, OrderRecord]
    ) -> Applied:
        """One command into its book; the events move the records and fill the unit."""
        events = self.book(token).submit(command)
        applied = Applied(touched=touched, history=unit.history)
        apply_events(events, self.records, applied)
        if events:
            self.book_seq[token] = events[-1].seq
        if applied.top is not None:
            unit.tops[token] = applied.top
        for trade in applied.trades:
            unit.trades.append((token, trade))
            self._on_trade(token, trade)
        return applied

    @staticmethod
    def relabel(unit: JournalUnit, record: OrderRecord, reason: str) -> None:
        """Give the order the command just submitted ended a reason of the service's own
        (``CANCEL_ON_DISCONNECT``, ``INSTRUMENT_EXPIRED``) in its record and its last history
        row, before ``finish`` freezes the journal row."""
        record.reason = reason
        history = unit.history
        for index in range(len(history) - 1, -1, -1):
            if history[index].order_id == record.order_id:
                history[index] = history[index]._replace(reason=reason)
                return

    def finish(self, unit: JournalUnit, touched: dict[int, OrderRecord]) -> None:
        """Freeze the touched orders into journal rows; forget the ones that are done."""
        for record in touched.values():
            unit.orders.append(record.to_row())
            if not record.live:
                self.records.pop(record.order_id, None)
                self.finished[record.order_id] = record
                if len(self.finished) > FINISHED_KEPT:
                    self.finished.popitem(last=False)
                mine = self._by_account.get(record.account)
                if mine is not None:
                    mine.discard(record.order_id)
