"""Builders for commands and a book harness that checks the invariants after every command."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from app.engine import (
    Command,
    Event,
    NewOrder,
    OrderBook,
    OrderType,
    Sequencer,
    Side,
    TopOfBookChanged,
)
from tests.engine.reference import Tuple, as_tuples

BUY, SELL = Side.BUY, Side.SELL


def limit(
    oid: int, side: Side, qty: int, price: int, account: str = "alice", **kw: Any
) -> NewOrder:
    return NewOrder(oid, account, side, OrderType.LIMIT, qty, price, **kw)


def market(oid: int, side: Side, qty: int, account: str = "bob", **kw: Any) -> NewOrder:
    return NewOrder(oid, account, side, OrderType.MARKET, qty, **kw)


def stop(
    oid: int, side: Side, qty: int, trigger: int, account: str = "carol", **kw: Any
) -> NewOrder:
    return NewOrder(oid, account, side, OrderType.STOP, qty, None, trigger, **kw)


def stop_limit(
    oid: int, side: Side, qty: int, price: int, trigger: int, account: str = "carol", **kw: Any
) -> NewOrder:
    return NewOrder(oid, account, side, OrderType.STOP_LIMIT, qty, price, trigger, **kw)


class Harness:
    """An order book checked after every command: internal invariants, consecutive sequence
    numbers, the command's timestamp on every event, and at most one top-of-book event, last."""

    def __init__(self, sequencer: Sequencer | None = None, instrument_id: int | str = 7) -> None:
        self.book = OrderBook(instrument_id, sequencer or Sequencer())

    def submit(self, cmd: Command) -> list[Event]:
        before = self.book.sequencer.last
        events = self.book.submit(cmd)
        self.book.check_invariants()
        assert [e.seq for e in events] == list(range(before + 1, before + 1 + len(events)))
        assert all(e.timestamp == cmd.timestamp for e in events)
        # The hot paths build events field by field (``new_event``): each one must be complete
        # and equal to the event its constructor would build.
        assert all(type(e)(*astuple(e)) == e for e in events)
        tops = [e for e in events if isinstance(e, TopOfBookChanged)]
        assert len(tops) <= 1
        assert not tops or events[-1] is tops[0]
        return events

    def run(self, *cmds: Command) -> list[Tuple]:
        """Submit ``cmds``; the events of the last one, as tuples."""
        out: list[Tuple] = []
        for cmd in cmds:
            out = as_tuples(self.submit(cmd))
        return out

    def resting(self) -> list[tuple[int, int]]:
        """(order id, remaining) of every live order, in priority order."""
        return [(s.order_id, s.remaining) for s in self.book.snapshot().orders]
