"""Scale-out cost: orders/s and latency through gateways and matchers vs. ROLE=all.

Topologies, each on a fresh PostgreSQL database, same load generator (bench/loadgen.py):
  all      one process, ROLE=all
  2g1m     2 gateways + 1 matcher (MATCHER_SHARDS=1)
  2g2m     2 gateways + 2 matchers (MATCHER_SHARDS=2)
Each runs a throughput phase (32 connections split over the entry points, 100-order
batches) and a latency probe (1 connection, 10-order batches, light load) whose p50/p99,
minus ROLE=all's, is the added cost of the stream hop.

    .venv/bin/python bench/scaleout.py [--seconds 8]

Last line of output: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.orders import make_bodies
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


def launch(workdir: Path, env: dict[str, str], name: str, port: int) -> subprocess.Popen[bytes]:
    return serve(workdir, port, name=name, INSTANCE_ID=name, **env)


def load(ports: list[int], spec: Path, connections: int, seconds: float) -> dict[str, Any]:
    per = max(1, connections // len(ports))
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "loadgen.py"),
                "--port",
                str(port),
                "--requests-file",
                str(spec),
                "--connections",
                str(per),
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    results = [
        json.loads(run.communicate(timeout=seconds + 120)[0].strip().splitlines()[-1])
        for run in runs
    ]
    return {
        "requests_per_s": sum(r["requests_per_s"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


def topology(name: str, workdir: Path, database_url: str, prefix: str) -> tuple[list, list[int]]:
    base = {"DATABASE_URL": database_url, "REDIS_PREFIX": prefix}
    processes: list[subprocess.Popen[bytes]] = []
    entry: list[int] = []
    if name == "all":
        port = free_port()
        processes.append(launch(workdir, base, "all", port))
        entry.append(port)
        return processes, entry
    shards = 1 if name == "2g1m" else 2
    base["MATCHER_SHARDS"] = str(shards)
    for shard in range(shards):
        port = free_port()
        env = base | {"ROLE": "matcher", "SHARD_ID": str(shard)}
        processes.append(launch(workdir, env, f"matcher-{shard}", port))
        wait_ready(f"http://127.0.0.1:{port}/health/ready", processes[-1])
    for gateway in range(2):
        port = free_port()
        processes.append(launch(workdir, base | {"ROLE": "gateway"}, f"gw-{gateway}", port))
        entry.append(port)
    return processes, entry


def run_topology(name: str, args: argparse.Namespace, specs: dict[str, Path]) -> dict[str, Any]:
    database = f"ticker_bench_scaleout_{name}"
    database_url = fresh_database(database)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-scaleout-{name}-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes, entry = topology(
            name,
            workdir,
            database_url,
            f"bench:{name}:{time.time_ns()}:",
        )
        for port in entry:
            wait_ready(f"http://127.0.0.1:{port}/health/ready", processes[-1])
        throughput = load(entry, specs["throughput"], args.connections, args.seconds)
        probe = load(entry[:1], specs["probe"], 1, max(3.0, args.seconds / 2))
    finally:
        for process in reversed(processes):
            stop(process)
        drop_databases(database)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "orders_per_s": round(throughput["requests_per_s"] * 100),
        "p50_ms": round(throughput["p50_ms"], 2),
        "p99_ms": round(throughput["p99_ms"], 2),
        "errors": throughput["errors"],
        "probe_p50_ms": round(probe["p50_ms"], 2),
        "probe_p99_ms": round(probe["p99_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    specdir = Path(tempfile.mkdtemp(prefix="bench-scaleout-spec-"))
    headers = [{"X-API-Key": KEYS["default"]}, {"X-API-Key": KEYS["desk-b"]}]
    specs = {}
    for label, size in (("throughput", 100), ("probe", 10)):
        specs[label] = specdir / f"{label}.json"
        specs[label].write_text(
            json.dumps(
                {
                    "path": "/advanced/batch-orders",
                    "bodies": make_bodies(300, size),
                    "headers": headers,
                }
            )
        )
    results = {name: run_topology(name, args, specs) for name in ("all", "2g1m", "2g2m")}
    shutil.rmtree(specdir, ignore_errors=True)
    base = results["all"]
    figures: dict[str, Any] = {
        "bench": "scaleout",
        "seconds": args.seconds,
        **{f"{name}_{key}": value for name, r in results.items() for key, value in r.items()},
    }
    for name in ("2g1m", "2g2m"):
        figures[f"{name}_hop_p50_ms"] = round(
            results[name]["probe_p50_ms"] - base["probe_p50_ms"], 2
        )
        figures[f"{name}_hop_p99_ms"] = round(
            results[name]["probe_p99_ms"] - base["probe_p99_ms"], 2
        )
    for name, r in results.items():
        print(
            f"{name}: {r['orders_per_s']} orders/s p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms; "
            f"probe p50 {r['probe_p50_ms']} ms p99 {r['probe_p99_ms']} ms"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
