"""Journal storage ceiling: how many orders a second PostgreSQL takes through the journal's own
writes, with no HTTP, no matching and no event loop contention.

Each group is what one group commit of the orders bench holds: 3,200 new orders (32 batches
of 100; a sixth of them filled, a sixth cancelled, the rest resting), 40 orders placed by
an earlier group and changed now, and 700 trades, queued by ``app.store.journal.queue_rows``
and sent by the journal's own connection (``app.store.commits``) in one transaction: COPY
for the new orders and trades from ``--copy-min`` rows, an INSERT from unnested arrays in the
pipeline below that, an upsert for the changed orders. ``--group-orders 16 --trades 4
--changed 4`` is a group commit of single orders.
Reported: orders journaled per second of wall time, and the CPU per order of this process
(building the rows' values) and of the PostgreSQL backend (from /proc), so the two shares
of the journal's cost can be told apart.

    .venv/bin/python bench/journal.py [--groups 40] [--group-orders 3200] [--upsert-all]
        [--trades 700] [--changed 40] [--copy-min 256] [--no-history]

``--upsert-all`` writes every order row through the upsert from unnested arrays (how every
order row was written before new orders went in with COPY), for comparison. Each group also
writes the ``order_history`` rows the order path would (one per state: accepted, then traded
or cancelled for the orders that ended, traded for the changed ones), in the same statement
(COPY from ``--copy-min`` rows); ``--no-history`` leaves them out, for comparison.

Creates and drops the database ``ticker_bench_journal``. Last output line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app.store.journal
from app.engine import Side, Trade
from app.services.orders.journal import trade_row
from app.store.commits import JournalConnection
from app.store.database import Database
from app.store.journal import COPY_MIN_ROWS, HistoryRow, OrderRow, queue_rows
from app.store.migrate import migrate
from bench.support import cpu_seconds, drop_databases, fresh_database

DATABASE = "ticker_bench_journal"
WARMUP_GROUPS = 5
STATUSES = ("open", "open", "open", "open", "filled", "cancelled")


def history_rows(rows: list[dict[str, Any]], seq: int, *, changed: bool) -> list[tuple[Any, ...]]:
    """The ``order_history`` rows of these order rows' states (seq: the first one's)."""
    out: list[tuple[Any, ...]] = []
    for row in rows:
        price, now = row["price"], row["updated_ns"]
        if not changed:
            seq += 1
            out.append(
                (row["order_id"], seq, now, "accepted", "open", 50, 0, 50, price, None, None)
            )
        if row["status"] != "open":
            seq += 1
            event = "cancelled" if row["status"] == "cancelled" else "traded"
            out.append(
                (row["order_id"], seq, now, event, row["status"], 50, row["filled"],
                 row["remaining"], price, None, row["reason"])
            )  # fmt: skip
    return out


def order_row(rng: random.Random, order_id: int, now: int) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    filled = 50 if status == "filled" else 0
    return {
        "order_id": order_id,
        "account": rng.choice(("default", "desk-b")),
        "client_order_id": None,
        "batch_id": f"b{order_id // 100:08d}",
        "instrument_token": rng.choice((408065, 2953217, 738561, 341249)),
        "side": rng.choice(("buy", "sell")),
        "order_type": "limit",
        "time_in_force": "GTC",
        "post_only": False,
        "stp": "cancel_newest",
        "price": 37508 + rng.randint(-20, 20),
        "trigger_price": None,
        "quantity": 50,
        "filled": filled,
        "remaining": 0 if status != "open" else 50,
        "status": status,
        "priority": order_id,
        "reason": "USER_CANCELLED" if status == "cancelled" else None,
        "created_ns": now,
        "updated_ns": now,
        "last_seq": order_id * 3,
        "product": None,
        "validity": None,
        "validity_ttl": None,
        "tag": None,
    }


async def run(
    url: str,
    groups: int,
    size: int,
    upsert_all: bool,
    trade_count: int,
    changed_count: int,
    history: bool = True,
) -> dict[str, Any]:
    database = Database.create(url)
    connection = JournalConnection(database)
    rng = random.Random(7)
    resting: list[dict[str, Any]] = []
    next_id = seq = 0
    history_seq = 1 << 40  # apart from the trades' ids (the table's key is order_id, seq)
    wall = cpu = backend = 0.0
    measured = 0
    pid = 0
    try:
        await migrate(database)
        for group in range(groups + WARMUP_GROUPS):
            now = time.time_ns()
            new = []
            for _ in range(size):
                next_id += 1
                new.append(order_row(rng, next_id, now))
            changed = []
            for _ in range(min(changed_count, len(resting))):
                row = resting.pop(rng.randrange(len(resting)))
                changed.append(row | {"status": "filled", "filled": 50, "remaining": 0})
            trades = []
            for _ in range(trade_count):
                seq += 1
                trade = Trade(
                    seq, now, 37508, 5, next_id - 1, next_id, "default", "desk-b", Side.BUY, 0, 0
                )
                trades.append(trade_row(408065, trade))
            history_rows_ = []
            if history:
                history_rows_ = history_rows(new, history_seq, changed=False)
                history_rows_ += history_rows(
                    changed, history_seq + len(history_rows_), changed=True
                )
                history_seq += len(history_rows_)
            # The journal's typed rows, as the order service hands them over.
            order_rows = [OrderRow(**row) for row in new + changed]
            typed_history = [HistoryRow(*row) for row in history_rows_]
            started, cpu0 = time.perf_counter(), time.process_time()
            backend0 = cpu_seconds(pid) if pid else 0.0
            tx = connection.transaction()
            queue_rows(
                tx,
                order_rows=order_rows,
                trade_rows=trades,
                new_order_ids=() if upsert_all else {row["order_id"] for row in new},
                history_rows=typed_history,
            )
            await connection.commit(tx)
            if group >= WARMUP_GROUPS:
                wall += time.perf_counter() - started
                cpu += time.process_time() - cpu0
                backend += cpu_seconds(pid) - backend0
                measured += size
            pid = connection.backend_pid or 0
            resting.extend(row for row in new if row["status"] == "open")
    finally:
        await connection.close()
        await database.dispose()
    return {
        "bench": "journal",
        "groups": groups,
        "orders_per_group": size,
        "trades_per_group": trade_count,
        "history": history,
        "new_orders": "upsert"
        if upsert_all
        else ("copy" if size >= app.store.journal.COPY_MIN_ROWS else "insert"),
        "orders_per_s": round(measured / wall),
        "ms_per_group": round(1e3 * wall / groups, 3),
        "client_cpu_us_per_order": round(1e6 * cpu / measured, 2),
        "postgres_cpu_us_per_order": round(1e6 * backend / measured, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--group-orders", type=int, default=3200)
    parser.add_argument("--upsert-all", action="store_true", help="no COPY for new orders")
    parser.add_argument("--trades", type=int, default=700, help="trades per group")
    parser.add_argument("--changed", type=int, default=40, help="earlier orders changed per group")
    parser.add_argument("--no-history", action="store_true", help="no order_history rows")
    parser.add_argument(
        "--copy-min", type=int, default=COPY_MIN_ROWS, help="new rows from which COPY is used"
    )
    args = parser.parse_args()
    app.store.journal.COPY_MIN_ROWS = args.copy_min
    url = fresh_database(DATABASE)
    try:
        result = asyncio.run(
            run(
                url,
                args.groups,
                args.group_orders,
                args.upsert_all,
                args.trades,
                args.changed,
                not args.no_history,
            )
        )
    finally:
        drop_databases(DATABASE)
    print(
        f"{result['orders_per_s']:,} orders/s journaled; {result['ms_per_group']} ms per "
        f"group; CPU per order: {result['client_cpu_us_per_order']} us here, "
        f"{result['postgres_cpu_us_per_order']} us in PostgreSQL"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
