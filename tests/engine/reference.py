"""A brute-force reference book for differential tests: lists and linear scans, written from the
engine's documented rules and not from its code. Events are plain tuples (see ``as_tuples``)."""

from __future__ import annotations

from dataclasses import dataclass

from app.engine import (
    MAX_PRICE,
    AmendOrder,
    CancelOrder,
    Command,
    Event,
    ExpireDay,
    NewOrder,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    SelfTradePrevention,
    Side,
    StopTriggered,
    TimeInForce,
    TopOfBookChanged,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, STOP, STOP_LIMIT = (
    OrderType.LIMIT,
    OrderType.MARKET,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
)
IOC, FOK, DAY = TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY
NONE, OLDEST, NEWEST = (
    SelfTradePrevention.NONE,
    SelfTradePrevention.CANCEL_OLDEST,
    SelfTradePrevention.CANCEL_NEWEST,
)

Tuple = tuple[object, ...]


def as_tuples(events: list[Event]) -> list[Tuple]:
    """The engine's events without sequence numbers and timestamps."""
    out: list[Tuple] = []
    for e in events:
        if isinstance(e, OrderAccepted):
            out.append(("accepted", e.order_id, e.priority))
        elif isinstance(e, OrderRejected):
            out.append(("rejected", e.order_id, e.reason))
        elif isinstance(e, Trade):
            out.append(
                ("trade", e.maker_order_id, e.taker_order_id, e.price, e.quantity)
                + (e.maker_remaining, e.taker_remaining)
            )
        elif isinstance(e, OrderFilled):
            out.append(("filled", e.order_id))
        elif isinstance(e, OrderCancelled):
            out.append(("cancelled", e.order_id, e.quantity, e.reason))
        elif isinstance(e, OrderExpired):
            out.append(("expired", e.order_id, e.quantity))
        elif isinstance(e, StopTriggered):
            out.append(("triggered", e.order_id, e.last_price, e.priority))
        elif isinstance(e, OrderAmended):
            out.append(("amended", e.order_id, e.price, e.quantity, e.priority))
        else:
            assert isinstance(e, TopOfBookChanged)
            out.append(("top", e.bid_price, e.bid_quantity, e.ask_price, e.ask_quantity))
    return out


@dataclass
class ROrder:
    oid: int
    account: str
    side: Side
    kind: OrderType
    tif: TimeInForce
    price: int | None
    trigger: int | None
    remaining: int
    prio: int
    post_only: bool
    stp: SelfTradePrevention


def _crosses(taker_side: Side, limit: int | None, maker_price: int) -> bool:
    if limit is None:
        return True
    return maker_price <= limit if taker_side is BUY else maker_price >= limit


class ReferenceBook:
    def __init__(self) -> None:
        self.resting: list[ROrder] = []
        self.pending: list[ROrder] = []
        self.prio = 0
        self.last: int | None = None
        self.top: Tuple = (None, 0, None, 0)
        self.out: list[Tuple] = []
        self.queue: list[ROrder] = []

    # -- queries ---------------------------------------------------------------------------
    def book_order(self, side: Side) -> list[ROrder]:
        """Resting orders of a side, best price first, then priority."""
        orders = [o for o in self.resting if o.side is side]
        sign = -1 if side is BUY else 1
        return sorted(orders, key=lambda o: (sign * (o.price or 0), o.prio))

    def _top(self) -> Tuple:
        def best(side: Side) -> tuple[int | None, int]:
            orders = self.book_order(side)
            if not orders:
                return None, 0
            price = orders[0].price
            return price, sum(o.remaining for o in orders if o.price == price)

        return best(BUY) + best(SELL)

    def makers_for(self, side: Side, limit: int | None) -> list[ROrder]:
        opposite = SELL if side is BUY else BUY
        return [o for o in self.book_order(opposite) if _crosses(side, limit, o.price or 0)]

    # -- commands ----------------------------------------------------------------------------
    def submit(self, cmd: Command) -> list[Tuple]:
        self.out = []
        if isinstance(cmd, NewOrder):
            self._new(cmd)
        elif isinstance(cmd, CancelOrder):
            self._cancel(cmd.order_id)
        elif isinstance(cmd, AmendOrder):
            self._amend(cmd)
        else:
            assert isinstance(cmd, ExpireDay)
            self._expire()
        if not self.out or self.out[0][0] != "rejected":
            while self.queue:
                self._fire(self.queue.pop(0))
            top = self._top()
            if top != self.top:
                self.top = top
                self.out.append(("top", *top))
        return self.out

    def _live(self, oid: int) -> ROrder | None:
        for o in self.resting + self.pending:
            if o.oid == oid:
                return o
        return None

    def _invalid(self, c: NewOrder) -> str | None:
        def bad(p: int | None) -> bool:
            return p is None or not 0 < p <= MAX_PRICE

        if self._live(c.order_id) is not None:
            return "DUPLICATE_ORDER_ID"
        if c.quantity <= 0:
            return "INVALID_QUANTITY"
        if c.order_type in (LIMIT, STOP_LIMIT):
            if bad(c.price):
                return "INVALID_PRICE"
        elif c.price is not None:
            return "INVALID_PRICE"
        if c.order_type in (LIMIT, MARKET):
            if c.trigger_price is not None:
                return "INVALID_TRIGGER_PRICE"
        elif bad(c.trigger_price):
            return "INVALID_TRIGGER_PRICE"
        if c.post_only and (c.order_type is not LIMIT or c.time_in_force in (IOC, FOK)):
            return "INVALID_POST_ONLY"
        return None

    def _new(self, c: NewOrder) -> None:
        reason = self._invalid(c)
        if reason:
            self.out.append(("rejected", c.order_id, reason))
            return
        o = ROrder(
            c.order_id, c.account, c.side, c.order_type, c.time_in_force, c.price,
            c.trigger_price, c.quantity, 0, c.post_only, c.stp,
        )  # fmt: skip
        if o.kind in (STOP, STOP_LIMIT):
            self.prio += 1
            o.prio = self.prio
            self.out.append(("accepted", o.oid, o.prio))
            last, trig = self.last, o.trigger or 0
            if last is not None and (last >= trig if o.side is BUY else last <= trig):
                self.queue.append(o)
            else:
                self.pending.append(o)
            return
        if self.makers_for(o.side, o.price):
            if o.post_only:
                reason = "POST_ONLY_WOULD_TAKE"
            elif o.tif is FOK and not self._fillable(o):
                reason = "FOK_NOT_FILLABLE"
        elif o.kind is MARKET:
            reason = "NO_LIQUIDITY"
        elif o.tif is FOK:
            reason = "FOK_NOT_FILLABLE"
        if reason:
            self.out.append(("rejected", o.oid, reason))
            return
        self.prio += 1
        o.prio = self.prio
        self.out.append(("accepted", o.oid, o.prio))
        self._execute(o)

    def _fillable(self, o: ROrder) -> bool:
        need = o.remaining
        for m in self.makers_for(o.side, o.price):
            if m.account == o.account and o.stp is not NONE:
                if o.stp is OLDEST:
                    continue
                return False
            need -= m.remaining
            if need <= 0:
                return True
        return False

    def _execute(self, o: ROrder) -> None:
        """Match ``o`` as a taker, then rest it or cancel the remainder."""
        prices: list[int] = []
        cancelled = False
        while o.remaining:
            makers = self.makers_for(o.side, o.price)
            if not makers:
                break
            m = makers[0]
            if m.account == o.account and o.stp is not NONE:
                if o.stp is not NEWEST:
                    self.resting.remove(m)
                    self.out.append(("cancelled", m.oid, m.remaining, "SELF_TRADE_PREVENTION"))
                if o.stp is not OLDEST:
                    self.out.append(("cancelled", o.oid, o.remaining, "SELF_TRADE_PREVENTION"))
                    o.remaining = 0
                    cancelled = True
                continue
            fill = min(o.remaining, m.remaining)
            o.remaining -= fill
            m.remaining -= fill
            prices.append(m.price or 0)
            self.out.append(("trade", m.oid, o.oid, m.price, fill, m.remaining, o.remaining))
            if not m.remaining:
                self.resting.remove(m)
                self.out.append(("filled", m.oid))
        if prices:
            if not o.remaining and not cancelled:
                self.out.append(("filled", o.oid))
            self.last = prices[-1]
            low, high = min(prices), max(prices)
            buys = sorted(
                (s for s in self.pending if s.side is BUY and (s.trigger or 0) <= high),
                key=lambda s: (s.trigger, s.prio),
            )
            sells = sorted(
                (s for s in self.pending if s.side is SELL and (s.trigger or 0) >= low),
                key=lambda s: (-(s.trigger or 0), s.prio),
            )
            for s in buys + sells:
                self.pending.remove(s)
                self.queue.append(s)
        if not o.remaining:
            return
        if o.price is None:
            self.out.append(("cancelled", o.oid, o.remaining, "NO_LIQUIDITY"))
        elif o.tif in (IOC, FOK):
            self.out.append(("cancelled", o.oid, o.remaining, "IOC_UNFILLED"))
        else:
            self.resting.append(o)

    def _fire(self, s: ROrder) -> None:
        self.prio += 1
        s.prio = self.prio
        self.out.append(("triggered", s.oid, self.last, s.prio))
        if s.tif is FOK and not self._fillable(s):
            self.out.append(("cancelled", s.oid, s.remaining, "FOK_NOT_FILLABLE"))
            return
        self._execute(s)

    def _cancel(self, oid: int) -> None:
        o = self._live(oid)
        if o is None:
            self.out.append(("rejected", oid, "UNKNOWN_ORDER"))
            return
        (self.resting if o in self.resting else self.pending).remove(o)
        self.out.append(("cancelled", oid, o.remaining, "USER_CANCELLED"))

    def _amend(self, c: AmendOrder) -> None:
        o = self._live(c.order_id)
        if o is None:
            self.out.append(("rejected", c.order_id, "UNKNOWN_ORDER"))
            return
        qty = o.remaining if c.quantity is None else c.quantity
        price = o.price if c.price is None else c.price
        if c.quantity is None and c.price is None:
            reason = "INVALID_AMEND"
        elif qty <= 0:
            reason = "INVALID_QUANTITY"
        elif c.price is not None and (o.price is None or not 0 < c.price <= MAX_PRICE):
            reason = "INVALID_PRICE"
        else:
            reason = ""
        if reason:
            self.out.append(("rejected", o.oid, reason))
            return
        pending = o in self.pending
        if price == o.price and qty <= o.remaining:
            o.remaining = qty
            self.out.append(("amended", o.oid, price, qty, o.prio))
            return
        if o.post_only and self.makers_for(o.side, price):
            self.out.append(("rejected", o.oid, "POST_ONLY_WOULD_TAKE"))
            return
        self.prio += 1
        o.prio, o.price, o.remaining = self.prio, price, qty
        self.out.append(("amended", o.oid, price, qty, o.prio))
        if not pending:
            self.resting.remove(o)
            self._execute(o)

    def _expire(self) -> None:
        day = sorted((o for o in self.resting + self.pending if o.tif is DAY), key=lambda o: o.prio)
        for o in day:
            (self.resting if o in self.resting else self.pending).remove(o)
            self.out.append(("expired", o.oid, o.remaining))
