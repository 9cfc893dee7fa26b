"""Webhook benchmark: delivery rate, and what a hanging receiver costs the order path.

1. Deliveries per second: the service (its own process) with 8 endpoints (4 per account) on
   a fast local receiver (uvicorn, its own process, answers 204); 20 crossing batches of 100
   orders are placed as fast as they go, and the clock runs until the receiver has every
   message the outbox holds. Rate = messages / (first order -> last delivery).
2. Batch-order throughput (bench/loadgen.py, 32 keep-alive connections, 100-order batches,
   fixed time) in three set-ups, each on a fresh database, alternated over the rounds:
   no webhook endpoints; one endpoint per account on a receiver that never answers
   (requests hang until the 10 s read timeout); one per account on the fast receiver.
   The figure that matters: hanging vs none (the issue asks for within 10%).

    .venv/bin/python bench/webhooks.py [--backend postgres|sqlite] [--seconds 8] [--rounds 3]

Last line of output: one JSON object with the figures (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.orders import make_bodies, run_load
from bench.support import (
    KEYS,
    ROOT,
    drop_databases,
    free_port,
    fresh_database,
    serve,
    stop,
    wait_ready,
)

HEADERS = {account: {"X-API-Key": key} for account, key in KEYS.items()}


# --- the receiver (run as: bench/webhooks.py --serve-receiver PORT [--hang]) ------------------


def serve_receiver(port: int, hang: bool) -> None:
    import uvicorn

    received = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":
            body = str(received).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if hang:
            await asyncio.sleep(3600)
        received += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_receiver(workdir: Path, hang: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, __file__, "--serve-receiver", str(port)] + (["--hang"] if hang else [])
    log = (workdir / f"receiver-{port}.log").open("wb")
    process = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # GET answers the count, even when POSTs hang
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1).raise_for_status()
            return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("receiver did not start")


def delivered(client: httpx.Client, port: int) -> int:
    return int(client.get(f"http://127.0.0.1:{port}/").text)


# --- the service ------------------------------------------------------------------------------


def serve_webhooks(
    workdir: Path, database_url: str, port: int, **extra: str
) -> subprocess.Popen[bytes]:
    """The service with loopback webhook targets allowed (the receivers are local)."""
    return serve(
        workdir,
        port,
        name=f"service-{port}",
        DATABASE_URL=database_url,
        WEBHOOK_ALLOW_LOOPBACK="true",
        WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT="10",
        **extra,
    )


class Backend:
    """A fresh database per service run."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.made: list[str] = []

    def fresh(self) -> str:
        name = f"ticker_bench_webhooks_{len(self.made)}"
        self.made.append(name)
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.db')}"
        return fresh_database(name)

    def drop_all(self) -> None:
        if self.kind == "postgres":
            drop_databases(*self.made)


def register(base: str, url: str, account: str) -> None:
    response = httpx.post(
        f"{base}/advanced/webhooks", json={"url": url}, headers=HEADERS[account], timeout=10
    )
    response.raise_for_status()


def metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def outbox_counts(database_url: str) -> tuple[int, int]:
    """(messages in the outbox, order changes still queued in unexpanded batches)."""
    query = (
        "SELECT (SELECT count(*) FROM webhook_outbox), "
        "(SELECT coalesce(sum(event_count), 0) FROM webhook_batches)"
    )
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            messages, queued = conn.execute(query).fetchone()
    else:
        with psycopg.connect(database_url) as conn:
            found = conn.execute(query).fetchone()
            assert found is not None
            messages, queued = found
    return int(messages), int(queued)


def all_messages(database_url: str) -> int:
    """The messages the placed orders yield, once every batch is expanded."""
    deadline = time.monotonic() + 60
    while True:
        messages, queued = outbox_counts(database_url)
        if not queued or time.monotonic() > deadline:
            return messages
        time.sleep(0.02)


# --- 1. deliveries per second -----------------------------------------------------------------


def bench_deliveries(backend: Backend, workdir: Path, batches: int) -> dict[str, Any]:
    receiver, receiver_port = start_receiver(workdir, hang=False)
    port = free_port()
    database_url = backend.fresh()
    service = serve_webhooks(workdir, database_url, port, WEBHOOK_ENDPOINT_CONCURRENCY="8")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/health/ready", service)
        for account in HEADERS:
            for n in range(4):
                register(base, f"http://127.0.0.1:{receiver_port}/{account}/{n}", account)
        bodies = make_bodies(batches, 100, seed=7)
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=30) as client:
            for i, body in enumerate(bodies):
                account = list(HEADERS)[i % 2]
                response = client.post(
                    "/advanced/batch-orders",
                    content=body,
                    headers={**HEADERS[account], "content-type": "application/json"},
                )
                response.raise_for_status()
        placed = time.perf_counter() - started
        expected = all_messages(database_url)
        with httpx.Client(timeout=5) as poll:  # one client: a new one per poll costs a TLS setup
            while delivered(poll, receiver_port) < expected:
                time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        stop(service)
        stop(receiver)
    return {
        "messages": expected,
        "orders_placed_seconds": round(placed, 2),
        "drain_seconds": round(elapsed, 2),
        "deliveries_per_s": round(expected / elapsed),
    }


# --- 2. order throughput: none / hanging / healthy receiver -------------------------------------


def bench_throughput(
    backend: Backend,
    workdir: Path,
    spec: Path,
    setup: str,
    receivers: dict[str, int],
    seconds: float,
) -> dict[str, Any]:
    port = free_port()
    database_url = backend.fresh()
    service = serve_webhooks(workdir, database_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/health/ready", service)
        if setup != "none":
            for account in HEADERS:
                register(base, f"http://127.0.0.1:{receivers[setup]}/{account}", account)
        result = run_load(port, spec, 32, seconds)
        rows, queued = outbox_counts(database_url)
        commits = metric(base, "ticker_journal_commit_seconds_count")
        commit_ms = 1000 * metric(base, "ticker_journal_commit_seconds_sum") / max(commits, 1)
        health = httpx.get(f"{base}/health", timeout=10).json()["dependencies"]["webhooks"]
    finally:
        stop(service)
    return {
        "orders_per_s": result["requests_per_s"] * 100,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "outbox_rows": rows,
        "queued_changes": queued,
        "commit_ms": commit_ms,
        "in_flight_at_end": health["in_flight"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hang", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver, args.hang)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    backend = Backend(args.backend, workdir)
    spec = workdir / "requests.json"
    spec.write_text(
        json.dumps(
            {
                "path": "/advanced/batch-orders",
                "bodies": make_bodies(400, 100),
                "headers": [HEADERS["default"], HEADERS["desk-b"]],
            }
        )
    )
    hanging, hanging_port = start_receiver(workdir, hang=True)
    healthy, healthy_port = start_receiver(workdir, hang=False)
    receivers = {"hanging": hanging_port, "healthy": healthy_port}
    try:
        deliveries = [bench_deliveries(backend, workdir, args.batches) for _ in range(args.rounds)]
        runs: dict[str, list[dict[str, Any]]] = {"none": [], "hanging": [], "healthy": []}
        for _ in range(args.rounds):
            for setup in runs:
                runs[setup].append(
                    bench_throughput(backend, workdir, spec, setup, receivers, args.seconds)
                )
                print(setup, {k: round(v, 1) for k, v in runs[setup][-1].items()}, flush=True)
    finally:
        stop(hanging)
        stop(healthy)
        backend.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    def median(setup: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[setup])

    none, hang, ok = (median(s, "orders_per_s") for s in ("none", "hanging", "healthy"))
    figures = {
        "bench": "webhooks",
        "backend": args.backend,
        "rounds": args.rounds,
        "deliveries_per_s": statistics.median(d["deliveries_per_s"] for d in deliveries),
        "delivery_messages": deliveries[0]["messages"],
        "orders_per_s_no_webhooks": round(none),
        "orders_per_s_hanging_receiver": round(hang),
        "orders_per_s_healthy_receiver": round(ok),
        "hanging_vs_none": round(hang / none, 3),
        "healthy_vs_none": round(ok / none, 3),
        "p99_ms_no_webhooks": round(median("none", "p99_ms"), 1),
        "p99_ms_hanging_receiver": round(median("hanging", "p99_ms"), 1),
        "outbox_rows_hanging": round(median("hanging", "outbox_rows")),
        "queued_changes_hanging": round(median("hanging", "queued_changes")),
        "commit_ms_no_webhooks": round(median("none", "commit_ms"), 2),
        "commit_ms_hanging_receiver": round(median("hanging", "commit_ms"), 2),
        "errors": sum(run["errors"] for setup in runs.values() for run in setup),
    }
    print(
        f"deliveries: {figures['deliveries_per_s']}/s; "
        f"orders/s none {figures['orders_per_s_no_webhooks']}"
        f", hanging {figures['orders_per_s_hanging_receiver']} ({figures['hanging_vs_none']:.1%})"
        f", healthy {figures['orders_per_s_healthy_receiver']} ({figures['healthy_vs_none']:.1%})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
