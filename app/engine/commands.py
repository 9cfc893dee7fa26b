"""Commands accepted by ``OrderBook.submit``: frozen records.

Layout: each command carries the caller's clock (``timestamp``, ns): the book never reads a
clock. Order ids are chosen by the caller and must be unique among the book's live orders (a
done order's id may be reused). The book keeps a reference to each live order's ``NewOrder``.
Ordering invariant: commands are applied one at a time, in submission order.
Modify semantics (``AmendOrder``): ``quantity`` is the new total *remaining* quantity, not the
original size; the filled part is untouched. Lowering it keeps time priority; raising it or
changing the price re-queues the order at the back (a new priority).
Complexity: plain records.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.model import MAX_PRICE, OrderType, Reason, SelfTradePrevention, Side, TimeInForce


def bad_price(price: int | None) -> bool:
    """Prices and trigger prices are whole ticks in 1..MAX_PRICE."""
    return price is None or not 0 < price <= MAX_PRICE


@dataclass(slots=True, frozen=True)
class NewOrder:
    """A new order. ``price`` is the limit price (limit, stop_limit); ``trigger_price`` the stop
    trigger (stop, stop_limit). ``post_only`` is allowed on GTC/DAY limit orders only."""

    order_id: int
    account: str
    side: Side
    order_type: OrderType
    quantity: int
    price: int | None = None
    trigger_price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    timestamp: int = 0

    def malformed(self) -> str | None:
        """The reason code if the order is malformed on its own terms, else None."""
        kind = self.order_type
        limit = kind is OrderType.LIMIT
        if self.quantity <= 0:
            return Reason.INVALID_QUANTITY
        if limit or kind is OrderType.STOP_LIMIT:
            if bad_price(self.price):
                return Reason.INVALID_PRICE
        elif self.price is not None:
            return Reason.INVALID_PRICE
        if limit or kind is OrderType.MARKET:
            if self.trigger_price is not None:
                return Reason.INVALID_TRIGGER_PRICE
        elif bad_price(self.trigger_price):
            return Reason.INVALID_TRIGGER_PRICE
        if self.post_only and (
            not limit or self.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        ):
            return Reason.INVALID_POST_ONLY
        return None


@dataclass(slots=True, frozen=True)
class CancelOrder:
    """Cancel a resting order or a pending stop."""

    order_id: int
    timestamp: int = 0


@dataclass(slots=True, frozen=True)
class AmendOrder:
    """Change a live order's remaining quantity and/or limit price (``None``: keep it)."""

    order_id: int
    quantity: int | None = None
    price: int | None = None
    timestamp: int = 0


@dataclass(slots=True, frozen=True)
class ExpireDay:
    """End of the trading day: expire every DAY order, resting or pending (``order_ids``:
    only those of them, e.g. the ones placed before the close that passed)."""

    timestamp: int = 0
    order_ids: frozenset[int] | None = None


Command = NewOrder | CancelOrder | AmendOrder | ExpireDay
