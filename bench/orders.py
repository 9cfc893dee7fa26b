"""Order throughput: 100-order batches over loopback into one server process.

The load generator (bench/loadgen.py) runs in its own process with 32 keep-alive
connections for a fixed time; the server journals to PostgreSQL (or SQLite with
--backend sqlite). In the same run the HTTP ceiling is measured: bench/echo_app.py under the
same uvicorn settings, whose one route only parses and echoes the batch.

    .venv/bin/python bench/orders.py [--seconds 10] [--connections 32] [--batch 100]

Last line of output: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    KEYS,
    ROOT,
    cpu_seconds,
    drop_databases,
    free_port,
    fresh_database,
    serve,
    serve_app,
    stop,
    wait_ready,
)

# Instruments of the bundled sample with tick 0.05 and lot 1, and a mid price in ticks.
INSTRUMENTS = {"NSE:INFY": 37508, "NSE:TCS": 82046, "NSE:RELIANCE": 26051, "NSE:HDFCBANK": 34978}


def make_bodies(count: int, size: int, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        orders = []
        for _ in range(size):
            symbol = rng.choice(list(INSTRUMENTS))
            ticks = INSTRUMENTS[symbol] + rng.randint(-20, 20)
            orders.append(
                {
                    "symbol": symbol,
                    "side": rng.choice(("buy", "sell")),
                    "type": "limit",
                    "quantity": str(rng.randint(1, 50)),
                    "price": f"{ticks * 5 // 100}.{ticks * 5 % 100:02d}",
                    "time_in_force": rng.choice(("GTC", "GTC", "GTC", "IOC")),
                }
            )
        bodies.append(json.dumps({"orders": orders}))
    return bodies


def run_load(port: int, spec_file: Path, connections: int, seconds: float) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--port",
            str(port),
            "--requests-file",
            str(spec_file),
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    bodies = make_bodies(400, args.batch)
    spec = workdir / "requests.json"
    spec.write_text(
        json.dumps(
            {
                "path": "/advanced/batch-orders",
                "bodies": bodies,
                "headers": [{"X-API-Key": KEYS["default"]}, {"X-API-Key": KEYS["desk-b"]}],
            }
        )
    )
    database = "ticker_bench_orders"
    if args.backend == "postgres":
        database_url = fresh_database(database)
    else:
        database_url = f"sqlite:///{workdir / 'bench.db'}"

    try:
        port = free_port()
        service = serve(workdir, port, DATABASE_URL=database_url)
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/ready", service)
            cpu = cpu_seconds(service.pid)
            result = run_load(port, spec, args.connections, args.seconds)
            # All the server's threads over the run, warm-up included, per order answered.
            server_cpu = cpu_seconds(service.pid) - cpu
        finally:
            stop(service)
        echo_port = free_port()
        echo = serve_app(workdir, echo_port, "bench.echo_app:app", name="echo")
        try:
            wait_ready(f"http://127.0.0.1:{echo_port}/docs", echo)
            ceiling = run_load(echo_port, spec, args.connections, args.seconds)
        finally:
            stop(echo)
    finally:
        if args.backend == "postgres":
            drop_databases(database)
        shutil.rmtree(workdir, ignore_errors=True)

    orders_per_s = result["requests_per_s"] * args.batch
    ceiling_orders_per_s = ceiling["requests_per_s"] * args.batch
    figures = {
        "bench": "orders",
        "backend": args.backend,
        "batch_size": args.batch,
        "connections": args.connections,
        "seconds": args.seconds,
        "orders_per_s": round(orders_per_s),
        "batches_per_s": round(result["requests_per_s"], 1),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "errors": result["errors"],
        "server_cpu_us_per_order": round(
            1e6 * server_cpu / max(result["responses"] * args.batch, 1), 1
        ),
        "ceiling_orders_per_s": round(ceiling_orders_per_s),
        "ceiling_p50_ms": round(ceiling["p50_ms"], 2),
        "ceiling_p99_ms": round(ceiling["p99_ms"], 2),
        "fraction_of_ceiling": round(orders_per_s / ceiling_orders_per_s, 3),
    }
    print(
        f"service: {figures['orders_per_s']} orders/s, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, server CPU {figures['server_cpu_us_per_order']} µs/order; "
        f"ceiling {figures['ceiling_orders_per_s']} orders/s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
