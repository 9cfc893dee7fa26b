"""Apply Alembic migrations, at start and from ``ticker-service migrate``.

Alembic runs synchronously inside ``AsyncConnection.run_sync``; on PostgreSQL a
transaction-scoped advisory lock makes concurrent starts (several replicas) take turns.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from app.store.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_ID = 7_727_274_001


def alembic_config(connection: Connection | None = None, *, use_timescaledb: bool = True) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["use_timescaledb"] = use_timescaledb
    return config


async def migrate(database: Database, *, use_timescaledb: bool = True) -> None:
    def _upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        command.upgrade(alembic_config(connection, use_timescaledb=use_timescaledb), "head")

    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade)
    await database.detect_timescaledb()


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as conn:
        exists = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version"))
        if not exists:
            return None
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return result.scalar()
