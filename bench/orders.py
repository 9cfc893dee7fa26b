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
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEYS = {"default": "bench-key-default-0123456789", "desk-b": "bench-key-desk-b-0123456789"}
# Instruments of the bundled sample with tick 0.05 and lot 1, and a mid price in ticks.
INSTRUMENTS = {"NSE:INFY": 37508, "NSE:TCS": 82046, "NSE:RELIANCE": 26051, "NSE:HDFCBANK": 34978}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


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


def serve_service(workdir: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    tokens = workdir / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    (tokens / "desk-b.json").write_text(
        json.dumps({"account": "desk-b", "scopes": ["read", "trade"], "key": KEYS["desk-b"]})
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": f"bench:{port}:",
        "API_KEY": KEYS["default"],
        "TOKENS_DIR": str(tokens),
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG": "false",
        "RATE_LIMIT_PER_SECOND": "1000000000",
        "CIRCUIT_BREAKER_PERCENT": "0",
        "RISK_MAX_OPEN_ORDERS": "1000000000",
    }
    log = (workdir / "service.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=log,
    )


def serve_echo(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (workdir / "echo.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.echo_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


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
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
        database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    else:
        database_url = f"sqlite:///{workdir / 'bench.db'}"

    try:
        port = free_port()
        service = serve_service(workdir, database_url, port)
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/ready", service)
            result = run_load(port, spec, args.connections, args.seconds)
        finally:
            stop(service)
        echo_port = free_port()
        echo = serve_echo(workdir, echo_port)
        try:
            wait_ready(f"http://127.0.0.1:{echo_port}/docs", echo)
            ceiling = run_load(echo_port, spec, args.connections, args.seconds)
        finally:
            stop(echo)
    finally:
        if args.backend == "postgres":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
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
        "ceiling_orders_per_s": round(ceiling_orders_per_s),
        "ceiling_p50_ms": round(ceiling["p50_ms"], 2),
        "ceiling_p99_ms": round(ceiling["p99_ms"], 2),
        "fraction_of_ceiling": round(orders_per_s / ceiling_orders_per_s, 3),
    }
    print(
        f"service: {figures['orders_per_s']} orders/s, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms; ceiling {figures['ceiling_orders_per_s']} orders/s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
