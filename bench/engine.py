"""Matching-engine benchmark: the full ``OrderBook`` against a minimal yardstick book.

Standard stream (fixed seed): ~60% passive limit orders within 40 ticks of a fixed mid, ~25%
cancels of live orders, ~15% marketable orders (market, or IOC limits 10 ticks through the mid),
sizes 1-100 lots; makers and takers use different accounts, so both books do the same matching.
The yardstick is what a minimal book looks like: a ``SortedDict`` of price -> ``deque``, a dict
index, lazy cancel, ``__slots__``; no stops, STP, events, sizes or sequence numbers.

Per round and per book: one plain pass for throughput (events per CPU second of the process, so
that other jobs on shared cores do not skew the comparison; wall clock is printed too) and one
pass with ``time.perf_counter_ns`` around each ``submit`` for latency, garbage collector on.
Figures are medians over the rounds (the ratio: median of the per-round ratios); the event
"tax" line rebuilds the engine's own event objects alone, the way the engine builds them and
through their constructors, to show what they cost. The last output line is one JSON object.

    .venv/bin/python bench/engine.py            # 200,000 events, 5 rounds
    .venv/bin/python bench/engine.py --quick    # 20,000 events, 3 rounds
    .venv/bin/python bench/engine.py --rounds 9 # more rounds on a busy machine
    .venv/bin/python bench/engine.py --profile  # plus a cProfile of one engine pass
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sortedcontainers import SortedDict  # type: ignore[import-untyped, unused-ignore]

from app.engine import CancelOrder, NewOrder, OrderBook, OrderType, Sequencer, Side, TimeInForce

MID = 100_000
DEPTH = 40
SEED = 20261122


class _YOrder:
    __slots__ = ("oid", "qty")

    def __init__(self, oid: int, qty: int) -> None:
        self.oid = oid
        self.qty = qty


class Yardstick:
    """A minimal limit order book (the speed to beat)."""

    def __init__(self) -> None:
        self.bids: Any = SortedDict()  # price -> deque of orders, best = last key
        self.asks: Any = SortedDict()  # best = first key
        self.index: dict[int, _YOrder] = {}
        self.volume = 0

    def submit(self, cmd: Any) -> None:
        if type(cmd) is CancelOrder:
            order = self.index.pop(cmd.order_id, None)
            if order is not None:
                order.qty = 0  # lazy: dropped when it reaches the front of its level
            return
        buy = cmd.side is Side.BUY
        qty = self._match(self.asks if buy else self.bids, buy, cmd.price, cmd.quantity)
        if qty and cmd.order_type is OrderType.LIMIT and cmd.time_in_force is not TimeInForce.IOC:
            order = _YOrder(cmd.order_id, qty)
            book = self.bids if buy else self.asks
            level = book.get(cmd.price)
            if level is None:
                book[cmd.price] = deque((order,))
            else:
                level.append(order)
            self.index[cmd.order_id] = order

    def _match(self, book: Any, buy: bool, limit: int | None, qty: int) -> int:
        index = self.index
        while qty and book:
            price, level = book.peekitem(0 if buy else -1)
            if limit is not None and (price > limit if buy else price < limit):
                break
            while level and qty:
                order = level[0]
                if not order.qty:
                    level.popleft()
                    continue
                fill = order.qty if order.qty < qty else qty
                order.qty -= fill
                qty -= fill
                self.volume += fill
                if not order.qty:
                    level.popleft()
                    del index[order.oid]
            if not level:
                del book[price]
        return qty


def make_stream(n: int, seed: int = SEED) -> list[NewOrder | CancelOrder]:
    """The standard stream; a yardstick replays it as it is built, so cancels hit live orders."""
    rng = random.Random(seed)
    sim = Yardstick()
    candidates: list[int] = []
    stream: list[NewOrder | CancelOrder] = []
    next_id = 1
    for ts in range(n):
        roll = rng.random()
        cmd: NewOrder | CancelOrder | None = None
        if 0.60 <= roll < 0.85:
            while candidates and cmd is None:
                j = rng.randrange(len(candidates))
                oid = candidates[j]
                candidates[j] = candidates[-1]
                candidates.pop()
                if oid in sim.index:
                    cmd = CancelOrder(oid, ts)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = rng.randint(1, 100)
        if cmd is None and roll >= 0.85:
            if rng.random() < 0.7:
                cmd = NewOrder(
                    next_id, f"tk{rng.randrange(10)}", side, OrderType.MARKET, qty, timestamp=ts
                )
            else:
                price = MID + 10 if side is Side.BUY else MID - 10
                cmd = NewOrder(
                    next_id, f"tk{rng.randrange(10)}", side, OrderType.LIMIT, qty, price,
                    time_in_force=TimeInForce.IOC, timestamp=ts,
                )  # fmt: skip
            next_id += 1
        elif cmd is None:
            offset = rng.randint(1, DEPTH)
            price = MID - offset if side is Side.BUY else MID + offset
            account = f"mm{rng.randrange(10)}"
            cmd = NewOrder(next_id, account, side, OrderType.LIMIT, qty, price, timestamp=ts)
            candidates.append(next_id)
            next_id += 1
        sim.submit(cmd)
        stream.append(cmd)
    return stream


def throughput(submit: Callable[[Any], object], stream: Sequence[object]) -> tuple[float, float]:
    """(events per CPU second, events per wall-clock second) of one plain pass. CPU time
    (``process_time``) is the figure compared: other jobs sharing the cores stretch wall time."""
    gc.collect()
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for cmd in stream:
        submit(cmd)
    cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
    return len(stream) * 1e9 / cpu, len(stream) * 1e9 / wall


def latencies(submit: Callable[[Any], object], stream: Sequence[object]) -> list[int]:
    """ns per ``submit``, in stream order."""
    gc.collect()
    clock = time.perf_counter_ns
    out = [0] * len(stream)
    for i, cmd in enumerate(stream):
        start = clock()
        submit(cmd)
        out[i] = clock() - start
    return out


def pct(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def category(cmd: NewOrder | CancelOrder) -> str:
    if isinstance(cmd, CancelOrder):
        return "cancel"
    return "marketable" if cmd.account.startswith("tk") else "new"


def _group_builder(shape: tuple[type, ...], how: str) -> Callable[..., list[object]]:
    """A function that builds one command's events (classes ``shape``, one tuple of field
    values each) into a fresh list: ``how`` = "fields" the way the engine's hot paths do
    (``object.__new__`` and one slot store per field, see ``app/engine/events.py``),
    "constructor" through the dataclass constructors, "none" not at all (the baseline)."""
    args = [f"a{i}" for i in range(len(shape))]
    lines = [f"def build({', '.join(args)}):", "    evs = []"]
    for i, cls in enumerate(shape):
        if how == "fields":
            targets = ", ".join(f"ev.{f.name}" for f in fields(cls))
            lines += [f"    ev = new(C{i})", f"    {targets} = a{i}", "    evs.append(ev)"]
        elif how == "constructor":
            lines.append(f"    evs.append(C{i}(*a{i}))")
    lines.append("    return evs\n")
    namespace: dict[str, Any] = {"new": object.__new__}
    namespace.update((f"C{i}", cls) for i, cls in enumerate(shape))
    exec("\n".join(lines), namespace)  # noqa: S102 - fixed text built from dataclass fields
    build: Callable[..., list[object]] = namespace["build"]
    return build


def event_tax(
    book: OrderBook, stream: Sequence[NewOrder | CancelOrder]
) -> tuple[float, float, float]:
    """(event objects per command, ns per command spent building them the engine's way, the
    same through the dataclass constructors). The engine's events are rebuilt from their own
    field values by one generated function per command shape, without any matching; the time
    of the same pass with functions that build nothing is subtracted."""
    builders: dict[tuple[tuple[type, ...], str], Callable[..., list[object]]] = {}
    passes: dict[str, list[tuple[Callable[..., list[object]], list[tuple[Any, ...]]]]] = {
        how: [] for how in ("none", "fields", "constructor")
    }
    for cmd in stream:
        events = book.submit(cmd)
        shape = tuple(type(e) for e in events)
        values = [astuple(e) for e in events]
        for how, calls in passes.items():
            if (shape, how) not in builders:
                builders[shape, how] = _group_builder(shape, how)
            calls.append((builders[shape, how], values))
    count = sum(len(v) for _, v in passes["none"]) / len(stream)
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(3):
        for how, calls in passes.items():
            gc.collect()
            start = time.perf_counter_ns()
            for build, values in calls:
                build(*values)
            best[how] = min(best[how], (time.perf_counter_ns() - start) / len(stream))
    return count, best["fields"] - best["none"], best["constructor"] - best["none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, 3 rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, 3 with --quick)")
    parser.add_argument("--profile", action="store_true", help="cProfile one engine pass")
    args = parser.parse_args()
    n, rounds = (20_000, 3) if args.quick else (200_000, 5)
    rounds = args.rounds or rounds
    stream = make_stream(n)
    kinds = [category(cmd) for cmd in stream]
    counts = {k: kinds.count(k) for k in ("new", "cancel", "marketable")}
    print(f"stream: {n} events {counts}, seed {SEED}, gc {'on' if gc.isenabled() else 'off'}")

    def engine() -> OrderBook:
        return OrderBook(1, Sequencer())

    # Sanity: both books must do the same matching on this stream.
    book, yard = engine(), Yardstick()
    for cmd in stream:
        book.submit(cmd)
        yard.submit(cmd)
    book.check_invariants()
    stats = book.stats()
    assert stats.traded_volume == yard.volume, (stats.traded_volume, yard.volume)
    print(f"end state: {stats}")

    eng_tp, yard_tp, eng_wall, yard_wall, ratios = [], [], [], [], []
    p50, p99, p999, y99 = [], [], [], []
    by_kind: dict[str, list[tuple[int, int, int, int]]] = {k: [] for k in counts}
    for r in range(rounds):
        # Interleaved, so that a busy neighbour slows both books of a round alike.
        cpu, wall = throughput(engine().submit, stream)
        eng_tp.append(cpu)
        eng_wall.append(wall)
        cpu, wall = throughput(Yardstick().submit, stream)
        yard_tp.append(cpu)
        yard_wall.append(wall)
        ratios.append(eng_tp[-1] / yard_tp[-1])
        lat = latencies(engine().submit, stream)
        ylat = latencies(Yardstick().submit, stream)
        p50.append(pct(lat, 0.50))
        p99.append(pct(lat, 0.99))
        p999.append(pct(lat, 0.999))
        y99.append(pct(ylat, 0.99))
        for kind in counts:
            mine = [t for t, k in zip(lat, kinds, strict=True) if k == kind]
            theirs = [t for t, k in zip(ylat, kinds, strict=True) if k == kind]
            by_kind[kind].append(
                (pct(mine, 0.5), pct(mine, 0.99), pct(theirs, 0.5), pct(theirs, 0.99))
            )
        print(
            f"round {r + 1}: engine {eng_tp[-1]:,.0f} ev/s, yardstick {yard_tp[-1]:,.0f} ev/s "
            f"(x{ratios[-1]:.3f}; wall {eng_wall[-1]:,.0f} / {yard_wall[-1]:,.0f}), "
            f"engine p50/p99/p99.9 {p50[-1]}/{p99[-1]}/{p999[-1]} ns, "
            f"yardstick p99 {y99[-1]} ns"
        )
    median = statistics.median
    for kind, rows in by_kind.items():
        e50, e99, y50, y99k = (round(median(col)) for col in zip(*rows, strict=True))
        print(f"  {kind:>10}: engine p50 {e50} p99 {e99} ns | yardstick p50 {y50} p99 {y99k} ns")
    per_command, tax, ctor_tax = event_tax(engine(), stream)
    engine_ns = 1e9 / median(eng_tp)
    print(
        f"event objects: {per_command:.2f} per command; building them alone takes {tax:.0f} ns "
        f"per command, {100 * tax / engine_ns:.0f}% of the engine's {engine_ns:.0f} ns "
        f"({ctor_tax:.0f} ns through the dataclass constructors)"
    )
    if args.profile:
        profiler = cProfile.Profile()
        submit = engine().submit
        profiler.enable()
        for cmd in stream:
            submit(cmd)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    result = {
        "bench": "engine",
        "events": n,
        "engine_events_per_s": round(median(eng_tp)),
        "yardstick_events_per_s": round(median(yard_tp)),
        "ratio": round(median(ratios), 3),
        "engine_events_per_s_wall": round(median(eng_wall)),
        "yardstick_events_per_s_wall": round(median(yard_wall)),
        "p50_ns": round(median(p50)),
        "p99_ns": round(median(p99)),
        "p999_ns": round(median(p999)),
        "yardstick_p99_ns": round(median(y99)),
        "event_objects_per_command": round(per_command, 2),
        "event_build_ns_per_command": round(tax),
        "event_ctor_ns_per_command": round(ctor_tax),
        "rounds": rounds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
