from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.errors import RegistryRefreshFailed, UnknownInstrument
from app.metrics import Metrics
from app.services.instruments.importer import BUNDLED_INSTRUMENTS_CSV, InstrumentImporter
from app.services.instruments.model import InstrumentStatus
from app.services.instruments.registry import InstrumentRegistry
from app.store.database import Database
from app.store.instruments import InstrumentStore, instruments
from tests.support.instruments import csv_text, database, database_url, instrument_rows

__all__ = ["database", "database_url"]


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def seeded(database: Database, *, rows: int = 0) -> InstrumentStore:
    store = InstrumentStore(database)
    importer = InstrumentImporter(store=store)
    await importer.import_csv(BUNDLED_INSTRUMENTS_CSV)
    if rows:
        await importer.import_text(csv_text(*instrument_rows(rows)))
    return store


@pytest.fixture
async def store(database: Database) -> InstrumentStore:
    return await seeded(database)


@contextlib.asynccontextmanager
async def renamed_table(database: Database) -> AsyncIterator[None]:
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE instruments RENAME TO instruments_away"))
    try:
        yield
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE instruments_away RENAME TO instruments"))


class TestLoad:
    async def test_loads_every_instrument_and_reports_health(self, store: InstrumentStore) -> None:
        metrics = Metrics()
        registry = InstrumentRegistry(store=store, metrics=metrics, refresh_seconds=300)
        assert registry.health()["status"] == "loading"
        assert not registry.is_loaded()
        assert len(registry.snapshot) == 0

        result = await registry.refresh()

        count = await store.count()
        assert result.refreshed
        assert result.instruments == count == len(registry.snapshot)
        assert result.counts == {"active": count, "halted": 0, "delisted": 0, "expired": 0}
        assert registry.is_loaded()
        assert registry.snapshot.resolve("NSE:INFY").tick_size == Decimal("0.05")
        health = registry.health()
        assert health["status"] == "ok"
        assert health["cached_instruments"] == count
        assert health["last_refresh"] == result.last_refresh.isoformat()  # type: ignore[union-attr]
        assert 0 <= health["age_seconds"] < 5
        assert "error" not in health
        assert sample(metrics, "ticker_instruments_cached") == count
        assert sample(metrics, "ticker_registry_refresh_seconds_count") == 1
        assert 0 <= sample(metrics, "ticker_registry_age_seconds") < 5
        assert result.to_json()["instruments"] == count

    async def test_force_false_skips_while_fresh(self, store: InstrumentStore) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=0.2)
        first = await registry.refresh(force=False)
        assert first.refreshed  # never loaded: not fresh
        skipped = await registry.refresh(force=False)
        assert not skipped.refreshed
        assert skipped.last_refresh == first.last_refresh
        await asyncio.sleep(0.25)
        assert (await registry.refresh(force=False)).refreshed
        assert (await registry.refresh(force=True)).refreshed

    async def test_concurrent_refreshes_coalesce_into_one(self, store: InstrumentStore) -> None:
        metrics = Metrics()
        registry = InstrumentRegistry(store=store, metrics=metrics, refresh_seconds=300)
        results = await asyncio.gather(*(registry.refresh(force=True) for _ in range(20)))
        assert sample(metrics, "ticker_registry_refresh_seconds_count") == 1
        assert len({result.last_refresh for result in results}) == 1
        await registry.refresh(force=True)  # a later one is a new load
        assert sample(metrics, "ticker_registry_refresh_seconds_count") == 2

    async def test_a_cancelled_caller_does_not_cancel_the_shared_refresh(
        self, store: InstrumentStore
    ) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        impatient = asyncio.create_task(registry.refresh())
        await asyncio.sleep(0)
        patient = asyncio.create_task(registry.refresh())
        await asyncio.sleep(0)
        impatient.cancel()
        result = await patient
        assert result.refreshed
        assert registry.is_loaded()


class TestConcurrentReads:
    async def test_readers_never_see_an_empty_or_partial_registry(self, database: Database) -> None:
        store = await seeded(database, rows=3000)
        importer = InstrumentImporter(store=store)
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await registry.refresh()
        base = len(registry.snapshot)
        sizes = {base}
        reads_during_refresh = 0
        done = asyncio.Event()

        async def reader() -> None:
            nonlocal reads_during_refresh
            while not done.is_set():
                snapshot = registry.snapshot
                assert len(snapshot) in sizes
                # Every index of one snapshot agrees with every other.
                last = list(snapshot)[-1]
                assert snapshot.resolve(last.symbol) is snapshot.instrument(last.instrument_token)
                assert snapshot.resolve("NSE:INFY").instrument_token == 408065
                if registry._inflight is not None and not registry._inflight.done():
                    reads_during_refresh += 1
                await asyncio.sleep(0)

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        try:
            for step in range(1, 4):
                rows = instrument_rows(200, start=100_000 * step, prefix=f"STEP{step}X")
                sizes.add(base + 200 * step)
                await importer.import_text(csv_text(*rows))
                await registry.refresh()
                assert len(registry.snapshot) == base + 200 * step
        finally:
            done.set()
            await asyncio.gather(*readers)
        assert reads_during_refresh > 0  # the readers really ran while refreshes were loading


class TestFailures:
    async def test_database_failure_keeps_the_old_snapshot_and_shows_stale(
        self, store: InstrumentStore, database: Database
    ) -> None:
        metrics = Metrics()
        registry = InstrumentRegistry(store=store, metrics=metrics, refresh_seconds=300)
        await registry.refresh()
        before = registry.snapshot
        async with renamed_table(database):
            with pytest.raises(RegistryRefreshFailed) as caught:
                await registry.refresh()
            assert caught.value.code == "REGISTRY_REFRESH_FAILED"
            assert caught.value.status == 503
            assert registry.snapshot is before
            assert registry.snapshot.resolve("NSE:TCS").tradingsymbol == "TCS"
            health = registry.health()
            assert health["status"] == "stale"
            assert health["cached_instruments"] == len(before)
            assert "instruments" in health["error"]
            assert registry.is_loaded()  # readiness stays open: the old snapshot serves
            assert not registry.is_fresh()
            assert sample(metrics, "ticker_registry_refresh_failures_total") == 1
        await registry.refresh(force=False)  # not fresh after a failure: reloads
        assert registry.health()["status"] == "ok"
        assert registry.snapshot is not before

    async def test_failure_before_the_first_load(
        self, store: InstrumentStore, database: Database
    ) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        async with renamed_table(database):
            with pytest.raises(RegistryRefreshFailed):
                await registry.refresh()
        assert registry.health()["status"] == "loading"
        assert "error" in registry.health()
        assert not registry.is_loaded()

    async def test_stale_when_refreshes_stop(self, store: InstrumentStore) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=0.01)
        await registry.refresh()
        await asyncio.sleep(0.05)
        health = registry.health()
        assert health["status"] == "stale"
        assert "no successful refresh" in health["error"]

    async def test_a_hand_edited_row_with_a_zero_tick_is_left_out(
        self, store: InstrumentStore, database: Database
    ) -> None:
        async with database.engine.begin() as conn:
            await conn.execute(
                instruments.update()
                .where(instruments.c.instrument_token == 408065)
                .values(tick_size=Decimal(0))
            )
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        result = await registry.refresh()
        assert result.instruments == await store.count() - 1
        assert registry.snapshot.get(408065) is None
        assert registry.snapshot.resolve("INFY").symbol == "BSE:INFY"


class TestPeriodic:
    async def test_picks_up_new_rows_and_survives_failures(
        self, store: InstrumentStore, database: Database
    ) -> None:
        metrics = Metrics()
        registry = InstrumentRegistry(store=store, metrics=metrics, refresh_seconds=0.05)
        await registry.refresh()
        task = asyncio.create_task(registry.run_periodic())
        try:
            await InstrumentImporter(store=store).import_text(csv_text(*instrument_rows(1)))
            await _until(lambda: registry.snapshot.get(1000) is not None)
            async with renamed_table(database):
                await _until(
                    lambda: (
                        (
                            metrics.registry.get_sample_value(
                                "ticker_registry_refresh_failures_total"
                            )
                            or 0
                        )
                        >= 1
                    )
                )
            await _until(lambda: registry.health()["status"] == "ok")
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TestSetStatus:
    async def test_persists_and_publishes(self, store: InstrumentStore, database: Database) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await registry.refresh()
        before = registry.snapshot
        halted = await registry.set_status(408065, InstrumentStatus.HALTED)
        assert halted.status is InstrumentStatus.HALTED
        assert registry.snapshot.resolve("NSE:INFY") is halted
        assert before.resolve("NSE:INFY").status is InstrumentStatus.ACTIVE
        assert registry.snapshot.counts["halted"] == 1
        async with database.engine.connect() as conn:
            status = await conn.scalar(
                sa.select(instruments.c.status).where(instruments.c.instrument_token == 408065)
            )
        assert status == "halted"
        fresh = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await fresh.refresh()
        assert fresh.snapshot.resolve("NSE:INFY").status is InstrumentStatus.HALTED
        resumed = await registry.set_status(408065, "active")
        assert registry.snapshot.resolve("NSE:INFY") is resumed
        assert resumed.status is InstrumentStatus.ACTIVE

    async def test_unknown_token_changes_nothing(self, store: InstrumentStore) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await registry.refresh()
        before = registry.snapshot
        with pytest.raises(UnknownInstrument):
            await registry.set_status(1, InstrumentStatus.HALTED)
        with pytest.raises(ValueError):
            await registry.set_status(408065, "paused")
        assert registry.snapshot is before

    async def test_a_row_deleted_behind_the_registry(
        self, store: InstrumentStore, database: Database
    ) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await registry.refresh()
        async with database.engine.begin() as conn:
            await conn.execute(instruments.delete().where(instruments.c.instrument_token == 408065))
        with pytest.raises(UnknownInstrument, match="no longer in the database"):
            await registry.set_status(408065, InstrumentStatus.HALTED)
        assert registry.snapshot.resolve("NSE:INFY").status is InstrumentStatus.ACTIVE

    async def test_a_halt_during_a_refresh_is_not_lost(self, store: InstrumentStore) -> None:
        registry = InstrumentRegistry(store=store, metrics=Metrics(), refresh_seconds=300)
        await registry.refresh()
        refresh = asyncio.create_task(registry.refresh())
        await asyncio.sleep(0)  # the refresh has started reading
        await registry.set_status(408065, InstrumentStatus.HALTED)
        await refresh
        assert registry.snapshot.resolve("NSE:INFY").status is InstrumentStatus.HALTED


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
