"""The HTTP layer alone: CPU per request of the order routes with a stub ``OrderEntry``.

No server, no journal, no network: the app is called as ASGI with a realistic scope, so the
figure is what routing, auth, rate limit, body, rendering, request id and metrics cost per
request (the process CPU time of many requests, best of five rounds). ``--fastapi`` serves
through FastAPI's stack instead of the order routes' lean path (``app.routes.lean``), for the
side-by-side in one sitting.

    .venv/bin/python bench/http_layer.py [--fastapi] [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.main import create_app
from app.services.access.auth import AuthService
from app.settings import Settings
from bench.support import asgi_scope

KEY = "bench-http-key-0123456789abcdef"
BODY = (
    b'{"symbol":"NSE:INFY","side":"buy","type":"limit","quantity":"5","price":"1875.4",'
    b'"time_in_force":"GTC"}'
)
RESULT: dict[str, Any] = {
    "index": 0,
    "client_order_id": None,
    "order_id": "123456",
    "created": True,
    "status": "open",
    "filled_quantity": "0",
    "remaining_quantity": "5",
    "average_price": None,
    "fills": [],
}


class StubOrders:
    async def place_order(self, account: str, body: bytes) -> dict[str, Any]:
        return RESULT

    async def cancel_order(self, account: str, order_id: int) -> dict[str, Any]:
        return {**RESULT, "status": "cancelled"}


async def per_request_us(
    app: Any, settings: Settings, method: str, path: str, expect: int, requests: int
) -> float:
    state = {
        "auth": AuthService(api_key=KEY, rate_limit=1e12),
        "orders": StubOrders(),
        "settings": settings,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY if method == "POST" else b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != expect:
            raise AssertionError(message)

    async def rounds(count: int) -> float:
        started = time.process_time()
        for _ in range(count):
            length = len(BODY) if method == "POST" else None
            scope = asgi_scope(method, path, KEY, body_length=length, state=dict(state))
            await app(scope, receive, send)
        return (time.process_time() - started) / count * 1e6

    await rounds(1000)  # warm up: build the middleware stack, fill caches
    return min([await rounds(requests) for _ in range(5)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fastapi", action="store_true", help="bypass the lean path")
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    settings = Settings(log={"access_log": False, "level": "WARNING"}, auth={"api_key": KEY})
    app = create_app(settings)
    if args.fastapi:
        app.lean_path = None  # type: ignore[attr-defined]
    gc.freeze()
    result = {
        "bench": "http_layer",
        "path": "fastapi" if args.fastapi or getattr(app, "lean_path", None) is None else "lean",
        "post_orders_us": round(
            asyncio.run(per_request_us(app, settings, "POST", "/orders", 201, args.requests)), 1
        ),
        "delete_order_us": round(
            asyncio.run(per_request_us(app, settings, "DELETE", "/orders/42", 200, args.requests)),
            1,
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
