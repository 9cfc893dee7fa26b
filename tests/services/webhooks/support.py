"""Shared helpers of the webhook tests: settings, an endpoint on a receiver, placing orders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.settings import Settings
from tests.support.trading import ADMIN, batch

FAST_RETRIES = {
    "allow_loopback": True,
    "retry_initial_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "poll_seconds": 0.05,
    "connect_timeout": 1.0,
    "read_timeout": 2.0,
}


def webhook_settings(make: Callable[..., Settings], base: Settings, **webhooks: Any) -> Settings:
    """``base`` (e.g. ``backend_settings``) with loopback allowed and quick retries."""
    return make(
        db={"url": base.db.url, "data_dir": base.db.data_dir},
        webhooks={**FAST_RETRIES, **webhooks},
    )


async def register(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str] = ADMIN, **body: Any
) -> dict[str, Any]:
    response = await client.post("/advanced/webhooks", json={"url": url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def place(
    client: httpx.AsyncClient, *orders: dict[str, Any], headers: dict[str, str] = ADMIN
) -> list[dict[str, Any]]:
    response = await client.post("/advanced/batch-orders", json=batch(*orders), headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def deliveries(
    client: httpx.AsyncClient, endpoint_id: str, *, headers: dict[str, str] = ADMIN, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/advanced/webhooks/{endpoint_id}/deliveries", params=params, headers=headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
