"""Instructions per single order, counted by valgrind's callgrind: the order path's own work,
in a figure that does not drift with the machine.

This machine's speed moves by 2x from hour to hour, so a change worth 2-5% of an order's CPU
cannot be told from drift by timing it (bench/single.py, even alternating). The number of
instructions the process runs repeats to 0.01% between runs, whatever else the machine does.

What is counted: the whole service as ``serve`` builds it (``create_app`` with its lifespan:
the order routes' lean path, auth, rate limits, metrics, the order service, the journal writer
on PostgreSQL, positions, the ticker and webhook listeners), called as ASGI in-process for
``POST /orders`` (no sockets, no uvicorn: bench/single.py --ceiling measures that part), with
bench/single.py's order stream (two accounts, limit orders around one mid price). ``--clients``
tasks send one order at a time each, so the journal's groups hold up to that many orders.
Instrumentation is on only around the measured orders, after a warm-up; PostgreSQL's own work
is not counted (another process). Each ``--clients`` count runs in its own process under
``valgrind --tool=callgrind --instr-atstart=no`` (about 30 s each).

    .venv/bin/python bench/instructions.py [--orders 600] [--clients 1,16]

Last output line: one JSON object, instructions per order (and the mean group) per count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.single import ours_spec, price_stream
from bench.support import KEYS, asgi_scope, drop_databases, fresh_database, service_env

DATABASE = "ticker_bench_instructions"
WARMUP = 300


async def serve_in_process(orders: int, clients: int) -> dict[str, Any]:
    """The child: the app with its lifespan, ``WARMUP`` orders, then ``orders`` orders with
    callgrind's instrumentation on (``callgrind_control`` on this process)."""
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from app.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    os.environ.update(service_env(workdir, f"bench:instructions:{os.getpid()}:"))
    os.environ["DATABASE_URL"] = fresh_database(DATABASE)
    bodies = [b.encode() for b in ours_spec(price_stream(WARMUP + orders))["bodies"]]
    keys = [KEYS["default"], KEYS["desk-b"]]  # alternating, so that crossing orders trade
    statuses: dict[int, int] = {}
    app = create_app(Settings())
    try:
        async with LifespanManager(app, startup_timeout=120) as manager:
            asgi = manager.app

            async def one(n: int) -> None:
                body = bodies[n]

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        statuses[message["status"]] = statuses.get(message["status"], 0) + 1

                scope = asgi_scope("POST", "/orders", keys[n % 2], body_length=len(body))
                await asgi(scope, receive, send)

            async def run(first: int, count: int) -> None:
                async def client(k: int) -> None:
                    for n in range(first + k, first + count, clients):
                        await one(n)

                await asyncio.gather(*(client(k) for k in range(clients)))

            await run(0, WARMUP)
            registry = manager._state["metrics"].registry
            before = _groups(registry)
            _instrument("on")
            await run(WARMUP, orders)
            _instrument("off")
            groups = _groups(registry) - before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"orders": orders, "statuses": statuses, "groups": groups}


def _groups(registry: Any) -> int:
    """Journal groups committed so far (the writer's group-size histogram's count)."""
    return int(registry.get_sample_value("ticker_journal_group_size_count") or 0)


def _instrument(state: str) -> None:
    if os.environ.get("BENCH_UNDER_CALLGRIND"):
        subprocess.run(
            ["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True
        )


def count(orders: int, clients: int) -> dict[str, Any]:
    """One child under callgrind: instructions per order."""
    out = Path(tempfile.mkdtemp(prefix="callgrind-")) / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        "--orders",
        str(orders),
        "--clients",
        str(clients),
    ]
    env = {**os.environ, "BENCH_UNDER_CALLGRIND": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    shutil.rmtree(out.parent, ignore_errors=True)
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise SystemExit(f"the child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "instructions_per_order": round(int(collected.group(1)) / orders),
        "mean_group": round(orders / child["groups"], 2) if child["groups"] else None,
        "statuses": child["statuses"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        print(json.dumps(uvloop.run(serve_in_process(args.orders, int(args.clients)))))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench/instructions.py needs valgrind (Debian's package valgrind)")
    result: dict[str, Any] = {"bench": "instructions", "orders": args.orders, "clients": {}}
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            figures = count(args.orders, clients)
            result["clients"][str(clients)] = figures
            print(
                f"{clients:>3} clients: {figures['instructions_per_order']:,} instructions an "
                f"order (mean group {figures['mean_group']}, statuses {figures['statuses']})",
                flush=True,
            )
    finally:
        drop_databases(DATABASE)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
