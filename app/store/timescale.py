"""TimescaleDB helpers for migrations: detect, enable, and make hypertables (or fall back)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text


def timescaledb_available(connection: Connection) -> bool:
    """The extension is packaged on this server (it may not be created yet)."""
    if connection.dialect.name != "postgresql":
        return False
    result = connection.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
    )
    return bool(result.scalar())


def timescaledb_wanted(connection: Connection) -> bool:
    wanted = bool(context.config.attributes.get("use_timescaledb", True))
    return wanted and timescaledb_available(connection)


def create_hypertable(connection: Connection, table: str, time_column: str) -> bool:
    """Turn ``table`` into a hypertable when TimescaleDB is installed; plain table otherwise."""
    if connection.dialect.name != "postgresql":
        return False
    installed = connection.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    ).scalar()
    if not installed:
        return False
    connection.execute(
        text(f"SELECT create_hypertable('{table}', '{time_column}', if_not_exists => TRUE)")
    )
    return True
