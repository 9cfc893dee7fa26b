"""Shared fixtures: a real PostgreSQL database per test (cloned from a migrated template),
a real Redis under a key prefix of its own, SQLite in a temporary folder, and a running app.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.services.clock import Clock
from app.settings import Settings
from tests.support import secrets
from tests.support.databases import (
    clone_database,
    create_database,
    database_url,
    drop_database,
    seal_template,
)

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session", autouse=True)
def secrets_never_logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every log record of the run goes to a file; at the end no key or webhook secret that
    the tests created (``tests.support.secrets``) may appear in it, nor in the logs of the
    services run as subprocesses. Fails as an error at the teardown of the last test."""
    import app.services.access.keys

    path = tmp_path_factory.getbasetemp() / "session-log.txt"
    handler = secrets.install(path)
    generate = app.services.access.keys.generate_key
    with pytest.MonkeyPatch.context() as patch:  # keys printed by `keys create`
        patch.setattr(
            app.services.access.keys, "generate_key", lambda: secrets.remember(generate())
        )
        yield path
    secrets.uninstall(handler)
    found = secrets.leaks([path, *secrets.watched_files()], secrets.known_secrets())
    if found:
        pytest.fail(f"secrets found in logs: {found}", pytrace=False)


def _pg_url(name: str) -> str:
    return database_url(PG_ADMIN_URL, name)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated once per run and then sealed; every test gets a fresh copy of it
    (``tests.support.databases``: robust to servers whose own workers connect to it)."""
    import asyncio

    from app.store.database import Database
    from app.store.migrate import migrate

    name = f"ticker_test_{RUN_ID}_template"

    async def run() -> None:
        database = Database.create(_pg_url(name))
        await migrate(database)
        await database.dispose()

    create_database(PG_ADMIN_URL, name)
    try:
        asyncio.run(run())
        seal_template(PG_ADMIN_URL, name)
        yield name
    finally:  # also when the migration fails: no template is left behind
        drop_database(PG_ADMIN_URL, name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"ticker_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    clone_database(PG_ADMIN_URL, pg_template, name)
    yield _pg_url(name)
    drop_database(PG_ADMIN_URL, name)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def tokens_dir(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.mkdir()
    return path


@pytest.fixture
def make_settings(tmp_path: Path, redis_prefix: str, tokens_dir: Path) -> Callable[..., Settings]:
    """Settings for a test app; PostgreSQL when given ``database_url``, else SQLite."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "development",
            "db": {"url": None, "data_dir": tmp_path / "data"},
            "redis": {"url": REDIS_URL, "prefix": redis_prefix},
            # Rate limits high enough never to trip by accident; tests of the limits set theirs.
            "auth": {
                "api_key": "test-admin-key-0123456789",
                "tokens_dir": tokens_dir,
                "rate_limit": 1e6,
                "unauthenticated_rate_limit": 1e6,
            },
            "log": {"format": "text", "level": "INFO"},
        }
        for group, value in overrides.items():
            if isinstance(value, dict) and isinstance(values.get(group), dict):
                values[group] = {**values[group], **value}
            else:
                values[group] = value
        return Settings(**values)

    return factory


@asynccontextmanager
async def running_app(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an httpx client talking to it in-process
    (``clock``: the one the service reads time through, e.g. ``tests.support.clock``)."""
    app = create_app(settings, clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        hooks = {"response": [_remember_webhook_secrets]}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", event_hooks=hooks
        ) as client:
            yield app, client


async def _remember_webhook_secrets(response: httpx.Response) -> None:
    if "/advanced/webhooks" in response.url.path and response.status_code < 300:
        await response.aread()
        if response.content:
            secrets.remember_in(response.json())


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Settings:
    """Run a test on both storage backends."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        return make_settings(db={"url": url})
    return make_settings()
