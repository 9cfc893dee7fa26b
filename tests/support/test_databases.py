"""The test databases on a server with sessions of its own (TimescaleDB's scheduler connects
to every database): a clone is made while someone holds a session on the template."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from tests.conftest import PG_ADMIN_URL, RUN_ID
from tests.support.databases import (
    clone_database,
    create_database,
    database_url,
    drop_database,
    seal_template,
)


def exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture
def template() -> Iterator[str]:
    """A small template with one row in it, to see that clones copy it."""
    name = f"ticker_test_{RUN_ID}_tpl_{uuid.uuid4().hex[:8]}"
    create_database(PG_ADMIN_URL, name)
    with psycopg.connect(database_url(PG_ADMIN_URL, name), autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (value text)")
        conn.execute("INSERT INTO marker VALUES ('copied')")
    yield name
    drop_database(PG_ADMIN_URL, name)


@pytest.fixture
def clone_name() -> Iterator[str]:
    name = f"ticker_test_{RUN_ID}_clone_{uuid.uuid4().hex[:8]}"
    yield name
    drop_database(PG_ADMIN_URL, name)


def marker(name: str) -> str:
    with psycopg.connect(database_url(PG_ADMIN_URL, name)) as conn:
        row = conn.execute("SELECT value FROM marker").fetchone()
    assert row is not None
    return str(row[0])


class TestCloneDatabase:
    def test_a_session_held_on_the_template_does_not_stop_the_clone(
        self, template: str, clone_name: str
    ) -> None:
        stray = psycopg.connect(database_url(PG_ADMIN_URL, template), autocommit=True)
        try:
            # What the fixture used to run, and what failed under TimescaleDB's scheduler
            # (PostgreSQL waits 5 s for the other session before giving up).
            plain = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(clone_name), sql.Identifier(template)
            )
            with (
                psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin,
                pytest.raises(errors.ObjectInUse, match="being accessed by other users"),
            ):
                admin.execute(plain)
            assert alive(stray)

            clone_database(PG_ADMIN_URL, template, clone_name)
            assert marker(clone_name) == "copied"
            assert not alive(stray)
        finally:
            stray.close()


class TestSealTemplate:
    def test_nothing_connects_to_a_sealed_template_and_clones_still_work(
        self, template: str, clone_name: str
    ) -> None:
        stray = psycopg.connect(database_url(PG_ADMIN_URL, template), autocommit=True)
        try:
            seal_template(PG_ADMIN_URL, template)
            assert not alive(stray)  # a session from before the seal is ended too
        finally:
            stray.close()
        with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
            psycopg.connect(database_url(PG_ADMIN_URL, template)).close()
        clone_database(PG_ADMIN_URL, template, clone_name)
        assert marker(clone_name) == "copied"  # the clone accepts connections

    def test_a_sealed_template_is_dropped(self, template: str) -> None:
        seal_template(PG_ADMIN_URL, template)
        drop_database(PG_ADMIN_URL, template)
        assert not exists(template)

    def test_the_session_template_is_sealed(self, pg_template: str) -> None:
        with psycopg.connect(PG_ADMIN_URL) as conn:
            row = conn.execute(
                "SELECT datallowconn FROM pg_database WHERE datname = %s", (pg_template,)
            ).fetchone()
        assert row == (False,)
