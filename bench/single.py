"""Single orders (one per request), ours beside the closest Python peer, in one sitting.

The peer is PyPI's ``matching-engine`` 0.1.1 gateway (FastAPI, one book, a WAL fsynced before
the reply). It needs Python >= 3.12, so it runs from its own venv (``--peer-venv``, made on
first use with ``PEER_PYTHON``, default pyenv's 3.12.1); without that Python the peer is
skipped with one line. Both serve under uvicorn with one worker, httptools and uvloop; both
get the same order stream (limit orders around one mid price, both sides, 1-50 units) from
bench/loadgen.py, closed loop at each ``--connections`` count, then open loop at each
``--rates`` offered rate (orders/s) for p50/p99/p99.9 at a planned load.

    .venv/bin/python bench/single.py [--seconds 10] [--connections 1,16] [--rates 1000,2000,5000]

Last line of output: one JSON object with both sides and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.store.commits import APPLICATION_NAME
from bench.support import (
    KEYS,
    PG_ADMIN,
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

PEER_SPEC = "matching-engine[gateway]==0.1.1"
PEER_PYTHON = os.environ.get("PEER_PYTHON", "/root/.pyenv/versions/3.12.1/bin/python3.12")
MID_TICKS = 37508  # NSE:INFY's sample mid, tick 0.05; the peer's BTC-USDT has tick 0.01


def price_stream(count: int, seed: int = 7) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    return [
        (rng.choice(("buy", "sell")), MID_TICKS + rng.randint(-20, 20), rng.randint(1, 50))
        for _ in range(count)
    ]


def ours_spec(stream: list[tuple[str, int, int]]) -> dict:
    bodies = [
        json.dumps(
            {
                "symbol": "NSE:INFY",
                "side": side,
                "type": "limit",
                "quantity": str(qty),
                "price": f"{ticks * 5 // 100}.{ticks * 5 % 100:02d}",
                "time_in_force": "GTC",
            }
        )
        for side, ticks, qty in stream
    ]
    # Two accounts alternate so that crossing orders trade instead of meeting STP.
    headers = [{"X-API-Key": KEYS["default"]}, {"X-API-Key": KEYS["desk-b"]}]
    return {"path": "/orders", "bodies": bodies, "headers": headers}


def peer_spec(stream: list[tuple[str, int, int]]) -> dict:
    bodies = [
        json.dumps(
            {
                "account": 1 + n % 2,
                "side": side,
                "type": "limit",
                "quantity": str(qty),
                "price": f"{ticks * 5 // 100}.{ticks * 5 % 100:02d}",
                "time_in_force": "gtc",
            }
        )
        for n, (side, ticks, qty) in enumerate(stream)
    ]
    return {"path": "/markets/BTC-USDT/orders", "bodies": bodies, "headers": [{}]}


def peer_python(venv: Path) -> Path | None:
    python = venv / "bin" / "python"
    if python.exists():
        return python
    if not Path(PEER_PYTHON).exists():
        return None
    subprocess.run([PEER_PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", PEER_SPEC, "uvloop", "httptools"],
        check=True,
    )
    return python


def serve_peer(python: Path, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (workdir / "peer.log").open("wb")
    data = workdir / "peer-data"
    data.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            str(python), "-m", "uvicorn", "matching_engine.gateway:create_app", "--factory",
            "--port", str(port), "--workers", "1", "--http", "httptools", "--loop", "uvloop",
            "--no-access-log", "--log-level", "warning",
        ],
        env={"PATH": os.environ["PATH"], "ME_DATA_DIR": str(data)},
        cwd=workdir,
        stdout=log,
        stderr=log,
    )  # fmt: skip


def load(port: int, spec_file: Path, seconds: float, *, connections: int, rate: int = 0) -> dict:
    command = [
        sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port", str(port),
        "--requests-file", str(spec_file), "--connections", str(connections),
        "--seconds", str(seconds),
    ]  # fmt: skip
    if rate:
        command += ["--rate", str(rate)]
    before = children_cpu()
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 120
    ).stdout
    result: dict = json.loads(out.strip().splitlines()[-1])
    result["loadgen_cpu_us_per_order"] = round(
        1e6 * (children_cpu() - before) / max(result.get("responses", result["requests"]), 1)
    )
    return result


def children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def journal_backend(database: str) -> int | None:
    """The pid of the PostgreSQL session our journal writes through (``ticker-journal``)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, APPLICATION_NAME),
        ).fetchone()
    return None if row is None else int(row[0])


def measure(
    port: int,
    spec_file: Path,
    args: argparse.Namespace,
    pid: int,
    *,
    profile: bool = False,
    database: str | None = None,
) -> dict:
    """Closed loop at each connection count, then open loop at each rate. ``pid``: the
    server's process, whose CPU time (all threads, from /proc) each closed loop divides by
    the responses it got, warm-up included; ``profile``: py-spy records it during the closed
    loop with the most connections; ``database``: ours, whose journal session's CPU time is
    divided the same way (the other two users of the machine's cores: the database and the
    load generator)."""
    closed = {}
    for c in args.connections:
        spy = None
        if profile and c == max(args.connections):
            spy = record_profile(pid, args.profile, args.seconds)
        backend = None if database is None else journal_backend(database)
        cpu, db_cpu = cpu_seconds(pid), 0.0 if backend is None else cpu_seconds(backend)
        closed[str(c)] = result = with_server_figures(
            port, lambda c=c: load(port, spec_file, args.seconds, connections=c)
        )
        result["server_cpu_us_per_order"] = round(
            1e6 * (cpu_seconds(pid) - cpu) / max(result["responses"], 1)
        )
        if backend is not None and backend == journal_backend(database or ""):
            result["journal_session_cpu_us_per_order"] = round(
                1e6 * (cpu_seconds(backend) - db_cpu) / max(result["responses"], 1)
            )
        if spy is not None:
            spy.wait(timeout=args.seconds + 60)
            closed[str(c)]["profile"] = str(args.profile)
    opened = {
        str(r): with_server_figures(
            port, lambda r=r: load(port, spec_file, args.seconds, connections=256, rate=r)
        )
        for r in args.rates
    }
    figures: dict[str, Any] = {"closed": closed, "open": opened}
    fit = per_group_fit(closed)
    if fit is not None:
        figures["cpu_fit"] = fit
    return figures


# Our server's own timings (sum and count of each summary/histogram), read with the group sizes.
TIMINGS = {
    "request": "http_request_duration_seconds",  # the route, from the request to its answer
    "order": "ticker_order_ack_seconds",  # the order service, from the checks to the commit
    "commit": "ticker_journal_commit_seconds",  # the group's commit, rows to result
}


def journal_figures(port: int) -> dict[str, Any] | None:
    """Our journal's commits so far by group size (``ticker_journal_group_size``'s cumulative
    buckets by ``le``) and the sum and count of each of ``TIMINGS``, from /metrics; None from
    a server without them (the peer, the ceiling)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    buckets: dict[str, int] = {}
    pauses: dict[str, dict[str, float]] = {}  # garbage collector: generation -> le -> count
    sums = {name: [0.0, 0.0] for name in TIMINGS}
    series = {f"{metric}_{part}": (name, i) for name, metric in TIMINGS.items()
              for i, part in enumerate(("sum", "count"))}  # fmt: skip
    for line in text.splitlines():
        if line.startswith("ticker_journal_group_size_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = int(float(line.rsplit(" ", 1)[1]))
            continue
        if line.startswith("ticker_gc_pause_seconds_bucket{"):
            generation = line.split('generation="', 1)[1].split('"', 1)[0]
            le = line.split('le="', 1)[1].split('"', 1)[0]
            pauses.setdefault(generation, {})[le] = float(line.rsplit(" ", 1)[1])
            continue
        if line.startswith("ticker_gc_pause_seconds_sum{"):
            generation = line.split('generation="', 1)[1].split('"', 1)[0]
            pauses.setdefault(generation, {})["sum"] = float(line.rsplit(" ", 1)[1])
            continue
        found = series.get(line.split("{", 1)[0].split(" ", 1)[0])
        if found is not None:
            sums[found[0]][found[1]] += float(line.rsplit(" ", 1)[1])
    return {"groups": buckets, "timings": sums, "gc": pauses} if buckets else None


def with_server_figures(port: int, run: Callable[[], dict]) -> dict:
    """``run``'s result, with what it added to our server's figures (``server_figures``)
    where the server has them."""
    before = journal_figures(port)
    result = run()
    after = journal_figures(port)
    if before is not None and after is not None:
        result |= server_figures(before, after)
    return result


def server_figures(before: dict[str, Any], after: dict[str, Any]) -> dict:
    """What one run (its warm-up included) added: its commits by group size, the mean group
    (orders placed per commit), and the server's mean time per request, per order (the order
    service's call, commit included) and per commit, in milliseconds."""
    groups = {le: after["groups"][le] - before["groups"].get(le, 0) for le in after["groups"]}
    means, counts = {}, {}
    for name, (total, count) in after["timings"].items():
        was_total, was_count = before["timings"][name]
        counts[name] = n = count - was_count
        means[name] = round(1e3 * (total - was_total) / n, 3) if n else None
    commits = groups.get("+Inf", 0)
    return {
        "journal_groups": groups,
        "mean_group": round(counts["order"] / commits, 2) if commits else None,
        "server_ms": means,
        "gc_pauses": gc_pauses(before.get("gc", {}), after.get("gc", {})),
    }


def gc_pauses(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict:
    """The garbage collector's passes in the run, by generation: how many, their pauses in
    all (ms) and the bucket bound the longest stayed under (ms; None past the last)."""
    found = {}
    for generation, now in after.items():
        was = before.get(generation, {})
        passes = now.get("+Inf", 0) - was.get("+Inf", 0)
        if not passes:
            continue
        longest = None
        for le, count in now.items():
            if le not in ("sum", "+Inf") and count - was.get(le, 0) == passes:
                longest = float(le) * 1e3
                break
        found[generation] = {
            "passes": int(passes),
            "ms": round((now.get("sum", 0) - was.get("sum", 0)) * 1e3, 1),
            "longest_under_ms": longest,
        }
    return found


def per_group_fit(closed: dict[str, dict]) -> dict[str, float] | None:
    """Server CPU per order as ``a + b / mean group`` (least squares over the closed loops):
    ``a`` what each order costs, ``b`` what each group commit costs on top, in µs."""
    points = [(1 / r["mean_group"], r["server_cpu_us_per_order"])
              for r in closed.values() if r.get("mean_group")]  # fmt: skip
    if len({round(x, 3) for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return {"per_order_us": round(my - b * mx), "per_group_us": round(b)}


def per_bucket(cumulative: dict[str, int]) -> str:
    """``{"1.0": 3, "2.0": 3, "4.0": 10}`` -> ``"1: 3, 3-4: 7"`` (the empty ranges left out)."""
    parts, below, low = [], 0, 1
    for le, count in cumulative.items():
        high = "" if le == "+Inf" else str(int(float(le)))
        if count > below:
            span = f"{low}+" if not high else high if str(low) == high else f"{low}-{high}"
            parts.append(f"{span}: {count - below}")
        below, low = count, (int(float(le)) + 1 if le != "+Inf" else low)
    return ", ".join(parts)


def record_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """``py-spy record`` of ``pid`` for ``seconds`` into ``out`` (raw stacks; read them with
    bench/profile.py). py-spy comes from PyPI (``pip install py-spy``) and needs ptrace."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
         "--duration", str(int(seconds)), "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def summary(name: str, figures: dict) -> None:
    for c, r in figures["closed"].items():
        print(
            f"{name:5} {c:>3} conn: {r['requests_per_s']:8.0f} orders/s  p50 {r['p50_ms']:.2f} ms"
            f"  p99 {r['p99_ms']:.2f} ms  server CPU {r['server_cpu_us_per_order']} µs/order"
            f"  errors {r['errors']}"
        )
        session = r.get("journal_session_cpu_us_per_order")
        print(
            f"{'':15}CPU per order elsewhere: load generator {r['loadgen_cpu_us_per_order']} µs"
            + ("" if session is None else f", the journal's PostgreSQL session {session} µs")
        )
        server_lines(r)
    for rate, r in figures["open"].items():
        print(
            f"{name:5} {rate:>5}/s offered: {r['requests_per_s']:8.0f}/s  p50 {r['p50_ms']:.2f}"
            f"  p99 {r['p99_ms']:.2f}  p99.9 {r['p999_ms']:.2f} ms  errors {r['errors']}"
        )
        server_lines(r)
    if "cpu_fit" in figures:
        fit = figures["cpu_fit"]
        print(
            f"{name:5} server CPU per order ≈ {fit['per_order_us']} µs"
            f" + {fit['per_group_us']} µs / mean group (least squares over the closed loops)"
        )


def server_lines(r: dict) -> None:
    """Our journal's groups and the server's mean times, where the run has them."""
    if "journal_groups" not in r:
        return
    print(f"{'':15}journal commits by group size: {per_bucket(r['journal_groups'])}")
    ms = r["server_ms"]
    if None not in ms.values():
        print(
            f"{'':15}server, mean: request {ms['request']:.2f} ms, of which the order"
            f" {ms['order']:.2f} ms, of which the commit {ms['commit']:.2f} ms;"
            f" {r['mean_group']} orders per commit"
        )
    pauses = r.get("gc_pauses")
    if pauses:
        print(
            f"{'':15}garbage collector: "
            + ", ".join(
                f"generation {g}: {p['passes']} passes, {p['ms']} ms in all, the longest"
                + (f" < {p['longest_under_ms']:g} ms" if p["longest_under_ms"] else " > 2.5 s")
                for g, p in sorted(pauses.items())
            )
        )


def ratios(ours: dict, other: dict) -> dict[str, float]:
    """Ours / other, orders/s, at each closed-loop connection count."""
    return {
        c: round(r["requests_per_s"] / max(other["closed"][c]["requests_per_s"], 1e-9), 2)
        for c, r in ours["closed"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--connections", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16]
    )
    parser.add_argument(
        "--rates", type=lambda v: [int(x) for x in v.split(",") if x], default=[1000, 2000, 5000]
    )
    parser.add_argument("--peer-venv", type=Path, default=Path(tempfile.gettempdir()) / "peer312")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also measure bench/echo_app.py's bare ASGI app under the same uvicorn settings:"
        " what uvicorn alone does for the same requests on this machine",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy ours during the run with the most connections (raw stacks to this file)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-single-"))
    stream = price_stream(20_000)
    ours_file, peer_file = workdir / "ours.json", workdir / "peer.json"
    ours_file.write_text(json.dumps(ours_spec(stream)))
    peer_file.write_text(json.dumps(peer_spec(stream)))
    database = "ticker_bench_single"
    result: dict = {"bench": "single", "seconds": args.seconds}
    try:
        port = free_port()
        service = serve(workdir, port, DATABASE_URL=fresh_database(database))
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/ready", service)
            result["ours"] = measure(
                port,
                ours_file,
                args,
                service.pid,
                profile=args.profile is not None,
                database=database,
            )
        finally:
            stop(service)
        summary("ours", result["ours"])
        if args.ceiling:
            port = free_port()
            echo = serve_app(workdir, port, "bench.echo_app:single", name="ceiling")
            try:
                wait_ready(f"http://127.0.0.1:{port}/", echo)
                result["ceiling"] = measure(port, ours_file, args, echo.pid)
            finally:
                stop(echo)
            summary("ceiling", result["ceiling"])
        python = None if args.no_peer else peer_python(args.peer_venv)
        if python is None:
            why = "--no-peer" if args.no_peer else f"no Python 3.12 at {PEER_PYTHON}"
            print(f"peer skipped: {why}")
        else:
            port = free_port()
            peer = serve_peer(python, workdir, port)
            try:
                wait_ready(f"http://127.0.0.1:{port}/healthz", peer)
                result["peer"] = measure(port, peer_file, args, peer.pid)
            finally:
                stop(peer)
            summary("peer", result["peer"])
            result["ratio_orders_per_s"] = ratios(result["ours"], result["peer"])
            print("ours / peer, orders/s:", result["ratio_orders_per_s"])
        if "ceiling" in result:
            result["ratio_to_ceiling"] = ratios(result["ours"], result["ceiling"])
            print("ours / uvicorn's ceiling, orders/s:", result["ratio_to_ceiling"])
    finally:
        drop_databases(database)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
