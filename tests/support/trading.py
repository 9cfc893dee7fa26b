"""Helpers for order tests: a second account's key, order builders, a running app pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
