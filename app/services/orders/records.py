"""The service's record of an order, and how engine events move it.

The engine forgets an order once it is done; the service keeps an ``OrderRecord`` for every
live order (plus the ones touched by the request being processed), so each event can be
turned into the order's new state, a journal row and the client's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from app.engine import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    StopTriggered,
    TopOfBookChanged,
    Trade,
)
from app.store.journal import HistoryRow, OrderRow

OPEN = "open"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
EXPIRED = "expired"
REJECTED = "rejected"
PENDING_TRIGGER = "pending_trigger"
LIVE_STATUSES = frozenset({OPEN, PARTIALLY_FILLED, PENDING_TRIGGER})
# The service's own cancel reason (the book's are in ``app.engine.Reason``): the dead man's
# switch of an order stream (``cancel_on_disconnect``) cancelled the order.
CANCEL_ON_DISCONNECT = "CANCEL_ON_DISCONNECT"
_STOPS = frozenset({OrderType.STOP.value, OrderType.STOP_LIMIT.value})


# What moved an order into the state an ``order_history`` row records.
ACCEPTED_EVENT, REJECTED_EVENT, TRADED_EVENT = "accepted", "rejected", "traded"
TRIGGERED_EVENT, AMENDED_EVENT = "triggered", "amended"
CANCELLED_EVENT, EXPIRED_EVENT = "cancelled", "expired"
HISTORY_EVENTS = (
    ACCEPTED_EVENT,
    REJECTED_EVENT,
    TRADED_EVENT,
    TRIGGERED_EVENT,
    AMENDED_EVENT,
    CANCELLED_EVENT,
    EXPIRED_EVENT,
)


def history_row(record: OrderRecord, seq: int, ts_ns: int, event: str) -> HistoryRow:
    return HistoryRow(
        record.order_id,
        seq,
        ts_ns,
        event,
        record.status,
        record.quantity,
        record.filled,
        record.remaining,
        record.price,
        record.trigger_price,
        record.reason,
    )


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """Terms a protocol adapter keeps with an order, fixed at placing: Kite Connect's product,
    validity (``DAY``/``IOC``/``TTL``), TTL minutes and tag. Our own API sets none."""

    product: str | None = None
    validity: str | None = None
    validity_ttl: int | None = None
    tag: str | None = None

    def to_json(self) -> list[Any]:
        return [self.product, self.validity, self.validity_ttl, self.tag]

    @classmethod
    def from_json(cls, value: Any) -> OrderTerms | None:
        return None if value is None else cls(*value)


_NO_TERMS = OrderTerms()


@dataclass(slots=True)
class Fill:
    trade_id: int
    price: int
    quantity: int
    liquidity: str  # "maker" | "taker"


@dataclass(slots=True, eq=False)
class OrderRecord:
    order_id: int
    account: str
    client_order_id: str | None
    batch_id: str | None
    instrument_token: int
    # Plain strings (the enums' values): cheap to copy into rows and responses.
    side: str
    order_type: str
    time_in_force: str
    post_only: bool
    stp: str
    price: int | None
    trigger_price: int | None
    quantity: int
    filled: int = 0
    remaining: int = 0
    status: str = OPEN
    priority: int | None = None
    reason: str | None = None
    created_ns: int = 0
    updated_ns: int = 0
    last_seq: int = 0
    fills: list[Fill] = field(default_factory=list)
    terms: OrderTerms | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def to_row(self) -> OrderRow:
        terms = self.terms or _NO_TERMS
        return OrderRow(
            self.order_id,
            self.account,
            self.client_order_id,
            self.batch_id,
            self.instrument_token,
            self.side,
            self.order_type,
            self.time_in_force,
            self.post_only,
            self.stp,
            self.price,
            self.trigger_price,
            self.quantity,
            self.filled,
            self.remaining,
            self.status,
            self.priority,
            self.reason,
            self.created_ns,
            self.updated_ns,
            self.last_seq,
            terms.product,
            terms.validity,
            terms.validity_ttl,
            terms.tag,
        )

    @classmethod
    def from_row(cls, row: Any) -> OrderRecord:
        return cls(
            order_id=row.order_id,
            account=row.account,
            client_order_id=row.client_order_id,
            batch_id=row.batch_id,
            instrument_token=row.instrument_token,
            side=row.side,
            order_type=row.order_type,
            time_in_force=row.time_in_force,
            post_only=bool(row.post_only),
            stp=row.stp,
            price=row.price,
            trigger_price=row.trigger_price,
            quantity=row.quantity,
            filled=row.filled,
            remaining=row.remaining,
            status=row.status,
            priority=row.priority,
            reason=row.reason,
            created_ns=row.created_ns,
            updated_ns=row.updated_ns,
            last_seq=row.last_seq,
            terms=terms_of(row),
        )


def terms_of(row: Any) -> OrderTerms | None:
    """The ``OrderTerms`` of an ``orders`` row (None when it has none)."""
    if row.product is None and row.validity is None and row.tag is None:
        return None
    return OrderTerms(row.product, row.validity, row.validity_ttl, row.tag)


_OrderEvent = (
    OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelled
    | OrderExpired
    | StopTriggered
    | OrderAmended
)


@dataclass(slots=True)
class Applied:
    """What a run of events changed: the orders touched, trades, the last top of book."""

    touched: dict[int, OrderRecord] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    top: TopOfBookChanged | None = None
    rejected: OrderRejected | None = None
    # Each state an order passed through (``order_history`` rows), in event order.
    history: list[HistoryRow] = field(default_factory=list)


def apply_events(events: list[Event], records: dict[int, OrderRecord], applied: Applied) -> None:
    """Move records by the engine's events (in order) and collect what changed.

    Dispatches on the exact event type with ``is`` (the hot path: no isinstance chains).
    """
    touched, history = applied.touched, applied.history
    for event in events:
        kind = type(event)
        if kind is Trade:
            trade = cast(Trade, event)
            for order_id, remaining, liquidity in (
                (trade.maker_order_id, trade.maker_remaining, "maker"),
                (trade.taker_order_id, trade.taker_remaining, "taker"),
            ):
                party = records[order_id]
                party.filled += trade.quantity
                party.remaining = remaining
                party.status = FILLED if remaining == 0 else PARTIALLY_FILLED
                party.fills.append(Fill(trade.seq, trade.price, trade.quantity, liquidity))
                party.last_seq = trade.seq
                party.updated_ns = trade.timestamp
                touched[order_id] = party
                history.append(history_row(party, trade.seq, trade.timestamp, TRADED_EVENT))
            applied.trades.append(trade)
            continue
        if kind is TopOfBookChanged:
            applied.top = cast(TopOfBookChanged, event)
            continue
        order_event = cast(_OrderEvent, event)
        record = records.get(order_event.order_id)
        if record is None:  # a refused cancel/amend of an order the service does not hold
            if kind is OrderRejected:
                applied.rejected = cast(OrderRejected, event)
            continue
        seq = record.last_seq = order_event.seq
        record.updated_ns = order_event.timestamp
        touched[record.order_id] = record
        if kind is OrderAccepted:
            record.priority = cast(OrderAccepted, event).priority
            record.status = PENDING_TRIGGER if record.order_type in _STOPS else OPEN
            step: str | None = ACCEPTED_EVENT
        elif kind is OrderFilled:
            record.remaining = 0
            record.status = FILLED
            step = None  # its last trade's row has it filled already
        elif kind is OrderCancelled:
            record.remaining = 0
            record.status = CANCELLED
            record.reason = cast(OrderCancelled, event).reason
            step = CANCELLED_EVENT
        elif kind is OrderExpired:
            record.remaining = 0
            record.status = EXPIRED
            record.reason = "DAY_EXPIRED"
            step = EXPIRED_EVENT
        elif kind is StopTriggered:
            record.priority = cast(StopTriggered, event).priority
            record.status = PARTIALLY_FILLED if record.filled else OPEN
            step = TRIGGERED_EVENT
        elif kind is OrderAmended:
            amended = cast(OrderAmended, event)
            record.price = amended.price
            record.remaining = amended.quantity
            record.quantity = record.filled + amended.quantity
            record.priority = amended.priority
            step = AMENDED_EVENT
        elif kind is OrderRejected:
            rejected = cast(OrderRejected, event)
            applied.rejected = rejected
            step = None
            if record.status not in LIVE_STATUSES or record.priority is None:
                # A new order the book refused; a refused cancel/amend leaves the order as is.
                record.status = REJECTED
                record.reason = rejected.reason
                record.remaining = 0
                step = REJECTED_EVENT
        else:
            step = None
        if step is not None:
            history.append(history_row(record, seq, order_event.timestamp, step))
