"""Matching: a taker against the opposite ladder, the remainder's fate, stops and their cascade.

Layout: ``MatchingCore`` adds to the book state (``BookViews``) the steps every command shares.
Ordering invariant: price-time priority; a fill is at the maker's price; the taker walks levels
best first and each level FIFO, skipping dead entries.
Modify semantics: a partial fill lowers the maker's remaining in place (it keeps its place); a
filled or STP-cancelled maker leaves its level and the index at once.

Self-trade prevention (the taker's mode decides; never applied between different accounts):
cancel_newest cancels the taker's remainder; cancel_oldest cancels the resting order and keeps
matching; cancel_both cancels both; none lets them trade.

Stops: when a taker's matching ends, every pending buy stop with trigger <= its highest trade
price and every sell stop with trigger >= its lowest trade price is triggered: buy stops first
(lowest trigger first), then sell stops (highest trigger first), ties by arrival. Triggered
stops are queued and run one at a time, each to completion, with a new priority; their trades
may trigger more stops, which join the back of the queue (a deterministic cascade).

Complexity: O(fills + levels emptied) per taker; FOK pre-check O(orders it would reach).
"""

from __future__ import annotations

from app.engine.events import (
    Event,
    OrderCancelled,
    OrderFilled,
    StopTriggered,
    TopOfBookChanged,
    Trade,
    new_event,
)
from app.engine.ladder import ANY_PRICE, EMPTY, Ladder
from app.engine.model import Order, Reason, SelfTradePrevention, Side, TimeInForce
from app.engine.views import BookViews

_BUY = Side.BUY
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_STP_NONE = SelfTradePrevention.NONE
_CANCEL_NEWEST = SelfTradePrevention.CANCEL_NEWEST
_CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
_STP_REASON = Reason.SELF_TRADE_PREVENTION


class MatchingCore(BookViews):
    __slots__ = ()

    def _execute(self, order: Order, evs: list[Event], ts: int) -> None:
        """Run a live ``order`` (a triggered stop, a re-queued amend) as a taker as far as it
        crosses, then rest it or cancel what is left."""
        buy = order.side is _BUY
        price = order.price
        opp = self._asks if buy else self._bids
        threshold = (-price if buy else price) if price else ANY_PRICE
        qty = order.remaining
        if opp.best >= threshold:
            oid, account, stp = order.order_id, order.account, order.terms.stp
            left = self._take(oid, account, order.side, stp, qty, threshold, opp, evs, ts)
            order.filled += qty - left
            order.remaining = qty = left
            if not qty:
                return
        if not price:
            self._cancel_rest(order.order_id, qty, Reason.NO_LIQUIDITY, evs, ts)
        elif order.terms.time_in_force is _IOC or order.terms.time_in_force is _FOK:
            self._cancel_rest(order.order_id, qty, Reason.IOC_UNFILLED, evs, ts)
        else:
            self._orders[order.order_id] = order
            (self._bids if buy else self._asks).add(order, price)

    def _cancel_rest(self, oid: int, qty: int, reason: str, evs: list[Event], ts: int) -> None:
        seqr = self._seq
        seqr.last = s = seqr.last + 1
        ev = new_event(OrderCancelled)
        ev.seq = s
        ev.timestamp = ts
        ev.order_id = oid
        ev.quantity = qty
        ev.reason = reason
        evs.append(ev)

    def _take(
        self,
        tid: int,
        tacct: str,
        tside: Side,
        stp: SelfTradePrevention,
        qty: int,
        threshold: int,
        opp: Ladder,
        evs: list[Event],
        ts: int,
    ) -> int:
        """The matching loop: taker ``tid`` takes up to ``qty`` from ``opp`` down to
        ``threshold``. Returns the quantity left, 0 if the taker is done (filled, or cancelled
        by self-trade prevention; its event is already out). Hot path: locals only."""
        seqr = self._seq
        s = seqr.last
        levels = opp.levels
        ranks = opp.ranks
        index = self._orders
        append = evs.append
        new = new_event
        guard = stp is not _STP_NONE
        start = qty
        first = last = trades = 0
        cancelled = False
        while qty:
            rank = opp.best
            if rank < threshold:
                break
            level = levels[rank]
            orders = level.orders
            price = level.price
            while True:
                maker = orders[0]
                mrem = maker.remaining
                if not mrem:
                    orders.popleft()  # a dead entry left behind by a cancel
                    continue
                if guard and maker.account == tacct:
                    if stp is not _CANCEL_NEWEST:  # cancel_oldest or cancel_both
                        orders.popleft()
                        del index[maker.order_id]
                        maker.remaining = 0
                        level.total -= mrem
                        level.count -= 1
                        s += 1
                        append(OrderCancelled(s, ts, maker.order_id, mrem, _STP_REASON))
                    if stp is not _CANCEL_OLDEST:
                        s += 1
                        append(OrderCancelled(s, ts, tid, qty, _STP_REASON))
                        start -= qty  # not traded: keeps the volume right
                        qty = 0
                        cancelled = True
                    if not level.count:  # the best level is empty: drop it (inlined)
                        del levels[rank]
                        ranks.pop()
                        opp.best = ranks[-1] if ranks else EMPTY
                        break
                    if not qty:
                        break
                    continue
                fill = qty if qty < mrem else mrem
                qty -= fill
                mrem -= fill
                moid = maker.order_id
                s += 1
                ev = new(Trade)  # = Trade(s, ts, price, ...): see events.py
                ev.seq = s
                ev.timestamp = ts
                ev.price = price
                ev.quantity = fill
                ev.maker_order_id = moid
                ev.taker_order_id = tid
                ev.maker_account = maker.account
                ev.taker_account = tacct
                ev.taker_side = tside
                ev.maker_remaining = mrem
                ev.taker_remaining = qty
                append(ev)
                trades += 1
                last = price
                if not first:
                    first = price
                level.total -= fill
                if mrem:
                    maker.remaining = mrem
                    maker.filled += fill
                    break  # the taker is done
                # The maker is done: it leaves its level and the index, and its record with it
                # (nothing else refers to it, so its remaining/filled are left as they were).
                orders.popleft()
                del index[moid]
                level.count -= 1
                s += 1
                done = new(OrderFilled)
                done.seq = s
                done.timestamp = ts
                done.order_id = moid
                append(done)
                if not level.count:
                    del levels[rank]
                    ranks.pop()
                    opp.best = ranks[-1] if ranks else EMPTY
                    break
                if not qty:
                    break
        if trades:
            if not qty and not cancelled:
                s += 1
                done = new(OrderFilled)
                done.seq = s
                done.timestamp = ts
                done.order_id = tid
                append(done)
            self._last = last
            self._volume += start - qty
            self._trade_count += trades
            if self._stops:  # any pending stop crossed by the range traded through?
                if tside is not _BUY:
                    first, last = last, first  # trades went down: (low, high)
                if self._buy_stops.best >= -last or self._sell_stops.best >= first:
                    self._trigger(first, last)
        seqr.last = s
        return qty

    def _trigger(self, low: int, high: int) -> None:
        """Move the pending stops crossed by trades in [low, high] to the run queue."""
        stops = self._stops
        queue = self._queue
        for ladder, threshold in ((self._buy_stops, -high), (self._sell_stops, low)):
            while ladder.best >= threshold:
                rank = ladder.best
                for order in ladder.levels[rank].orders:
                    if order.remaining:
                        del stops[order.order_id]
                        queue.append(order)
                ladder.drop(rank)

    def _fillable(
        self, account: str, stp: SelfTradePrevention, need: int, threshold: int, opp: Ladder
    ) -> bool:
        """Could a FOK taker fill ``need`` completely right now? Walks the crossing orders in
        priority order as the matcher would: an own-account order is skipped under
        cancel_oldest (it would be cancelled), ends the walk under cancel_newest/cancel_both (the
        taker would be cancelled there), and counts under none. Read-only: a refused FOK has no
        side effects (under cancel_oldest, own orders are cancelled only if the FOK executes)."""
        levels = opp.levels
        for rank in reversed(opp.ranks):
            if rank < threshold:
                break
            level = levels[rank]
            if stp is _STP_NONE:
                need -= level.total
            else:
                for maker in level.orders:
                    if not maker.remaining:
                        continue
                    if maker.account == account:
                        if stp is _CANCEL_OLDEST:
                            continue
                        return False
                    need -= maker.remaining
                    if need <= 0:
                        return True
            if need <= 0:
                return True
        return False

    def _fire(self, stop: Order, evs: list[Event], ts: int) -> None:
        """Run one triggered stop: market (stop) or limit (stop_limit) with its own TIF."""
        self._priority += 1
        stop.priority = self._priority
        last = self._last
        assert last is not None  # only trades trigger stops
        seqr = self._seq
        seqr.last += 1
        evs.append(StopTriggered(seqr.last, ts, stop.order_id, last, stop.priority))
        if stop.terms.time_in_force is _FOK:
            buy = stop.side is _BUY
            price = stop.price
            threshold = (-price if buy else price) if price else ANY_PRICE
            opp = self._asks if buy else self._bids
            if not self._fillable(stop.account, stop.terms.stp, stop.remaining, threshold, opp):
                self._cancel_rest(stop.order_id, stop.remaining, Reason.FOK_NOT_FILLABLE, evs, ts)
                stop.remaining = 0
                return
        self._execute(stop, evs, ts)

    def _run_stops(self, evs: list[Event], ts: int) -> None:
        """The stop cascade: run triggered stops one by one until none is left."""
        queue = self._queue
        while queue:
            self._fire(queue.popleft(), evs, ts)

    def _finish(self, evs: list[Event], ts: int) -> list[Event]:
        """Run the stop cascade, then report the top of book if it changed."""
        self._run_stops(evs, ts)
        self._emit_top(evs, ts)
        return evs

    def _emit_top(self, evs: list[Event], ts: int) -> None:
        """Append a ``TopOfBookChanged`` if best bid/ask price or size moved since the last."""
        bids = self._bids
        asks = self._asks
        if bids.best == EMPTY:
            bid_price = None
            bid_qty = 0
        else:
            level = bids.levels[bids.best]
            bid_price = level.price
            bid_qty = level.total
        if asks.best == EMPTY:
            ask_price = None
            ask_qty = 0
        else:
            level = asks.levels[asks.best]
            ask_price = level.price
            ask_qty = level.total
        top = (bid_price, bid_qty, ask_price, ask_qty)
        if top != self._top:
            self._push_top(top, evs, ts)

    def _push_top(
        self, top: tuple[int | None, int, int | None, int], evs: list[Event], ts: int
    ) -> None:
        """Record ``top`` (bid price, bid size, ask price, ask size) as the last one emitted and
        append its ``TopOfBookChanged``; the caller knows it differs from the last one."""
        self._top = top
        seqr = self._seq
        seqr.last = s = seqr.last + 1
        ev = new_event(TopOfBookChanged)
        ev.seq = s
        ev.timestamp = ts
        ev.bid_price, ev.bid_quantity, ev.ask_price, ev.ask_quantity = top
        evs.append(ev)
