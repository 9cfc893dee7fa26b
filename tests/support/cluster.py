"""The supported multi-replica topology (README, "Scaling out") in one test process: one
matcher owning the only shard and two gateways routing to it, all on one database and one
Redis prefix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.settings import Settings
from tests.support.live import LiveApp, live_app


def role(
    make_settings: Callable[..., Settings], pg_url: str, name: str, **cluster: Any
) -> Settings:
    return make_settings(
        db={"url": pg_url}, cluster={"instance_id": name, "shards": 1, "shard_id": 0, **cluster}
    )


@asynccontextmanager
async def two_gateways_and_a_matcher(
    make_settings: Callable[..., Settings], pg_url: str
) -> AsyncIterator[tuple[LiveApp, LiveApp, LiveApp]]:
    """Yields gateway A, gateway B and the matcher, once the matcher is ready."""
    async with (
        live_app(role(make_settings, pg_url, "matcher", role="matcher")) as matcher,
        live_app(role(make_settings, pg_url, "gw-a", role="gateway")) as a,
        live_app(role(make_settings, pg_url, "gw-b", role="gateway")) as b,
    ):
        for _ in range(200):
            if (await matcher.http.get("/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the matcher never became ready")
        yield a, b, matcher
