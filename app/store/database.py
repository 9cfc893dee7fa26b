"""The SQL database: embedded SQLite (WAL) by default, PostgreSQL via psycopg 3 in production.

``Database`` owns the SQLAlchemy ``AsyncEngine`` and knows which dialect it talks to and
whether TimescaleDB is installed, so services can pick the hypertable path or the fallback.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

SQLITE_FILE = "ticker.db"


def normalise_url(url: str | None, data_dir: Path) -> str:
    """Map what operators write to the async driver SQLAlchemy needs."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(data_dir / SQLITE_FILE).as_posix()}"
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL is durable against process crashes
    # (a kill -9 loses nothing committed), which is the failure this service guards against.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.timescaledb = False

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @classmethod
    def create(
        cls,
        url: str | None,
        *,
        data_dir: Path = Path("data"),
        pool_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> Database:
        full_url = normalise_url(url, data_dir)
        if make_url(full_url).get_backend_name() == "sqlite":
            # hide_parameters: a failed statement's message (logged, shown in health) never
            # carries its values, which may be webhook secrets or other clients' data.
            engine = create_async_engine(
                full_url, connect_args={"timeout": connect_timeout}, hide_parameters=True
            )
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(
                full_url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=connect_timeout,
                connect_args={"connect_timeout": max(1, int(connect_timeout))},
                hide_parameters=True,
            )
        return cls(engine)

    def describe(self) -> str:
        """The URL without its password, for logs and health."""
        return self.engine.url.render_as_string(hide_password=True)

    async def detect_timescaledb(self) -> bool:
        """True when the timescaledb extension is installed in this database."""
        if not self.is_postgres:
            self.timescaledb = False
            return False
        async with self.engine.connect() as conn:
            self.timescaledb = await timescaledb_installed(conn)
        return self.timescaledb

    async def ping(self, timeout: float) -> None:
        async with asyncio.timeout(timeout), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def timescaledb_installed(conn: AsyncConnection) -> bool:
    result = await conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    )
    return bool(result.scalar())
