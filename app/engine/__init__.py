"""The matching engine: pure, synchronous, deterministic price-time-priority order books.

Standard library only (``sortedcontainers`` is allowed but not needed: a ladder's sorted ranks
are a plain list kept with ``bisect``). No I/O, no asyncio, no imports from the rest of ``app``.
One ``OrderBook`` per instrument; prices in integer ticks, quantities in integer lots; the clock
and the ``Sequencer`` come from the caller. Modules: ``model`` (enums, reasons, order records),
``commands``, ``events``, ``ladder`` (price levels), ``views`` (state, queries, snapshot),
``audit`` (invariants), ``matching`` (taker loop, stops), ``book`` (commands, amend, expiry).
"""

from app.engine.audit import InvariantError
from app.engine.book import OrderBook
from app.engine.commands import AmendOrder, CancelOrder, Command, ExpireDay, NewOrder
from app.engine.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    StopTriggered,
    TopOfBookChanged,
    Trade,
)
from app.engine.model import (
    MAX_PRICE,
    OrderState,
    OrderStatus,
    OrderType,
    Reason,
    SelfTradePrevention,
    Sequencer,
    Side,
    TimeInForce,
)
from app.engine.views import BookSnapshot, BookStats, Depth, DepthLevel, empty_book_hash

__all__ = [
    "MAX_PRICE",
    "AmendOrder",
    "BookSnapshot",
    "BookStats",
    "CancelOrder",
    "Command",
    "Depth",
    "DepthLevel",
    "Event",
    "ExpireDay",
    "InvariantError",
    "NewOrder",
    "OrderAccepted",
    "OrderAmended",
    "OrderBook",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderState",
    "OrderStatus",
    "OrderType",
    "Reason",
    "SelfTradePrevention",
    "Sequencer",
    "Side",
    "StopTriggered",
    "TimeInForce",
    "TopOfBookChanged",
    "Trade",
    "empty_book_hash",
]
