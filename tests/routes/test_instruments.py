from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from app.settings import Settings
from tests.conftest import PG_ADMIN_URL, running_app
from tests.support.databases import drop_database
from tests.support.instruments import csv_row, csv_text

KEY = {"X-API-Key": "test-admin-key-0123456789"}
SAMPLE_ROWS = 45  # app/data/instruments.csv


class TestListInstruments:
    async def test_lists_the_seeded_sample_with_decimal_strings(
        self, backend_settings: Settings
    ) -> None:
        async with running_app(backend_settings) as (_app, client):
            response = await client.get("/instruments", headers=KEY)
        assert response.status_code == 200
        body = response.json()
        assert body["next_cursor"] is None
        assert len(body["items"]) == SAMPLE_ROWS
        infy = next(item for item in body["items"] if item["symbol"] == "NSE:INFY")
        assert infy == {
            "instrument_token": 408065,
            "exchange_token": 1594,
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "symbol": "NSE:INFY",
            "name": "INFOSYS",
            "instrument_type": "EQ",
            "segment": "NSE",
            "tick_size": "0.05",
            "lot_size": "1",
            "expiry": None,
            "strike": "0",
            "last_price": "1875.4",
            "status": "active",
            "updated_at": infy["updated_at"],
        }
        assert infy["updated_at"].endswith("+00:00")
        tokens = [item["instrument_token"] for item in body["items"]]
        assert tokens == sorted(tokens)

    async def test_filters_and_text_search(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):

            async def symbols(**params: str) -> list[str]:
                response = await client.get("/instruments", params=params, headers=KEY)
                assert response.status_code == 200, response.text
                return sorted(item["symbol"] for item in response.json()["items"])

            assert await symbols(exchange="BSE", q="infosys") == ["BSE:INFY"]
            assert await symbols(q="InFy") == sorted(
                [
                    "BSE:INFY",
                    "NFO:INFY36NOVFUT",
                    "NFO:INFY36NOV1900CE",
                    "NFO:INFY36NOV1900PE",
                    "NSE:INFY",
                ]
            )
            assert await symbols(q="tata consultancy") == ["BSE:TCS", "NSE:TCS"]
            futures = await symbols(exchange="nfo", instrument_type="FUT")
            assert futures == sorted(
                [
                    "NFO:BANKNIFTY36NOVFUT",
                    "NFO:INFY36NOVFUT",
                    "NFO:NIFTY36DECFUT",
                    "NFO:NIFTY36NOVFUT",
                    "NFO:RELIANCE36NOVFUT",
                ]
            )
            options = await symbols(segment="NFO-OPT", q="banknifty")
            assert len(options) == 4
            assert await symbols(q="no such thing") == []

    async def test_status_filter_lists_halted_ones(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with running_app(make_settings()) as (_app, client):

            async def symbols(**params: str) -> list[str]:
                response = await client.get("/instruments", params=params, headers=KEY)
                assert response.status_code == 200, response.text
                return [item["symbol"] for item in response.json()["items"]]

            assert await symbols(status="halted") == []
            for token in (2953217, 408065):  # NSE:TCS, NSE:INFY
                halted = await client.post(f"/admin/instruments/{token}/halt", headers=KEY)
                assert halted.status_code == 200, halted.text
            assert await symbols(status="halted") == ["NSE:INFY", "NSE:TCS"]  # token order
            assert await symbols(status="halted", q="tcs") == ["NSE:TCS"]
            assert "NSE:TCS" not in await symbols(status="active")
            assert len(await symbols(status="active")) == SAMPLE_ROWS - 2
            await client.post("/admin/instruments/2953217/resume", headers=KEY)
            assert await symbols(status="halted") == ["NSE:INFY"]

    async def test_cursor_pagination(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            seen: list[int] = []
            cursor: str | None = None
            for _ in range(20):
                params = {"limit": "10"} | ({"cursor": cursor} if cursor else {})
                body = (await client.get("/instruments", params=params, headers=KEY)).json()
                assert len(body["items"]) <= 10
                seen += [item["instrument_token"] for item in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == SAMPLE_ROWS == len(set(seen))
            assert seen == sorted(seen)

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": "0"},
            {"limit": "1001"},
            {"limit": "x"},
            {"cursor": "not-a-cursor"},
            {"status": "paused"},
            {"status": "HALTED"},
        ],
    )
    async def test_bad_parameters_are_422(
        self, make_settings: Callable[..., Settings], params: dict[str, str]
    ) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.get("/instruments", params=params, headers=KEY)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_needs_a_key(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            assert (await client.get("/instruments")).status_code == 401
            assert (await client.get("/instruments/408065")).status_code == 401


class TestGetInstrument:
    async def test_by_token(self, backend_settings: Settings) -> None:
        async with running_app(backend_settings) as (_app, client):
            response = await client.get("/instruments/13238786", headers=KEY)
        assert response.status_code == 200
        body = response.json()
        assert body["symbol"] == "NFO:NIFTY36NOVFUT"
        assert body["lot_size"] == "50"
        assert body["expiry"] == "2036-11-27"

    async def test_unknown_token_is_a_404(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.get("/instruments/1", headers=KEY)
            malformed = await client.get("/instruments/abc", headers=KEY)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"
        assert malformed.status_code == 422


class TestAdminRefresh:
    async def test_refresh_now_and_skip_when_fresh(self, backend_settings: Settings) -> None:
        async with running_app(backend_settings) as (_app, client):
            forced = await client.post("/admin/instrument-refresh?force=true", headers=KEY)
            skipped = await client.post("/admin/instrument-refresh?force=false", headers=KEY)
        assert forced.status_code == 200
        body = forced.json()
        assert body["refreshed"] is True
        assert body["instruments"] == SAMPLE_ROWS
        assert body["counts"] == {"active": SAMPLE_ROWS, "halted": 0, "delisted": 0, "expired": 0}
        assert body["last_refresh"]
        assert body["duration_seconds"] >= 0
        assert skipped.json()["refreshed"] is False
        assert skipped.json()["last_refresh"] == body["last_refresh"]

    async def test_needs_a_key(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            response = await client.post("/admin/instrument-refresh")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"

    async def test_failed_refresh_is_503_and_old_data_keeps_serving(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(db={"url": pg_url, "connect_timeout": 1}, health_check_timeout=2)
        async with running_app(settings) as (_app, client):
            name = pg_url.rsplit("/", 1)[1]
            drop_database(PG_ADMIN_URL, name)  # whoever is connected
            try:
                failed = await client.post("/admin/instrument-refresh", headers=KEY)
                assert failed.status_code == 503
                assert failed.json()["error"]["code"] == "REGISTRY_REFRESH_FAILED"
                listed = await client.get("/instruments/408065", headers=KEY)
                assert listed.status_code == 200
                registry = (await client.get("/health")).json()["dependencies"][
                    "instrument_registry"
                ]
                assert registry["status"] == "stale"
                assert registry["cached_instruments"] == SAMPLE_ROWS
                assert registry["error"]
            finally:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]


class TestHealthAndSeed:
    async def test_health_shows_the_registry(self, backend_settings: Settings) -> None:
        async with running_app(backend_settings) as (_app, client):
            health = (await client.get("/health")).json()
            ready = await client.get("/health/ready")
            metrics = (await client.get("/metrics")).text
        registry = health["dependencies"]["instrument_registry"]
        assert registry["status"] == "ok"
        assert registry["cached_instruments"] == SAMPLE_ROWS
        assert registry["last_refresh"]
        assert registry["age_seconds"] >= 0
        assert health["status"] == "ok"
        assert ready.status_code == 200
        assert ready.json()["checks"]["instrument_registry"] == "ok"
        assert f"ticker_instruments_cached {SAMPLE_ROWS}.0" in metrics
        assert "ticker_registry_age_seconds" in metrics

    async def test_seed_csv_setting_replaces_the_sample(
        self, make_settings: Callable[..., Settings], tmp_path: Path
    ) -> None:
        seed = tmp_path / "seed.csv"
        seed.write_text(csv_text(csv_row(1, "ONLY")))
        settings = make_settings(registry={"seed_csv": seed})
        async with running_app(settings) as (_app, client):
            body = (await client.get("/instruments", headers=KEY)).json()
        assert [item["symbol"] for item in body["items"]] == ["NSE:ONLY"]

    async def test_production_does_not_seed_the_sample(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(environment="production", db={"url": pg_url})
        async with running_app(settings) as (_app, client):
            body = (await client.get("/instruments", headers=KEY)).json()
            health = (await client.get("/health")).json()
        assert body == {"items": [], "next_cursor": None}
        assert health["dependencies"]["instrument_registry"]["cached_instruments"] == 0
