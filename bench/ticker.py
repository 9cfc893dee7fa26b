"""Ticker benchmark: WebSocket fan-out throughput, order-ack-to-tick latency, connections held.

The server (this process) runs the whole app under uvicorn on a loopback port (SQLite in a
temporary folder, Redis at ``REDIS_URL`` or the local one, under a private prefix) plus a
trade generator calling ``OrderService.place_batch`` directly: per round, one account rests a
sell on every instrument and another crosses it, so every instrument trades and its top
changes (two journal commits, each acknowledged only once durable). The clients run in a
separate process:

1. ``--clients`` connections, each subscribed to every instrument in ``quote`` mode, for
   ``--seconds``: ticks delivered per second (client-side count, ticks in batched frames
   counted one by one) and the latency from a batch's acknowledgement in the server to the
   arrival at the client of the tick carrying that batch's timestamp (``ts_ns``), sampled on
   1 in ``--sample`` frames (both processes read the same wall clock).
2. Up to ``--connections`` connections (``ltp`` mode, one instrument each, opened in waves
   while trades flow): how many one instance holds, and the tick rate they still receive.

    .venv/bin/python bench/ticker.py                 # 1,000 clients, then up to 10,000
    .venv/bin/python bench/ticker.py --quick         # 200 clients, up to 2,000

The last output line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from app.wsprotocol import WS_IMPLEMENTATION

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "bench-ticker-key-0123456789"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- clients (separate process) -------------------------------------------------------------


async def _client(
    url: str, subscribe: dict[str, Any], stats: dict[str, Any], sample: int, stop: asyncio.Event
) -> None:
    import websockets

    async with websockets.connect(
        url,
        additional_headers={"X-API-Key": KEY},
        max_size=None,
        open_timeout=60,
        compression=None,  # per-message deflate costs both sides CPU; pointless on loopback
    ) as ws:
        await ws.send(orjson.dumps(subscribe).decode())
        stats["connected"] += 1
        frames = 0
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            count = message.count('"seq"')
            if not count:
                continue
            stats["ticks"] += count
            frames += 1
            if stats["measuring"] and frames % sample == 0:
                now = time.time_ns()
                body = orjson.loads(message)
                for tick in body.get("ticks", [body]):
                    stats["samples"].append((tick["ts_ns"], now))


class _RawClient(asyncio.Protocol):
    """A lean client: the handshake and the subscribe request go through websockets'
    sans-I/O protocol; after that the stream is only scanned (each tick has one ``"seq"``
    key; one ``"ts_ns"`` per sampled chunk is read), so the client process stays far
    cheaper than the server and the figures are the server's."""

    def __init__(self, url: str, subscribe: dict[str, Any], stats: dict[str, Any], sample: int):
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.subscribe = orjson.dumps(subscribe)
        self.stats = stats
        self.sample = sample
        self.chunks = 0
        self.open = False
        self.lost = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        request = self.protocol.connect()
        request.headers["X-API-Key"] = KEY
        self.protocol.send_request(request)
        transport.write(b"".join(self.protocol.data_to_send()))

    def data_received(self, data: bytes) -> None:
        if not self.open:
            from websockets.protocol import State

            self.protocol.receive_data(data)
            self.protocol.events_received()
            if self.protocol.state is State.OPEN:
                self.open = True
                self.stats["connected"] += 1
                self.protocol.send_text(self.subscribe)
                self.transport.write(b"".join(self.protocol.data_to_send()))
            return
        self.stats["ticks"] += data.count(b'"seq"')
        self.chunks += 1
        if self.stats["measuring"] and self.chunks % self.sample == 0:
            at = data.rfind(b'"ts_ns":')
            if at >= 0:
                digits = data[at + 8 : at + 28].split(b",")[0]
                if digits.isdigit():
                    self.stats["samples"].append((int(digits), time.time_ns()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def _raw_client(
    port: int, subscribe: dict[str, Any], stats: dict[str, Any], sample: int, stop: asyncio.Event
) -> None:
    loop = asyncio.get_running_loop()
    url = f"ws://127.0.0.1:{port}/ws/ticker"
    transport, client = await loop.create_connection(
        lambda: _RawClient(url, subscribe, stats, sample), "127.0.0.1", port
    )
    try:
        await client.lost
    finally:
        transport.abort()


async def _run_clients(
    port: int,
    conn: Any,
    clients: int,
    symbols: list[str],
    mode: str,
    per_client: int,
    sample: int,
    kind: str,
) -> None:
    stats: dict[str, Any] = {"connected": 0, "ticks": 0, "samples": [], "measuring": False}
    stop = asyncio.Event()
    url = f"ws://127.0.0.1:{port}/ws/ticker"
    tasks = []
    wave = 250
    for n in range(clients):
        chosen = symbols if per_client >= len(symbols) else [symbols[n % len(symbols)]]
        body = {"action": "subscribe", "symbols": chosen, "mode": mode}
        if kind == "raw":
            client = _raw_client(port, body, stats, sample, stop)
        else:
            client = _client(url, body, stats, sample, stop)
        tasks.append(asyncio.create_task(client))
        if n % wave == wave - 1:
            await asyncio.sleep(0.2)  # let the server accept this wave
    deadline = time.monotonic() + 120
    while stats["connected"] < clients and time.monotonic() < deadline:
        if all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.1)
    failed = sum(1 for t in tasks if t.done() and t.exception() is not None)
    conn.send({"connected": stats["connected"], "failed": failed})
    # "measure": the server is trading and warmed up (wait without blocking the loop)
    command = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    assert command == "measure"
    stats["measuring"] = True
    base, started = stats["ticks"], time.perf_counter()
    per_second = []
    while not conn.poll():
        await asyncio.sleep(1.0)
        per_second.append(stats["ticks"] - base - sum(per_second))
    conn.recv()
    elapsed = time.perf_counter() - started
    alive = sum(1 for t in tasks if not t.done())
    stop.set()
    conn.send(
        {
            "ticks": stats["ticks"] - base,
            "seconds": elapsed,
            "per_second": per_second,
            "samples": stats["samples"],
            "alive": alive,
        }
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def client_process(port: int, conn: Any, *args: Any) -> None:
    raise_fd_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_run_clients(port, conn, *args))


# -- server (this process) ------------------------------------------------------------------


class Generator:
    def __init__(self, orders: Any, instruments: list[Any], concurrency: int) -> None:
        self.orders = orders
        self.instruments = instruments
        self.concurrency = concurrency
        self.acks: dict[int, int] = {}  # batch timestamp (ns) -> acknowledged at (ns)
        self.trades = 0
        self.batches = 0
        self.running = True
        self._stamps: dict[Any, int] = {}
        # Reading the order service's clock through our wrapper is bench-only plumbing.
        self._clock = orders._clock
        orders._clock = self._stamp

    def _batch(self, side: str) -> bytes:
        orders = [
            {
                "symbol": i.symbol,
                "side": side,
                "type": "limit",
                "quantity": i.lots_to_quantity(1),
                "price": str(i.last_price),
            }
            for i in self.instruments
        ]
        return orjson.dumps({"orders": orders})

    def _stamp(self) -> int:
        """The order service's clock, noting the first reading of each batch: the
        timestamp its events, and so its ticks (``ts_ns``), carry."""
        value = self._clock()
        self._stamps.setdefault(asyncio.current_task(), value)
        return value

    async def _worker(self, n: int) -> None:
        sell, buy = self._batch("sell"), self._batch("buy")
        maker, taker = f"maker-{n}", f"taker-{n}"
        me = asyncio.current_task()
        while self.running:
            for account, body in ((maker, sell), (taker, buy)):
                self._stamps.pop(me, None)
                result = await self.orders.place_batch(account, body)
                acked = time.time_ns()
                stamp = self._stamps.pop(me, None)
                if stamp is not None and result["accepted"]:
                    self.acks[stamp] = acked
                self.batches += 1
                # A client's next request reaches the server through the loop's I/O, after
                # what the commit woke (the flush of its ticks among them), not inside the
                # acknowledged request's own callback: go to the back of the loop's queue.
                await asyncio.sleep(0)
            self.trades += len(self.instruments)

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(n) for n in range(self.concurrency)))


async def start_server(tmp: Path, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        environment="development",
        db={"url": args.database_url, "data_dir": tmp / "data"},
        redis={"url": REDIS_URL, "prefix": f"bench:{uuid.uuid4().hex[:8]}:"},
        auth={"api_key": KEY, "tokens_dir": tmp / "tokens", "rate_limit": 1e9},
        log={"format": "text", "level": "WARNING", "access_log": False},
        orders={"max_open_orders": 10_000_000},
        registry={"seed_csv": _instruments_csv(tmp, args.instruments)},
        ticker={
            "max_connections_per_key": 100_000,
            "slow_client_seconds": 60,
            "idle_timeout_seconds": 3600,
            "flush_interval_ms": args.flush_ms,
        },
    )
    (tmp / "tokens").mkdir()
    app = create_app(settings)
    port = args.port or _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            ws_ping_interval=None,
            ws=args.ws,
            backlog=4096,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, no event)
        await asyncio.sleep(0.05)
    return server, task, port


def _instruments_csv(tmp: Path, count: int) -> Path:
    """``count`` synthetic equities (BENCH:S0001 ...), seeded into the empty database."""
    path = tmp / "instruments.csv"
    lines = [
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
        "tick_size,lot_size,instrument_type,segment,exchange"
    ]
    for n in range(1, count + 1):
        lines.append(f"{9_000_000 + n},{n},S{n:04d},BENCH {n},100,,0,0.05,1,EQ,BENCH,BENCH")
    path.write_text("\n".join(lines) + "\n")
    return path


def _tradable(instrument: Any) -> bool:
    try:
        instrument.price_to_ticks(str(instrument.last_price))
    except Exception:
        return False
    return instrument.last_price > 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def phase(
    port: int,
    state: dict[str, Any],
    *,
    clients: int,
    instruments: list[Any],
    mode: str,
    per_client: int,
    seconds: float,
    warmup: float,
    sample: int,
    concurrency: int,
    kind: str,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    symbols = [i.symbol for i in instruments]
    process = ctx.Process(
        target=client_process,
        args=(port, child, clients, symbols, mode, per_client, sample, kind),
        daemon=True,
    )
    process.start()
    loop = asyncio.get_running_loop()
    hello = await loop.run_in_executor(None, parent.recv)
    generator = Generator(state["orders"], instruments, concurrency)
    gen_task = asyncio.create_task(generator.run())
    await asyncio.sleep(warmup)
    hub = state["ticker"].hub
    sent_before, frames_before = hub.ticks_sent, hub.frames_sent
    trades_before = generator.trades
    parent.send("measure")
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    parent.send("stop")
    elapsed = time.perf_counter() - started
    server_ticks = hub.ticks_sent - sent_before
    frames = hub.frames_sent - frames_before
    trades = generator.trades - trades_before
    report = await loop.run_in_executor(None, parent.recv)
    generator.running = False
    await gen_task
    state["orders"]._clock = generator._clock
    process.join(30)
    latencies = [
        (recv - generator.acks[ts]) / 1e6 for ts, recv in report["samples"] if ts in generator.acks
    ]
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[int(p * (len(latencies) - 1))], 2) if latencies else None

    return {
        "clients": clients,
        "connected": hello["connected"],
        "alive_at_end": report["alive"],
        "instruments": len(instruments),
        "mode": mode,
        "trades_per_s": round(trades / elapsed),
        "ticks_delivered_per_s": round(report["ticks"] / report["seconds"]),
        "server_ticks_sent_per_s": round(server_ticks / elapsed),
        "frames_per_s": round(frames / elapsed),
        "latency_ms_p50": pct(0.50),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": pct(1.0),
        "latency_samples": len(latencies),
        "ticks_per_s_by_second": report["per_second"],
    }


SUMMARY = (
    "clients",
    "connected",
    "alive_at_end",
    "instruments",
    "trades_per_s",
    "ticks_delivered_per_s",
    "frames_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        server, task, port = await start_server(Path(tmp_name), args)
        try:
            state = server.lifespan.state
            tradable = [i for i in state["registry"].snapshot if _tradable(i)]
            print(f"server on port {port}; fd limit {fd_limit}", flush=True)
            plan = [
                # name, clients, instruments per client, mode, seconds
                ("fanout_wide", args.clients, args.instruments, "quote", args.seconds),
                ("fanout_narrow", args.clients, args.narrow, "quote", args.seconds),
                ("latency_100_clients", 100, args.narrow, "quote", args.seconds / 2),
            ]
            for name, clients, count, mode, seconds in plan:
                result = await phase(
                    port,
                    state,
                    clients=clients,
                    instruments=tradable[:count],
                    mode=mode,
                    per_client=count,
                    seconds=seconds,
                    warmup=args.warmup,
                    sample=args.sample,
                    concurrency=args.concurrency,
                    kind=args.client,
                )
                print(name, json.dumps(result), flush=True)
                results[name] = {k: result[k] for k in SUMMARY}
            held = await phase(
                port,
                state,
                clients=min(args.connections, max(100, fd_limit - 200)),
                instruments=tradable[: args.narrow],
                mode="ltp",
                per_client=1,
                seconds=args.seconds / 2,
                warmup=2,
                sample=args.sample,
                concurrency=1,
                kind=args.client,
            )
            print("connections", json.dumps(held), flush=True)
            results["connections"] = {k: held[k] for k in SUMMARY}
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 60)
    return {"benchmark": "ticker", **results, "fd_limit": fd_limit, "client": args.client}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--instruments", type=int, default=200, help="per client, wide phase")
    parser.add_argument("--narrow", type=int, default=40, help="per client, narrow phases")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--sample", type=int, default=50, help="sample 1 in N frames")
    parser.add_argument("--concurrency", type=int, default=4, help="trade generator workers")
    parser.add_argument("--flush-ms", type=float, default=5.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--client", choices=["raw", "websockets"], default="raw", help="client implementation"
    )
    parser.add_argument(
        "--ws",
        choices=[WS_IMPLEMENTATION, "websockets-sansio", "websockets", "wsproto"],
        default=WS_IMPLEMENTATION,
        help=f"uvicorn's WebSocket implementation (the service runs {WS_IMPLEMENTATION})",
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.connections, args.seconds = 200, 2000, 6
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(main_async(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
