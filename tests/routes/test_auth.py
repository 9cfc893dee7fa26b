"""Authentication at the HTTP edge.

``TestEveryRoute`` walks ``app.routes``: every HTTP route outside ``OPEN_PATHS`` must answer
401 without a key and with an unknown key, 403 with a key lacking its scope, and neither
with the all-scopes key, so a new route without auth fails the suite. A probe router
(mounted the way ``include_routers`` mounts real ones) makes sure there is always something
to walk, including a route that forgot its scope alias and one that returns a Response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI

from app import logs
from app.deps import AdminKey, ReadKey, TradeKey, required_scope
from app.errors import NotFound
from app.main import create_app
from app.routes import (
    OPEN_PATHS,
    HttpRoute,
    authenticated_router,
    dependency_calls,
    http_routes,
    require_authentication,
)
from app.routes.responses import OrjsonResponse
from app.services.access.auth import ALL_SCOPES, Scope, digest
from app.services.access.keys import read_development_key
from app.settings import Settings

ALL_KEY = "test-admin-key-0123456789"  # tests/conftest.py make_settings
UNKNOWN_KEY = "unknown-key-000000000000000"


def probe_router() -> APIRouter:
    router = APIRouter(prefix="/probe")

    @router.get("/read/{instrument_token}")
    async def read(instrument_token: int, key: ReadKey) -> dict[str, Any]:
        return {"account": key.account, "instrument_token": instrument_token}

    @router.post("/trade")
    async def trade(key: TradeKey) -> OrjsonResponse:
        return OrjsonResponse({"account": key.account}, status_code=201)

    @router.delete("/admin/{symbol}")
    async def admin(symbol: str, key: AdminKey) -> dict[str, str]:
        return {"symbol": symbol}

    @router.get("/forgot-scope")
    async def forgot_scope() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/missing")
    async def missing(_key: ReadKey) -> None:
        raise NotFound("nothing here")

    return router


@asynccontextmanager
async def running_with_probe(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    api_router = authenticated_router()
    api_router.include_router(probe_router())
    app.include_router(api_router)
    require_authentication(app)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def write_key(tokens_dir: Path, name: str, **body: Any) -> Path:
    path = tokens_dir / name
    path.write_text(json.dumps(body))
    return path


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Retry an async check until it stops failing (the key watcher polls)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def concrete_path(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        return "NSE:INFY" if match.group(1) == "symbol" else "1"

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def scope_of(route: HttpRoute) -> Scope | None:
    scopes = {required_scope(call) for call in dependency_calls(route.dependant) if call}
    scopes.discard(None)
    assert len(scopes) <= 1, route
    return scopes.pop() if scopes else None


def auth_failures(metrics_text: str, reason: str) -> float:
    match = re.search(rf'ticker_auth_failures_total{{reason="{reason}"}} (\S+)', metrics_text)
    return float(match.group(1)) if match else 0.0


class TestEveryRoute:
    async def test_every_route_requires_a_key_and_its_scope(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        lacking = {}
        for scope in Scope:
            key = f"lacks-{scope.value}-key-0123456789"
            others = sorted(s.value for s in ALL_SCOPES - {scope})
            write_key(tokens_dir, f"lacks-{scope.value}.json", account="t", scopes=others, key=key)
            lacking[scope] = key
        settings = make_settings(auth={"rate_limit": 1e6, "unauthenticated_rate_limit": 1e6})
        async with running_with_probe(settings) as (app, client):
            routes = [route for route in http_routes(app) if route.path not in OPEN_PATHS]
            assert len(routes) >= 5
            checked = 0
            for route in routes:
                path = concrete_path(route.path)
                scope = scope_of(route)
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    where = f"{method} {route.path}"
                    for headers in ({}, {"X-API-Key": UNKNOWN_KEY}, {"X-API-Key": ""}):
                        response = await client.request(method, path, headers=headers)
                        assert response.status_code == 401, where
                        assert response.json()["error"]["code"] == "UNAUTHENTICATED", where
                    if scope is not None:
                        headers = {"X-API-Key": lacking[scope]}
                        response = await client.request(method, path, headers=headers)
                        assert response.status_code == 403, where
                        assert response.json()["error"]["code"] == "FORBIDDEN", where
                    response = await client.request(method, path, headers={"X-API-Key": ALL_KEY})
                    assert response.status_code not in (401, 403), where
                    checked += 1
            assert checked >= 5

    async def test_open_routes_and_docs_need_no_key(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with running_with_probe(make_settings()) as (_app, client):
            for path in ("/health", "/health/live", "/health/ready", "/metrics", "/docs"):
                response = await client.get(path)
                assert response.status_code == 200, path
                assert "ratelimit" not in response.headers
            schema = (await client.get("/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
        assert schema["paths"]["/probe/forgot-scope"]["get"]["security"] == [{"APIKeyHeader": []}]

    def test_a_router_mounted_outside_api_router_is_refused(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        app = create_app(make_settings())
        app.include_router(probe_router())
        with pytest.raises(RuntimeError, match=r"GET /probe/forgot-scope.*api_router"):
            require_authentication(app)


class TestRateLimits:
    async def test_headers_on_success_errors_and_returned_responses(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        write_key(
            tokens_dir, "reader.json", account="r", scopes=["read"], key="reader-key-0123456789"
        )
        # One token a second: a slow machine cannot refill one between these requests.
        settings = make_settings(auth={"rate_limit": 1, "rate_limit_burst": 10})
        async with running_with_probe(settings) as (_app, client):
            admin = {"X-API-Key": ALL_KEY}
            ok = await client.get("/probe/read/1", headers=admin)
            returned = await client.post("/probe/trade", headers=admin)
            not_found = await client.get("/probe/missing", headers=admin)
            forbidden = await client.post(
                "/probe/trade", headers={"X-API-Key": "reader-key-0123456789"}
            )
            unauthenticated = await client.get("/probe/read/1")
        assert ok.status_code == 200
        assert ok.json() == {"account": "default", "instrument_token": 1}
        assert ok.headers["ratelimit-policy"] == '"default";q=10;w=10'
        assert ok.headers["ratelimit"] == '"default";r=9;t=1'
        assert returned.status_code == 201
        assert returned.headers["ratelimit"] == '"default";r=8;t=2'
        assert not_found.status_code == 404
        assert not_found.headers["ratelimit"] == '"default";r=7;t=3'
        assert forbidden.status_code == 403
        assert forbidden.headers["ratelimit"] == '"default";r=9;t=1'  # the reader's own bucket
        assert unauthenticated.status_code == 401
        assert "ratelimit" not in unauthenticated.headers
        for response in (ok, returned, not_found, forbidden):
            assert len(response.headers.get_list("ratelimit")) == 1
            assert response.headers["x-request-id"]

    async def test_429_after_the_burst_then_recovers(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(auth={"rate_limit": 2, "rate_limit_burst": 3})
        headers = {"X-API-Key": ALL_KEY}
        async with running_with_probe(settings) as (_app, client):
            statuses = [
                (await client.get("/probe/read/1", headers=headers)).status_code for _ in range(3)
            ]
            limited = await client.get("/probe/read/1", headers=headers)
            await asyncio.sleep(0.6)
            recovered = await client.get("/probe/read/1", headers=headers)
            metrics = (await client.get("/metrics")).text
        assert statuses == [200, 200, 200]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["ratelimit"].startswith('"default";r=0;')
        assert limited.headers["ratelimit-policy"] == '"default";q=3;w=2'
        assert recovered.status_code == 200
        assert auth_failures(metrics, "rate_limited") == 1

    async def test_unauthenticated_requests_are_limited_per_address(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(auth={"unauthenticated_rate_limit": 2})
        async with running_with_probe(settings) as (_app, client):
            first = await client.get("/probe/read/1")
            second = await client.get("/probe/read/1", headers={"X-API-Key": UNKNOWN_KEY})
            blocked = await client.get("/probe/read/1", headers={"X-API-Key": ALL_KEY})
            await asyncio.sleep(0.6)
            after = await client.get("/probe/read/1", headers={"X-API-Key": ALL_KEY})
            metrics = (await client.get("/metrics")).text
        assert [first.status_code, second.status_code] == [401, 401]
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "RATE_LIMITED"
        assert blocked.headers["retry-after"] == "1"
        assert after.status_code == 200
        assert auth_failures(metrics, "missing_key") == 1
        assert auth_failures(metrics, "unknown_key") == 1
        assert auth_failures(metrics, "address_rate_limited") == 1


class TestKeyFilesWhileRunning:
    async def test_added_rotated_and_removed_without_restart(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        settings = make_settings(
            auth={"tokens_poll_seconds": 0.1, "unauthenticated_rate_limit": 1e6}
        )
        first, second = "desk-key-first-0123456789", "desk-key-second-0123456789"
        async with running_with_probe(settings) as (_app, client):

            async def status(key: str) -> int:
                response = await client.get("/probe/read/1", headers={"X-API-Key": key})
                return response.status_code

            assert await status(first) == 401
            path = write_key(
                tokens_dir, "desk.json", account="desk", scopes=["read"], key_sha256=digest(first)
            )

            async def first_works() -> None:
                assert await status(first) == 200

            await eventually(first_works)
            write_key(tokens_dir, "desk.json", account="desk", scopes=["read"], key=second)

            async def rotated() -> None:
                assert (await status(first), await status(second)) == (401, 200)

            await eventually(rotated)
            path.unlink()

            async def revoked() -> None:
                assert await status(second) == 401

            await eventually(revoked)
            assert await status(ALL_KEY) == 200  # API_KEY is unaffected

    async def test_malformed_file_is_skipped_and_others_keep_working(
        self,
        make_settings: Callable[..., Settings],
        tokens_dir: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        good = "good-key-0123456789abcdef"
        write_key(tokens_dir, "good.json", account="good", scopes=["read"], key=good)
        settings = make_settings(auth={"tokens_poll_seconds": 0.1})
        with caplog.at_level(logging.WARNING):
            async with running_with_probe(settings) as (_app, client):
                (tokens_dir / "bad.json").write_text('{"account": "bad", "scopes": ')

                async def logged() -> None:
                    assert any("bad.json" in r.getMessage() for r in caplog.records)

                await eventually(logged)
                response = await client.get("/probe/read/1", headers={"X-API-Key": good})
                metrics = (await client.get("/metrics")).text
        assert response.status_code == 200
        assert response.json()["account"] == "good"
        assert "ticker_api_key_file_errors 1.0" in metrics
        assert "ticker_api_keys 2.0" in metrics


class TestDevelopmentKey:
    async def test_created_and_printed_once_on_first_start(
        self,
        make_settings: Callable[..., Settings],
        tokens_dir: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        settings = make_settings(auth={"api_key": None})
        async with running_with_probe(settings) as (_app, client):
            printed = capsys.readouterr().out
            match = re.search(r"^development API key: (\S+)$", printed, re.MULTILINE)
            assert match, printed
            key = match.group(1)
            assert key in logs._secrets  # redacted should it ever reach a log line
            response = await client.delete("/probe/admin/NSE:INFY", headers={"X-API-Key": key})
            assert response.status_code == 200
        stored = tokens_dir / "development.json"
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        # Kept (development only) so that `ticker-service keys show-dev` can print it again.
        assert json.loads(stored.read_text())["key"] == key
        assert read_development_key(tokens_dir) == key

        async with running_with_probe(settings) as (_app, client):
            assert "development API key" not in capsys.readouterr().out
            response = await client.get("/probe/read/1", headers={"X-API-Key": key})
            assert response.status_code == 200

    async def test_not_created_when_a_key_is_configured(
        self,
        make_settings: Callable[..., Settings],
        tokens_dir: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        async with running_with_probe(make_settings()):
            pass
        assert "development API key" not in capsys.readouterr().out
        assert not (tokens_dir / "development.json").exists()

    async def test_an_unusable_tokens_folder_is_logged_and_the_service_starts(
        self,
        make_settings: Callable[..., Settings],
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        not_a_folder = tmp_path / "tokens-file"
        not_a_folder.write_text("")
        settings = make_settings(auth={"api_key": None, "tokens_dir": not_a_folder})
        with caplog.at_level(logging.ERROR):
            async with running_with_probe(settings) as (_app, client):
                response = await client.get("/probe/read/1")
                live = await client.get("/health/live")
        assert response.status_code == 401
        assert live.status_code == 200
        assert any(
            "could not create a development API key" in r.getMessage() for r in caplog.records
        )
