"""The Kite Connect dialect beside our own API, in one run against one server.

Orders: N client threads, each with its own HTTP session, place limit orders for ``--seconds``
through the official ``KiteConnect.place_order`` (form-encoded ``POST /orders/regular``), then
the same number of threads place the same orders with ``requests`` against our ``POST /orders``
(JSON), so both sides pay the same client library. Ticks: ``--ws-clients`` KiteTicker-protocol
clients (binary packets, full mode) and as many ``/ws/ticker`` JSON clients (full mode) subscribe
to the same instruments at once while a load of crossing orders makes them tick; ticks received
per second per protocol.

    .venv/bin/python bench/kite.py [--threads 1,8] [--seconds 8] [--ws-clients 20]

Last line of output: one JSON object with both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import websockets
from kiteconnect import KiteConnect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import percentile
from bench.support import KEYS, drop_databases, free_port, fresh_database, serve, stop, wait_ready

SYMBOLS = ["INFY", "RELIANCE", "TCS", "SBIN", "ITC"]
TOKENS = [408065, 738561, 2953217, 779521, 424961]
MIDS = {"INFY": 1875.0, "RELIANCE": 1302.5, "TCS": 4102.0, "SBIN": 812.5, "ITC": 474.5}


def _price(rng: random.Random, symbol: str) -> float:
    return round(MIDS[symbol] + rng.randint(-20, 20) * 0.05, 2)


def _orders_loop(place: Any, seconds: float, seed: int, out: list[float]) -> None:
    rng = random.Random(seed)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        symbol = rng.choice(SYMBOLS[:1])
        side = rng.choice(("BUY", "SELL"))
        started = time.perf_counter()
        place(symbol, side, rng.randint(1, 50), _price(rng, symbol))
        out.append(time.perf_counter() - started)


def kite_placer(root: str) -> Any:
    kite = KiteConnect(api_key="default", root=root)
    kite.set_access_token(KEYS["default"])

    def place(symbol: str, side: str, quantity: int, price: float) -> None:
        kite.place_order(
            variety="regular",
            exchange="NSE",
            tradingsymbol=symbol,
            transaction_type=side,
            quantity=quantity,
            product="MIS",
            order_type="LIMIT",
            price=price,
        )

    return place


def ours_placer(root: str) -> Any:
    session = requests.Session()
    headers = {"X-API-Key": KEYS["default"]}

    def place(symbol: str, side: str, quantity: int, price: float) -> None:
        body = {
            "symbol": f"NSE:{symbol}",
            "side": side.lower(),
            "type": "limit",
            "quantity": str(quantity),
            "price": f"{price:.2f}",
        }
        response = session.post(f"{root}/orders", json=body, headers=headers, timeout=30)
        if response.status_code >= 300:
            raise RuntimeError(response.text)

    return place


def run_orders(make: Any, root: str, threads: int, seconds: float) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=_orders_loop, args=(make(root), seconds, n, latencies[n]))
        for n in range(threads)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for part in latencies for x in part)
    return {
        "threads": threads,
        "orders": len(flat),
        "orders_per_second": round(len(flat) / elapsed, 1),
        "p50_ms": percentile(flat, 0.50),
        "p99_ms": percentile(flat, 0.99),
    }


async def _kite_client(url: str, counts: list[int], stop_at: float) -> None:
    headers = {"X-Kite-Version": "3"}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": TOKENS}))
        await ws.send(json.dumps({"a": "mode", "v": ["full", TOKENS]}))
        while time.monotonic() < stop_at:
            try:
                frame = await asyncio.wait_for(ws.recv(), max(0.01, stop_at - time.monotonic()))
            except TimeoutError:
                break
            if isinstance(frame, bytes) and len(frame) > 2:
                counts[0] += struct.unpack(">H", frame[:2])[0]


async def _json_client(url: str, counts: list[int], stop_at: float) -> None:
    async with websockets.connect(
        url, additional_headers={"X-API-Key": KEYS["default"]}, max_size=None
    ) as ws:
        symbols = [f"NSE:{s}" for s in SYMBOLS]
        await ws.send(json.dumps({"action": "subscribe", "symbols": symbols, "mode": "full"}))
        while time.monotonic() < stop_at:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, stop_at - time.monotonic()))
            except TimeoutError:
                break
            message = json.loads(raw)
            if message.get("type") == "ticks":
                counts[0] += len(message["ticks"])
            elif message.get("type") == "tick":
                counts[0] += 1


def _crossing_load(root: str, stop_at: float) -> None:
    kite = KiteConnect(api_key="default", root=root)
    kite.set_access_token(KEYS["default"])
    taker = KiteConnect(api_key="desk-b", root=root)
    taker.set_access_token(KEYS["desk-b"])
    rng = random.Random(3)
    while time.monotonic() < stop_at:
        symbol = rng.choice(SYMBOLS)
        price = _price(rng, symbol)
        for client, side in ((kite, "SELL"), (taker, "BUY")):
            client.place_order(
                variety="regular",
                exchange="NSE",
                tradingsymbol=symbol,
                transaction_type=side,
                quantity=1,
                product="MIS",
                order_type="LIMIT",
                price=price,
            )


async def run_ticks(port: int, clients: int, seconds: float) -> dict[str, Any]:
    root = f"http://127.0.0.1:{port}"
    kite_url = f"ws://127.0.0.1:{port}/kite/ws?api_key=default&access_token={KEYS['default']}"
    json_url = f"ws://127.0.0.1:{port}/ws/ticker"
    kite_counts, json_counts = [0], [0]
    stop_at = time.monotonic() + seconds + 1
    tasks = [
        asyncio.create_task(_kite_client(kite_url, kite_counts, stop_at)) for _ in range(clients)
    ]
    tasks += [
        asyncio.create_task(_json_client(json_url, json_counts, stop_at)) for _ in range(clients)
    ]
    await asyncio.sleep(1)
    load = [threading.Thread(target=_crossing_load, args=(root, stop_at)) for _ in range(2)]
    for thread in load:
        thread.start()
    await asyncio.gather(*tasks)
    for thread in load:
        thread.join()
    return {
        "clients_per_protocol": clients,
        "kite_ticks_per_second": round(kite_counts[0] / seconds, 1),
        "json_ticks_per_second": round(json_counts[0] / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--ws-clients", type=int, default=20)
    args = parser.parse_args()
    name = f"bench_kite_{free_port()}"
    url = fresh_database(name)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"orders": [], "ticks": None}
    with tempfile.TemporaryDirectory() as tmp:
        process = serve(Path(tmp), port, DATABASE_URL=url)
        try:
            wait_ready(f"{root}/health/ready", process)
            for threads in (int(t) for t in args.threads.split(",")):
                for side, make in (("kite", kite_placer), ("ours", ours_placer)):
                    row = {"api": side, **run_orders(make, root, threads, args.seconds)}
                    print(json.dumps(row), flush=True)
                    result["orders"].append(row)
            result["ticks"] = asyncio.run(run_ticks(port, args.ws_clients, args.seconds))
            print(json.dumps(result["ticks"]), flush=True)
        finally:
            stop(process)
            drop_databases(name)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
