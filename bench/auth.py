"""Authentication benchmark: the cost of the key check and rate limit, alone and per request.

1. ``AuthService.admit`` (digest, dict lookup, constant-time compare, token bucket) with
   1,000 keys loaded from key files, cycling over them; and a rejected unknown key.
2. In-process HTTP through the whole app (``create_app``, ASGI, middleware): the same trivial
   handler mounted open and on the authenticated router, so the difference is what auth adds
   to a request. SQLite and embedded Redis in a temporary folder.

Figures are medians over the rounds. The last output line is one JSON object.

    .venv/bin/python bench/auth.py            # 5 rounds
    .venv/bin/python bench/auth.py --quick    # 2 rounds, fewer requests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter

from app.errors import Unauthenticated
from app.main import create_app
from app.routes import authenticated_router
from app.services.access.auth import AuthService
from app.settings import Settings

KEYS = 1000


def bench_admit(tokens: Path, calls: int) -> tuple[float, float]:
    plain = [f"bench-key-{n:06d}-0123456789" for n in range(KEYS)]
    for n, key in enumerate(plain):
        (tokens / f"k{n}.json").write_text(
            json.dumps({"account": f"a{n}", "scopes": ["read"], "key": key})
        )
    auth = AuthService(api_key=None, tokens_dir=tokens, rate_limit=1e9)
    assert len(auth.keys) == KEYS
    started = time.perf_counter()
    for n in range(calls):
        auth.admit(plain[n % KEYS], address="127.0.0.1")
    ok_us = (time.perf_counter() - started) / calls * 1e6
    refused = 0
    auth = AuthService(
        api_key=None, tokens_dir=tokens, rate_limit=1e9, unauthenticated_rate_limit=1e9
    )
    started = time.perf_counter()
    for _ in range(calls):
        try:
            auth.admit("unknown-key-0000000000000000", address="127.0.0.1")
        except Unauthenticated:
            refused += 1
    bad_us = (time.perf_counter() - started) / calls * 1e6
    assert refused == calls
    return ok_us, bad_us


async def bench_http(root: Path, requests: int) -> tuple[float, float]:
    settings = Settings(
        db={"url": None, "data_dir": root / "data"},
        redis={"url": None},
        auth={"api_key": "bench-admin-key-0123456789", "tokens_dir": root / "t", "rate_limit": 1e9},
        log={"format": "text", "level": "WARNING", "access_log": False},
    )
    app = create_app(settings)
    open_router, api_router, inner = APIRouter(), authenticated_router(), APIRouter()

    @open_router.get("/bench/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    @inner.get("/bench/auth")
    async def auth_route() -> dict[str, bool]:
        return {"ok": True}

    api_router.include_router(inner)
    app.include_router(open_router)
    app.include_router(api_router)
    headers = {"X-API-Key": "bench-admin-key-0123456789"}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for path in ("/bench/open", "/bench/auth"):
                for _ in range(50):  # warm-up
                    await client.get(path, headers=headers)
            # Alternating blocks, so load from elsewhere on the machine hits both alike.
            blocks: dict[str, list[float]] = {"/bench/open": [], "/bench/auth": []}
            size = max(1, requests // 10)
            for _ in range(10):
                for path, samples in blocks.items():
                    started = time.perf_counter()
                    for _ in range(size):
                        response = await client.get(path, headers=headers)
                        assert response.status_code == 200
                    samples.append((time.perf_counter() - started) / size * 1e6)
            timings = {path: statistics.median(samples) for path, samples in blocks.items()}
    return timings["/bench/open"], timings["/bench/auth"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, calls, requests = (2, 20_000, 500) if args.quick else (5, 200_000, 2_000)
    admit_ok, admit_bad, http_open, http_auth = [], [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            tokens = Path(tmp) / "tokens"
            tokens.mkdir()
            ok, bad = bench_admit(tokens, calls)
            admit_ok.append(ok)
            admit_bad.append(bad)
            plain, authed = asyncio.run(bench_http(Path(tmp), requests))
            http_open.append(plain)
            http_auth.append(authed)
    result = {
        "keys": KEYS,
        "admit_us": round(statistics.median(admit_ok), 2),
        "admit_unknown_key_us": round(statistics.median(admit_bad), 2),
        "http_open_request_us": round(statistics.median(http_open), 1),
        "http_authenticated_request_us": round(statistics.median(http_auth), 1),
        "http_auth_overhead_us": round(
            statistics.median(http_auth) - statistics.median(http_open), 1
        ),
        "rounds": rounds,
    }
    print(f"admit (valid key, {KEYS} keys):   {result['admit_us']} us")
    print(f"admit (unknown key):            {result['admit_unknown_key_us']} us")
    print(f"HTTP open route:                {result['http_open_request_us']} us/request")
    print(f"HTTP authenticated route:       {result['http_authenticated_request_us']} us/request")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
