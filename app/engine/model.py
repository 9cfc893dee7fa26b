"""Vocabulary of the matching engine: enums, reason codes, the sequencer and the order records.

Layout: prices are integer ticks and quantities integer lots. ``Order`` is the book's own
mutable record of a live order; callers only see copies (``OrderState``) and events.
Ordering invariant: ``priority`` comes from a per-book counter, drawn when an order is accepted,
when a stop triggers and when an amend re-queues an order. The book runs one order to the end
before the next, so resting orders' priorities rise in the order they came to rest, and a
level's FIFO is priority order.
Modify semantics: only ``price``, ``remaining``, ``filled`` and ``priority`` of an ``Order`` ever
change (see ``book.py``); its other terms are the frozen ``NewOrder`` it came from.
Complexity: O(1) everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from app.engine.commands import NewOrder


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class SelfTradePrevention(StrEnum):
    """What happens when a taker meets a resting order of its own account (taker's mode wins)."""

    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"
    NONE = "none"


class OrderStatus(StrEnum):
    """Status of a live order as the book reports it (the service keeps the terminal ones)."""

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_TRIGGER = "pending_trigger"


class Reason:
    """Stable reason codes carried by ``OrderRejected`` and ``OrderCancelled`` events."""

    # Rejects of a command (nothing changed in the book).
    DUPLICATE_ORDER_ID: Final = "DUPLICATE_ORDER_ID"
    INVALID_QUANTITY: Final = "INVALID_QUANTITY"
    INVALID_PRICE: Final = "INVALID_PRICE"
    INVALID_TRIGGER_PRICE: Final = "INVALID_TRIGGER_PRICE"
    INVALID_POST_ONLY: Final = "INVALID_POST_ONLY"
    INVALID_AMEND: Final = "INVALID_AMEND"
    POST_ONLY_WOULD_TAKE: Final = "POST_ONLY_WOULD_TAKE"
    FOK_NOT_FILLABLE: Final = "FOK_NOT_FILLABLE"
    UNKNOWN_ORDER: Final = "UNKNOWN_ORDER"
    NO_LIQUIDITY: Final = "NO_LIQUIDITY"
    # Cancels of an accepted order (NO_LIQUIDITY and FOK_NOT_FILLABLE are used for both).
    USER_CANCELLED: Final = "USER_CANCELLED"
    IOC_UNFILLED: Final = "IOC_UNFILLED"
    SELF_TRADE_PREVENTION: Final = "SELF_TRADE_PREVENTION"


#: Largest accepted price or trigger price, in ticks.
MAX_PRICE: Final = 1 << 60


@dataclass(slots=True)
class Sequencer:
    """Source of global event sequence numbers; share one between books for a global order.

    ``last`` is the last number handed out. Books read and write it directly on the hot path.
    """

    last: int = 0

    def next(self) -> int:
        self.last += 1
        return self.last


@dataclass(slots=True, eq=False)
class Order:
    """A live order inside a book: resting in a level or pending as a stop.

    ``terms`` is the (frozen) ``NewOrder`` it came from: type, time in force, trigger, post-only
    and STP mode never change, so they are read from there. ``price`` and ``remaining`` are the
    live values (an amend changes them); ``price`` is 0 for an order without a limit price.
    ``remaining == 0`` marks a dead entry still in its level's deque (cancelled, re-queued, or
    gone by self-trade prevention): levels drop such entries lazily, so cancel stays O(1). A
    maker that is filled leaves its deque and the index at once and its record is dropped
    as it was (its ``remaining``/``filled`` are not updated: nothing refers to it any more).
    The passive hot path builds it field by field (``events.new_event``): no defaults here.
    """

    order_id: int
    account: str
    side: Side
    price: int
    remaining: int
    filled: int
    priority: int
    terms: NewOrder

    @property
    def trigger(self) -> int:
        """The stop trigger price, 0 for an order that is not a stop."""
        return self.terms.trigger_price or 0


@dataclass(slots=True, frozen=True)
class OrderState:
    """A copy of a live order: the answer to ``OrderBook.order()`` and a snapshot entry.

    ``pending`` is true for a stop still waiting for its trigger (not in the book yet).
    """

    order_id: int
    account: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int | None
    trigger_price: int | None
    remaining: int
    priority: int
    filled: int = 0
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    pending: bool = False

    @property
    def status(self) -> OrderStatus:
        if self.pending:
            return OrderStatus.PENDING_TRIGGER
        return OrderStatus.PARTIALLY_FILLED if self.filled else OrderStatus.OPEN
