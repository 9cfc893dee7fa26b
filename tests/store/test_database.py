from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.store.database import Database, normalise_url
from app.store.migrate import current_revision, migrate


class TestUrls:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
            ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
            ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
            ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ],
    )
    def test_normalises_to_async_drivers(self, given: str, expected: str) -> None:
        assert normalise_url(given, Path("data")) == expected

    def test_default_is_sqlite_under_the_data_dir(self, tmp_path: Path) -> None:
        url = normalise_url(None, tmp_path / "d")
        assert url.startswith("sqlite+aiosqlite:///")
        assert url.endswith("d/ticker.db")
        assert (tmp_path / "d").is_dir()


class TestSqlite:
    async def test_uses_wal_and_migrates(self, tmp_path: Path) -> None:
        database = Database.create(None, data_dir=tmp_path)
        try:
            await migrate(database)
            async with database.engine.connect() as conn:
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            assert mode == "wal"
            assert await current_revision(database) is not None
            assert database.timescaledb is False
        finally:
            await database.dispose()


class TestPostgres:
    async def test_migrations_are_idempotent_and_detect_timescaledb(self, pg_url: str) -> None:
        database = Database.create(pg_url)
        try:
            await migrate(database)
            await migrate(database)
            assert database.is_postgres
            async with database.engine.connect() as conn:
                available = (
                    await conn.execute(
                        text(
                            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions "
                            "WHERE name = 'timescaledb')"
                        )
                    )
                ).scalar()
            # Where the extension is packaged it is used; otherwise the fallback is plain tables.
            assert database.timescaledb is bool(available)
            assert "***" in database.describe() or "@" in database.describe()
        finally:
            await database.dispose()

    async def test_unreachable_server_fails_fast(self) -> None:
        database = Database.create("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
        try:
            with pytest.raises(OperationalError):
                await database.ping(timeout=3)
        finally:
            await database.dispose()
