from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.support.databases import drop_database
from tests.support.servers import RedisServer


class TestHealth:
    async def test_reports_ok_with_real_dependencies(self, backend_settings: Settings) -> None:
        async with running_app(backend_settings) as (_app, client):
            response = await client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["environment"] == "development"
        assert body["version"]
        assert body["ticker"]["running"] in (True, False)
        assert body["dependencies"]["database"] == "ok"
        assert body["dependencies"]["redis"] == "ok"

    async def test_degraded_while_redis_is_down_and_recovers(
        self, make_settings: Callable[..., Settings], tmp_path: Path
    ) -> None:
        with RedisServer(tmp_path / "redis") as server:
            settings = make_settings(redis={"url": server.url}, health_check_timeout=0.5)
            async with running_app(settings) as (_app, client):
                assert (await client.get("/health")).json()["status"] == "ok"
                server.stop()
                down = await client.get("/health")
                assert down.status_code == 200
                assert down.json()["status"] == "degraded"
                assert down.json()["dependencies"]["redis"].startswith("error")
                server.start()
                assert (await client.get("/health")).json()["status"] == "ok"

    async def test_down_with_503_when_database_is_gone(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        import psycopg

        from tests.conftest import PG_ADMIN_URL

        settings = make_settings(db={"url": pg_url, "connect_timeout": 1}, health_check_timeout=2)
        async with running_app(settings) as (_app, client):
            name = pg_url.rsplit("/", 1)[1]
            drop_database(PG_ADMIN_URL, name)  # whoever is connected
            response = await client.get("/health")
            assert response.status_code == 503
            assert response.json()["status"] == "down"
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "NOT_READY"
            # Recreate so the fixture's DROP finds it (and the app's pool can close cleanly).
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]

    async def test_probes(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            live = await client.get("/health/live")
            ready = await client.get("/health/ready")
        assert live.json() == {"status": "ok"}
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"


class TestMetrics:
    async def test_exports_build_info_and_http_metrics(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with running_app(make_settings()) as (_app, client):
            await client.get("/health")
            text = (await client.get("/metrics")).text
        assert 'ticker_build_info{database="sqlite",environment="development"' in text
        assert "http_requests_total" in text


class TestErrors:
    async def test_unknown_route_uses_the_error_envelope(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.get("/no/such/route")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Not Found"}}

    async def test_wrong_method_uses_the_error_envelope(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.post("/health")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


class TestRequestId:
    async def test_generated_and_echoed(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            generated = await client.get("/health/live")
            echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
            refused = await client.get("/health/live", headers={"X-Request-ID": "bad id\n"})
        assert len(generated.headers["x-request-id"]) == 32
        assert echoed.headers["x-request-id"] == "abc-123"
        assert refused.headers["x-request-id"] != "bad id\n"

    async def test_in_the_access_log(
        self, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="ticker.access")
        async with running_app(make_settings()) as (_app, client):
            await client.get("/health", headers={"X-Request-ID": "trace-me"})
        access = [r for r in caplog.records if r.name == "ticker.access"]
        assert any(getattr(r, "path", None) == "/health" for r in access)
        from app.logs import ContextFilter

        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        ContextFilter().filter(record)
        assert record.request_id == "-"  # outside a request


class TestCors:
    async def test_no_cors_by_default(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers

    async def test_allowed_origins_from_settings(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(cors_origins=["https://desk.example"])
        async with running_app(settings) as (_app, client):
            response = await client.get("/health", headers={"Origin": "https://desk.example"})
        assert response.headers["access-control-allow-origin"] == "https://desk.example"
