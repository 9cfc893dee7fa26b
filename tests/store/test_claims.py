"""The journal claim: a file lock beside a SQLite database, an advisory lock on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from app.store.claims import FileClaim, JournalClaimed, PostgresClaim, sqlite_file
from app.store.database import Database


class TestSqliteFile:
    def test_names_the_default_file_without_creating_the_data_dir(self, tmp_path: Path) -> None:
        assert sqlite_file(None, tmp_path / "data") == tmp_path / "data" / "ticker.db"
        assert sqlite_file(f"sqlite:///{tmp_path}/x.db", tmp_path) == tmp_path / "x.db"
        assert sqlite_file("postgresql://u@h/db", tmp_path) is None
        assert sqlite_file("sqlite://", tmp_path) is None
        assert not (tmp_path / "data").exists()


class TestFileClaim:
    def test_a_second_claim_is_refused_naming_the_holder(self, tmp_path: Path) -> None:
        database = tmp_path / "ticker.db"
        first = FileClaim.acquire(database, "pid 123 on desk-1")
        try:
            with pytest.raises(JournalClaimed) as refused:
                FileClaim.acquire(database, "pid 456 on desk-2")
            assert refused.value.holder == "pid 123 on desk-1"
            assert str(database) in str(refused.value)
        finally:
            first.release()
        assert (tmp_path / "ticker.db.lock").read_text() == "pid 123 on desk-1\n"

    def test_a_released_claim_can_be_taken_again(self, tmp_path: Path) -> None:
        database = tmp_path / "ticker.db"
        FileClaim.acquire(database, "first").release()
        second = FileClaim.acquire(database, "second")
        assert second.held
        second.release()
        assert not second.held

    def test_the_lock_is_not_inherited_by_child_processes(self, tmp_path: Path) -> None:
        """A redis-server started by the holder must not keep the journal locked after it."""
        claim = FileClaim.acquire(tmp_path / "ticker.db", "holder")
        try:
            assert not os.get_inheritable(claim._fd)
        finally:
            claim.release()


class TestPostgresClaim:
    async def test_one_session_holds_it_and_it_passes_on_when_that_session_ends(
        self, pg_url: str
    ) -> None:
        first_db, second_db = Database.create(pg_url), Database.create(pg_url)
        first, second = PostgresClaim(first_db), PostgresClaim(second_db)
        try:
            assert await first.try_acquire()
            assert not await second.try_acquire()
            assert await first.alive(2.0)
            await first.release()
            assert not await first.alive(2.0)
            assert await second.try_acquire()
            assert not await first.try_acquire()
        finally:
            await first.release()
            await second.release()
            await first_db.dispose()
            await second_db.dispose()

    async def test_a_release_cut_short_still_ends_the_session_holding_the_lock(
        self, pg_url: str
    ) -> None:
        """The service's stop bounds the release: cancelled before the unlock answered, the
        connection is closed rather than pooled, with the lock in its session."""
        first_db, second_db = Database.create(pg_url), Database.create(pg_url)
        first, second = PostgresClaim(first_db), PostgresClaim(second_db)
        try:
            assert await first.try_acquire()
            release = asyncio.create_task(first.release())
            await asyncio.sleep(0)  # the unlock is on its way
            release.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await release
            assert not first.held
            assert await second.try_acquire()  # the pool kept no session with the lock
        finally:
            await second.release()
            await first_db.dispose()
            await second_db.dispose()
