"""Shared by the request-limit tests: the error envelope and "nothing changed" checks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.trading import ADMIN

LIMIT = 64 * 1024  # MAX_BODY_BYTES for these tests
BATCHES = "/advanced/batch-orders"
HOOKS = "/advanced/webhooks"


async def state(client: httpx.AsyncClient) -> Any:
    """What bad input must not change: the account's live orders and the book (``seq``
    aside: an order placed and cancelled on purpose moves it)."""
    live = await client.get("/orders?status=open&limit=1000", headers=ADMIN)
    stats = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
    stats.pop("seq")
    return live.json(), stats


async def batch_ids(client: httpx.AsyncClient) -> list[str]:
    """A refused request (4xx) records no batch either (a rejected order's batch is kept)."""
    page = (await client.get("/advanced/batch-orders?limit=1000", headers=ADMIN)).json()
    return [item["batch_id"] for item in page["items"]]


def error(response: httpx.Response, status: int, *codes: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] in codes, body
    assert isinstance(body["error"]["message"], str)
    return body["error"]  # type: ignore[no-any-return]


def rejected(response: httpx.Response, *codes: str) -> None:
    """A well-formed batch: 200, and its one order rejected with one of ``codes``."""
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 1), body
    (result,) = body["results"]
    assert result["order_id"] is None, result
    assert result["error"]["code"] in codes, result
