"""``OrderBook``: one instrument's price-time-priority book; ``submit(command) -> events``.

Layout: bids and asks are ``Ladder``s of FIFO levels keyed by price plus an id index; pending
stops wait outside the book in two more ladders keyed by trigger price (see ``views.py``).
Ordering invariant: never crossed at rest; FIFO by priority within a level; one command runs to
completion (stop cascade included) before the next.

New orders are checked in this order: DUPLICATE_ORDER_ID, INVALID_QUANTITY, INVALID_PRICE,
INVALID_TRIGGER_PRICE, INVALID_POST_ONLY; then a limit or market order that crosses is refused
with POST_ONLY_WOULD_TAKE or FOK_NOT_FILLABLE, and one that does not with NO_LIQUIDITY (market)
or FOK_NOT_FILLABLE. Market orders never rest (remainder: cancelled, NO_LIQUIDITY); IOC/FOK
remainders are cancelled (IOC_UNFILLED); GTC and DAY rest. post_only: GTC/DAY limits only.

Modify semantics (``AmendOrder``): the quantity is the new *remaining* quantity. Same price and a
quantity at or below the current remaining amends in place and keeps priority; a new price or a
higher quantity re-queues the order at the back with a new priority, and a new price that
crosses matches at once as a taker (a post-only order is refused instead). Pending stops amend
the same way among the stops (quantity, and the limit price of a stop-limit) and never match.
Amending or cancelling a done or unknown order is rejected with UNKNOWN_ORDER: the book keeps
only live orders, so an order id can be reused once its order is done.

Complexity: a resting new order O(1) (plus a binary search for a new level), cancel O(1), amend
in place O(1), a taker O(fills + levels emptied), expire_day O(orders log orders).
"""

from __future__ import annotations

from itertools import chain

from app.engine.commands import AmendOrder, CancelOrder, Command, ExpireDay, NewOrder, bad_price
from app.engine.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    new_event,
)
from app.engine.ladder import ANY_PRICE, COMPACT_FACTOR, COMPACT_SLACK, EMPTY, Ladder
from app.engine.matching import MatchingCore
from app.engine.model import (
    MAX_PRICE,
    Order,
    OrderType,
    Reason,
    Sequencer,
    Side,
    TimeInForce,
)
from app.engine.views import BookSnapshot

_BUY = Side.BUY
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_USER_CANCELLED = Reason.USER_CANCELLED


class OrderBook(MatchingCore):
    """The book of one instrument. Not thread-safe: one writer per book."""

    __slots__ = ()

    @classmethod
    def restore(
        cls, instrument_id: int | str, snapshot: BookSnapshot, sequencer: Sequencer | None = None
    ) -> OrderBook:
        """Rebuild a book equal to the one ``snapshot`` was taken from (same priorities; the
        priority counter continues above the highest restored one)."""
        book = cls(instrument_id, sequencer)
        book._load(snapshot)
        return book

    def submit(self, command: Command) -> list[Event]:
        """Apply one command; return its events in order.

        The hot path is inlined here (one Python call less): a well-formed GTC/DAY limit order
        that does not cross rests at once. A well-formed order that crosses goes to
        ``_new_taker``; anything else that is new to ``_new_other``, with the same checks in
        the same order as the fast test."""
        if type(command) is NewOrder:
            oid = command.order_id
            price = command.price
            qty = command.quantity
            tif = command.time_in_force
            if command.order_type is _LIMIT:
                if not (
                    price is not None
                    and price > 0
                    and price <= MAX_PRICE
                    and qty > 0
                    and command.trigger_price is None
                    and oid not in self._orders
                    and oid not in self._stops
                    and not (command.post_only and (tif is _IOC or tif is _FOK))
                ):
                    return self._new_other(command)
                side = command.side
                if side is _BUY:
                    opp = self._asks
                    threshold = -price
                    own = self._bids
                    rank = price
                else:
                    opp = self._bids
                    threshold = price
                    own = self._asks
                    rank = -price
                if opp.best >= threshold:  # crosses: a taker
                    return self._new_taker(command, price, threshold, opp)
                if tif is not _GTC and tif is not _DAY:
                    return self._new_passive_ioc_fok(command)
            elif (
                command.order_type is _MARKET
                and price is None
                and qty > 0
                and command.trigger_price is None
                and not command.post_only
                and oid not in self._orders
                and oid not in self._stops
            ):
                opp = self._asks if command.side is _BUY else self._bids
                if opp.best == EMPTY:
                    return self._reject(oid, Reason.NO_LIQUIDITY, command.timestamp)
                return self._new_taker(command, 0, ANY_PRICE, opp)
            else:
                return self._new_other(command)
            # Passive: accepted, and rests at the back of its level (inlined ``Ladder.add``).
            ts = command.timestamp
            self._priority = prio = self._priority + 1
            seqr = self._seq
            seqr.last = s = seqr.last + 1
            ev = new_event(OrderAccepted)  # = OrderAccepted(s, ts, oid, prio): see events.py
            ev.seq = s
            ev.timestamp = ts
            ev.order_id = oid
            ev.priority = prio
            evs: list[Event] = [ev]
            order = new_event(Order)  # = Order(oid, account, side, price, qty, 0, prio, command)
            order.order_id = oid
            order.account = command.account
            order.side = side
            order.price = price
            order.remaining = qty
            order.filled = 0
            order.priority = prio
            order.terms = command
            self._orders[oid] = order
            level = own.levels.get(rank)
            if level is None:
                own.add(order, price)
            else:
                level.orders.append(order)
                level.total += qty
                level.count += 1
            if rank == own.best:  # joined or became the best level: its side of the top moved
                old = self._top
                total = qty if level is None else level.total
                if side is _BUY:
                    self._push_top((price, total, old[2], old[3]), evs, ts)
                else:
                    self._push_top((old[0], old[1], price, total), evs, ts)
            return evs
        if type(command) is CancelOrder:
            return self._cancel(command)
        return self._other(command)

    def _other(self, command: Command) -> list[Event]:
        if type(command) is AmendOrder:
            return self._amend(command)
        if type(command) is ExpireDay:
            return self.expire_day(command.timestamp, command.order_ids)
        raise TypeError(f"not a command: {command!r}")

    def _reject(self, order_id: int, reason: str, ts: int) -> list[Event]:
        return [OrderRejected(self._seq.next(), ts, order_id, reason)]

    def _new_passive_ioc_fok(self, cmd: NewOrder) -> list[Event]:
        """A well-formed IOC or FOK limit order that does not cross: nothing to take."""
        oid = cmd.order_id
        ts = cmd.timestamp
        if cmd.time_in_force is _FOK:
            return self._reject(oid, Reason.FOK_NOT_FILLABLE, ts)
        self._priority += 1
        evs: list[Event] = [OrderAccepted(self._seq.next(), ts, oid, self._priority)]
        self._cancel_rest(oid, cmd.quantity, Reason.IOC_UNFILLED, evs, ts)
        return evs

    def _new_other(self, cmd: NewOrder) -> list[Event]:
        """A new order the fast test in ``submit`` refused: a duplicate, a malformed order or a
        stop (the only well-formed orders it refuses)."""
        oid = cmd.order_id
        if oid in self._orders or oid in self._stops:
            return self._reject(oid, Reason.DUPLICATE_ORDER_ID, cmd.timestamp)
        reason = cmd.malformed()
        if reason is not None:
            return self._reject(oid, reason, cmd.timestamp)
        return self._new_stop(cmd)

    def _new_taker(self, cmd: NewOrder, price: int, threshold: int, opp: Ladder) -> list[Event]:
        """A well-formed limit (``price``) or market (``price`` 0) order that crosses ``opp``."""
        oid = cmd.order_id
        ts = cmd.timestamp
        tif = cmd.time_in_force
        qty = cmd.quantity
        if cmd.post_only:
            return self._reject(oid, Reason.POST_ONLY_WOULD_TAKE, ts)
        if tif is _FOK and not self._fillable(cmd.account, cmd.stp, qty, threshold, opp):
            return self._reject(oid, Reason.FOK_NOT_FILLABLE, ts)
        self._priority = prio = self._priority + 1
        seqr = self._seq
        seqr.last = s = seqr.last + 1
        ev = new_event(OrderAccepted)
        ev.seq = s
        ev.timestamp = ts
        ev.order_id = oid
        ev.priority = prio
        evs: list[Event] = [ev]
        side = cmd.side
        left = self._take(oid, cmd.account, side, cmd.stp, qty, threshold, opp, evs, ts)
        if left:
            if not price:
                self._cancel_rest(oid, left, Reason.NO_LIQUIDITY, evs, ts)
            elif tif is _IOC or tif is _FOK:
                self._cancel_rest(oid, left, Reason.IOC_UNFILLED, evs, ts)
            else:
                order = Order(oid, cmd.account, side, price, left, qty - left, prio, cmd)
                self._orders[oid] = order
                (self._bids if side is _BUY else self._asks).add(order, price)
                return self._finish(evs, ts)
        if self._queue:
            return self._finish(evs, ts)
        # Only the side it took from can have moved (inlined ``_emit_top``).
        best = opp.best
        if best == EMPTY:
            top_price = None
            top_qty = 0
        else:
            level = opp.levels[best]
            top_price = level.price
            top_qty = level.total
        top = self._top
        if side is _BUY:
            top = (top[0], top[1], top_price, top_qty)
        else:
            top = (top_price, top_qty, top[2], top[3])
        if top != self._top:
            self._push_top(top, evs, ts)
        return evs

    def _new_stop(self, cmd: NewOrder) -> list[Event]:
        ts = cmd.timestamp
        trigger = cmd.trigger_price or 0
        self._priority += 1
        order = Order(
            cmd.order_id, cmd.account, cmd.side, cmd.price or 0, cmd.quantity, 0, self._priority,
            cmd,
        )  # fmt: skip
        evs: list[Event] = [OrderAccepted(self._seq.next(), ts, cmd.order_id, self._priority)]
        buy = cmd.side is _BUY
        last = self._last
        if last is not None and (last >= trigger if buy else last <= trigger):
            self._queue.append(order)  # already crossed: triggers at once
            return self._finish(evs, ts)
        self._stops[cmd.order_id] = order
        (self._buy_stops if buy else self._sell_stops).add(order, trigger)
        return evs

    def _cancel(self, cmd: CancelOrder) -> list[Event]:
        oid = cmd.order_id
        order = self._orders.pop(oid, None)
        if order is None:
            return self._cancel_stop(cmd)
        # Inlined ``Ladder.discard``: the entry stays in its deque as a dead one.
        price = order.price
        if order.side is _BUY:
            ladder = self._bids
            rank = price
        else:
            ladder = self._asks
            rank = -price
        level = ladder.levels[rank]
        remaining = order.remaining
        level.total -= remaining
        order.remaining = 0
        level.count -= 1
        seqr = self._seq
        seqr.last = s = seqr.last + 1
        ts = cmd.timestamp
        ev = new_event(OrderCancelled)
        ev.seq = s
        ev.timestamp = ts
        ev.order_id = oid
        ev.quantity = remaining
        ev.reason = _USER_CANCELLED
        evs: list[Event] = [ev]
        was_best = rank == ladder.best
        if not level.count:
            ladder.drop(rank)
        elif len(level.orders) > COMPACT_FACTOR * level.count + COMPACT_SLACK:
            ladder.compact(level)
        if was_best:
            self._emit_top(evs, ts)
        return evs

    def _cancel_stop(self, cmd: CancelOrder) -> list[Event]:
        oid = cmd.order_id
        order = self._stops.pop(oid, None)
        if order is None:
            return self._reject(oid, Reason.UNKNOWN_ORDER, cmd.timestamp)
        remaining = order.remaining
        ladder = self._buy_stops if order.side is _BUY else self._sell_stops
        ladder.discard(order, order.trigger)
        seq = self._seq.next()
        return [OrderCancelled(seq, cmd.timestamp, oid, remaining, Reason.USER_CANCELLED)]

    def _amend(self, cmd: AmendOrder) -> list[Event]:
        oid = cmd.order_id
        ts = cmd.timestamp
        order = self._orders.get(oid)
        pending = order is None
        if order is None:
            order = self._stops.get(oid)
            if order is None:
                return self._reject(oid, Reason.UNKNOWN_ORDER, ts)
        quantity = order.remaining if cmd.quantity is None else cmd.quantity
        price = order.price if cmd.price is None else cmd.price
        if cmd.quantity is None and cmd.price is None:
            return self._reject(oid, Reason.INVALID_AMEND, ts)
        if quantity <= 0:
            return self._reject(oid, Reason.INVALID_QUANTITY, ts)
        if cmd.price is not None and (not order.price or bad_price(cmd.price)):
            return self._reject(oid, Reason.INVALID_PRICE, ts)
        buy = order.side is _BUY
        if pending:
            ladder = self._buy_stops if buy else self._sell_stops
            at = order.trigger
        else:
            ladder = self._bids if buy else self._asks
            at = order.price
        if price == order.price and quantity <= order.remaining:
            was_best = ladder.shrink(order, at, quantity)
            seq = self._seq.next()
            evs: list[Event] = [OrderAmended(seq, ts, oid, price or None, quantity, order.priority)]
            if was_best and not pending:
                self._emit_top(evs, ts)
            return evs
        opp = self._asks if buy else self._bids
        if order.terms.post_only and opp.best >= (-price if buy else price):
            return self._reject(oid, Reason.POST_ONLY_WOULD_TAKE, ts)
        self._priority += 1
        fresh = Order(
            oid, order.account, order.side, price, quantity, order.filled, self._priority,
            order.terms,
        )  # fmt: skip
        ladder.discard(order, at)
        seq = self._seq.next()
        evs = [OrderAmended(seq, ts, oid, price or None, quantity, fresh.priority)]
        if pending:
            self._stops[oid] = fresh
            ladder.add(fresh, at)
            return evs
        del self._orders[oid]
        self._execute(fresh, evs, ts)
        return self._finish(evs, ts)

    def expire_day(self, timestamp: int, order_ids: frozenset[int] | None = None) -> list[Event]:
        """Expire every DAY order (or those of ``order_ids``), resting or pending, in priority
        order."""
        evs: list[Event] = []
        day = [o for o in chain(self._orders.values(), self._stops.values())
               if o.terms.time_in_force is _DAY
               and (order_ids is None or o.order_id in order_ids)]  # fmt: skip
        day.sort(key=lambda o: o.priority)
        for order in day:
            remaining = order.remaining
            buy = order.side is _BUY
            if self._orders.get(order.order_id) is order:
                del self._orders[order.order_id]
                (self._bids if buy else self._asks).discard(order, order.price)
            else:
                del self._stops[order.order_id]
                (self._buy_stops if buy else self._sell_stops).discard(order, order.trigger)
            evs.append(OrderExpired(self._seq.next(), timestamp, order.order_id, remaining))
        self._emit_top(evs, timestamp)
        return evs
