"""Instrument registry benchmark: bulk import, cold load into the cache, lookups.

Creates its own PostgreSQL database (``ticker_bench_registry``), imports N generated
instruments through the real importer, then times a cold ``InstrumentRegistry.refresh()``,
``snapshot.resolve("EXCHANGE:SYMBOL")``, ``snapshot.get(token)`` and the validation of a
100-order batch (resolve + price_to_ticks + quantity_to_lots). Drops the database at the end.

    .venv/bin/python bench/registry.py [--rows 100000]

Targets: load < 1 s, lookup < 1 us. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.metrics import Metrics
from app.services.instruments.importer import COLUMNS, InstrumentImporter
from app.services.instruments.registry import InstrumentRegistry
from app.store.database import Database
from app.store.instruments import InstrumentStore
from app.store.migrate import migrate

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "ticker_bench_registry"
EXCHANGES = (("NSE", "NSE", "EQ"), ("BSE", "BSE", "EQ"), ("NFO", "NFO-OPT", "CE"))


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def generate_csv(rows: int) -> str:
    lines = [",".join(COLUMNS)]
    for n in range(rows):
        exchange, segment, itype = EXCHANGES[n % 3]
        tick = "0.05" if n % 2 else "0.01"
        lot = "1" if exchange != "NFO" else ("25" if n % 2 else "50")
        expiry = "2026-12-31" if exchange == "NFO" else ""
        strike = str(10000 + n) if exchange == "NFO" else "0"
        lines.append(
            f"{1000 + n},{n},SYM{n:06d},NAME {n},{100 + n % 900}.5,{expiry},{strike},"
            f"{tick},{lot},{itype},{segment},{exchange}"
        )
    return "\n".join(lines) + "\n"


def per_call_ns(func, args: list, repeat: int = 5) -> float:
    """Best of ``repeat`` passes over ``args``, in nanoseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for arg in args:
            func(arg)
        best = min(best, (time.perf_counter_ns() - started) / len(args))
    return best


async def run(rows: int) -> dict[str, float | int]:
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE
    database = Database.create(url)
    try:
        await migrate(database)
        store = InstrumentStore(database)
        text = generate_csv(rows)
        started = time.perf_counter()
        report = await InstrumentImporter(store=store).import_text(text, source="generated")
        import_seconds = time.perf_counter() - started
        assert report.inserted == rows, report.summary()
        assert not report.rejected, report.summary()

        loads = []
        for _ in range(3):  # a fresh registry each time: a cold cache, as at start-up
            registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
            gc.collect()
            started = time.perf_counter()
            await registry.refresh()
            loads.append(time.perf_counter() - started)
        snapshot = registry.snapshot
        assert len(snapshot) == rows

        rng = random.Random(7)
        picks = [rng.randrange(rows) for _ in range(100_000)]
        symbols = [f"{EXCHANGES[n % 3][0]}:SYM{n:06d}" for n in picks]
        tokens = [1000 + n for n in picks]
        resolve_ns = per_call_ns(snapshot.resolve, symbols)
        token_ns = per_call_ns(snapshot.instrument, tokens)

        def validate_batch(batch: list[tuple[str, str, str]]) -> None:
            for symbol, price, quantity in batch:
                instrument = snapshot.resolve(symbol)
                instrument.price_to_ticks(price)
                instrument.quantity_to_lots(quantity)

        batch = [(symbols[i], "1234.55", "50") for i in range(100)]
        batch_us = per_call_ns(validate_batch, [batch] * 2000) / 1000
    finally:
        await database.dispose()
    return {
        "rows": rows,
        "import_seconds": round(import_seconds, 3),
        "import_rows_per_second": round(rows / import_seconds),
        "cold_load_seconds": round(loads[0], 3),
        "load_seconds_median": round(statistics.median(loads), 3),
        "resolve_symbol_ns": round(resolve_ns),
        "lookup_token_ns": round(token_ns),
        "validate_100_orders_us": round(batch_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DATABASE}"')
    try:
        result = asyncio.run(run(args.rows))
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    print(
        f"import: {result['rows']} rows in {result['import_seconds']} s "
        f"({result['import_rows_per_second']} rows/s)"
    )
    print(
        f"cold load: {result['cold_load_seconds']} s (median of 3: "
        f"{result['load_seconds_median']} s; target < 1 s)"
    )
    print(
        f"resolve EXCHANGE:SYMBOL: {result['resolve_symbol_ns']} ns; by token: "
        f"{result['lookup_token_ns']} ns (target < 1000 ns)"
    )
    print(f"validate a 100-order batch: {result['validate_100_orders_us']} us")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
