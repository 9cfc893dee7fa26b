"""Durable subscriptions held in memory: a re-read of the table never undoes a change that
this replica made while the read was on its way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from app.services.instruments.snapshot import RegistrySnapshot
from app.services.ticker.subscriptions import SubscriptionIn, SubscriptionService
from app.services.ticker.ticks import Mode
from app.store.database import Database
from tests.support.instruments import database, database_url, infy  # noqa: F401

INFY = 408065


@dataclass
class Registry:
    snapshot: RegistrySnapshot


class TestReload:
    async def test_a_reload_that_read_before_a_local_change_does_not_undo_it(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        service = SubscriptionService(
            database=database, registry=Registry(RegistrySnapshot([infy()], None))
        )
        store = service._store
        read = store.active
        has_read, go_on = asyncio.Event(), asyncio.Event()

        async def read_then_wait() -> dict[int, Any]:
            """The table as it was, delivered after the change below."""
            rows = await read()
            has_read.set()
            await go_on.wait()
            return rows

        store.active = read_then_wait  # type: ignore[method-assign]
        reload = asyncio.create_task(service.reload())
        await has_read.wait()  # read with nothing subscribed
        store.active = read  # type: ignore[method-assign]
        await service.put(SubscriptionIn(symbol="NSE:INFY"), "admin")
        go_on.set()
        await reload
        assert service.active == {INFY: Mode.QUOTE}

    async def test_a_reload_installs_what_another_replica_changed(
        self,
        database: Database,  # noqa: F811
    ) -> None:
        registry = Registry(RegistrySnapshot([infy()], None))
        here = SubscriptionService(database=database, registry=registry)
        there = SubscriptionService(database=database, registry=registry)
        told: list[bool] = []
        here.add_listener(told.append)
        await there.put(SubscriptionIn(symbol="NSE:INFY", mode="full"), "admin")
        await here.reload()
        assert here.active == {INFY: Mode.FULL}
        assert told == [False]
