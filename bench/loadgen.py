"""A small HTTP/1.1 keep-alive load generator (run in its own process by the benchmarks).

It sends pre-serialised POST requests over N persistent connections for a fixed time and
prints one JSON line: requests, errors, latency percentiles. With ``--rate`` it runs open loop
instead: requests fall due at a fixed offered rate, whatever the server's pace. Raw asyncio
streams keep the client's own CPU cost low, which matters on a 2-core machine shared with the
server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time


def build_requests(path: str, bodies: list[bytes], headers: list[dict[str, str]]) -> list[bytes]:
    out = []
    for i, body in enumerate(bodies):
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers[i % len(headers)].items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        )
        out.append(head.encode() + body)
    return out


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


def record(status: int, seconds: float, latencies: list[float], counts: dict[str, int]) -> None:
    if 200 <= status < 300:
        counts["ok"] += 1
        latencies.append(seconds)
    else:
        counts["errors"] += 1


def percentile(latencies: list[float], p: float) -> float:
    """Of sorted latencies, in milliseconds."""
    if not latencies:
        return 0.0
    return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000


async def worker(
    port: int,
    requests: list[bytes],
    offset: int,
    deadline: float,
    warmup_until: float,
    latencies: list[float],
    counts: dict[str, int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            finished = time.perf_counter()
            counts["responses"] += 1
            if finished < warmup_until:
                continue
            record(status, finished - started, latencies, counts)
    finally:
        writer.close()


async def run(
    port: int, requests: list[bytes], connections: int, seconds: float, warmup: float
) -> dict:
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "responses": 0}
    start = time.perf_counter()
    warmup_until = start + warmup
    deadline = warmup_until + seconds
    await asyncio.gather(
        *[
            worker(port, requests, n * 7, deadline, warmup_until, latencies, counts)
            for n in range(connections)
        ]
    )
    latencies.sort()

    return {
        "requests": counts["ok"],
        "errors": counts["errors"],
        "responses": counts["responses"],  # warm-up included: what the server answered
        "seconds": seconds,
        "requests_per_s": counts["ok"] / seconds,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
    }


async def run_open(
    port: int, requests: list[bytes], rate: float, seconds: float, warmup: float, pool_max: int
) -> dict:
    """Open loop: request i is due at ``start + i / rate`` whatever happened before it, on an
    idle connection (a new one while fewer than ``pool_max`` are open). Latency runs from the
    due time, not the send time, so a stalled server is charged for the requests that queued
    behind it (no coordinated omission)."""
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "late": 0}
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    start = time.perf_counter()
    warmup_until = start + warmup
    deadline = warmup_until + seconds
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        else:
            opened += 1
            conn = await asyncio.open_connection("127.0.0.1", port)
        conn[1].write(request)
        status = await read_response(conn[0])
        finished = time.perf_counter()
        idle.append(conn)
        if due < warmup_until:
            return
        record(status, finished - due, latencies, counts)

    i = 0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        while start + i / rate <= now:
            if len(in_flight) >= pool_max:
                counts["late"] += 1  # the pool is exhausted: the server fell behind the rate
                break
            task = asyncio.create_task(one(requests[i % len(requests)], start + i / rate))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            i += 1
        await asyncio.sleep(0.0002)
    if in_flight:
        await asyncio.wait(in_flight, timeout=10)
    for _, writer in idle:
        writer.close()
    latencies.sort()

    return {
        "offered_per_s": rate,
        "requests": counts["ok"],
        "errors": counts["errors"],
        "pool_exhausted": counts["late"],
        "connections": opened,
        "seconds": seconds,
        "requests_per_s": counts["ok"] / seconds,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests-file", required=True, help="JSON: {path, bodies, headers}")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, help="open loop at this many requests/s")
    args = parser.parse_args()
    with open(args.requests_file) as fh:
        spec = json.load(fh)
    requests = build_requests(spec["path"], [b.encode() for b in spec["bodies"]], spec["headers"])
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    if args.rate:
        result = asyncio.run(
            run_open(args.port, requests, args.rate, args.seconds, args.warmup, args.connections)
        )
    else:
        result = asyncio.run(run(args.port, requests, args.connections, args.seconds, args.warmup))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
