"""Helpers for order tests: a second account's key, order builders, a running app pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.secrets import remember

ADMIN_KEY = "test-admin-key-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
DESK_B_KEY = "test-desk-b-key-0123456789"
DESK_B = {"X-API-Key": DESK_B_KEY}
READER_KEY = "test-reader-key-0123456789"
READER = {"X-API-Key": READER_KEY}
for _key in (ADMIN_KEY, DESK_B_KEY, READER_KEY):
    remember(_key)


def write_key(tokens_dir: Path, name: str, account: str, scopes: list[str], key: str) -> None:
    remember(key)
    path = tokens_dir / f"{name}.json"
    path.write_text(json.dumps({"account": account, "scopes": scopes, "key": key}))
    path.chmod(0o600)


def add_accounts(tokens_dir: Path) -> None:
    """desk-b (read, trade) and reader (read) besides the all-scopes ``default`` account."""
    write_key(tokens_dir, "desk-b", "desk-b", ["read", "trade"], DESK_B_KEY)
    write_key(tokens_dir, "reader", "reader", ["read"], READER_KEY)


def service_env(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, **extra: str
) -> dict[str, str]:
    """A ``ServiceProcess``'s environment for a drill: the test's database and Redis prefix,
    the admin key and the accounts' key files (under ``tmp_path/tokens``), a data directory of
    its own, rate limits and the circuit breaker out of the way; ``extra`` on top."""
    tokens = tmp_path / "tokens"
    tokens.mkdir(exist_ok=True)
    add_accounts(tokens)
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "API_KEY": ADMIN_KEY,
        "TOKENS_DIR": str(tokens),
        "DATA_DIR": str(tmp_path / "data"),
        "RATE_LIMIT_PER_SECOND": "100000",
        "CIRCUIT_BREAKER_PERCENT": "0",
        **extra,
    }


def order(
    side: str,
    quantity: str,
    price: str | None = None,
    *,
    symbol: str = "NSE:INFY",
    type: str = "limit",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": symbol, "side": side, "type": type, "quantity": quantity}
    if price is not None:
        body["price"] = price
    body.update(extra)
    return body


def batch(*orders: dict[str, Any], atomic: bool = False) -> dict[str, Any]:
    return {"orders": list(orders), "atomic": atomic}


async def place_batch(
    client: httpx.AsyncClient, headers: dict[str, str], *orders: dict[str, Any]
) -> list[dict[str, Any]]:
    """Place ``orders`` as one batch (which must be well formed): the per-order results."""
    response = await client.post("/advanced/batch-orders", json=batch(*orders), headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results
