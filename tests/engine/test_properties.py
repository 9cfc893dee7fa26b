"""Hypothesis: the engine against the brute-force reference book, and properties of the engine
alone (invariants after every step, quantity conservation, snapshot/restore replay)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import (
    AmendOrder,
    CancelOrder,
    Command,
    ExpireDay,
    NewOrder,
    OrderAccepted,
    OrderAmended,
    OrderBook,
    OrderCancelled,
    OrderExpired,
    OrderType,
    SelfTradePrevention,
    Sequencer,
    Side,
    TimeInForce,
    Trade,
)
from tests.engine.reference import ReferenceBook, as_tuples
from tests.engine.support import Harness

SETTINGS = settings(max_examples=200, deadline=None, database=None)

order_ids = st.integers(1, 12)
KINDS = [OrderType.LIMIT] * 5 + [OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT]
prices = st.integers(96, 104)


@st.composite
def new_orders(draw: st.DrawFn) -> NewOrder:
    kind = draw(st.sampled_from(KINDS))
    price = draw(prices) if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    trigger = draw(prices) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
    if draw(st.integers(0, 24)) == 0:  # now and then a malformed one
        price, trigger = draw(st.sampled_from([(None, None), (0, None), (100, 100), (None, 0)]))
    return NewOrder(
        order_id=draw(order_ids),
        account=draw(st.sampled_from(["a", "b", "c"])),
        side=draw(st.sampled_from(list(Side))),
        order_type=kind,
        quantity=draw(st.integers(0, 9)),
        price=price,
        trigger_price=trigger,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        post_only=draw(st.integers(0, 9)) < (3 if kind is OrderType.LIMIT else 1),
        stp=draw(st.sampled_from(list(SelfTradePrevention))),
    )


amends = st.builds(
    AmendOrder,
    order_id=order_ids,
    quantity=st.none() | st.integers(-1, 9),
    price=st.none() | prices | st.just(0),
)
commands: st.SearchStrategy[list[Command]] = st.lists(
    st.one_of(
        new_orders(),
        new_orders(),
        new_orders(),
        new_orders(),
        st.builds(CancelOrder, order_id=order_ids),
        amends,
        amends,
        st.builds(ExpireDay),
    ),
    min_size=10,
    max_size=80,
)


def random_commands(seed: int, n: int = 120) -> list[Command]:
    """A denser, more uniform stream than Hypothesis draws by itself (many trades, amends and
    triggers); reproducible from ``seed``."""
    rng = random.Random(seed)
    out: list[Command] = []
    for _ in range(n):
        roll = rng.random()
        oid = rng.randint(1, 15)
        if roll < 0.6:
            kind = rng.choice(KINDS)
            limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
            stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
            out.append(
                NewOrder(
                    oid,
                    rng.choice("abcd"),
                    rng.choice(list(Side)),
                    kind,
                    rng.randint(1, 9) if rng.random() > 0.03 else 0,
                    rng.randint(96, 104) if limit else None,
                    rng.randint(96, 104) if stop else None,
                    rng.choice([TimeInForce.GTC] * 4 + list(TimeInForce)),
                    kind is OrderType.LIMIT and rng.random() < 0.1,
                    rng.choice([SelfTradePrevention.NONE, *SelfTradePrevention]),
                    timestamp=len(out),
                )
            )
        elif roll < 0.75:
            out.append(CancelOrder(oid, timestamp=len(out)))
        elif roll < 0.97:
            quantity = rng.choice([None, rng.randint(1, 9)])
            price = rng.choice([None, rng.randint(96, 104)]) if quantity else rng.randint(96, 104)
            out.append(AmendOrder(oid, quantity, price, timestamp=len(out)))
        else:
            out.append(ExpireDay(timestamp=len(out)))
    return out


streams = commands | st.integers(0, 2**32).map(random_commands)


def live_orders(book: OrderBook) -> list[tuple[object, ...]]:
    return [
        (s.order_id, s.remaining, s.price, s.trigger_price, s.priority, s.pending)
        for s in book.snapshot().orders
    ]


class TestAgainstReference:
    @SETTINGS
    @given(streams)
    def test_same_events_and_same_book_as_the_reference(self, cmds: list[Command]) -> None:
        h, ref = Harness(), ReferenceBook()
        for cmd in cmds:
            assert as_tuples(h.submit(cmd)) == ref.submit(cmd)
        expected = [
            (o.oid, o.remaining, o.price, o.trigger, o.prio, o in ref.pending)
            for o in sorted(ref.resting + ref.pending, key=lambda o: o.prio)
        ]
        assert live_orders(h.book) == expected
        assert h.book.last_price == ref.last


class TestProperties:
    @SETTINGS
    @given(streams)
    def test_quantity_is_conserved(self, cmds: list[Command]) -> None:
        """Per order: quantity in (accepted, plus amend changes) equals quantity out (traded,
        cancelled, expired) plus what is still open."""
        h = Harness()
        into: dict[int, int] = {}
        out: dict[int, int] = {}
        for cmd in cmds:
            before = None
            if isinstance(cmd, AmendOrder):
                before = h.book.order(cmd.order_id)
            for e in h.submit(cmd):
                if isinstance(e, OrderAccepted):
                    assert isinstance(cmd, NewOrder)
                    into[e.order_id], out[e.order_id] = cmd.quantity, 0
                elif isinstance(e, OrderAmended):
                    assert before is not None
                    into[e.order_id] += e.quantity - before.remaining
                elif isinstance(e, Trade):
                    out[e.maker_order_id] += e.quantity
                    out[e.taker_order_id] += e.quantity
                elif isinstance(e, OrderCancelled | OrderExpired):
                    out[e.order_id] += e.quantity
            for oid, quantity in into.items():
                state = h.book.order(oid)
                assert quantity == out[oid] + (state.remaining if state else 0)

    @SETTINGS
    @given(streams, st.integers(0, 120))
    def test_snapshot_and_restore_replay_identically(self, cmds: list[Command], cut: int) -> None:
        h = Harness()
        for cmd in cmds[:cut]:
            h.submit(cmd)
        snapshot = h.book.snapshot()
        copy = OrderBook.restore(7, snapshot, Sequencer(h.book.sequencer.last))
        assert copy.state_hash() == h.book.state_hash()
        assert copy.snapshot() == snapshot
        for cmd in cmds[cut:]:
            assert copy.submit(cmd) == h.submit(cmd)
        assert copy.state_hash() == h.book.state_hash()
