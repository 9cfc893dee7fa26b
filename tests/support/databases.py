"""Test databases on a PostgreSQL server that may not be ours alone: create, seal, clone, drop.

A production-like server has sessions the tests did not open. TimescaleDB's background
scheduler connects to every database that accepts connections, the template included, and
``CREATE DATABASE ... TEMPLATE`` refuses a template that anyone else is connected to
("source database ... is being accessed by other users"). So a migrated template is sealed
(``ALLOW_CONNECTIONS false``: nothing new connects), and each clone first ends whatever
session is still on it, retrying briefly for one that was on its way in.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import errors, sql

CLONE_ATTEMPTS = 20
CLONE_RETRY_SECONDS = 0.25
TERMINATE_WAIT_MS = 2000


def database_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _execute(admin_url: str, statement: sql.Composable, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement, params)


def create_database(admin_url: str, name: str) -> None:
    _execute(admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name`` whoever is connected (``FORCE`` ends their sessions); sealed or not."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    _execute(admin_url, statement)


def terminate_sessions(admin_url: str, name: str) -> int:
    """End every other session on ``name``, waiting for each to go; how many there were."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (TERMINATE_WAIT_MS, name),
        ).fetchall()
    return len(rows)


def seal_template(admin_url: str, name: str) -> None:
    """No new session on the template; the ones already there are ended."""
    statement = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
    _execute(admin_url, statement)
    terminate_sessions(admin_url, name)


def clone_database(admin_url: str, template: str, name: str) -> None:
    """``CREATE DATABASE name TEMPLATE template``, ending stray sessions on the template."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    for attempt in range(CLONE_ATTEMPTS):
        terminate_sessions(admin_url, template)
        try:
            _execute(admin_url, statement)
            return
        except errors.ObjectInUse:
            if attempt == CLONE_ATTEMPTS - 1:
                raise
            time.sleep(CLONE_RETRY_SECONDS)
