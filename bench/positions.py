"""The positions hook's CPU on the order path: ``PositionBook.write`` + ``after_commit`` for
the trades of one group commit, against building that group's journal statement.

A group as in bench/orders.py under load: 3,200 new orders and ~700 trades between 2 accounts
on 4 instruments, journaled to PostgreSQL (the statement is built, not sent: both sides are
pure CPU in the event loop, which is what the order path pays).

    .venv/bin/python bench/positions.py [--groups 200]

Last line of output: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Side, Trade  # noqa: E402
from app.services.orders.journal import JournalUnit, trade_row  # noqa: E402
from app.services.orders.shard import Shard  # noqa: E402
from app.services.positions.service import PositionBook  # noqa: E402
from app.services.trading_day.calendar import TradingCalendar  # noqa: E402
from app.store.commits import JournalTransaction  # noqa: E402
from app.store.journal import OrderRow, queue_rows  # noqa: E402

TOKENS = [408065, 2953217, 738561, 341249]
NOW = 1_796_375_700_000_000_000


def group(rng: random.Random, seq: int) -> tuple[list[JournalUnit], list[dict[str, Any]]]:
    """32 units (requests) of 100 orders, ~22 trades each; the order rows of the group."""
    units, rows = [], []
    for _ in range(32):
        unit = JournalUnit()
        for _ in range(22):
            seq += 1
            taker = rng.choice((Side.BUY, Side.SELL))
            trade = Trade(
                seq, NOW + seq, rng.randint(37000, 38000), rng.randint(1, 50),
                seq, seq + 1, "default", "desk-b", taker, 0, 0,
            )  # fmt: skip
            unit.trades.append((rng.choice(TOKENS), trade))
        units.append(unit)
        for n in range(100):
            seq += 1
            rows.append(
                OrderRow(
                    **{
                        "order_id": seq,
                        "account": "default",
                        "client_order_id": None,
                        "batch_id": "b" * 24,
                        "instrument_token": TOKENS[n % 4],
                        "side": "buy",
                        "order_type": "limit",
                        "time_in_force": "GTC",
                        "post_only": False,
                        "stp": "cancel_newest",
                        "price": 37500,
                        "trigger_price": None,
                        "quantity": 10,
                        "filled": 0,
                        "remaining": 10,
                        "status": "open",
                        "priority": seq,
                        "reason": None,
                        "created_ns": NOW,
                        "updated_ns": NOW,
                        "last_seq": seq,
                        "product": None,
                        "validity": None,
                        "validity_ttl": None,
                        "tag": None,
                    }
                )  # fmt: skip
            )
    return units, rows


class _Registry:
    snapshot = SimpleNamespace(get=lambda token: SimpleNamespace(exchange="NSE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(42)
    groups = [group(rng, n * 100_000) for n in range(args.groups)]
    book = PositionBook(
        database=None,  # type: ignore[arg-type]  # load() is not called
        calendar=TradingCalendar.load("builtin"),
        registry=_Registry(),  # type: ignore[arg-type]
        shard=Shard(),
    )
    journal_s = positions_s = 0.0
    for units, rows in groups:
        started = time.perf_counter()
        tx = JournalTransaction(postgres=True)
        trades = [trade_row(token, t) for unit in units for token, t in unit.trades]
        queue_rows(tx, order_rows=rows, trade_rows=trades, new_order_ids={r.order_id for r in rows})
        tx.statement()
        middle = time.perf_counter()
        tx = JournalTransaction(postgres=True)
        book.write(tx, units)
        book.after_commit(units)
        tx.statement()
        ended = time.perf_counter()
        journal_s += middle - started
        positions_s += ended - middle
    orders = args.groups * 3200
    print(
        json.dumps(
            {
                "bench": "positions",
                "groups": args.groups,
                "orders_per_group": 3200,
                "trades_per_group": 704,
                "journal_rows_us_per_order": round(journal_s / orders * 1e6, 3),
                "positions_us_per_order": round(positions_s / orders * 1e6, 3),
                "positions_vs_journal_rows": round(positions_s / journal_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
